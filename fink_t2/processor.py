"""The Fink science module: ``t2`` pandas UDF, Fink's cuts, the -1 contract, ``maxclass``.

Use it next to any fink-science module, on a DataFrame that has the ``c*``
history columns (``fink_utils.spark.utils.concat_col``) plus ``roid``,
``cdsxmatch`` and ``candidate.jdstarthist``::

    df = df.withColumn("t2", t2(*T2_COLUMNS))
    df = df.withColumn("t2_class", maxclass("t2"))

``t2`` returns a map class → probability; every value is -1.0 for an alert
rejected by the cuts. ``t2_status`` says why (``ok`` or the first cut failed),
so the -1 contract stays as Fink expects and users still learn the reason.

Examples
--------
On 124 real alerts of 2021-11-22 from Fink's science stage:

>>> from fink_t2.alerts.binaryfile import load_alerts
>>> from fink_t2.spark import get_spark
>>> from fink_t2.samples import SAMPLE_NIGHT
>>> spark = get_spark()
>>> df = load_alerts(spark, SAMPLE_NIGHT)
>>> df = df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_status", t2_status(*T2_COLUMNS))
>>> df = df.withColumn("t2_class", maxclass("t2"))
>>> rows = df.select("t2", "t2_status", "t2_class").collect()
>>> len(rows)
124
>>> sorted(rows[0].t2) == sorted(CLASS_NAMES)
True
>>> all(set(r.t2.values()) == {-1.0} for r in rows if r.t2_status != "ok")
True
>>> all(abs(sum(r.t2.values()) - 1) < 1e-3 for r in rows if r.t2_status == "ok")
True
>>> sum(r.t2_status == "ok" for r in rows) == sum(r.t2_class is not None for r in rows)
True
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from fink_utils.xmatch.simbad import return_list_of_eg_host
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import FloatType, MapType, StringType, StructField, StructType

from fink_t2.inference import load_model
from fink_t2.sequences import Sequences, build_sequences

#: UDF input columns, in order, as they appear in a Fink DataFrame
T2_COLUMNS = ("cjd", "cfid", "cmagpsf", "csigmapsf", "roid", "cdsxmatch", "candidate.jdstarthist")
#: class names of the shipped model (the model file is the authority: see fink_t2.contract)
CLASS_NAMES = ("SN Ia", "SN II", "SN Ibc", "Other")
#: cuts, in the order they are checked (the first failure is the reported status):
#: the cheap ones on alert columns first, then those that need the light curve
ASTEROID_ROID = 3  # Fink roid value for a known solar-system object
EXTRAGALACTIC_XMATCH = frozenset(return_list_of_eg_host())
MAX_DAYS_SINCE_FIRST_DETECTION = 90.0  # current jd − jdstarthist, days
MIN_DETECTIONS = 2  # g or r detections at distinct epochs usable by the model
#: value of every class for an alert rejected by the cuts
REJECTED = -1.0

STATUS_OK = "ok"
STATUS_ASTEROID = "asteroid"
STATUS_GALACTIC = "galactic_xmatch"
STATUS_TOO_OLD = "too_old"
STATUS_FEW_DETECTIONS = "too_few_detections"
#: ``cjd``, ``cfid`` and ``cmagpsf`` of the alert differ in length (not a Fink light curve)
STATUS_MALFORMED = "malformed_history"


def cut_status(n_detections, roid, cdsxmatch, jd_current, jdstarthist) -> np.ndarray:
    """Status of each alert against Fink's cuts: ``ok`` or the first cut it fails.

    >>> cut_status([2, 1, 3, 5], [0, 0, 3, 0], ["Unknown", "galaxy", "SN", "Star"],
    ...            [10.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]).tolist()
    ['ok', 'too_few_detections', 'asteroid', 'galactic_xmatch']
    """
    status = np.full(len(n_detections), STATUS_OK, dtype=object)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, which fails the age cut
        age = np.asarray(jd_current, dtype=np.float64) - np.asarray(jdstarthist, dtype=np.float64)
    checks = [  # later checks overwrite earlier ones: list them from last to first
        (np.asarray(n_detections) < MIN_DETECTIONS, STATUS_FEW_DETECTIONS),
        (~(age <= MAX_DAYS_SINCE_FIRST_DETECTION), STATUS_TOO_OLD),  # NaN age fails too
        (~pd.Series(cdsxmatch).isin(EXTRAGALACTIC_XMATCH).to_numpy(), STATUS_GALACTIC),
        (pd.Series(roid).fillna(0).astype(int).to_numpy() == ASTEROID_ROID, STATUS_ASTEROID),
    ]
    for failed, name in checks:
        status[failed] = name
    return status


def sequences_and_status(cjd, cfid, cmagpsf, roid, cdsxmatch, jdstarthist):
    """Model input of every alert and its cut status; the current jd is the last of ``cjd``.

    Never raises on bad values: the detection cut counts distinct epochs (a duplicated
    detection counts once), an alert with detections beyond the 100-day window is
    ``too_old``, and an alert whose ``c*`` arrays differ in length is ``malformed_history``.
    Sequences are built only for alerts that pass the cheap cuts (asteroid, cross-match,
    age); the others get empty sequences, which the model never sees.
    """
    lengths = [np.fromiter((0 if a is None else len(a) for a in col), np.int64, len(col)) for col in (cjd, cfid, cmagpsf)]
    malformed = (lengths[0] != lengths[1]) | (lengths[0] != lengths[2])
    n = len(malformed)
    jd_current = np.fromiter((a[-1] if a is not None and len(a) else np.nan for a in cjd), float, n)
    jdstarthist = pd.to_numeric(pd.Series(jdstarthist), errors="coerce").to_numpy(dtype=np.float64)
    # cheap cuts first: on a real night most alerts stop here, before any sequence is built
    status = cut_status(np.full(n, MIN_DETECTIONS), roid, cdsxmatch, jd_current, jdstarthist)
    status[malformed] = STATUS_MALFORMED  # blanked: one bad row cannot fail the whole batch
    todo = np.flatnonzero(status == STATUS_OK)
    sub = build_sequences(*(_rows(col, todo) for col in (cjd, cfid, cmagpsf)))
    # detections beyond the window: the light curve is older than the model sees, whatever jdstarthist says
    status[todo] = np.where(
        sub.n_beyond_window > 0, STATUS_TOO_OLD, np.where(sub.n_epochs < MIN_DETECTIONS, STATUS_FEW_DETECTIONS, STATUS_OK)
    )
    return _scatter(sub, todo, n), status


def _rows(column, index):
    """Rows ``index`` (positions) of a pandas Series or a sequence of per-alert arrays."""
    if isinstance(column, pd.Series):
        return column.iloc[index].to_numpy()
    return [column[i] for i in index]


def _scatter(sub: Sequences, rows: np.ndarray, n: int) -> Sequences:
    """Sequences of ``n`` alerts holding ``sub`` at ``rows`` and empty sequences elsewhere."""
    out = Sequences(
        values=np.zeros((n, *sub.values.shape[1:]), np.float32),
        mask=np.zeros((n, *sub.mask.shape[1:]), bool),
        n_detections=np.zeros(n, np.int64),
        n_epochs=np.zeros(n, np.int64),
        n_beyond_window=np.zeros(n, np.int64),
    )
    for name in ("values", "mask", "n_detections", "n_epochs", "n_beyond_window"):
        getattr(out, name)[rows] = getattr(sub, name)
    return out


def classify(cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, jdstarthist, model_path=None):
    """Vectorised t2 on pandas columns → (probabilities DataFrame, status array).

    Rows rejected by the cuts hold -1 in every class column. ``csigmapsf`` is
    part of the Fink signature; the current preprocessing does not use it.
    """
    model = load_model(model_path)
    seq, status = sequences_and_status(cjd, cfid, cmagpsf, roid, cdsxmatch, jdstarthist)
    proba = np.full((len(status), len(model.class_names)), REJECTED, dtype=np.float32)
    keep = status == STATUS_OK
    if keep.any():
        proba[keep] = model.predict(seq.values[keep])
    return pd.DataFrame(proba, columns=list(model.class_names)), status


T2_MAP_TYPE = MapType(StringType(), FloatType())
T2_RESULT_TYPE = StructType(
    [StructField("t2", T2_MAP_TYPE), StructField("t2_status", StringType()), StructField("t2_class", StringType())]
)


def _as_maps(proba: pd.DataFrame) -> list:
    names = list(proba.columns)
    return [dict(zip(names, row)) for row in proba.to_numpy().tolist()]


def t2_udf(model_path: str | None = None):
    """The ``t2`` pandas UDF, bound to ``model_path`` (a path the Python workers can read) if given.

    Without a path the workers run ``$FINK_T2_MODEL`` or the shipped model; with one, the
    path travels with the UDF itself, so every worker runs the file the driver checked.
    """
    path = None if model_path is None else os.path.abspath(model_path)

    @pandas_udf(T2_MAP_TYPE)
    def t2(
        cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series,
        roid: pd.Series, cdsxmatch: pd.Series, jdstarthist: pd.Series,
    ) -> pd.Series:
        """Fink science module: map class → probability, all -1.0 when rejected by the cuts."""
        proba, _ = classify(cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, jdstarthist, model_path=path)
        return pd.Series(_as_maps(proba))

    return t2


def t2_result_udf(model_path: str | None = None):
    """One pass giving the struct (``t2`` map, ``t2_status``, ``t2_class``): what the replay writes.

    Same values as ``t2``, ``t2_status`` and ``maxclass`` applied one after the other,
    at the cost of one sequence build and one model call instead of two builds.
    """
    path = None if model_path is None else os.path.abspath(model_path)

    @pandas_udf(T2_RESULT_TYPE)
    def t2_result(
        cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series,
        roid: pd.Series, cdsxmatch: pd.Series, jdstarthist: pd.Series,
    ) -> pd.DataFrame:
        proba, status = classify(cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, jdstarthist, model_path=path)
        names = np.asarray(proba.columns, dtype=object)
        best = np.where(status == STATUS_OK, names[proba.to_numpy().argmax(axis=1)], None)
        return pd.DataFrame({"t2": _as_maps(proba), "t2_status": status, "t2_class": best})

    return t2_result


#: the Fink science module with the default model: ``df.withColumn("t2", t2(*T2_COLUMNS))``
t2 = t2_udf()


@pandas_udf(StringType())
def t2_status(
    cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series,
    roid: pd.Series, cdsxmatch: pd.Series, jdstarthist: pd.Series,
) -> pd.Series:
    """Why ``t2`` did or did not classify each alert: ``ok`` or the failed cut (no model run)."""
    _, status = sequences_and_status(cjd, cfid, cmagpsf, roid, cdsxmatch, jdstarthist)
    return pd.Series(status)


@pandas_udf(StringType())
def maxclass(t2_map: pd.Series) -> pd.Series:
    """Most probable class of a ``t2`` map; null for an alert rejected by the cuts."""

    def best(m):
        items = dict(m) if m is not None else {}
        if not items or max(items.values()) < 0:
            return None
        return max(items, key=items.get)

    return t2_map.map(best)
