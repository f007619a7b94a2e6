"""Crash recovery: SIGKILL a replay (driver and JVM) in the middle of a night, run the same command again:
every alert of the night is in the output exactly once (docs/reliability.md)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replay_helpers import group_alive

from fink_t2.alerts import iter_alerts
from fink_t2.paths import SHARED_DATA

pytestmark = pytest.mark.slow

NIGHT = Path(SHARED_DATA) / "ztf_alerts" / "night_20200101_avro"


def _committed_batches(out: Path) -> list[str]:
    """Batches the parquet sink has committed (its log OUTPUT/_spark_metadata/N)."""
    log = out / "_spark_metadata"
    return sorted((p.name for p in log.iterdir() if p.name.isdigit()), key=int) if log.is_dir() else []


def test_sigkill_mid_night_then_rerun_keeps_every_alert_exactly_once(spark, tmp_path):
    candids = sorted(alert["candid"] for alert in iter_alerts(NIGHT))
    assert len(candids) == len(set(candids)) == 50
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fink_t2.cli", "replay", str(NIGHT), "--output", str(out), "--max-files-per-trigger", "1"]

    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while not _committed_batches(out) and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            killed_after = _committed_batches(out)
            os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM, mid-stream
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    assert 1 <= len(killed_after) < 50, "the kill must land after a committed batch, before the end of the night"
    for _ in range(100):  # the whole process group (the JVM too) is gone
        if not group_alive(first.pid):
            break
        time.sleep(0.1)
    assert not group_alive(first.pid)
    partial = spark.read.parquet(str(out)).count()
    assert 1 <= partial < 50

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["alerts_in_output"] == 50 and summary["unreadable_files"] == 0
    assert summary["alerts_processed_this_run"] == 50 - partial
    rows = spark.read.parquet(str(out)).select("candid", "t2_status").collect()
    assert len(rows) == 50 and sorted(r.candid for r in rows) == candids
    assert all(r.t2_status for r in rows)
