"""Structured-streaming replay of an archived night through the t2 science module (``fink-t2 replay``).

The source is Spark's ``binaryFile`` file source decoded into Fink's layout
(:mod:`fink_t2.alerts.binaryfile`); a nightly tarball is first staged into parquet
chunks under ``OUTPUT/_staging`` (:mod:`fink_t2.alerts.staging`). The sink is parquet
with its checkpoint in ``OUTPUT/_checkpoint``: a rerun processes only files it has not
committed, and the sink's log keeps every alert exactly once. The output folder (its
run marker, unreadable files, summary) is :mod:`fink_t2.output`.

A file that cannot be decoded becomes one row with ``ingest_error`` set and
``t2_status = "unreadable_file"`` — counted in the summary, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fink_t2 import gpu
from fink_t2.alerts import detect_format
from fink_t2.alerts.binaryfile import decoded_alerts, empty_files
from fink_t2.alerts.staging import stage_tarball
from fink_t2.cuts import STATUS_UNREADABLE
from fink_t2.model_ref import ModelRef
from fink_t2.output import (
    CHECKPOINT_DIR,
    STAGING_DIR,
    claim_output,
    count_output,
    keep_aside,
    summarize,
    write_summary,
)
from fink_t2.processor import T2_COLUMNS, t2_result_udf
from fink_t2.spark import get_spark

_LOG = logging.getLogger(__name__)


def with_t2(df: DataFrame, model: ModelRef | None = None) -> DataFrame:
    """Add ``t2`` (map), ``t2_status`` and ``t2_class`` to a Fink-layout DataFrame.

    ``model``: run this model (its reference travels with the UDF) instead of $FINK_T2_MODEL or the shipped one.
    """
    result = t2_result_udf(model)(*T2_COLUMNS)
    status = F.col("_t2.t2_status")
    if "ingest_error" in df.columns:  # rows standing for an undecodable file (see binaryfile.decode_file)
        status = F.when(F.col("ingest_error").isNotNull(), F.lit(STATUS_UNREADABLE)).otherwise(status)
    return (
        df.withColumn("_t2", result)
        .withColumn("t2", F.col("_t2.t2"))
        .withColumn("t2_status", status)
        .withColumn("t2_class", F.col("_t2.t2_class"))
        .drop("_t2")
    )


def input_format(path: str) -> str:
    """``detect_format``, except that an empty folder is a night with zero alerts (read as an Avro folder)."""
    if os.path.isdir(path) and not any(not name.startswith(".") for name in os.listdir(path)):
        _LOG.warning("fink-t2: %s is empty: a night with zero alerts", path)
        return "avro_dir"
    return detect_format(path)


def check_model(model: str | None = None) -> ModelRef:
    """The model a replay runs (``model``, $FINK_T2_MODEL or the shipped one), loaded once on the driver so
    that a missing file, a file without a t2 contract or a contract that does not match fails before Spark
    starts (ValueError / ModelContractError, FileNotFoundError)."""
    from fink_t2.inference import T2Model

    ref = ModelRef.resolve(model)
    T2Model(ref.path, contract=ref.contract)  # input shape and outputs against the contract (no inference)
    return ref


def replay(
    path: str, output: str, master: str | None = None, max_files_per_trigger: int | None = None, model: str | None = None,
    device: str = "auto",
) -> dict:
    """Replay a night through t2 with Structured Streaming (availableNow) into parquet at ``output``.

    Returns the summary printed by ``fink-t2 replay``. Before Spark starts and before anything is
    written, the input, the model (``model``, else $FINK_T2_MODEL, else the shipped one) and the
    output folder (see :func:`fink_t2.output.claim_output`) are checked; a problem raises ValueError
    or FileNotFoundError. ``device`` (auto, cpu, gpu) is the workers' choice of backend (:mod:`fink_t2.gpu`);
    ``gpu`` on a local master is checked here first (ValueError: no usable GPU).
    """
    fmt = input_format(path)
    ref = check_model(model)
    device = gpu.check_device(device)
    if device == "gpu" and (master or os.environ.get("SPARK_MASTER") or "local").startswith("local"):
        gpu.choose_model(ref, "gpu")  # the workers run on this machine: fail before Spark starts
    output = os.path.abspath(output)
    claim_output(output, path, ref.path)
    start, started_at = time.perf_counter(), time.time()
    if fmt == "tarball":  # staging reads the tarball itself, and reports an empty one
        unlisted = []
        path, fmt = stage_tarball(path, os.path.join(output, STAGING_DIR)), "parquet"
    else:
        unlisted = empty_files(path, fmt)
    spark = get_spark(master)
    reader = spark.readStream
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    before = count_output(spark, output)
    backend_dir = os.path.join(output, gpu.BACKEND_RECORDS)
    # the workers' environment (pyspark sends it with each Python UDF): device policy, where to record the backend
    spark.sparkContext.environment.update({gpu.DEVICE_ENV: device, gpu.BACKEND_DIR_ENV: backend_dir})
    query = (
        with_t2(decoded_alerts(reader, path, fmt), model=ref)
        .writeStream.format("parquet")
        .option("path", output)
        .option("checkpointLocation", os.path.join(output, CHECKPOINT_DIR))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    wall = time.perf_counter() - start
    summary = summarize(spark, output, before, wall)
    unreadable = keep_aside(spark, output, unlisted)
    summary.update(unreadable_files=len(unreadable), unreadable=unreadable, device=device,
                   **gpu.worker_backends(backend_dir, since=started_at))
    write_summary(output, summary)  # read by fink-t2 report
    return summary
