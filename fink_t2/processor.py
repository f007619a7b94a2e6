"""The Fink science module: the ``t2`` pandas UDF, ``t2_status``, ``t2_class`` and ``maxclass``.

Use it next to any fink-science module, on a DataFrame that has the ``c*`` history columns
(``fink_utils.spark.utils.concat_col`` of ``jd``, ``fid``, ``magpsf``, ``isdiffpos``) plus
``roid``, ``cdsxmatch`` and the ``candidate`` struct::

    df = df.withColumn("t2", t2(*T2_COLUMNS))
    df = df.withColumn("t2_class", t2_class(*T2_COLUMNS))

``t2`` returns a map class → calibrated probability; every value is ``REJECTED`` (−1.0) for an alert
rejected by the cuts (:mod:`fink_t2.core.cuts`, where the thresholds live). ``t2_status`` says why (``ok``
or the first cut failed). ``t2_class`` is the class-balanced decision (:mod:`fink_t2.core.calibration`);
``maxclass`` the most probable class of a map. The work itself is :func:`fink_t2.core.classifier.classify_columns`, the same
core as ``fink-t2 classify`` and the evaluation.

Importing this module reads no environment variable and no model file. ``t2`` and ``t2_class`` run the
default model (:meth:`fink_t2.runtime.model_ref.ModelRef.default`: ``$FINK_T2_MODEL``, else the shipped
one), resolved on the driver when they are applied; ``t2_udf(ref)``, ``t2_class_udf(ref)`` and
``t2_result_udf(ref)`` bind another :class:`~fink_t2.runtime.model_ref.ModelRef`, which travels to the workers.

Examples
--------
On 124 real alerts of 2021-11-22 from Fink's science stage:

>>> from fink_t2.alerts.binaryfile import load_alerts
>>> from fink_t2.stream.spark import get_spark
>>> from fink_t2.paths import SAMPLE_NIGHT
>>> spark = get_spark()
>>> df = load_alerts(spark, SAMPLE_NIGHT)
>>> df = df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_status", t2_status(*T2_COLUMNS))
>>> df = df.withColumn("t2_class", t2_class(*T2_COLUMNS)).withColumn("most_probable", maxclass("t2"))
>>> rows = df.select("t2", "t2_status", "t2_class", "most_probable").collect()
>>> len(rows)
124
>>> sorted(rows[0].t2) == sorted(ModelRef.default().class_names)
True
>>> all(set(r.t2.values()) == {REJECTED} for r in rows if r.t2_status != "ok")
True
>>> all(abs(sum(r.t2.values()) - 1) < 1e-3 for r in rows if r.t2_status == "ok")
True
>>> sum(r.t2_status == "ok" for r in rows) == sum(r.t2_class is not None for r in rows)
True
>>> all(r.most_probable == max(r.t2, key=r.t2.get) for r in rows if r.t2_status == "ok")
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import FloatType, MapType, StringType, StructField, StructType

from fink_t2.core.classifier import classify_columns
from fink_t2.core.cuts import REJECTED  # noqa: F401 - the value of a rejected alert, used in the doctest
from fink_t2.runtime.gpu import model_for_task
from fink_t2.runtime.model_ref import ModelRef

#: UDF input columns, in order, as they appear in a Fink DataFrame
T2_COLUMNS = ("cjd", "cfid", "cmagpsf", "cisdiffpos", "roid", "cdsxmatch", "candidate.jdstarthist",
              "candidate.ndethist")

T2_MAP_TYPE = MapType(StringType(), FloatType())
T2_RESULT_TYPE = StructType(
    [StructField("t2", T2_MAP_TYPE), StructField("t2_status", StringType()), StructField("t2_class", StringType())]
)


def as_maps(proba: np.ndarray, class_names) -> list:
    """Rows of probabilities → one ``{class: probability}`` dict per row."""
    names = list(class_names)
    return [dict(zip(names, row)) for row in proba.tolist()]


def _run(ref: ModelRef, columns):
    model = model_for_task(ref)
    return model, classify_columns(*columns, model=model)


def _column_udf(ref: ModelRef | None, return_type, column):
    """A pandas UDF over :data:`T2_COLUMNS` returning ``column(model, classification)`` as a Series."""
    ref = ref or ModelRef.default()

    @pandas_udf(return_type)
    def udf(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, cisdiffpos: pd.Series, roid: pd.Series,
            cdsxmatch: pd.Series, jdstarthist: pd.Series, ndethist: pd.Series) -> pd.Series:
        model, result = _run(ref, (cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist))
        return pd.Series(column(model, result), dtype=object)  # object even when empty (pandas 1.5: float64)

    return udf


def t2_udf(ref: ModelRef | None = None):
    """The ``t2`` pandas UDF (map class → probability, all -1.0 when rejected by the cuts) of ``ref``'s model.

    Default model: :meth:`ModelRef.default`, resolved now (on the driver). The reference travels with the UDF, so every worker runs the file
    the driver checked.
    """
    return _column_udf(ref, T2_MAP_TYPE, lambda model, result: as_maps(result.proba, model.class_names))


def t2_class_udf(ref: ModelRef | None = None):
    """The ``t2_class`` pandas UDF: the class-balanced decision of ``ref``'s model, null when rejected.

    It is the argmax of the network's own output, trained with class weights (what macro-F1 rewards); the
    ``t2`` map holds the calibrated probabilities, whose argmax (:func:`maxclass`) favours the majority class.
    """
    return _column_udf(ref, StringType(), lambda model, result: result.label)


def t2_result_udf(ref: ModelRef | None = None):
    """One pass giving the struct (``t2`` map, ``t2_status``, ``t2_class``): what the replay writes.

    Same values as ``t2``, ``t2_status`` and ``t2_class`` applied one after the other, in one model run.
    """
    ref = ref or ModelRef.default()

    @pandas_udf(T2_RESULT_TYPE)
    def t2_result(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, cisdiffpos: pd.Series, roid: pd.Series,
                  cdsxmatch: pd.Series, jdstarthist: pd.Series, ndethist: pd.Series) -> pd.DataFrame:
        model, result = _run(ref, (cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist))
        return pd.DataFrame({"t2": as_maps(result.proba, model.class_names), "t2_status": result.status,
                             "t2_class": result.label})

    return t2_result


class DefaultModelUdf:
    """A UDF of the default model, chosen when it is applied: ``udf(*T2_COLUMNS)`` resolves
    :meth:`ModelRef.default` (``$FINK_T2_MODEL``, else the shipped model) on the driver at that call, never at
    import, and returns the column of ``factory(ref)``. Other attributes (``func``, ``returnType``, ``evalType``,
    what ``spark.udf.register`` reads) are those of that UDF.
    """

    def __init__(self, factory, name: str):
        self.factory, self.__name__ = factory, name

    def __call__(self, *columns):
        return self.factory(ModelRef.default())(*columns)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.factory(ModelRef.default()), name)

    def __repr__(self) -> str:
        return f"<fink_t2 UDF {self.__name__} of the default model>"


#: the Fink science module with the default model: ``df.withColumn("t2", t2(*T2_COLUMNS))``
t2 = DefaultModelUdf(t2_udf, "t2")
#: its class-balanced decision: ``df.withColumn("t2_class", t2_class(*T2_COLUMNS))``
t2_class = DefaultModelUdf(t2_class_udf, "t2_class")


@pandas_udf(StringType())
def t2_status(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, cisdiffpos: pd.Series, roid: pd.Series,
              cdsxmatch: pd.Series, jdstarthist: pd.Series, ndethist: pd.Series) -> pd.Series:
    """Why ``t2`` did or did not classify each alert: ``ok`` or the failed cut (no model run)."""
    _, status = classify_columns(cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist, model=None)
    return pd.Series(status)


@pandas_udf(StringType())
def maxclass(t2_map: pd.Series) -> pd.Series:
    """Most probable class of a ``t2`` map (of its calibrated probabilities); null for an alert rejected by the cuts.

    For young alerts this is mostly the majority class (SN Ia): prefer :data:`t2_class`, the class-balanced
    decision, to find the rare classes.
    """

    def best(m):
        items = dict(m) if m is not None else {}
        if not items or max(items.values()) < 0:
            return None
        return max(items, key=items.get)

    return t2_map.map(best)


def __getattr__(name: str):
    """``DEFAULT_MODEL`` (the default :class:`ModelRef`) and ``CLASS_NAMES`` (its classes), resolved at first use."""
    if name == "DEFAULT_MODEL":
        return ModelRef.default()
    if name == "CLASS_NAMES":
        return ModelRef.default().class_names
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
