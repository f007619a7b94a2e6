"""The Spark session of fink-t2: master and defaults."""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

#: settings of every session built here (``get_spark(**conf)`` overrides them)
DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


def get_spark(master: str | None = None, app_name: str = "fink-t2", **conf) -> SparkSession:
    """A Spark session set up for the replay.

    Master: ``master``, else $SPARK_MASTER, else the one spark-submit was given (a driver
    started by spark-submit talks to its JVM through $PYSPARK_GATEWAY_PORT), else local[*].
    """
    builder = SparkSession.builder.appName(app_name)
    master = master or os.environ.get("SPARK_MASTER")
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master or "local[*]")
    for key, value in {**DEFAULT_CONF, **conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
