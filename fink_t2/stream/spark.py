"""The Spark session of fink-t2: master, defaults, and the Python its workers run.

Spark starts its Python workers with ``$PYSPARK_PYTHON``, else whatever ``python3``
comes first on ``PATH``. A ``fink-t2`` installed in a virtual environment and run by
its full path without activating it (cron, systemd, pipx) would then start workers
in another Python, without fink_t2, and every task would fail with
``ModuleNotFoundError``. So unless the user chose one, the workers run the
interpreter of the process that builds the session (:func:`worker_python`).
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

#: settings of every session built here (``get_spark(**conf)`` overrides them)
DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",  # fink-t2 replay prints its own line per micro-batch
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}

#: SQL settings of a replay (set by :func:`replay_session`, on an existing session too); measured on a
#: 30,000-alert night on this project's 2-core machine
REPLAY_SQL_CONF = {
    # a stream waiting for the next staged chunk looks 5 times a second (default: 100)
    "spark.sql.streaming.pollingDelay": "200ms",
    # no per-row size check while filling Arrow batches for Python (a tenth of the JVM's sampled time):
    # batches stay bounded by spark.sql.execution.arrow.maxRecordsPerBatch rows
    "spark.sql.execution.arrow.maxBytesPerBatch": str(2**31 - 1),
    # checkpoint files renamed through the FileSystem API: the default FileContext one starts a `readlink`
    # process per file on a local disk without Hadoop's native library (136 processes in a 10,000-alert replay)
    "spark.sql.streaming.checkpointFileManagerClass":
        "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
}
#: JVM options of a local replay's driver, where its executors run: the C1 compiler only. The C2 compiler
#: spent 13-15 CPU-seconds of a 30,000-alert replay recompiling (half the JVM's CPU, on 2 cores); C1 code
#: runs the JVM's small share of the per-alert work (the decoding and t2 run in Python) nearly as fast
LOCAL_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


def worker_python() -> str:
    """The Python for Spark's workers: ``$PYSPARK_PYTHON`` when set, else this process's interpreter.

    >>> import os, sys
    >>> worker_python() == (os.environ.get("PYSPARK_PYTHON") or sys.executable)
    True
    """
    return os.environ.get("PYSPARK_PYTHON") or sys.executable or "python3"


def get_spark(master: str | None = None, app_name: str = "fink-t2", **conf) -> SparkSession:
    """A Spark session set up for the replay.

    Master: ``master``, else $SPARK_MASTER, else the one spark-submit was given (a driver
    started by spark-submit talks to its JVM through $PYSPARK_GATEWAY_PORT), else local[*].
    Python workers: :func:`worker_python`, given to Spark both as ``$PYSPARK_PYTHON`` (what
    pyspark reads when the session's context starts) and as ``spark.pyspark.python``.
    An existing session is returned as it is (its workers' Python was chosen when it started).
    """
    python = worker_python()
    os.environ["PYSPARK_PYTHON"] = python
    builder = SparkSession.builder.appName(app_name)
    master = master or os.environ.get("SPARK_MASTER")
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master or "local[*]")
    for key, value in {**DEFAULT_CONF, "spark.pyspark.python": python, **conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def replay_session(master: str | None = None) -> SparkSession:
    """The session of ``fink-t2 replay``: :func:`get_spark` with :data:`REPLAY_SQL_CONF` and, for a local master
    whose JVM this process starts, :data:`LOCAL_JAVA_OPTIONS` (unless ``$FINK_T2_JAVA_OPTIONS`` says otherwise;
    empty: the JVM's defaults)."""
    conf = dict(REPLAY_SQL_CONF)
    local = (master or os.environ.get("SPARK_MASTER") or "local[*]").startswith("local")
    java = os.environ.get("FINK_T2_JAVA_OPTIONS", LOCAL_JAVA_OPTIONS)
    if local and java and "PYSPARK_GATEWAY_PORT" not in os.environ:
        conf["spark.driver.extraJavaOptions"] = java
    manager = "spark.sql.streaming.checkpointFileManagerClass"
    spark = get_spark(master, **conf)
    try:  # the class's package moved in Spark 4: an older Spark keeps its default manager
        spark._jvm.java.lang.Class.forName(REPLAY_SQL_CONF[manager])
    except Exception:
        spark.conf.unset(manager)
        conf.pop(manager)
    for key, value in REPLAY_SQL_CONF.items():  # an existing session got none of the above: these apply still
        if key in conf:
            spark.conf.set(key, value)
    return spark
