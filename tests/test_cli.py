"""The command line never shows a traceback: one stderr line and an exit status for every failure tested here
(no Java, an input without alerts, a missing extra, a full disk), options of every command in ``--help``,
and Spark's and LiteRT's own log lines off unless ``--verbose``."""

import errno
import json
import os
import subprocess
import sys
import tarfile
import time

import pandas as pd
import pytest
from alert_files import AVRO_NIGHT
from replay_helpers import group_alive, replay_cli

from fink_t2.cli import main
from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA
from fink_t2.stream.output import RUN_MARKER, SPARK_LOG, SUMMARY_FILE, UNREADABLE_DIR

#: what Spark (its banner, its log4j lines) and LiteRT print when left alone
NOISE = ("Using Spark's default log4j profile", " WARN ", "INFO: Created TensorFlow Lite XNNPACK delegate")


def _cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fink_t2.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _replay_until_jvm_exit(*args, timeout=600) -> subprocess.CompletedProcess:
    """``fink-t2 replay ARGS``, returned once its JVM too has exited (its log is then complete)."""
    command = [sys.executable, "-m", "fink_t2.cli", "replay", *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        out, err = proc.communicate(timeout=timeout)
    deadline = time.monotonic() + 60
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _no_java_error(output) -> None:
    log = output / SPARK_LOG
    assert not log.exists() or " ERROR " not in log.read_text(), log.read_text()[-3000:]


#: lines a replay prints before its error: its progress, and one per unreadable input (docs/reliability.md)
PROGRESS = ("fink-t2: batch ", "ERROR fink_t2.stream.output: fink-t2: unreadable input ")


def _one_line(proc, status: int, *words) -> str:
    """The error line of ``proc``: its last stderr line, after nothing but the replay's own progress lines."""
    assert proc.returncode == status, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines and ": error: " in lines[-1], proc.stderr[-3000:]
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), proc.stderr[-3000:]
    assert all(w in lines[-1] for w in words), lines[-1]
    return lines[-1]


def _small_night(folder, n=3):
    folder.mkdir()
    for path in sorted(AVRO_NIGHT.glob("*.avro"))[:n]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


# --- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, options", [("train", ["--cv", "--max-objects", "--data-dir"]),
                                               ("compress", ["--ship", "--float-dir"]),
                                               ("export-onnx", ["--model", "--output"])])
def test_every_command_lists_its_options_in_help(command, options):
    proc = _cli(command, "--help", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: fink-t2 {command} ")
    assert all(option in proc.stdout for option in options), proc.stdout


def test_export_onnx_without_its_extra_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed: `import onnx` fails
    with pytest.raises(SystemExit) as stop:
        main(["export-onnx", "--output", str(tmp_path / "t2.onnx")])
    message = str(stop.value.code)
    assert message.startswith("fink-t2 export-onnx needs the gpu and train extras: pip install 'fink-t2[gpu,train]'")
    assert "onnx" in message and "\n" not in message and not (tmp_path / "t2.onnx").exists()


# --- before Spark starts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("java_home", [None, "missing"])
def test_replay_without_java_is_one_line_and_writes_nothing(tmp_path, java_home):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path / "bin")  # no java on it
    if java_home:
        env["JAVA_HOME"] = str(tmp_path / java_home)
    out = tmp_path / "out"
    line = _one_line(replay_cli(SAMPLE_NIGHT, "--output", out, env=env), 2, "Java", "install")
    assert ("JAVA_HOME=" in line) == bool(java_home) and ("no java on PATH" in line) != bool(java_home)
    assert not out.exists()


def test_an_empty_folder_is_one_line_and_writes_nothing(tmp_path):
    night = tmp_path / "night"
    night.mkdir()
    _one_line(replay_cli(night, "--output", tmp_path / "out"), 1, str(night), "holds no alert")
    assert not (tmp_path / "out").exists()


# --- a replay: quiet unless --verbose, no Java ERROR, no alert ------------------------------------------------


@pytest.mark.slow
def test_a_replay_is_quiet_and_verbose_brings_spark_and_litert_back(tmp_path):
    night = _small_night(tmp_path / "night")
    quiet = replay_cli(night, "--output", tmp_path / "quiet", timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert json.loads(quiet.stdout)["alerts_in_output"] == 3
    assert [line for line in quiet.stderr.splitlines() if not line.startswith("fink-t2: batch ")] == []
    assert "WARN" in (tmp_path / "quiet" / SPARK_LOG).read_text()  # what Spark said is kept there
    # --verbose: the JVM writes to the terminal; stderr is read until the JVM has exited (it holds the pipe)
    loud = replay_cli(night, "--output", tmp_path / "loud", "--verbose", timeout=600)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert all(noise in loud.stderr for noise in NOISE[:2]), loud.stderr[-3000:]  # (these 3 alerts run no model)
    assert " ERROR " not in loud.stderr and "Traceback" not in loud.stderr, loud.stderr[-3000:]
    assert not (tmp_path / "loud" / SPARK_LOG).exists()


@pytest.mark.slow
def test_only_unreadable_files_is_one_line_kept_aside_and_a_rerun_is_exit_0(tmp_path):
    night = tmp_path / "night"
    night.mkdir()
    real = sorted(AVRO_NIGHT.glob("*.avro"))[0].read_bytes()
    bad = {"truncated.avro": real[: len(real) // 2], "garbage.avro": b"Obj\x01" + bytes(range(256)) * 8, "empty.avro": b""}
    for name, data in bad.items():
        (night / name).write_bytes(data)
    out = tmp_path / "out"
    first = _replay_until_jvm_exit(night, "--output", out)
    _one_line(first, 1, str(night), "holds no alert", "3 unreadable", str(out / UNREADABLE_DIR))
    assert first.stdout == ""
    _no_java_error(out)
    kept = json.loads((out / UNREADABLE_DIR / "index.json").read_text())
    assert {e["kept_as"] for e in kept} == set(bad) and all((out / UNREADABLE_DIR / n).read_bytes() == d
                                                            for n, d in bad.items())
    assert json.loads((out / SUMMARY_FILE).read_text())["unreadable_files"] == 3
    again = _replay_until_jvm_exit(night, "--output", out)  # a rerun that finds nothing new
    assert again.returncode == 0 and again.stderr == "", again.stderr[-3000:]
    assert json.loads(again.stdout)["alerts_processed_this_run"] == 0
    _no_java_error(out)


@pytest.mark.slow
def test_an_empty_tarball_is_one_line(tmp_path):
    tarball = tmp_path / "ztf_public_20200102.tar.gz"
    with tarfile.open(tarball, "w:gz"):
        pass
    _one_line(_replay_until_jvm_exit(tarball, "--output", tmp_path / "out"), 1, "holds no alert", "0 unreadable")
    _no_java_error(tmp_path / "out")


# --- a full disk ---------------------------------------------------------------------------------------------


def _tarball(tmp_path):
    tarball = tmp_path / "ztf_public_20200101.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(AVRO_NIGHT.glob("*.avro")):
            tar.add(path, arcname=path.name)
    return tarball


@pytest.mark.slow
def test_a_full_staging_disk_is_one_line_and_a_rerun_resumes(spark, tmp_path, monkeypatch, capsys):
    from fink_t2.alerts import staging

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file")  # as pyarrow says it: no file name

    tarball, out = _tarball(tmp_path), tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(staging.pq, "write_table", full)
        assert main(["replay", str(tarball), "--output", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), lines
    line = lines[-1]
    assert line.startswith(f"fink-t2 replay: error: no space left on device in {out / '_staging'}")
    assert "run the same command again" in line and "resumes" in line
    assert main(["replay", str(tarball), "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["alerts_in_output"] == 50


@pytest.mark.slow
def test_a_full_output_disk_is_one_line(spark, tmp_path, monkeypatch, capsys):
    from fink_t2.stream import output as output_module

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    night, out = _small_night(tmp_path / "night"), tmp_path / "out"
    monkeypatch.setattr(output_module, "_write_atomically", full)  # the summary, the index of _unreadable
    monkeypatch.setattr("fink_t2.stream.replay.claim_output", lambda *a: out.mkdir())  # the marker is written first
    assert main(["replay", str(night), "--output", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), lines
    assert lines[-1] == (f"fink-t2 replay: error: no space left on device in {out}; run the same command again "
                         f"once there is room: it resumes where it stopped")
    assert not (out / RUN_MARKER).exists()


# --- classify ------------------------------------------------------------------------------------------------


def test_classify_is_quiet_unless_verbose(tmp_path):
    table = pd.read_csv(os.path.join(SHARED_DATA, "ztf_bts", "lightcurves.csv.gz"))
    table = table[table["objectId"].isin(table["objectId"].drop_duplicates().iloc[:20])]
    lightcurves = tmp_path / "lc.csv"
    table.to_csv(lightcurves, index=False)
    quiet = _cli("classify", lightcurves, "--output", tmp_path / "a.csv")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = _cli("classify", lightcurves, "--output", tmp_path / "b.csv", "--verbose")
    assert loud.returncode == 0 and NOISE[-1] in loud.stderr, loud.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
