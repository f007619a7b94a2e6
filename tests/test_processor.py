"""The Fink science module on real alerts: cuts, the -1 contract, Spark UDF, one load per worker."""

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import LongType

from fink_t2.alerts import iter_alert_tables
from fink_t2.alerts.binaryfile import load_alerts
from fink_t2.core.classifier import classify_columns
from fink_t2.core.cuts import (
    ASTEROID_ROID,
    REJECTED,
    STATUS_ASTEROID,
    STATUS_FEW_DETECTIONS,
    STATUS_GALACTIC,
    STATUS_MALFORMED,
    STATUS_OK,
    STATUS_TOO_OLD,
)
from fink_t2.processor import DEFAULT_MODEL, T2_COLUMNS, maxclass, t2, t2_status
from fink_t2.runtime.inference import load_model


@pytest.fixture(scope="module")
def alerts(sample_night) -> pd.DataFrame:
    return pd.concat([t.to_pandas() for t in iter_alert_tables(sample_night)], ignore_index=True)


def _classify(df):
    return classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch, df.jdstarthist,
                            df.ndethist, load_model(DEFAULT_MODEL))


def test_real_night_has_classified_and_rejected_alerts(alerts):
    proba, status = _classify(alerts)
    assert len(proba) == len(alerts) == 124
    ok = status == STATUS_OK
    assert 0 < ok.sum() < len(alerts)
    np.testing.assert_allclose(proba[ok].sum(axis=1), 1.0, atol=1e-3)
    assert (proba[~ok] == REJECTED).all()


@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("roid", ASTEROID_ROID, STATUS_ASTEROID),
        ("cdsxmatch", "Star", STATUS_GALACTIC),
        ("cdsxmatch", None, STATUS_GALACTIC),
        ("jdstarthist", -100.0, STATUS_TOO_OLD),
        ("jdstarthist", np.nan, STATUS_TOO_OLD),
    ],
)
def test_each_cut_rejects_real_alerts_with_its_reason(alerts, column, value, expected):
    _, status = _classify(alerts)
    df = alerts[status == STATUS_OK].copy()
    if column == "jdstarthist" and not np.isnan(value):
        df[column] = df.cjd.map(lambda a: a[-1]) + value
    else:
        df[column] = value
    proba, new_status = _classify(df)
    assert (new_status == expected).all()
    assert (proba == REJECTED).all()


def test_single_detection_is_rejected(alerts):
    _, status = _classify(alerts)
    df = alerts[status == STATUS_OK].copy()  # passes every other cut
    df["cmagpsf"] = df.cmagpsf.map(lambda m: np.where(np.arange(len(m)) == len(m) - 1, m, np.nan))
    _, status = _classify(df)
    assert (status == STATUS_FEW_DETECTIONS).all()


def test_a_negative_difference_is_not_a_detection(alerts):
    _, status = _classify(alerts)
    df = alerts[status == STATUS_OK].copy()
    df["cisdiffpos"] = df.cisdiffpos.map(lambda s: np.full(len(s), "f", dtype=object))
    assert (_classify(df)[1] == STATUS_FEW_DETECTIONS).all()


def test_malformed_histories_are_blanked_not_raised(alerts):
    df = alerts.iloc[:6].copy()
    df.at[df.index[0], "cfid"] = df.cfid.iloc[0][:-1]
    df.at[df.index[1], "cisdiffpos"] = df.cisdiffpos.iloc[1][:-1]
    proba, status = _classify(df)
    assert status[:2].tolist() == [STATUS_MALFORMED] * 2 and (proba[:2] == REJECTED).all()
    np.testing.assert_array_equal(status[2:], _classify(alerts.iloc[:6])[1][2:])


def test_udf_in_spark_matches_pandas_path(spark, sample_night, alerts):
    df = load_alerts(spark, sample_night)
    df = df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_status", t2_status(*T2_COLUMNS))
    out = df.withColumn("t2_class", maxclass("t2")).select("candid", "t2", "t2_status", "t2_class").toPandas()
    proba, status = _classify(alerts)
    expected = pd.DataFrame({"candid": alerts.candid, "status": status}).join(
        pd.DataFrame(proba, columns=list(DEFAULT_MODEL.class_names)))
    merged = out.merge(expected, on="candid")
    assert len(merged) == 124 and merged.candid.is_unique
    assert (merged.t2_status == merged.status).all()
    for _, row in merged.iterrows():
        for name, p in row.t2.items():
            assert p == pytest.approx(row[name], abs=1e-5)
        assert row.t2_class == (max(row.t2, key=row.t2.get) if row.status == STATUS_OK else None)


def test_model_loads_once_per_worker_across_many_arrow_batches(spark, sample_night):
    @pandas_udf(LongType())
    def loads_after_classify(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, cisdiffpos: pd.Series,
                             roid: pd.Series, cdsxmatch: pd.Series, jdstarthist: pd.Series,
                             ndethist: pd.Series) -> pd.Series:
        import os

        from fink_t2.runtime.inference import loaded_models

        classify_columns(cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist,
                         load_model(DEFAULT_MODEL))
        return pd.Series([len(loaded_models()) * 10_000_000 + os.getpid()] * len(cjd))

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")
    try:
        df = load_alerts(spark, sample_night).coalesce(1)
        codes = df.select(loads_after_classify(*T2_COLUMNS).alias("c"), F.spark_partition_id()).toPandas()["c"]
        codes2 = load_alerts(spark, sample_night).coalesce(1).select(loads_after_classify(*T2_COLUMNS)).toPandas().iloc[:, 0]
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert len(codes) == 124  # 13 Arrow batches of at most 10 alerts
    loads = pd.concat([codes, codes2]) // 10_000_000
    assert set(loads) == {1}, "each worker process read the model file exactly once, over two jobs"
