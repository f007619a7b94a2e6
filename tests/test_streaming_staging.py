"""A nightly tarball is decoded by the stream while the driver is still staging it: one query, every alert
exactly once, also when the run is killed mid-staging and run again (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alert_files import AVRO_NIGHT
from paced_staging import pace
from replay_helpers import group_alive

from fink_t2.alerts import read_tarball
from fink_t2.alerts import staging as staging_module
from fink_t2.alerts.staging import DONE_MARKER, PROGRESS_FILE
from fink_t2.alerts.synthetic import templates, write_night
from fink_t2.stream.replay import replay

pytestmark = pytest.mark.slow

#: ~16 real alerts (with their cutouts) per chunk: the night below is cut into ~40 chunks
CHUNK_BYTES = 1_000_000
N_ALERTS = 600


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("night") / "ztf_public_20991231.tar.gz"
    write_night(path, templates(AVRO_NIGHT), N_ALERTS)
    candids = [alert["candid"] for alert in read_tarball(path)]
    assert len(candids) == len(set(candids)) == N_ALERTS
    return {"path": path, "candids": sorted(candids)}


def _output_candids(spark, out: Path) -> list:
    return sorted(r.candid for r in spark.read.parquet(str(out)).select("candid").collect())


def test_the_stream_decodes_chunks_while_the_tarball_is_staged(spark, night, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(staging_module, "CHUNK_BYTES", CHUNK_BYTES)
    pace(out)
    summary = replay(str(night["path"]), str(out))
    staged = out / "_staging" / "ztf_public_20991231_tar_gz"
    # the first batch was committed before the staging was done: staging and decoding overlapped
    assert (out / "_checkpoint" / "commits" / "0").stat().st_mtime < (staged / DONE_MARKER).stat().st_mtime
    assert _output_candids(spark, out) == night["candids"]
    assert summary["alerts_in_output"] == summary["alerts_processed_this_run"] == N_ALERTS
    assert summary["staging"]["members"] == N_ALERTS and summary["staging"]["chunks"] > 20
    # one line per micro-batch on stderr, some written while the staging went on
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fink-t2: batch ")]
    assert len(lines) >= 2 and any("staging" in line and "%" in line for line in lines)
    assert sum(int(line.split(": ")[2].split(" alerts")[0].replace(",", "")) for line in lines) == N_ALERTS
    assert not list(staged.glob("chunk-*"))  # the stream deleted the chunks it committed, the run the rest
    again = replay(str(night["path"]), str(out))
    assert again["alerts_processed_this_run"] == 0 and again["alerts_per_s"] is None
    assert again["last_processing_run"] == summary["last_processing_run"]


def test_sigkill_mid_staging_then_rerun_keeps_every_alert_exactly_once(spark, night, tmp_path):
    out = tmp_path / "out"
    staged = out / "_staging" / "ztf_public_20991231_tar_gz"
    args = ["replay", str(night["path"]), "--output", str(out), "--master", "local[2]"]
    paced = [sys.executable, str(Path(__file__).with_name("paced_staging.py")), str(CHUNK_BYTES), *args]
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(paced, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        try:
            while not (out / "_checkpoint" / "commits" / "0").exists() and first.poll() is None:
                assert time.monotonic() < deadline, "no batch committed in time"
                time.sleep(0.1)
            staging_was_done = (staged / DONE_MARKER).exists()
            os.killpg(first.pid, signal.SIGKILL)  # the driver (mid-staging) and its JVM (mid-stream)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    assert not staging_was_done, "the kill must land while the tarball is still being staged"
    for _ in range(100):
        if not group_alive(first.pid):
            break
        time.sleep(0.1)
    staged_before = json.loads((staged / PROGRESS_FILE).read_text())["members"]
    assert 0 < staged_before < N_ALERTS
    partial = spark.read.parquet(str(out)).count()
    assert 1 <= partial < N_ALERTS

    rerun = subprocess.run([sys.executable, "-m", "fink_t2.cli", *args], capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["staging"]["resumed_at_member"] == staged_before and summary["staging"]["members"] == N_ALERTS
    assert summary["alerts_in_output"] == N_ALERTS and summary["alerts_processed_this_run"] == N_ALERTS - partial
    assert _output_candids(spark, out) == night["candids"]
