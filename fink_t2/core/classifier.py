"""The cuts-and-classify core: alerts → (class probabilities, status), with numpy only.

Every path that classifies goes through :func:`classify_alerts` (flat arrays) or
:func:`classify_columns` (Fink's ragged ``c*`` columns): the pandas UDFs of
:mod:`fink_t2.processor`, ``fink-t2 classify`` (:mod:`fink_t2.classify`), the evaluation of the
model on alert views and the benchmarks. The cuts are :mod:`fink_t2.core.cuts`, the input is
:func:`fink_t2.core.sequences.build_sequences`; the model is any object with ``class_names`` and
``predict(values)`` (:class:`fink_t2.runtime.inference.T2Model` or a GPU backend).

Examples
--------
On 124 real alerts of 2021-11-22 from Fink's science stage:

>>> import pandas as pd
>>> from fink_t2.alerts import iter_alert_tables
>>> from fink_t2.runtime.inference import load_model
>>> from fink_t2.runtime.model_ref import ModelRef
>>> from fink_t2.paths import SAMPLE_NIGHT
>>> df = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
>>> proba, status = classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch,
...                                  df.jdstarthist, df.ndethist, load_model(ModelRef.resolve()))
>>> proba.shape, sorted(set(status)) == sorted(set(status) & set(STATUSES))
((124, 4), True)
>>> bool((proba[status != "ok"] == REJECTED).all())
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.calibration import calibrated_probabilities, now_features
from fink_t2.core.cuts import (
    REJECTED,
    STATUS_MALFORMED,
    STATUS_OK,
    STATUSES,  # noqa: F401 - re-exported for the doctest
    cut_status,
    header_status,
)
from fink_t2.core.sequences import build_sequences, flatten_ragged

__all__ = ["Classification", "classify_alerts", "classify_columns", "REJECTED", "STATUS_OK"]


class Classification(tuple):
    """What the core returns: unpacks as ``(proba, status)``; ``label`` holds the decision.

    ``proba``: (n, n_classes) calibrated probabilities (the ``t2`` map), ``REJECTED`` rows for rejected
    alerts; ``status``: (n,) ``ok`` or the cut failed; ``label``: (n,) class name of the class-balanced
    decision (``t2_class``: the argmax of the network's own output, see :mod:`fink_t2.core.calibration`),
    None for a rejected alert. Without a model, ``proba`` and ``label`` are None.
    """

    def __new__(cls, proba, status, label):
        result = super().__new__(cls, (proba, status))
        result.label = label
        return result

    @property
    def proba(self):
        return self[0]

    @property
    def status(self):
        return self[1]


def classify_alerts(jd, fid, mag, isdiffpos, offsets, jd_now, jdstarthist, ndethist, roid, cdsxmatch, model):
    """The :class:`Classification` (probabilities, status, decision) of ``n`` alerts.

    ``jd``, ``fid``, ``mag``, ``isdiffpos`` are flat with row boundaries ``offsets`` (n+1);
    ``isdiffpos`` may be None (all positive). The other arguments hold one value per alert.
    The cheap cuts run first: a sequence is built only for the alerts that pass them.
    ``model`` None: the status alone (probabilities None), without running any model. The model's
    contract may carry a ``calibration`` (:mod:`fink_t2.core.calibration`) applied to its output.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    status = header_status(roid, cdsxmatch, jd_now, jdstarthist)
    todo = np.flatnonzero(status == STATUS_OK)
    proba = label = None
    if model is not None:
        proba = np.full((n, len(model.class_names)), REJECTED, dtype=np.float32)
        label = np.full(n, None, dtype=object)
    if len(todo) == 0:
        return Classification(proba, status, label)
    lengths = np.diff(offsets)[todo]
    sub_offsets = np.r_[0, np.cumsum(lengths)]
    points = np.repeat(offsets[todo] - sub_offsets[:-1], lengths) + np.arange(sub_offsets[-1])
    take = (lambda a: None if a is None else np.asarray(a)[points])
    per_alert = (lambda a: np.asarray(a, dtype=np.float64)[todo])
    seq = build_sequences(take(jd), take(fid), take(mag), take(isdiffpos), per_alert(jd_now),
                          per_alert(jdstarthist), per_alert(ndethist), offsets=sub_offsets)
    # the age again, from the first detection the history proves (an older detection than jdstarthist counts)
    sub_status = cut_status(seq.n_epochs, np.zeros(len(todo)), np.full(len(todo), "Unknown", dtype=object),
                            seq.age_days, np.zeros(len(todo)))
    status[todo] = sub_status
    keep = sub_status == STATUS_OK
    if model is not None and keep.any():
        output = model.predict(seq.values[keep])
        rows = todo[keep]
        proba[rows] = calibrated_probabilities(output, now_features(seq.values[keep]), model.contract.get("calibration"))
        label[rows] = np.asarray(model.class_names, dtype=object)[output.argmax(axis=1)]
    return Classification(proba, status, label)


def _numbers(column) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(column, dtype=object)), errors="coerce").to_numpy(np.float64)


def classify_columns(cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist, model):
    """:func:`classify_alerts` on Fink's columns: ragged ``c*`` arrays (history then current) per alert.

    The alert's epoch is the last ``cjd``. Never raises on bad values: an alert whose ``c*`` arrays
    differ in length is ``malformed_history`` (blanked, so one bad row cannot fail the batch).
    """
    columns = [list(c) for c in (cjd, cfid, cmagpsf)]
    signs = None if cisdiffpos is None else list(cisdiffpos)
    lengths = [np.fromiter((0 if a is None else len(a) for a in c), np.int64, len(c)) for c in columns]
    malformed = (lengths[0] != lengths[1]) | (lengths[0] != lengths[2])
    if signs is not None:
        malformed |= lengths[0] != np.fromiter((0 if a is None else len(a) for a in signs), np.int64, len(signs))
    bad = np.flatnonzero(malformed)
    for c in columns + ([signs] if signs is not None else []):
        for i in bad:
            c[i] = None
    jd, offsets = flatten_ragged(columns[0])
    fid, _ = flatten_ragged(columns[1])
    mag, _ = flatten_ragged(columns[2])
    sign = None if signs is None else flatten_ragged(signs, dtype=object)[0]
    jd_now = np.array([a[-1] if a is not None and len(a) else np.nan for a in columns[0]], dtype=np.float64)
    result = classify_alerts(jd, fid, mag, sign, offsets, jd_now, _numbers(jdstarthist), _numbers(ndethist),
                             roid, cdsxmatch, model)
    result.status[malformed] = STATUS_MALFORMED
    if result.proba is not None:
        result.proba[malformed] = REJECTED
        result.label[malformed] = None
    return result
