"""Staging a nightly tarball for the stream: the driver cuts it into chunks of raw Avro members, unchanged and
resumable; the tasks decode them; a damaged archive keeps what was read and reports the damage."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from alert_files import AVRO_NIGHT, write_tarball
from replay_helpers import split_output

from fink_t2.alerts import read_tarball
from fink_t2.alerts import staging as staging_module
from fink_t2.alerts.binaryfile import decode_file
from fink_t2.alerts.staging import DONE_MARKER, PROGRESS_FILE, Stager, StagingStopped, stage_tarball
from fink_t2.alerts.tarball import open_archive
from fink_t2.stream.output import UNREADABLE_DIR
from fink_t2.stream.replay import replay


def _members(path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the members of a tarball, or of the rows of a staged chunk."""
    if path.suffix == ".parquet":
        return [(r["member"], r["avro"]) for r in pq.read_table(path).to_pylist()]
    with open(path, "rb") as raw, open_archive(raw) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


def _chunks(folder: Path) -> list[Path]:
    return sorted(folder.glob("chunk-*"))


@pytest.fixture(scope="module")
def night_tarball(tmp_path_factory) -> Path:
    """The 50 real single-alert files of 2020-01-01 as the archive holds them, plus a member that is no alert."""
    files = sorted(AVRO_NIGHT.glob("*.avro"))
    members = [(f"20200101/{p.name}", p.read_bytes()) for p in files] + [("20200101/README.txt", b"not an alert")]
    return write_tarball(tmp_path_factory.mktemp("night") / "ztf_public_20200101.tar.gz", members)


@pytest.mark.parametrize("fast_gzip", [True, False])
def test_chunks_hold_the_alert_members_unchanged_in_archive_order(night_tarball, tmp_path, monkeypatch, fast_gzip):
    if not fast_gzip:  # the standard library's gzip when ISA-L is not installed: the same chunks
        monkeypatch.setattr("fink_t2.alerts.tarball._fast_gzip", None)
    folder = Path(stage_tarball(str(night_tarball), str(tmp_path), chunk_bytes=400_000))
    chunks = _chunks(folder)
    assert len(chunks) > 3 and all(c.suffix == ".parquet" for c in chunks) and (folder / DONE_MARKER).exists()
    staged = [member for chunk in chunks for member in _members(chunk)]
    assert staged == [m for m in _members(night_tarball) if m[0].endswith(".avro")]
    progress = json.loads((folder / PROGRESS_FILE).read_text())
    assert progress["members"] == 50 and [c[0] for c in progress["chunks"]] == [c.name for c in chunks]
    # decoded by the tasks: the alerts of the archive, each naming its chunk and member
    tables = [decode_file(f"file:{c}", c.read_bytes()) for c in chunks]
    table = pa.concat_tables(tables)
    assert table.column("candid").to_pylist() == [a["candid"] for a in read_tarball(night_tarball)]
    assert table.column("ingest_error").null_count == 50
    first = table.column("source_file")[0].as_py()
    assert first == f"file:{chunks[0]}!/20200101/{sorted(AVRO_NIGHT.glob('*.avro'))[0].name}"


def test_an_interrupted_staging_resumes_with_the_same_chunks(night_tarball, tmp_path):
    whole = Path(stage_tarball(str(night_tarball), str(tmp_path / "whole"), chunk_bytes=300_000))
    stopped = Stager(str(night_tarball), str(tmp_path / "resumed"), chunk_bytes=300_000)
    calls = []
    with pytest.raises(StagingStopped):
        stopped.run(should_stop=lambda: calls.append(1) or len(calls) == 3)
    assert len(_chunks(stopped.folder)) == 3 and not (stopped.folder / DONE_MARKER).exists()
    resumed = Stager(str(night_tarball), str(tmp_path / "resumed"))  # the rule recorded in _progress.json
    assert resumed.state.resumed_at_member == resumed.state.members > 0 and resumed.state.chunk_bytes == 300_000
    state = resumed.run()
    assert state.done and state.members == 50
    assert [(c.name, c.read_bytes()) for c in _chunks(resumed.folder)] == [(c.name, c.read_bytes()) for c in _chunks(whole)]
    assert resumed.remove_chunks() == len(_chunks(whole)) and _chunks(resumed.folder) == []


def test_the_staging_waits_while_too_many_chunks_lie_on_disk(night_tarball, tmp_path):
    """A consumer deletes chunks as the stream does once it commits them: the staging never has more than
    max_pending chunks on disk, and every member is staged, in order."""
    stager = Stager(str(night_tarball), str(tmp_path), chunk_bytes=200_000)
    worker = threading.Thread(target=stager.run, kwargs={"max_pending": 3})
    worker.start()
    counts, consumed = [], []
    while worker.is_alive() or _chunks(stager.folder):
        chunks = _chunks(stager.folder)
        counts.append(len(chunks))
        if chunks and (len(chunks) == 3 or not worker.is_alive()):
            consumed += _members(chunks[0])
            chunks[0].unlink()
        time.sleep(0.02)
    worker.join()
    assert max(counts) == 3 and stager.state.done and len(stager.state.chunks) > 6
    assert consumed == [m for m in _members(night_tarball) if m[0].endswith(".avro")]
    # nobody consumes: the staging waits, and stops when asked to
    stalled = Stager(str(night_tarball), str(tmp_path / "stalled"), chunk_bytes=200_000)
    asked = []
    with pytest.raises(StagingStopped):
        stalled.run(max_pending=2, should_stop=lambda: asked.append(1) or len(asked) > 5)
    assert len(_chunks(stalled.folder)) == 2


def test_a_staging_nobody_consumes_goes_on_after_the_stall_limit(night_tarball, tmp_path, monkeypatch, caplog):
    """Spark deletes committed chunks best effort: if none goes, the staging waits MAX_STALL_S, then goes on."""
    monkeypatch.setattr(staging_module, "MAX_STALL_S", 0.3)
    state = Stager(str(night_tarball), str(tmp_path), chunk_bytes=400_000).run(max_pending=2)
    assert state.done and state.members == 50 and len(state.chunks) > 2
    assert "no staged chunk deleted" in caplog.text


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
    with pytest.raises(Exception):  # noqa: B017 - without on_error a damaged archive still raises, as before
        list(read_tarball(path))
    return {"path": path, "readable": readable}


def test_staging_a_damaged_tarball_keeps_what_was_read_and_records_the_damage(damaged_tarball, tmp_path):
    staged = Path(stage_tarball(str(damaged_tarball["path"]), str(tmp_path), chunk_bytes=100_000))
    assert (staged / DONE_MARKER).exists()
    chunks = _chunks(staged)
    assert len(chunks) > 2 and "member" in pq.read_schema(chunks[0]).names
    damage = pq.read_table(chunks[-1]).to_pylist()  # the last chunk: rows of the decoded layout, one per damage
    assert len(damage) == 1 and damage[0]["source_file"] == str(damaged_tarball["path"])
    assert "archive damaged after" in damage[0]["ingest_error"]
    # the tasks decode the chunks: the readable alerts, the corrupt member as one row, kept beside the chunks
    table = pa.concat_tables([decode_file(f"file:{c}", c.read_bytes()) for c in chunks])
    good = table.filter(pc.is_null(table.column("ingest_error")))
    assert good.column("candid").to_pylist() == damaged_tarball["readable"]
    errors = table.filter(pc.is_valid(table.column("ingest_error"))).to_pylist()
    assert [Path(e["source_file"]).name for e in errors] == ["corrupt.avro", damaged_tarball["path"].name]
    assert "member 20200101/corrupt.avro" in errors[0]["ingest_error"]
    assert (staged / "_unreadable" / "corrupt.avro").read_bytes() == b"Obj\x01 not an alert"


def test_a_damaged_chunk_is_one_unreadable_row(night_tarball, tmp_path):
    folder = Path(stage_tarball(str(night_tarball), str(tmp_path), chunk_bytes=10**9))
    chunk = _chunks(folder)[0]
    data = chunk.read_bytes()
    rows = decode_file(f"file:{chunk}", data[: len(data) // 2] + b"\xff" * 1024).to_pylist()
    assert len(rows) == 1 and rows[0]["candid"] is None and rows[0]["source_file"] == f"file:{chunk}"


@pytest.mark.slow
def test_replay_of_a_truncated_tarball_does_not_crash_and_reports_the_damage(spark, damaged_tarball, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(staging_module, "CHUNK_BYTES", 100_000)
    out = tmp_path / "out"
    summary = replay(str(damaged_tarball["path"]), str(out))
    good = split_output(spark, out)["good"]
    assert sorted(good.candid) == sorted(damaged_tarball["readable"]) and good.candid.is_unique
    assert summary["unreadable_files"] == 2 and summary["alerts_in_output"] == len(damaged_tarball["readable"]) + 2
    kept = {Path(e["source"]).name: e["kept_as"] for e in summary["unreadable"]}
    assert (out / UNREADABLE_DIR / kept["corrupt.avro"]).read_bytes() == b"Obj\x01 not an alert"
    assert (out / UNREADABLE_DIR / kept[damaged_tarball["path"].name]).read_bytes() == damaged_tarball["path"].read_bytes()
    assert summary["staging"]["chunks"] > 2 and summary["staging"]["done"]
    assert not list((out / "_staging").rglob("chunk-*"))  # every chunk processed: none left on disk


def test_open_archive_reads_gzip_and_plain_tar_alike(night_tarball, tmp_path):
    plain = tmp_path / "night.tar"
    with tarfile.open(plain, "w") as tar:
        for name, data in _members(night_tarball):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _members(plain) == _members(night_tarball)
    with open(night_tarball, "rb") as raw, open_archive(io.BytesIO(raw.read())) as tar:
        assert len([m for m in tar]) == 51
