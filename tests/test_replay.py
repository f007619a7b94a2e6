"""`fink-t2 replay` end to end: every input alert exactly once in the output, for each input format."""

import json
import subprocess
import sys
import tarfile

import pytest

from fink_t2.stream import replay

pytestmark = pytest.mark.slow


def _output(spark, path):
    return spark.read.parquet(str(path)).toPandas()


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


def test_replay_nightly_tarball(spark, shared_data, tmp_path):
    tarball = tmp_path / "ztf_public_20200101.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted((shared_data / "ztf_alerts" / "night_20200101_avro").glob("*.avro")):
            tar.add(path, arcname=path.name)
    summary = replay(str(tarball), str(tmp_path / "out"))
    assert summary["alerts_in_output"] == _output(spark, tmp_path / "out").candid.nunique() == 50
    # first detections only (history = upper limits): every alert is rejected, those first seen more
    # than 90 days ago by the age cut (checked before the light curve), the others by the ≥2 detections cut
    from fink_t2.alerts import iter_alerts

    candidates = [a["candidate"] for a in iter_alerts(str(tarball))]
    old = sum(c["jd"] - c["jdstarthist"] > 90 for c in candidates)
    assert 0 < old < 50
    assert summary["rejected_by_cuts"] == {"too_few_detections": 50 - old, "too_old": old}


def test_cli_replay_prints_a_summary(sample_night, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fink_t2.cli", "replay", sample_night, "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["alerts_in_output"] == 124 and summary["alerts_per_s"] > 0


def test_cli_rejects_a_missing_path_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fink_t2.cli", "replay", str(tmp_path / "nope"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert not (tmp_path / "o").exists()
