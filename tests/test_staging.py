"""Staging a nightly tarball for the stream: a damaged archive keeps what was read and reports the damage."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fink_t2.alerts import read_tarball
from fink_t2.alerts.staging import stage_tarball
from fink_t2.output import UNREADABLE_DIR
from fink_t2.replay import replay

from alert_files import AVRO_NIGHT, write_tarball
from replay_helpers import split_output


@pytest.fixture(scope="module")
def damaged_tarball(tmp_path_factory) -> dict:
    """A gzip nightly tarball with one corrupt member, cut at 60%: alerts before the cut are recoverable."""
    folder = tmp_path_factory.mktemp("tarball")
    files = sorted(AVRO_NIGHT.glob("*.avro"))[:12]
    members = [(f"20200101/{p.name}", p.read_bytes()) for p in files]
    members.insert(2, ("20200101/corrupt.avro", b"Obj\x01 not an alert"))
    whole = write_tarball(folder / "whole.tar.gz", members).read_bytes()
    path = folder / "ztf_public_20200101.tar.gz"
    path.write_bytes(whole[: int(len(whole) * 0.6)])
    errors = []
    readable = [a["candid"] for a in read_tarball(path, on_error=lambda name, data, err: errors.append((name, data)))]
    assert 0 < len(readable) < 12 and [e[0] for e in errors] == ["20200101/corrupt.avro", None]
    with pytest.raises(Exception):  # without on_error a damaged archive still raises, as before
        list(read_tarball(path))
    return {"path": path, "readable": readable}


def test_staging_a_damaged_tarball_keeps_what_was_read_and_records_the_damage(damaged_tarball, tmp_path):
    staged = Path(stage_tarball(str(damaged_tarball["path"]), str(tmp_path)))
    assert (staged / "_DONE").exists()
    tables = [pq.read_table(p) for p in sorted(staged.glob("chunk-*.parquet"))]
    alerts = pa.concat_tables([t.select(["candid"]) for t in tables if "ingest_error" not in t.column_names])
    assert alerts.column("candid").to_pylist() == damaged_tarball["readable"]
    errors = [t for t in tables if "ingest_error" in t.column_names][0].to_pylist()
    assert [Path(e["source_file"]).name for e in errors] == ["corrupt.avro", damaged_tarball["path"].name]
    assert "damaged" in errors[1]["ingest_error"]
    assert (staged / "_unreadable" / "corrupt.avro").read_bytes() == b"Obj\x01 not an alert"


@pytest.mark.slow
def test_replay_of_a_truncated_tarball_does_not_crash_and_reports_the_damage(spark, damaged_tarball, tmp_path):
    out = tmp_path / "out"
    summary = replay(str(damaged_tarball["path"]), str(out))
    good = split_output(spark, out)["good"]
    assert sorted(good.candid) == sorted(damaged_tarball["readable"]) and good.candid.is_unique
    assert summary["unreadable_files"] == 2 and summary["alerts_in_output"] == len(damaged_tarball["readable"]) + 2
    kept = {Path(e["source"]).name: e["kept_as"] for e in summary["unreadable"]}
    assert (out / UNREADABLE_DIR / kept["corrupt.avro"]).read_bytes() == b"Obj\x01 not an alert"
    assert (out / UNREADABLE_DIR / kept[damaged_tarball["path"].name]).read_bytes() == damaged_tarball["path"].read_bytes()
