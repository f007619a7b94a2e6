"""The Spark session: its Python workers run the interpreter fink-t2 runs on, unless the user chose another."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.stream.spark import worker_python


def test_worker_python_is_this_interpreter_unless_the_user_chose_one(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert worker_python() == sys.executable
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/other/python3")
    assert worker_python() == "/opt/other/python3"


def test_the_session_gives_its_workers_that_interpreter(spark):
    assert spark.sparkContext.pythonExec == worker_python() == os.environ["PYSPARK_PYTHON"]
    assert spark.sparkContext.getConf().get("spark.pyspark.python") == worker_python()


@pytest.mark.slow
def test_cli_run_by_full_path_without_its_venv_on_path(tmp_path):
    """As cron, systemd or pipx run an installed fink-t2: this interpreter by its full path, no PYSPARK_PYTHON,
    and a PATH whose first ``python3`` is another Python (here one that only fails, and says it ran)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    ran = tmp_path / "other_python3_ran"
    fake = fake_bin / "python3"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{ran}"\necho "not the Python fink-t2 runs on" >&2\nexit 1\n')
    fake.chmod(0o755)
    java_dir = os.path.dirname(shutil.which("java") or "/usr/bin/java")
    drop = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "FINK_T2_MODEL", "SPARK_MASTER", "PYSPARK_SUBMIT_ARGS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join([str(fake_bin), java_dir, "/usr/bin", "/bin"])
    proc = subprocess.run(
        [sys.executable, "-m", "fink_t2.cli", "replay", SAMPLE_NIGHT, "--output", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["alerts_in_output"] == summary["alerts_processed_this_run"] == 124
    assert summary["classified"] > 0 and summary["unreadable_files"] == 0
    assert not ran.exists(), ran.read_text()[-2000:]


def test_replay_session_settings(spark):
    """On an existing session the replay's SQL settings apply; a local replay's own JVM gets the C1-only option."""
    from fink_t2.stream.spark import LOCAL_JAVA_OPTIONS, REPLAY_SQL_CONF, replay_session

    session = replay_session("local[2]")
    assert session is spark and all(spark.conf.get(k) == v for k, v in REPLAY_SQL_CONF.items())
    code = ("from fink_t2.stream.spark import replay_session; s = replay_session('local[1]'); "
            "print(list(s._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "FINK_T2_JAVA_OPTIONS"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert LOCAL_JAVA_OPTIONS in proc.stdout
