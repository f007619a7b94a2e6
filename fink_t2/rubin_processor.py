"""The Rubin science module: t2 in Fink's Rubin stage (fink-broker ``fink_broker/rubin/science.py``).

One line in ``apply_science_modules``, once ``concat_col`` has built the ``c*`` columns::

    df = df.withColumn("t2", t2_rubin(*t2_rubin_columns(df)))

The model is chosen when that line runs, on the driver (:func:`rubin_model`: an explicit path or
:class:`~fink_t2.runtime.model_ref.ModelRef`, else ``$FINK_T2_RUBIN_MODEL``, else the shipped
``fink_t2/data/t2_lsst.tflite``), checked there (a model that cannot read Rubin alerts is refused before any
task runs), and its reference travels inside the UDF: every worker runs the bytes the driver checked,
loaded once per worker. Nothing is resolved at import. The work is
:func:`fink_t2.core.rubin_classifier.classify_rubin_columns`; the cuts are :mod:`fink_t2.core.rubin_cuts`.
"""

from __future__ import annotations

import os

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DoubleType,
    FloatType,
    LongType,
    MapType,
    NullType,
    StringType,
    StructField,
    StructType,
)

from fink_t2.core.rubin_classifier import classify_rubin_columns, rubin_spec
from fink_t2.core.rubin_cuts import REJECTED  # noqa: F401 - the value of a rejected alert, used in the doctest
from fink_t2.paths import LSST_MODEL_PATH
from fink_t2.runtime.gpu import model_for_task
from fink_t2.runtime.model_ref import ModelRef

#: the environment variable naming the Rubin model file (else the shipped one)
RUBIN_MODEL_ENV = "FINK_T2_RUBIN_MODEL"
#: what the UDF reads, in order: (column of a Fink Rubin DataFrame, its Spark type)
RUBIN_INPUTS = (
    ("cmidpointMjdTai", ArrayType(DoubleType())),
    ("cpsfFlux", ArrayType(DoubleType())),
    ("cpsfFluxErr", ArrayType(DoubleType())),
    ("cband", ArrayType(StringType())),
    ("prvDiaForcedSources.midpointMjdTai", ArrayType(DoubleType())),
    ("prvDiaForcedSources.psfFlux", ArrayType(DoubleType())),
    ("prvDiaForcedSources.psfFluxErr", ArrayType(DoubleType())),
    ("prvDiaForcedSources.band", ArrayType(StringType())),
    ("diaSource.ssObjectId", LongType()),
    ("ssSource.ssObjectId", LongType()),
    ("diaObject.firstDiaSourceMjdTai", DoubleType()),
)
#: the UDF's input column names, in order
RUBIN_COLUMNS = tuple(name for name, _ in RUBIN_INPUTS)
#: the output: class → calibrated probability (all ``REJECTED`` when rejected), the decision, the status
T2_RUBIN_TYPE = StructType([StructField("probabilities", MapType(StringType(), FloatType())),
                            StructField("decision", StringType()), StructField("status", StringType())])


def rubin_model(model: ModelRef | str | os.PathLike | None = None) -> ModelRef:
    """The checked reference of the Rubin model: ``model``, else ``$FINK_T2_RUBIN_MODEL``, else the shipped file.

    FileNotFoundError for a missing file; ModelContractError (a ValueError) for a file that is not a t2 model
    or cannot read Rubin alerts (the ZTF g/r model).
    """
    ref = model if isinstance(model, ModelRef) else ModelRef.resolve(
        model or os.environ.get(RUBIN_MODEL_ENV) or LSST_MODEL_PATH)
    rubin_spec(ref.contract)
    return ref


def _field_type(schema: DataType, path: str):
    """The Spark type at ``path`` (``a.b``: field b of struct a, or of each struct of array a); None if absent."""
    current = schema
    for name in path.split("."):
        element = isinstance(current, ArrayType)
        struct = current.elementType if element else current
        if not isinstance(struct, StructType) or name not in struct.fieldNames():
            return None
        current = struct[name].dataType
        current = ArrayType(current) if element else current
    return current


def t2_rubin_columns(df) -> list:
    """The UDF's input columns of ``df`` (:data:`RUBIN_COLUMNS`), cast to the types it reads.

    An input ``df`` lacks, or holds with a type that cannot be cast (a packet without ``ssSource``, forced
    photometry whose type Spark lost because every list was empty, a struct where a number is due), becomes a
    typed null: the alert is classified on what it has.
    """
    columns = []
    for name, dtype in RUBIN_INPUTS:
        found = _field_type(df.schema, name)
        leaf = found.elementType if isinstance(found, ArrayType) else found
        usable = found is not None and isinstance(found, ArrayType) == isinstance(dtype, ArrayType) and \
            not isinstance(leaf, (ArrayType, MapType, NullType, StructType))
        columns.append((F.col(name) if usable else F.lit(None)).cast(dtype).alias(name.replace(".", "_")))
    return columns


def t2_rubin_udf(model: ModelRef | str | os.PathLike | None = None):
    """The t2 pandas UDF for Rubin alerts with the model :func:`rubin_model` resolves (now, on the driver).

    Parameters
    ----------
    cmidpointMjdTai: Spark array of doubles
        ``prvDiaSources`` then ``diaSource`` ``midpointMjdTai`` (MJD TAI), as ``concat_col`` builds it
    cpsfFlux: Spark array of doubles
        the same detections' ``psfFlux`` (nJy)
    cpsfFluxErr: Spark array of doubles
        their ``psfFluxErr`` (nJy): a measurement without a finite positive error is skipped
    cband: Spark array of strings
        their ``band`` (u, g, r, i, z, y; any other is skipped)
    prvDiaForcedSources.midpointMjdTai, .psfFlux, .psfFluxErr, .band: Spark arrays
        the forced photometry of the past year (null when the packet carries none)
    diaSource.ssObjectId, ssSource.ssObjectId: Spark longs
        a known solar-system object when either is set (not null, not 0)
    diaObject.firstDiaSourceMjdTai: Spark double
        the object's first detection (null allowed: then its oldest detection in the history)

    Returns
    -------
    out: Spark struct ``probabilities`` (map class → calibrated probability, every value -1.0 for a rejected
    alert), ``decision`` (the argmax of the network's output, null when rejected), ``status`` (``ok`` or the
    cut that failed: :data:`fink_t2.core.rubin_cuts.STATUSES`)

    Examples
    --------
    On 25 real ``lsst.v10_0`` alerts, with the ``c*`` columns built as Fink's Rubin stage builds them:

    >>> from fink_utils.spark.utils import concat_col
    >>> from fink_t2.paths import shared_data_dir
    >>> from fink_t2.stream.spark import get_spark
    >>> spark = get_spark()
    >>> df = spark.read.parquet(str(shared_data_dir() / "lsst_alerts" / "rubin_sample_data_10_0.parquet"))
    >>> for name in ["midpointMjdTai", "band", "psfFlux", "psfFluxErr"]:
    ...     df = concat_col(df, name, prefix="c", current="diaSource", history="prvDiaSources")
    >>> t2 = t2_rubin_udf()
    >>> df = df.withColumn("t2", t2(*t2_rubin_columns(df)))
    >>> rows = df.select("diaSource.diaSourceId", "t2").collect()
    >>> len(rows), sorted(rows[0].t2.probabilities) == sorted(rubin_model().class_names)
    (25, True)
    >>> statuses = [r.t2.status for r in rows]
    >>> statuses.count("solar_system_object"), statuses.count("ok") >= 1
    (3, True)
    >>> all(set(r.t2.probabilities.values()) == {REJECTED} and r.t2.decision is None
    ...     for r in rows if r.t2.status != "ok")
    True
    >>> all(abs(sum(r.t2.probabilities.values()) - 1) < 1e-3 and r.t2.decision is not None
    ...     for r in rows if r.t2.status == "ok")
    True
    """
    ref = rubin_model(model)
    names = list(ref.class_names)

    @pandas_udf(T2_RUBIN_TYPE)
    def t2_rubin_udf(cmidpointMjdTai: pd.Series, cpsfFlux: pd.Series, cpsfFluxErr: pd.Series, cband: pd.Series,
                     fmidpointMjdTai: pd.Series, fpsfFlux: pd.Series, fpsfFluxErr: pd.Series, fband: pd.Series,
                     dia_ss_object_id: pd.Series, ss_ss_object_id: pd.Series, first_mjd: pd.Series) -> pd.DataFrame:
        result = classify_rubin_columns(cmidpointMjdTai, cpsfFlux, cpsfFluxErr, cband, fmidpointMjdTai, fpsfFlux,
                                        fpsfFluxErr, fband, dia_ss_object_id, ss_ss_object_id, first_mjd,
                                        model_for_task(ref))
        return pd.DataFrame({"probabilities": [dict(zip(names, row)) for row in result.proba.tolist()],
                             "decision": result.label, "status": result.status})

    return t2_rubin_udf


def t2_rubin(*columns, model: ModelRef | str | os.PathLike | None = None):
    """``t2_rubin_udf(model)(*columns)``: the one call of Fink's Rubin stage (see the module doc)."""
    return t2_rubin_udf(model)(*columns)
