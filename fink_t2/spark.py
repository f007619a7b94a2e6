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
