"""The cuts-and-classify core: alerts → (class probabilities, status), with numpy only.

Every path that classifies goes through :func:`classify_alerts` (flat arrays), :func:`classify_ragged`
(one flat array and its own row offsets per ``c*`` column, as Arrow lists hold them) or
:func:`classify_columns` (Fink's ragged ``c*`` columns, as pandas holds them): the pandas UDFs of
:mod:`fink_t2.processor`, ``fink-t2 classify`` (:mod:`fink_t2.classify`), the evaluation of the
model on alert views and the benchmarks. The cuts are :mod:`fink_t2.core.cuts`, the input is
:func:`fink_t2.core.sequences.build_sequences`; the model is any object with ``class_names`` and
``predict(values)`` (:class:`fink_t2.runtime.inference.T2Model` or a GPU backend). What comes back is one
:class:`Classification` holding everything computed on the way (status, detections counted, the network's raw
output, calibrated probabilities, decision), so no caller computes any of it again.

Examples
--------
On 124 real alerts of 2021-11-22 from Fink's science stage:

>>> import pandas as pd
>>> from fink_t2.alerts import iter_alert_tables
>>> from fink_t2.runtime.inference import load_model
>>> from fink_t2.runtime.model_ref import ModelRef
>>> from fink_t2.paths import SAMPLE_NIGHT
>>> df = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
>>> result = classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch,
...                           df.jdstarthist, df.ndethist, load_model(ModelRef.resolve()))
>>> proba, status = result
>>> proba.shape, sorted(set(status)) == sorted(set(status) & set(STATUSES))
((124, 4), True)
>>> bool((proba[status != "ok"] == REJECTED).all()), bool((result.n_detections[status == "ok"] >= 2).all())
(True, True)
>>> bool((result.output[status == "ok"].argmax(axis=1) == result.decision[status == "ok"]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fink_t2.core.calibration import calibrated_probabilities, now_features
from fink_t2.core.cuts import (
    REJECTED,
    STATUS_MALFORMED,
    STATUS_OK,
    STATUSES,  # noqa: F401 - re-exported for the doctest
    header_status,
    light_curve_status,
)
from fink_t2.core.sequences import build_sequences, flatten_ragged

__all__ = ["Classification", "classify_alerts", "classify_columns", "classify_ragged", "REJECTED", "STATUS_OK"]

#: ``n_detections`` of an alert rejected by the header cuts: its light curve was not read
NOT_COUNTED = -1


@dataclass
class Classification:
    """Everything the core computed for ``n`` alerts; unpacks and indexes as the pair ``(proba, status)``.

    ``status``: (n,) ``ok`` or the first cut failed. ``n_detections``: (n,) g/r positive detections in the
    alert's window (:class:`fink_t2.core.sequences.Sequences`), ``NOT_COUNTED`` for an alert the header cuts
    rejected (unless counted on request). ``last_node``: (n, channels) float32, the last node of the model input
    (the alert's age, ``ndethist``, peak flux: what the calibration reads), NaN where no input was built.
    With a model: ``output`` (n, n_classes) the network's raw output, ``proba`` the calibrated probabilities
    (the ``t2`` map), both ``REJECTED`` for a rejected alert; ``decision`` (n,) the index of the class-balanced
    decision (argmax of ``output``, -1 when rejected) and ``label`` its class name (``t2_class``, None when
    rejected). Without a model these four are None.
    """

    status: np.ndarray
    n_detections: np.ndarray
    last_node: np.ndarray
    output: np.ndarray | None = None
    proba: np.ndarray | None = None
    decision: np.ndarray | None = None
    label: np.ndarray | None = None

    def __iter__(self):
        return iter((self.proba, self.status))

    def __getitem__(self, index):
        return (self.proba, self.status)[index]

    def __len__(self) -> int:
        return 2

    @classmethod
    def start(cls, status, n_detections, last_node, class_names=None) -> "Classification":
        """A result whose model fields (with ``class_names``: a model runs) hold a rejected alert's values until
        :meth:`record` fills the classified rows."""
        result = cls(status, n_detections, last_node)
        if class_names is not None:
            n, k = len(status), len(class_names)
            result.output = np.full((n, k), REJECTED, dtype=np.float32)
            result.proba = np.full((n, k), REJECTED, dtype=np.float32)
            result.decision = np.full(n, -1, dtype=np.int64)
            result.label = np.full(n, None, dtype=object)
        return result

    @classmethod
    def from_predictions(cls, proba, status, label) -> "Classification":
        """Probabilities and decisions made elsewhere (saved folds, a study's own network), as the metrics read them."""
        n = len(status)
        return cls(status, np.full(n, NOT_COUNTED, dtype=np.int64), np.full((n, 0), np.nan, dtype=np.float32),
                   proba=proba, label=label)

    def record(self, rows, output, proba, class_names) -> None:
        """The network's raw ``output`` and calibrated ``proba`` for ``rows``; the decision is the output's argmax."""
        self.output[rows] = output
        self.proba[rows] = proba
        self.decision[rows] = output.argmax(axis=1)
        self.label[rows] = np.asarray(class_names, dtype=object)[self.decision[rows]]

    def reject(self, rows, status: str) -> None:
        """Give ``rows`` the ``status`` and the values of a rejected alert."""
        self.status[rows] = status
        self.n_detections[rows] = NOT_COUNTED
        self.last_node[rows] = np.nan
        if self.output is not None:
            self.output[rows] = REJECTED
            self.proba[rows] = REJECTED
            self.decision[rows] = -1
            self.label[rows] = None


def classify_alerts(jd, fid, mag, isdiffpos, offsets, jd_now, jdstarthist, ndethist, roid, cdsxmatch, model,
                    count_rejected: bool = False) -> Classification:
    """The :class:`Classification` of ``n`` alerts.

    ``jd``, ``fid``, ``mag``, ``isdiffpos`` are flat with row boundaries ``offsets`` (n+1);
    ``isdiffpos`` may be None (all positive). The other arguments hold one value per alert.
    The header cuts run first, on every alert; a sequence is built only for the alerts that pass them
    (``count_rejected``: for every alert, so that ``n_detections`` counts them all), and the light-curve
    cuts read it. ``model`` None: the status alone, without running any model. The model's contract may
    carry a ``calibration`` (:mod:`fink_t2.core.calibration`) applied to its output.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    status = header_status(roid, cdsxmatch, jd_now, jdstarthist)
    result = Classification.start(status, np.full(n, NOT_COUNTED, dtype=np.int64), np.full((n, 0), np.nan, np.float32),
                                  None if model is None else model.class_names)
    todo = np.arange(n) if count_rejected else np.flatnonzero(status == STATUS_OK)
    if len(todo) == 0:
        return result
    lengths = np.diff(offsets)[todo]
    sub_offsets = np.r_[0, np.cumsum(lengths)]
    points = np.repeat(offsets[todo] - sub_offsets[:-1], lengths) + np.arange(sub_offsets[-1])
    take = (lambda a: None if a is None else np.asarray(a)[points])
    per_alert = (lambda a: np.asarray(a, dtype=np.float64)[todo])
    seq = build_sequences(take(jd), take(fid), take(mag), take(isdiffpos), per_alert(jd_now),
                          per_alert(jdstarthist), per_alert(ndethist), offsets=sub_offsets)
    result.n_detections[todo] = seq.n_detections
    result.last_node = np.full((n, seq.values.shape[-1]), np.nan, np.float32)
    result.last_node[todo] = seq.values[:, -1, :]
    passed = status[todo] == STATUS_OK  # count_rejected: the header cuts' rejections stay as they are
    status[todo[passed]] = light_curve_status(seq.n_epochs[passed], seq.age_days[passed])
    keep = passed & (status[todo] == STATUS_OK)
    if model is not None and keep.any():
        output = np.asarray(model.predict(seq.values[keep]), dtype=np.float32)
        proba = calibrated_probabilities(output, now_features(seq.values[keep]), model.contract.get("calibration"))
        result.record(todo[keep], output, proba, model.class_names)
    return result


def _numbers(column) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(column, dtype=object)), errors="coerce").to_numpy(np.float64)


def classify_ragged(jd, fid, mag, isdiffpos, roid, cdsxmatch, jdstarthist, ndethist, model,
                    count_rejected: bool = False) -> Classification:
    """:func:`classify_alerts` on Fink's ``c*`` columns given as ``(flat values, offsets)`` pairs, one per column.

    ``isdiffpos`` may be None (all positive). The alert's epoch is its last ``cjd``. Never raises on bad
    values: an alert whose ``c*`` arrays differ in length is ``malformed_history`` (its points are left out,
    so one bad row cannot fail the batch). ``count_rejected``: as for :func:`classify_alerts`.
    """
    columns = [c for c in (jd, fid, mag, isdiffpos) if c is not None]
    lengths = [np.diff(np.asarray(offsets, dtype=np.int64)) for _, offsets in columns]
    malformed = np.zeros(len(lengths[0]), dtype=bool)
    for other in lengths[1:]:
        malformed |= other != lengths[0]
    flat = []
    for (values, _), length in zip(columns, lengths):
        values = np.asarray(values)
        if malformed.any():
            values = values[np.repeat(~malformed, length)]
        flat.append(values)
    common = np.r_[0, np.cumsum(np.where(malformed, 0, lengths[0]))]
    last = common[1:] - 1
    jd_now = np.where(common[1:] > common[:-1], flat[0][np.maximum(last, 0)] if len(flat[0]) else np.nan, np.nan)
    result = classify_alerts(flat[0], flat[1], flat[2], flat[3] if isdiffpos is not None else None, common,
                             jd_now.astype(np.float64), _numbers(jdstarthist), _numbers(ndethist), roid, cdsxmatch,
                             model, count_rejected)
    result.reject(malformed, STATUS_MALFORMED)
    return result


def classify_columns(cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist, model) -> Classification:
    """:func:`classify_ragged` on ragged ``c*`` columns: one array (or None) per alert, history then current."""
    ragged = [flatten_ragged(list(cjd)), flatten_ragged(list(cfid)), flatten_ragged(list(cmagpsf)),
              None if cisdiffpos is None else flatten_ragged(list(cisdiffpos), dtype=object)]
    return classify_ragged(*ragged, roid, cdsxmatch, jdstarthist, ndethist, model)
