"""The Spark session of fink-t2: master, defaults, and the Python its workers run.

Spark starts its Python workers with ``$PYSPARK_PYTHON``, else whatever ``python3``
comes first on ``PATH``. A ``fink-t2`` installed in a virtual environment and run by
its full path without activating it (cron, systemd, pipx) would then start workers
in another Python, without fink_t2, and every task would fail with
``ModuleNotFoundError``. So unless the user chose one, the workers run the
interpreter of the process that builds the session (:func:`worker_python`).

Spark needs Java: :func:`check_java` finds it (``$JAVA_HOME``, else ``java`` on ``PATH``, as Spark's own
launcher does) before anything starts, so that a machine without it gets one line saying how to install
it instead of Py4J's traceback. A JVM started here with a ``log_file`` writes everything it prints (Spark's
banner and WARN lines, and the Python workers' own stderr, e.g. LiteRT's XNNPACK INFO line) into that
file instead of the terminal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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


#: how to get Java, in the one-line error of a machine without it
INSTALL_JAVA = ("install Java 17 (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless; macOS: brew install "
                "openjdk@17; conda: conda install -c conda-forge openjdk=17) or set JAVA_HOME to a Java installation")


class JavaNotFoundError(RuntimeError):
    """No Java runtime Spark could start: the message says how to install one."""


def java_command() -> str | None:
    """The ``java`` Spark's launcher would run: ``$JAVA_HOME/bin/java``, else ``java`` on ``PATH`` (None: none)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = os.path.join(home, "bin", "java")
        return java if os.access(java, os.X_OK) else None
    return shutil.which("java")


def java_needed() -> bool:
    """Whether building a session here would start a JVM (none runs yet, and no spark-submit started this process)."""
    return "PYSPARK_GATEWAY_PORT" not in os.environ and SparkSession.getActiveSession() is None


def check_java() -> str:
    """Check that Spark can start a JVM here; returns the ``java -version`` line.

    Raises :class:`JavaNotFoundError` (one line, with how to install Java) when there is no ``java``, when it
    does not run, or when it is older than this pyspark needs (Java 17 for Spark 4, 8 for Spark 3).
    """
    import pyspark

    java = java_command()
    where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else "no java on PATH"
    if java is None:
        raise JavaNotFoundError(f"Spark needs Java and found none ({where}): {INSTALL_JAVA}")
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JavaNotFoundError(f"Spark needs Java and {java} does not run ({err}): {INSTALL_JAVA}") from None
    first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
    match = re.search(r'version "(?:1\.)?(\d+)', first[0]) if first else None
    if proc.returncode != 0 or match is None:
        raise JavaNotFoundError(f"Spark needs Java and {java} -version failed ({' '.join(first) or proc.returncode}): "
                                f"{INSTALL_JAVA}")
    needed = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    if int(match[1]) < needed:
        raise JavaNotFoundError(f"Spark {pyspark.__version__} needs Java {needed} or newer; {java} is {first[0]}: "
                                f"{INSTALL_JAVA}")
    return first[0]


def _start_logged_jvm(builder_conf: dict, log_file: str) -> None:
    """Start this process's JVM with its stdout and stderr appended to ``log_file``, and its SparkContext."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    conf = SparkConf()
    for key, value in builder_conf.items():
        conf.set(key, value)
    with open(log_file, "ab") as log:
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    SparkContext(conf=conf, gateway=gateway)


def get_spark(master: str | None = None, app_name: str = "fink-t2", log_file: str | None = None,
              **conf) -> SparkSession:
    """A Spark session set up for the replay.

    Master: ``master``, else $SPARK_MASTER, else the one spark-submit was given (a driver
    started by spark-submit talks to its JVM through $PYSPARK_GATEWAY_PORT), else local[*].
    Python workers: :func:`worker_python`, given to Spark both as ``$PYSPARK_PYTHON`` (what
    pyspark reads when the session's context starts) and as ``spark.pyspark.python``.
    An existing session is returned as it is (its workers' Python was chosen when it started).
    ``log_file``: where the JVM this call starts (if it starts one) writes what it prints, instead of the terminal.
    """
    python = worker_python()
    os.environ["PYSPARK_PYTHON"] = python
    settings = {"spark.app.name": app_name}
    master = master or os.environ.get("SPARK_MASTER")
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        settings["spark.master"] = master or "local[*]"
    settings.update({**DEFAULT_CONF, "spark.pyspark.python": python, **conf})
    if log_file is not None and java_needed():
        _start_logged_jvm(settings, log_file)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def replay_session(master: str | None = None, log_file: str | None = None) -> SparkSession:
    """The session of ``fink-t2 replay``: :func:`get_spark` with :data:`REPLAY_SQL_CONF` and, for a local master
    whose JVM this process starts, :data:`LOCAL_JAVA_OPTIONS` (unless ``$FINK_T2_JAVA_OPTIONS`` says otherwise;
    empty: the JVM's defaults). ``log_file``: see :func:`get_spark`."""
    conf = dict(REPLAY_SQL_CONF)
    local = (master or os.environ.get("SPARK_MASTER") or "local[*]").startswith("local")
    java = os.environ.get("FINK_T2_JAVA_OPTIONS", LOCAL_JAVA_OPTIONS)
    if local and java and "PYSPARK_GATEWAY_PORT" not in os.environ:
        conf["spark.driver.extraJavaOptions"] = java
    manager = "spark.sql.streaming.checkpointFileManagerClass"
    spark = get_spark(master, log_file=log_file, **conf)
    try:  # the class's package moved in Spark 4: an older Spark keeps its default manager
        spark._jvm.java.lang.Class.forName(REPLAY_SQL_CONF[manager])
    except Exception:
        spark.conf.unset(manager)
        conf.pop(manager)
    for key, value in REPLAY_SQL_CONF.items():  # an existing session got none of the above: these apply still
        if key in conf:
            spark.conf.set(key, value)
    return spark
