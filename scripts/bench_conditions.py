"""The conditions a benchmark ran under, for its JSON: load, thread settings, Spark, cores, model, commit.

A rate measured on a shared machine means little without the load beside it, and a module timed with two
threads is not timed "per core". Every benchmark script of ``scripts/`` records :func:`conditions` before and
after its timings (``os.getloadavg``: 1, 5 and 15 minutes), and those that run Spark add what its Python
worker saw (:func:`worker_threads`: the threads of the process, torch's, the BLAS/OpenMP pools). Scripts that
time one core call :func:`pin_threads` before anything starts a thread pool: the setting reaches Spark's JVM
and its Python workers through the environment they inherit (torch reads ``OMP_NUM_THREADS`` at import).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd

#: environment variables that set the size of a library's thread pool
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
REPO = Path(__file__).resolve().parents[1]


def pin_threads(n: int) -> None:
    """Every library's pool in this process and its children to ``n`` threads (0: leave the defaults)."""
    if n > 0:
        os.environ.update({name: str(n) for name in THREAD_VARIABLES})


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def process_threads() -> dict:
    """The thread settings this process sees: environment, pools actually loaded, threads alive."""
    out = {"environment": {name: os.environ.get(name) for name in THREAD_VARIABLES}}
    try:
        status = Path("/proc/self/status").read_text()
        out["threads_alive"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    except (OSError, StopIteration):
        out["threads_alive"] = None
    if "torch" in sys.modules:  # only where a module imported it: importing it here would change what is measured
        torch = sys.modules["torch"]
        out["torch"] = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    try:
        from threadpoolctl import threadpool_info

        out["pools"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "num_threads")}
                        for pool in threadpool_info()]
    except ImportError:
        out["pools"] = None
    return out


def spark_settings(spark) -> dict:
    conf = spark.sparkContext.getConf()
    return {"master": spark.sparkContext.master, "default_parallelism": spark.sparkContext.defaultParallelism,
            "python_worker_reuse": conf.get("spark.python.worker.reuse", "true"),
            "arrow_max_records_per_batch": spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")}


def conditions(spark=None) -> dict:
    """Load average and thread settings now (call it before and after the timings)."""
    out = {"load_average_1_5_15": load_average(), "cores": os.cpu_count(),
           "cores_usable": len(os.sched_getaffinity(0)), "threads": process_threads()}
    if spark is not None:
        out["spark"] = spark_settings(spark)
    return out


def worker_threads(spark) -> dict:
    """What one of Spark's Python workers sees (after the modules ran: torch is there if one imported it)."""
    from pyspark import cloudpickle
    from pyspark.sql.functions import pandas_udf

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import scripts/

    @pandas_udf("string")
    def probe(ids: pd.Series) -> pd.Series:
        return pd.Series([json.dumps({"pid": os.getpid(), **process_threads()})] * len(ids))

    rows = spark.range(1, numPartitions=1).select(probe("id").alias("t")).collect()
    return json.loads(rows[0]["t"])


def provenance(model_path: str | None = None) -> dict:
    """Commit of the tree, whether it had changes, machine, and the SHA-256 of the model file timed."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    out = {"commit": git("rev-parse", "--short", "HEAD"), "tree_changed": bool(git("status", "--porcelain", "--untracked-files=no")),
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "python": platform.python_version()}}
    if model_path:
        out["model_sha256"] = sha256(model_path)
    return out


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions(names) -> dict:
    """Installed versions of the named distributions (those absent are left out)."""
    from importlib.metadata import distributions

    wanted = {n.lower() for n in names}
    return dict(sorted((d.metadata["Name"].lower(), d.version) for d in distributions()
                       if d.metadata["Name"] and d.metadata["Name"].lower() in wanted))
