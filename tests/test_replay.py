"""`fink-t2 replay` end to end: every input alert exactly once in the output, for each input format, bad files
and a night with zero alerts included; the model is checked before Spark starts and reaches the workers."""

import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from alert_files import AVRO_NIGHT, CONTAINER, container_blocks, damage_block, write_tarball
from replay_helpers import assert_refused, replay_cli, snapshot, split_output

from fink_t2.alerts import read_avro, records_to_table
from fink_t2.core.classifier import classify_columns
from fink_t2.core.contract import attach_contract, read_contract, strip_contract
from fink_t2.core.cuts import REJECTED, STATUS_OK
from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.processor import DEFAULT_MODEL, T2_COLUMNS
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
from fink_t2.stream.output import RUN_MARKER, SPARK_LOG, SUMMARY_FILE, UNREADABLE_DIR
from fink_t2.stream.replay import NoAlertError, replay


def _output(spark, path):
    return spark.read.parquet(str(path)).toPandas()


@pytest.mark.slow
def test_replay_sample_night_twice_keeps_each_alert_once(spark, sample_night, tmp_path):
    out = tmp_path / "night"
    summary = replay(sample_night, str(out))
    assert summary["alerts_in_output"] == summary["alerts_processed_this_run"] == 124
    assert summary["classified"] + sum(summary["rejected_by_cuts"].values()) == 124
    df = _output(spark, out)
    assert df.candid.is_unique and len(df) == 124
    assert {"objectId", "candid", "t2", "t2_status", "t2_class", "candidate", "cjd"} <= set(df.columns)
    again = replay(sample_night, str(out))
    assert again["alerts_in_output"] == 124 and again["alerts_processed_this_run"] == 0
    # a rerun with nothing left to do keeps the throughput of the run that processed the night
    assert again["alerts_per_s"] is None and again["last_processing_run"] == summary["last_processing_run"]
    assert summary["last_processing_run"]["alerts_processed"] == 124 and summary["last_processing_run"]["alerts_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "relative, expected",
    [
        ("night_20200101_avro", 50),
        ("multi_alert_avro_2019/avro_multi_alerts.avro", 11),
        ("night_20200101_fink_raw_parquet", 12),
    ],
)
def test_replay_each_input_format(spark, shared_data, tmp_path, relative, expected):
    summary = replay(str(shared_data / "ztf_alerts" / relative), str(tmp_path / "out"))
    df = _output(spark, tmp_path / "out")
    assert summary["alerts_in_output"] == len(df) == df.candid.nunique() == expected
    assert summary["unreadable_files"] == 0


@pytest.mark.slow
def test_replay_nightly_tarball(spark, shared_data, tmp_path):
    tarball = tmp_path / "ztf_public_20200101.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted((shared_data / "ztf_alerts" / "night_20200101_avro").glob("*.avro")):
            tar.add(path, arcname=path.name)
    summary = replay(str(tarball), str(tmp_path / "out"))
    assert summary["alerts_in_output"] == _output(spark, tmp_path / "out").candid.nunique() == 50
    # raw alerts: Fink's raw -> science step first (fink_t2.core.raw_filter: most of these first detections fail Fink's
    # quality cuts), then t2's own cuts: first detections only (history = upper limits), so every alert left is
    # rejected, those first seen more than 90 days ago by the age cut, the others by the >= 2 detections cut
    from fink_t2.alerts import iter_alerts
    from fink_t2.core.raw_filter import FIELDS, raw_status

    candidates = [a["candidate"] for a in iter_alerts(str(tarball))]
    raw = raw_status({name: [c.get(name) for c in candidates] for name in FIELDS})
    expected = Counter(r if r is not None else "too_old" if c["jd"] - c["jdstarthist"] > 90 else "too_few_detections"
                       for r, c in zip(raw, candidates))
    assert expected["bad_quality"] > 0 and len(expected) > 1
    assert summary["rejected_by_cuts"] == dict(sorted(expected.items()))


@pytest.mark.slow
def test_cli_replay_prints_a_summary(sample_night, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fink_t2.cli", "replay", sample_night, "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["alerts_in_output"] == 124 and summary["alerts_per_s"] > 0
    # stderr holds only the replay's own lines: Spark's banner, its WARN lines and LiteRT's INFO line of each
    # Python worker went to the output's log (tests/test_cli.py: --verbose brings them back)
    assert [line for line in proc.stderr.splitlines() if not line.startswith("fink-t2: batch ")] == []
    log = (tmp_path / "o" / SPARK_LOG).read_text()
    assert "Using Spark's default log4j profile" in log and "INFO: Created TensorFlow Lite XNNPACK delegate" in log


@pytest.mark.slow
def test_cli_rejects_a_missing_path_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fink_t2.cli", "replay", str(tmp_path / "nope"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- bad files, a night with zero alerts (docs/reliability.md) ---------------------------------------------


def _classify(df):
    proba, status = classify_columns(*(df[c.split(".")[-1]] for c in T2_COLUMNS), model=load_model(DEFAULT_MODEL))
    return pd.DataFrame(proba, columns=list(DEFAULT_MODEL.class_names)), status


@pytest.mark.slow
def test_mixed_night_every_alert_out_every_bad_file_reported_and_kept(mixed_night, mixed_replay):
    df, summary, out = mixed_replay["df"], mixed_replay["summary"], mixed_replay["out"]
    good, errors = mixed_replay["good"], mixed_replay["errors"]
    # alerts in == alerts out (+ one row per undecodable file; the empty file is in the summary only)
    assert sorted(good.candid) == sorted(mixed_night["candids"]) and good.candid.is_unique
    assert sorted(Path(f).name for f in errors.source_file) == ["garbage.avro", "truncated.avro"]
    assert (errors.t2_status == "unreadable_file").all() and all(set(m.values()) == {REJECTED} for m in errors.t2)
    assert summary["alerts_in_output"] == len(df) == len(mixed_night["candids"]) + 2
    assert summary["unreadable_files"] == 3 == len(summary["unreadable"])
    # every unreadable file is kept aside, byte for byte, and listed
    kept = {Path(e["source"]).name: e for e in summary["unreadable"]}
    assert set(kept) == set(mixed_night["bad"])
    for name, data in mixed_night["bad"].items():
        assert (out / UNREADABLE_DIR / kept[name]["kept_as"]).read_bytes() == data
    assert json.loads((out / UNREADABLE_DIR / "index.json").read_text()) == sorted(summary["unreadable"], key=lambda e: e["source"])
    # the 3.3 and 4.x alerts that pass the cuts are classified as the pandas path does
    for key in ("v33", "v4"):
        record = mixed_night[key]
        row = good[good.candid == record["candid"]].iloc[0]
        proba, status = _classify(records_to_table([{k: v for k, v in record.items() if k not in ("roid", "cdsxmatch")}]).to_pandas())
        assert row.t2_status == status[0] == STATUS_OK
        for name, p in dict(row.t2).items():
            assert p == pytest.approx(float(proba[name][0]), abs=1e-5)
    assert good[good.candid == mixed_night["v4"]["candid"]].iloc[0].candidate["ssnamenr"] is None
    # the output folder now belongs to this night
    assert json.loads((out / RUN_MARKER).read_text())["input"] == str(mixed_night["path"])


@pytest.mark.slow
def test_rerun_of_the_mixed_night_adds_nothing(spark, mixed_night, mixed_replay):
    out = mixed_replay["out"]
    again = replay(str(mixed_night["path"]), str(out))
    assert again["alerts_processed_this_run"] == 0 and again["alerts_in_output"] == mixed_replay["summary"]["alerts_in_output"]
    assert again["unreadable"] == mixed_replay["summary"]["unreadable"]
    assert len(list((out / UNREADABLE_DIR).iterdir())) == 4  # 3 files + index.json, not copied twice


@pytest.mark.slow
def test_a_damaged_block_of_a_container_file_costs_only_its_alerts(spark, tmp_path):
    """A real container file with its third block damaged, beside an intact one: the alerts of the good
    blocks are all in the output, the damage is one unreadable_file row, and the file is kept aside."""
    night = tmp_path / "night"
    night.mkdir()
    data = CONTAINER.read_bytes()
    offset, size, lost = container_blocks(data)[2]
    damaged = damage_block(data, offset, size, "payload")
    (night / CONTAINER.name).write_bytes(damaged)
    other = CONTAINER.with_name("avro_multi_alerts_other.avro")
    (night / other.name).write_bytes(other.read_bytes())
    expected = [a["candid"] for a in read_avro(CONTAINER) if a["candid"] not in lost] + [a["candid"] for a in read_avro(other)]
    out = tmp_path / "out"
    summary = replay(str(night), str(out))
    parts = split_output(spark, out)
    good, errors = parts["good"], parts["errors"]
    assert sorted(good.candid) == sorted(expected) and len(expected) == 14 - len(lost) == 12
    assert len(errors) == 1 and Path(errors.source_file[0]).name == CONTAINER.name
    assert errors.t2_status[0] == "unreadable_file" and "damaged" in errors.ingest_error[0]
    assert summary["alerts_in_output"] == len(expected) + 1 and summary["unreadable_files"] == 1
    assert (out / UNREADABLE_DIR / summary["unreadable"][0]["kept_as"]).read_bytes() == damaged


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["empty folder", "empty tarball", "zero-byte tarball"])
def test_a_night_with_zero_alerts(spark, tmp_path, kind):
    if kind == "empty folder":
        night = tmp_path / "night"
        night.mkdir()
    elif kind == "empty tarball":
        night = write_tarball(tmp_path / "ztf_public_20200102.tar.gz", [])
    else:
        night = tmp_path / "ztf_public_20200103.tar.gz"
        night.write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(NoAlertError, match="holds no alert") as refused:  # a first run: fink-t2 replay exits 1
        replay(str(night), str(out))
    summary = refused.value.summary
    if kind == "empty folder":  # refused before anything is written
        assert summary is None and not out.exists()
        return
    assert summary["classified"] == 0 and summary["rejected_by_cuts"] == {}
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary
    if kind == "zero-byte tarball":  # an unreadable file: one row, kept aside
        assert summary["alerts_in_output"] == summary["unreadable_files"] == 1
        assert (out / UNREADABLE_DIR / summary["unreadable"][0]["kept_as"]).is_file()
        again = replay(str(night), str(out))  # a rerun that finds nothing new is no error
        assert again["alerts_processed_this_run"] == 0 and again["unreadable"] == summary["unreadable"]
    else:
        assert summary["alerts_in_output"] == summary["unreadable_files"] == 0 and summary["unreadable"] == []


# --- the model: checked before Spark starts, and what the workers run ----------------------------------


def _model_variant(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.tflite"
    contract = read_contract(DEFAULT_MODEL_PATH)
    bare = strip_contract(DEFAULT_MODEL_PATH)
    if kind == "not_a_model":
        path.write_bytes(b"this is not a model\n" * 10)
    elif kind == "no_contract":
        path.write_bytes(bare)
    elif kind == "other_preprocessing":
        path.write_bytes(attach_contract(bare, {**contract, "preprocessing_version": "t2-gp-v0"}))
    elif kind == "class_list_mismatch":
        path.write_bytes(attach_contract(bare, {**contract, "class_names": contract["class_names"][:2], "calibration": None}))
    elif kind == "missing":
        pass
    elif kind == "renamed_classes":
        path.write_bytes(attach_contract(bare, {**contract, "class_names": [f"class {c}" for c in contract["class_names"]]}))
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("not_a_model", ["not a fink-t2 model"]),
        ("no_contract", ["not a fink-t2 model"]),
        ("other_preprocessing", ["preprocessing_version"]),
        ("class_list_mismatch", ["outputs", "class names"]),
        ("missing", ["does not exist"]),
    ],
)
def test_cli_refuses_a_bad_model_before_writing_anything(tmp_path, kind, words):
    model = _model_variant(tmp_path, kind)
    assert_refused(replay_cli(SAMPLE_NIGHT, "--output", tmp_path / "new", "--model", model), model.name, *words)
    assert not (tmp_path / "new").exists()
    # an existing output of the same night is left untouched too
    out = tmp_path / "existing"
    out.mkdir()
    (out / RUN_MARKER).write_text(json.dumps({"input": SAMPLE_NIGHT}))
    before = snapshot(out)
    assert_refused(replay_cli(SAMPLE_NIGHT, "--output", out, "--model", model), *words)
    assert snapshot(out) == before


@pytest.mark.slow
def test_model_option_reaches_the_python_workers(spark, tmp_path):
    """A valid model whose contract names other classes: the output maps use those names, so the workers ran it
    (the CLI's --model goes to the same argument; the tests above show the CLI checks it)."""
    model = _model_variant(tmp_path, "renamed_classes")
    night = tmp_path / "night"
    night.mkdir()
    for path in sorted(AVRO_NIGHT.glob("*.avro"))[:3]:
        (night / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    assert replay(str(night), str(out), model=str(model))["alerts_in_output"] == 3
    keys = {tuple(sorted(m)) for m in spark.read.parquet(str(out)).toPandas().t2.map(dict)}
    assert keys == {tuple(sorted(read_contract(model)["class_names"]))}
    run = json.loads((out / RUN_MARKER).read_text())
    assert run["input"] == str(night) and run["model"] == str(model)
