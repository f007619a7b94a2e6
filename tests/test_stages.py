"""The replay's stages (decode → raw filter → t2 in one task, fink_t2.stream.stages) give, row for row, what the
pandas UDFs Fink runs give on the same alerts (fink_t2.processor through fink_t2.stream.replay.with_t2)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from alert_files import AVRO_NIGHT

from fink_t2.alerts.binaryfile import decode_file, load_alerts
from fink_t2.alerts.science_stage import raw_filter
from fink_t2.core.classifier import classify_columns
from fink_t2.core.cuts import REJECTED, STATUS_UNREADABLE
from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef
from fink_t2.stream.replay import with_t2
from fink_t2.stream.stages import OUTPUT_SCHEMA, OUTPUT_SPARK_SCHEMA, classified_alerts, t2_stage


@pytest.fixture(scope="module")
def model():
    return load_model(ModelRef.resolve())


def _inputs(paths) -> pa.Table:
    return pa.concat_tables([raw_filter(decode_file(f"file:{p}", p.read_bytes())) for p in paths])


@pytest.mark.parametrize("folder", [SAMPLE_NIGHT, str(AVRO_NIGHT)])
def test_the_t2_stage_is_the_core_the_udfs_run(folder, model):
    from pathlib import Path

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix in (".avro", ".parquet"))
    table = _inputs(paths)
    out = t2_stage(table, model)
    assert out.schema.equals(OUTPUT_SCHEMA) and out.num_rows == table.num_rows > 40
    df = table.to_pandas()
    raw = df["raw_filter"].notna().to_numpy()
    blank = [None if r else v for r, v in zip(raw, df.cjd)]  # what with_t2 gives the UDF for a rejected alert
    cols = [blank, df.cfid, df.cmagpsf, df.cisdiffpos]
    expected = classify_columns(*cols, df.roid, df.cdsxmatch, [c["jdstarthist"] for c in df.candidate],
                                [c["ndethist"] for c in df.candidate], model)
    status = np.where(raw, df["raw_filter"], expected.status)
    assert out.column("t2_status").to_pylist() == list(status)
    assert out.column("t2_class").to_pylist() == list(expected.label)
    maps = out.column("t2").to_pylist()
    assert [dict(m) for m in maps] == [dict(zip(model.class_names, row)) for row in expected.proba.tolist()]
    if folder == str(AVRO_NIGHT):  # raw alerts: the raw filter decides, t2 spends nothing on them
        assert raw.any() and all(set(dict(m).values()) == {REJECTED} for m, r in zip(maps, raw) if r)


def test_an_unreadable_input_is_one_row_with_its_status(model):
    out = t2_stage(raw_filter(decode_file("file:/night/bad.avro", b"Obj\x01 not an alert")), model).to_pylist()
    assert len(out) == 1 and out[0]["t2_status"] == STATUS_UNREADABLE and out[0]["t2_class"] is None
    assert set(dict(out[0]["t2"]).values()) == {REJECTED} and out[0]["ingest_error"]


def test_one_task_writes_what_the_udfs_write(spark, mixed_night):
    """Good alerts, a truncated Avro file and garbage bytes: same rows, same schema, either way."""
    path = str(mixed_night["path"])
    stages = classified_alerts(spark.read, path, "avro_dir", ModelRef.resolve())
    udfs = with_t2(load_alerts(spark, path))
    assert stages.schema == udfs.schema == OUTPUT_SPARK_SCHEMA  # the flat task's columns nested again
    key = ["source_file", "candid"]
    got, want = (df.toPandas().sort_values(key).reset_index(drop=True) for df in (stages, udfs))
    assert len(got) == len(want) >= 12 and (got.t2_status == STATUS_UNREADABLE).sum() >= 2
    for column in ("candid", "t2_status", "t2_class", "cdsxmatch", "roid", "ingest_error", "source_file"):
        assert got[column].equals(want[column]), column  # nulls (the unreadable rows' candid) compare equal
    assert [dict(m) for m in got.t2] == [dict(m) for m in want.t2]
