"""docs/fink.md's lines for fink-broker's rubin/science.py, run as written on real Rubin alerts in Spark.

The ``c*`` columns are built with ``fink_utils.spark.utils.concat_col`` over fink-broker's Rubin ``to_expand``
list, with ``current="diaSource"`` and ``history="prvDiaSources"``, as ``fink_broker/rubin/science.py`` does;
the documented block runs, and every alert's struct must be what the numpy core gives on the same alerts read
by fink_t2.alerts.rubin. The 7 alerts of Fink's Rubin output come in an Avro container: Spark's Avro source is
a Maven package (not reachable here), so they are decoded with fastavro and written as parquet first.
"""

from __future__ import annotations

import logging

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from doc_blocks import marked_python_block
from pyspark.sql import types as T

from fink_t2.alerts.rubin import iter_rubin_tables
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.core.contract import ModelContractError
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.paths import DEFAULT_MODEL_PATH, LSST_MODEL_PATH, REPO_ROOT
from fink_t2.rubin_processor import RUBIN_COLUMNS, RUBIN_MODEL_ENV, T2_RUBIN_TYPE, rubin_model, t2_rubin_columns
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef

DOC = REPO_ROOT / "docs" / "fink.md"
MARKER = "<!-- the code block below is run by tests/test_fink_rubin_doc.py"
#: fink-broker's Rubin ``to_expand`` (fink_broker/rubin/science.py, apply_science_modules)
TO_EXPAND = ["midpointMjdTai", "band", "psfFlux", "psfFluxErr"]


def documented_block() -> str:
    return marked_python_block(DOC, MARKER)


def with_c_columns(df):
    from fink_utils.spark.utils import concat_col

    for name in TO_EXPAND:
        df = concat_col(df, name, prefix="c", current="diaSource", history="prvDiaSources")
    return df


@pytest.fixture(scope="module")
def samples(shared_data, tmp_path_factory) -> dict:
    """name → (parquet path Spark reads, the source file the Rubin reader reads)."""
    folder = shared_data / "lsst_alerts"
    container = folder / "part-2-918301.avro"
    with open(container, "rb") as stream:
        records = [{k: v for k, v in r.items() if not k.startswith("cutout")} for r in fastavro.reader(stream)]
    converted = tmp_path_factory.mktemp("rubin") / "fink_rubin_2026_03.parquet"
    pq.write_table(pa.Table.from_pylist(records), converted)
    parquet = folder / "rubin_sample_data_10_0.parquet"
    return {"lsst.v10_0": (parquet, parquet, 25), "fink_rubin": (converted, container, 7)}


def core_result(source):
    table = pa.concat_tables(iter_rubin_tables(source)).to_pandas()
    result = classify_rubin_columns(*(table[c] for c in CLASSIFIER_INPUTS), load_model(ModelRef.resolve(LSST_MODEL_PATH)))
    return table["diaSourceId"].tolist(), result


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lsst.v10_0", "fink_rubin"])
def test_the_documented_lines_classify_real_rubin_alerts_like_the_core(spark, samples, name):
    path, source, n = samples[name]
    block = documented_block()
    assert 'withColumn("t2", t2_rubin(' in block
    scope = {"df": with_c_columns(spark.read.parquet(str(path))), "_LOG": logging.getLogger("fink_broker.rubin.science")}
    exec(compile(block, str(DOC), "exec"), scope)
    out = scope["df"]
    assert {f.name: f.dataType for f in out.schema.fields}["t2"] == T2_RUBIN_TYPE
    rows = {r.diaSourceId: r.t2 for r in out.select("diaSource.diaSourceId", "t2").collect()}
    ids, want = core_result(source)
    assert len(rows) == len(ids) == n
    names = list(rubin_model().class_names)
    for i, alert in enumerate(ids):
        got = rows[alert]
        assert got.status == want.status[i] and got.decision == want.label[i], alert
        np.testing.assert_allclose([got.probabilities[c] for c in names], want.proba[i], atol=1e-6)
    statuses = [r.status for r in rows.values()]
    assert "ok" in statuses and "solar_system_object" in statuses


@pytest.mark.slow
def test_a_dataframe_without_forced_photometry_or_diaObject_and_a_bad_ssSource_is_classified(spark, samples):
    path, _, _ = samples["fink_rubin"]
    full = with_c_columns(spark.read.parquet(str(path)))
    from pyspark.sql import functions as F

    bare = full.select("diaSource", "cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband",
                       F.lit("not a struct").alias("ssSource"))
    columns = t2_rubin_columns(bare)
    assert len(columns) == len(RUBIN_COLUMNS)
    from fink_t2.rubin_processor import t2_rubin

    got = {r.diaSourceId: r.t2 for r in bare.withColumn("t2", t2_rubin(*columns)).select(
        "diaSource.diaSourceId", "t2").collect()}
    assert len(got) == 7 and all(t.status in ("ok", "too_few_detections", "solar_system_object") for t in got.values())
    assert sum(t.status == "ok" for t in got.values()) >= 1


def test_the_model_is_chosen_per_call_and_a_ztf_model_refused(monkeypatch):
    monkeypatch.delenv(RUBIN_MODEL_ENV, raising=False)
    assert rubin_model().path == LSST_MODEL_PATH
    assert rubin_model(ModelRef.resolve(LSST_MODEL_PATH)).sha256 == rubin_model().sha256
    with pytest.raises(ModelContractError, match="cannot classify Rubin alerts"):
        rubin_model(DEFAULT_MODEL_PATH)
    monkeypatch.setenv(RUBIN_MODEL_ENV, DEFAULT_MODEL_PATH)
    with pytest.raises(ModelContractError):
        rubin_model()
    monkeypatch.setenv(RUBIN_MODEL_ENV, "/nonexistent/t2_lsst.tflite")
    with pytest.raises(FileNotFoundError):
        rubin_model()


def test_the_udf_declares_its_output_type():
    assert T2_RUBIN_TYPE["probabilities"].dataType == T.MapType(T.StringType(), T.FloatType())
    assert [f.name for f in T2_RUBIN_TYPE.fields] == ["probabilities", "decision", "status"]
