"""Shared fixtures: real data locations, one local Spark session for the whole run, and a night of
real alerts mixed with bad files (read by the binaryFile, replay and output tests)."""

import io
from pathlib import Path

import fastavro
import pytest
from alert_files import AVRO_NIGHT, as_avro_record, schema_4x, to_avro, writer_schema
from replay_helpers import split_output

from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA

ALERTS = Path(SHARED_DATA) / "ztf_alerts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(SHARED_DATA)
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path}: set FINK_T2_DATA")
    return path


@pytest.fixture(scope="session")
def sample_night() -> str:
    return SAMPLE_NIGHT


@pytest.fixture(scope="session")
def spark():
    from fink_t2.stream.spark import get_spark

    session = get_spark("local[2]", app_name="fink-t2-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def classified_records() -> list[dict]:
    """Real alerts that pass the cuts once read from Avro (no Fink roid/cdsxmatch columns): t2's own cuts and
    the raw-alert filter the replay applies to them (fink_t2.core.raw_filter)."""
    from fink_t2.alerts import iter_alerts, records_to_table
    from fink_t2.core.classifier import classify_columns
    from fink_t2.core.cuts import STATUS_OK
    from fink_t2.core.raw_filter import raw_status
    from fink_t2.processor import T2_COLUMNS

    records = [{k: v for k, v in r.items() if k not in ("roid", "cdsxmatch")} for r in iter_alerts(SAMPLE_NIGHT)]
    table = records_to_table(records).to_pandas()
    _, status = classify_columns(*(table[c.split(".")[-1]] for c in T2_COLUMNS), model=None)
    raw = raw_status(table)
    chosen = [r for r, s, f in zip(records, status, raw) if s == STATUS_OK and f is None]
    assert len(chosen) >= 2
    return chosen


@pytest.fixture(scope="session")
def mixed_night(tmp_path_factory, classified_records) -> dict:
    """A night folder: 10 real 3.3 alerts, one more 3.3 and one 4.x alert that pass the cuts,
    a truncated Avro file, garbage bytes with an Avro name, and an empty file."""
    night = tmp_path_factory.mktemp("mixed") / "night"
    night.mkdir()
    real = sorted(AVRO_NIGHT.glob("*.avro"))[:10]
    for path in real:
        (night / path.name).write_bytes(path.read_bytes())
    schema = writer_schema(real[0])
    v33, v4 = classified_records[0], classified_records[1]
    (night / "alert_33.avro").write_bytes(to_avro(as_avro_record(v33, "3.3"), schema))
    record4 = as_avro_record(v4, "4.02")
    record4["candidate"].pop("ssnamenr")
    record4["candidate"]["new_in_4x"] = 0.5
    record4["fp_hists"] = [{"jd": v4["candidate"]["jd"] - 1, "forcediffimflux": 12.5}]
    (night / "alert_4x.avro").write_bytes(to_avro(record4, schema_4x(schema)))
    truncated = real[0].read_bytes()
    bad = {"truncated.avro": truncated[: len(truncated) // 2], "garbage.avro": b"Obj\x01" + bytes(range(256)) * 8,
           "empty.avro": b""}
    for name, data in bad.items():
        (night / name).write_bytes(data)
    candids = [fastavro.reader(io.BytesIO(p.read_bytes())).__next__()["candid"] for p in real] + [v33["candid"], v4["candid"]]
    return {"path": night, "bad": bad, "candids": candids, "v4": v4, "v33": v33}


@pytest.fixture(scope="session")
def mixed_replay(spark, mixed_night, tmp_path_factory) -> dict:
    from fink_t2.stream.replay import replay

    out = tmp_path_factory.mktemp("mixed_out") / "out"
    summary = replay(str(mixed_night["path"]), str(out))
    return {"out": out, "summary": summary, "df": spark.read.parquet(str(out)).toPandas(), **split_output(spark, out)}
