"""The cuts-and-classify core for Rubin alerts: Fink's Rubin columns → (probabilities, status, decision), numpy only.

Input, one value or ragged array per alert, as Fink's Rubin science stage has them: the ``c*`` arrays that
``fink_utils.spark.utils.concat_col`` builds (``prvDiaSources`` then ``diaSource``: ``midpointMjdTai``,
``psfFlux``, ``psfFluxErr``, ``band``), the forced photometry of ``prvDiaForcedSources`` (same four fields,
null when the packet has none), the two ``ssObjectId`` (``diaSource``, ``ssSource``) and
``diaObject.firstDiaSourceMjdTai``. The alert's epoch is its ``diaSource`` (the last ``c*`` entry).

What the model sees is what it was trained on (:mod:`fink_t2.model.plasticc_alerts`): every measurement of
the model's window (365 days) up to the alert, detections and forced photometry, built by
:func:`fink_t2.core.flux_sequences.build_flux_sequences` from the model's contract (bands, nJy, layout). A
measurement is used where its time, flux and error are finite, its error positive and its band one of the
model's; anything else (NaN, null, an unknown band, a string where a number is due) is skipped, never raised.
The cuts are :mod:`fink_t2.core.rubin_cuts`; they run before any sequence is built.

Output: :class:`fink_t2.core.classifier.Classification`: calibrated probabilities (the contract's
``calibration`` if it carries one, else the output as it is; ``REJECTED`` rows for rejected alerts), the
status, and the decision (argmax of the network's output; None when rejected).

>>> from fink_t2.runtime.inference import load_model
>>> from fink_t2.runtime.model_ref import ModelRef
>>> from fink_t2.paths import LSST_MODEL_PATH
>>> model = load_model(ModelRef.resolve(LSST_MODEL_PATH))
>>> result = classify_rubin_columns(
...     [[61000.1, 61003.2, 61005.3], [61005.3], None], [[900.0, 1500.0, 2100.0], [80.0], None],
...     [[60.0, 70.0, 75.0], [9.0], None], [["g", "r", "g"], ["i"], None],
...     [[60990.0], None, None], [[-12.0], None, None], [[30.0], None, None], [["g"], None, None],
...     [0, 0, 0], [None, None, None], [None, None, None], model)
>>> result.status.tolist()
['ok', 'too_few_detections', 'too_few_detections']
>>> bool(abs(result.proba[0].sum() - 1) < 1e-3), result.label[0] in model.class_names, result.label[1]
(True, True, None)
>>> result.proba[1:].tolist() == [[REJECTED] * len(model.class_names)] * 2
True
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from fink_t2.core.calibration import calibrated_probabilities
from fink_t2.core.classifier import Classification
from fink_t2.core.contract import ModelContractError, input_spec
from fink_t2.core.cuts import STATUS_MALFORMED, STATUS_OK
from fink_t2.core.flux_sequences import band_index, build_flux_sequences
from fink_t2.core.rubin_cuts import REJECTED, cut_status, header_status
from fink_t2.core.spec import SequenceSpec

__all__ = ["REJECTED", "calibration_features", "classify_rubin_columns", "rubin_spec"]

#: channels of the alert's last node that a contract's calibration reads (the ZTF names' format-3 counterparts)
CALIBRATION_INPUTS = ("age", "log_ndet")


def rubin_spec(contract: dict) -> SequenceSpec:
    """The band-generic input a contract declares; ModelContractError for a model that cannot read Rubin alerts
    (the ZTF g/r file, format 2)."""
    spec = input_spec(contract)
    if not isinstance(spec, SequenceSpec):
        raise ModelContractError(f"a {spec['flux_unit']} {'/'.join(spec['bands'])} model (contract format "
                                 f"{contract.get('format')}) cannot classify Rubin alerts: use a format-3 model "
                                 "such as fink_t2/data/t2_lsst.tflite")
    return spec


def calibration_features(values: np.ndarray, spec: SequenceSpec) -> np.ndarray:
    """The ``age`` and ``log_ndet`` channels of each alert's last node (what a calibration reads)."""
    return values[:, -1, [spec.channels.index(c) for c in CALIBRATION_INPUTS]].astype(np.float64)


def _lengths(column) -> np.ndarray:
    """Length of each alert's array; 0 for null, -1 for a value that is not an array (a scalar, a string)."""
    def size(a):
        if a is None or isinstance(a, (str, bytes)):
            return 0 if a is None else -1
        try:
            return len(a)
        except TypeError:
            return -1
    return np.fromiter((size(a) for a in column), np.int64, len(column))


def _flat(column, keep: np.ndarray, numeric: bool) -> np.ndarray:
    """The arrays of the alerts ``keep`` concatenated; numbers that do not parse become NaN."""
    parts = [a for a, k in zip(column, keep) if k and a is not None]
    size = sum(len(a) for a in parts)
    if numeric:
        try:
            flat = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in parts] or [np.empty(0)])
            if len(flat) == size:
                return flat
        except (TypeError, ValueError):  # a string or a null inside: parse value by value below
            pass
    flat = pd.Series(list(itertools.chain.from_iterable(parts)), dtype=object)
    if not numeric:
        return flat.to_numpy(object)
    scalar = flat.map(lambda v: isinstance(v, (int, float, str, np.number)))
    return pd.to_numeric(flat.where(scalar, None), errors="coerce").to_numpy(np.float64)


def _measurements(columns, keep, spec):
    """(time, band index, flux, valid, row) of the flat arrays of ``columns`` (time, flux, error, band)."""
    lengths = np.where(keep, _lengths(columns[0]), 0)
    time, flux, err = (_flat(c, keep, numeric=True) for c in columns[:3])
    band = band_index(spec, _flat(columns[3], keep, numeric=False))
    valid = np.isfinite(time) & np.isfinite(flux) & np.isfinite(err) & (err > 0) & (band >= 0)
    return time, band, flux, valid, np.repeat(np.arange(len(lengths)), lengths)


def _per_alert(values, n) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object).reshape(-1)), errors="coerce") \
        .reindex(range(n)).to_numpy(np.float64)


def classify_rubin_columns(cmjd, cflux, cflux_err, cband, fmjd, fflux, fflux_err, fband, dia_ss_object_id,
                           ss_ss_object_id, first_mjd, model, spec: SequenceSpec | None = None) -> Classification:
    """The :class:`~fink_t2.core.classifier.Classification` of ``n`` Rubin alerts (see the module doc).

    ``model``: a runner with ``class_names``, ``contract`` (format 3) and ``predict``; None gives the status
    alone (then ``spec``, default :class:`~fink_t2.core.spec.SequenceSpec`, gives the bands and window).
    Never raises on bad values: a malformed alert is ``malformed_history``, a bad measurement is skipped.
    """
    spec = rubin_spec(model.contract) if model is not None else (spec or SequenceSpec())
    detections = [list(c) for c in (cmjd, cflux, cflux_err, cband)]
    forced = [list(c) for c in (fmjd, fflux, fflux_err, fband)]
    n = len(detections[0])
    if any(len(c) != n for c in detections + forced):
        raise ValueError("every Rubin column must hold one value per alert")
    c_len = [_lengths(c) for c in detections]
    f_len = [_lengths(c) for c in forced]
    malformed = np.zeros(n, dtype=bool)
    for lengths in (c_len, f_len):
        malformed |= (lengths[0] < 0) | np.any([x != lengths[0] for x in lengths[1:]], axis=0)
    status = header_status(dia_ss_object_id, ss_ss_object_id)
    todo = (status == STATUS_OK) & ~malformed

    time, band, flux, valid, row = _measurements(detections, todo, spec)
    last = np.full(n, np.nan)
    ends = np.cumsum(np.where(todo, c_len[0], 0)) - 1
    has = todo & (c_len[0] > 0)
    last[has] = time[ends[has]]  # the diaSource: concat_col puts it last
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, row[valid], time[valid])
    now = np.where(np.isfinite(last), last, np.where(np.isfinite(latest), latest, np.nan))
    with np.errstate(invalid="ignore"):
        seen = valid & (time <= now[row])
        in_window = seen & (time >= now[row] - spec.window_days)
    first = np.full(n, np.inf)
    np.minimum.at(first, row[seen], time[seen])
    first = np.fmin(_per_alert(first_mjd, n), np.where(np.isfinite(first), first, np.nan))
    n_detections = np.bincount(row[in_window], minlength=n)
    age = np.where(np.bincount(row[seen], minlength=n) > 0, now - first, 0.0)  # no detection: too few, not too old
    status[todo] = cut_status(n_detections, age, np.zeros(n, dtype=bool))[todo]
    status[malformed] = STATUS_MALFORMED

    result = Classification.start(status, n_detections.astype(np.int64),
                                  np.full((n, len(spec.channels)), np.nan, dtype=np.float32),
                                  None if model is None else model.class_names)
    ok = np.flatnonzero(status == STATUS_OK)
    if model is None or len(ok) == 0:
        return result

    keep = np.isin(np.arange(n), ok)
    f_time, f_band, f_flux, f_valid, f_row = _measurements(forced, keep, spec)
    pick_c = valid & keep[row]
    rows = np.concatenate([row[pick_c], f_row[f_valid]])
    order = np.argsort(rows, kind="stable")
    local = np.searchsorted(ok, rows[order])
    offsets = np.r_[0, np.cumsum(np.bincount(local, minlength=len(ok)))]
    seq = build_flux_sequences(
        spec, np.concatenate([time[pick_c], f_time[f_valid]])[order],
        np.concatenate([band[pick_c], f_band[f_valid]])[order], np.concatenate([flux[pick_c], f_flux[f_valid]])[order],
        np.concatenate([np.ones(pick_c.sum()), np.zeros(f_valid.sum())])[order], offsets=offsets, t_now=now[ok],
        t_first=first[ok])
    output = model.predict(seq.values)
    result.last_node[ok] = seq.values[:, -1, :]
    result.record(ok, output, calibrated_probabilities(output, calibration_features(seq.values, spec),
                                                       model.contract.get("calibration")), model.class_names)
    return result
