"""The output folder: it belongs to one night (run marker), unreadable inputs are kept aside, the summary."""

from __future__ import annotations

import json

import pytest
from replay_helpers import assert_refused, replay_cli, snapshot

from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
from fink_t2.stream.output import (
    RUN_MARKER,
    SINK_LOG,
    SUMMARY_FILE,
    UNREADABLE_DIR,
    claim_output,
    committed_files,
    keep_aside,
    read_summary,
    write_summary,
)


@pytest.mark.slow
def test_cli_refuses_an_output_folder_holding_another_night(mixed_replay):
    out = mixed_replay["out"]
    before = snapshot(out)
    proc = replay_cli(SAMPLE_NIGHT, "--output", out)
    assert_refused(proc, "holds the results of", "use another output folder")
    assert snapshot(out) == before


def test_cli_refuses_a_non_empty_folder_that_is_not_a_replay_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    assert_refused(replay_cli(SAMPLE_NIGHT, "--output", out), RUN_MARKER)
    assert snapshot(out) == before


def test_claim_output_marks_a_new_folder_and_refuses_another_night_without_writing(tmp_path):
    out, model = tmp_path / "out", DEFAULT_MODEL_PATH
    claim_output(str(out), SAMPLE_NIGHT, model)
    run = json.loads((out / RUN_MARKER).read_text())
    assert run["input"] == SAMPLE_NIGHT and run["model"] == model and len(run["model_sha256"]) == 64
    claim_output(str(out), SAMPLE_NIGHT, model)  # the same night again: accepted
    before = snapshot(out)
    with pytest.raises(ValueError, match="holds the results of"):
        claim_output(str(out), str(tmp_path), model)
    assert snapshot(out) == before
    (out / RUN_MARKER).write_text("{not json")
    before = snapshot(out)
    with pytest.raises(ValueError, match="unreadable"):
        claim_output(str(out), SAMPLE_NIGHT, model)
    assert snapshot(out) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        claim_output(str(tmp_path / "file"), SAMPLE_NIGHT, model)


def test_summary_file_round_trip(tmp_path):
    assert read_summary(tmp_path) is None
    write_summary(str(tmp_path), {"alerts_in_output": 3, "alerts_per_s": 1.5})
    assert read_summary(tmp_path) == {"alerts_in_output": 3, "alerts_per_s": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILE]  # no temporary file left


def test_committed_files_follow_deletes_and_a_moved_folder(tmp_path):
    old, out = tmp_path / "old", tmp_path / "out"
    (out / SINK_LOG).mkdir(parents=True)
    for name in ("a.parquet", "b.parquet"):
        (out / name).write_bytes(b"")
    entry = lambda name, action="add": json.dumps({"path": f"file://{old}/{name}", "action": action})
    (out / SINK_LOG / "0").write_text("v1\n" + entry("a.parquet") + "\n" + entry("b.parquet"))
    (out / SINK_LOG / "1").write_text("v1\n" + entry("a.parquet", "delete"))
    assert committed_files(out) == [str(out / "b.parquet")]  # logged in old/, found in out/
    (out / SINK_LOG / "2").write_text("no header\n")
    with pytest.raises(ValueError, match="not a Spark file sink log"):
        committed_files(out)


def test_keep_aside_copies_each_unreadable_file_once(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    nights = [tmp_path / "n1", tmp_path / "n2"]
    for night in nights:
        night.mkdir()
        (night / "empty.avro").write_bytes(b"")
    (tmp_path / "n1" / "big.avro").write_bytes(b"x" * 20)
    monkeypatch.setattr("fink_t2.stream.output.MAX_KEPT_BYTES", 10)
    sources = [str(n / "empty.avro") for n in nights] + [str(tmp_path / "n1" / "big.avro"), "hdfs://nn/night/x.avro"]
    entries = keep_aside(None, str(out), sources)  # no sink log yet: no Spark needed
    by_source = {e["source"]: e for e in entries}
    assert [by_source[s]["kept_as"] for s in sources[:2]] == ["empty.avro", "1-empty.avro"]
    assert by_source[sources[2]]["kept_as"] is None and "left in place" in by_source[sources[2]]["note"]
    assert by_source[sources[3]]["kept_as"] is None and "not a readable local file" in by_source[sources[3]]["note"]
    folder = out / UNREADABLE_DIR
    assert json.loads((folder / "index.json").read_text()) == sorted(entries, key=lambda e: e["source"])
    copies = lambda: {k: v for k, v in snapshot(folder).items() if k != "index.json"}
    before, index = copies(), (folder / "index.json").read_text()
    assert keep_aside(None, str(out), sources) == entries  # a rerun: listed again, not copied twice
    assert copies() == before and (folder / "index.json").read_text() == index
