"""Structured-streaming replay of an archived night through the t2 science module (``fink-t2 replay``).

The source is Spark's ``binaryFile`` file source; each of the stream's tasks decodes its files into Fink's
layout (:mod:`fink_t2.alerts.binaryfile`), runs the raw filter and t2 on them (:mod:`fink_t2.stream.stages`:
the three stages in one ``mapInArrow`` task, one crossing between the JVM and Python). A nightly tarball is cut by the driver into chunks of raw Avro
members under ``OUTPUT/_staging`` (:mod:`fink_t2.alerts.staging`) while the one query of the run
already decodes and classifies the chunks written so far (a processing-time trigger, stopped once the
staging is done and every chunk is processed); other inputs are read with the ``availableNow`` trigger.
The sink is parquet with its checkpoint in ``OUTPUT/_checkpoint``: a rerun processes only files it
has not committed, and the sink's log keeps every alert exactly once. The output folder (its run
marker, unreadable files, summary) is :mod:`fink_t2.stream.output`; what the run prints while it runs,
:mod:`fink_t2.stream.progress`.

Which survey the input holds (ZTF, or Rubin ``lsst.v10_0`` / ELAsTiCC) is told once, from the data, before
anything runs (:mod:`fink_t2.stream.survey`; an input mixing both is refused): Rubin alerts take the same path
with their own stages (:mod:`fink_t2.stream.rubin_stage`) and model (the shipped ``t2_lsst``, or
$FINK_T2_RUBIN_MODEL), into their own output layout.

Raw ZTF alerts (no Fink science-stage columns) first meet Fink's raw -> science step as
:mod:`fink_t2.core.raw_filter` rebuilds it: an alert it rejects keeps that status, and t2 spends nothing on it.
A file that cannot be decoded becomes one row with ``ingest_error`` set and
``t2_status = "unreadable_file"`` — counted in the summary, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fink_t2.alerts import detect_format
from fink_t2.alerts.binaryfile import empty_files
from fink_t2.alerts.staging import Stager
from fink_t2.core.contract import ModelContractError, input_spec
from fink_t2.core.cuts import STATUS_UNREADABLE
from fink_t2.core.spec import SequenceSpec
from fink_t2.processor import T2_COLUMNS, t2_result_udf
from fink_t2.runtime import gpu
from fink_t2.runtime.model_ref import ModelRef
from fink_t2.stream.output import (
    CHECKPOINT_DIR,
    SPARK_LOG,
    STAGING_DIR,
    SUMMARY_FILE,
    UNREADABLE_DIR,
    claim_output,
    count_output,
    keep_aside,
    read_summary,
    summarize,
    write_summary,
)
from fink_t2.stream.progress import BATCH_METRICS, BatchLog, StagingBar
from fink_t2.stream.rubin_stage import classified_rubin_alerts
from fink_t2.stream.spark import check_java, java_needed, replay_session
from fink_t2.stream.stages import classified_alerts
from fink_t2.stream.survey import RUBIN, check_output_survey, input_survey

_LOG = logging.getLogger(__name__)

#: the light-curve inputs of the UDF, blanked for an alert the raw filter rejected (no sequence, no model run)
LIGHT_CURVE_COLUMNS = ("cjd", "cfid", "cmagpsf", "cisdiffpos")
#: chunks of a staged tarball per micro-batch (~4,000 alerts; --max-files-per-trigger sets another number)
CHUNKS_PER_BATCH = 8
#: chunks on disk at most, in micro-batches: the staging waits beyond (3 batches: ~24 chunks, ~770 MiB)
PENDING_BATCHES = 3
#: trigger of the query while a tarball is being staged: the next batch starts as soon as the last one ends
#: (with no new chunk, Spark looks again after spark.sql.streaming.pollingDelay, see fink_t2.stream.spark)
STAGING_TRIGGER = "0 seconds"


def with_t2(df: DataFrame, model: ModelRef | None = None) -> DataFrame:
    """Add ``t2`` (map), ``t2_status`` and ``t2_class`` to a Fink-layout DataFrame, with the pandas UDF of
    :mod:`fink_t2.processor` (a DataFrame from elsewhere; the replay runs :mod:`fink_t2.stream.stages` instead).

    ``model``: run this model (its reference travels with the UDF) instead of $FINK_T2_MODEL or the shipped one.
    A ``raw_filter`` column (:mod:`fink_t2.alerts.science_stage`) is folded into ``t2_status`` and dropped: its
    status comes first, and the UDF gets no light curve for those alerts (every value -1, as any rejected alert).
    """
    inputs = [F.col(name) for name in T2_COLUMNS]
    status = F.col("_t2.t2_status")
    if "raw_filter" in df.columns:
        rejected = F.col("raw_filter").isNotNull()
        inputs = [F.when(rejected, F.lit(None)).otherwise(F.col(name)) if name in LIGHT_CURVE_COLUMNS else F.col(name)
                  for name in T2_COLUMNS]
        status = F.coalesce(F.col("raw_filter"), status)
    if "ingest_error" in df.columns:  # rows standing for an undecodable file (see binaryfile.decode_file)
        status = F.when(F.col("ingest_error").isNotNull(), F.lit(STATUS_UNREADABLE)).otherwise(status)
    result = (
        df.withColumn("_t2", t2_result_udf(model)(*inputs))
        .withColumn("t2", F.col("_t2.t2"))
        .withColumn("t2_status", status)
        .withColumn("t2_class", F.col("_t2.t2_class"))
        .drop("_t2")
    )
    return result.drop("raw_filter") if "raw_filter" in df.columns else result


class NoAlertError(RuntimeError):
    """A first replay into an output found no alert in its input (``fink-t2 replay`` exits 1 with this line).

    ``summary``: the run's summary (None when nothing was written: an empty input folder).
    """

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


def is_empty_folder(path: str) -> bool:
    """Whether ``path`` is a folder holding no file nor folder (hidden ones aside)."""
    return os.path.isdir(path) and not any(not name.startswith(".") for name in os.listdir(path))


def input_format(path: str) -> str:
    """``detect_format``, except that an empty folder is a night with zero alerts (read as an Avro folder)."""
    if is_empty_folder(path):
        return "avro_dir"
    return detect_format(path)


def check_first_run_has_alerts(path: str, output: str, summary: dict | None) -> None:
    """Raise :class:`NoAlertError` when the first run into ``output`` found no alert in ``path``: an empty folder
    (``summary`` None: checked before anything is written), or only unreadable inputs (kept aside by then)."""
    if summary is None:
        raise NoAlertError(f"{path} holds no alert: the folder is empty")
    if summary["classified"] + sum(summary["rejected_by_cuts"].values()) == 0:
        kept = f"; kept in {os.path.join(output, UNREADABLE_DIR)}" if summary["unreadable"] else ""
        raise NoAlertError(f"{path} holds no alert: {summary['unreadable_files']} unreadable input file(s){kept} "
                           f"(see {os.path.join(output, SUMMARY_FILE)})", summary)


def check_model(model: str | None = None, survey: str = "ztf") -> ModelRef:
    """The model a replay runs (``model``, else $FINK_T2_MODEL or the shipped one; for Rubin alerts
    :func:`fink_t2.rubin_processor.rubin_model`: $FINK_T2_RUBIN_MODEL or the shipped t2_lsst), loaded once on the
    driver so that a missing file, a file without a t2 contract or a contract that does not match (a ZTF model
    for Rubin alerts) fails before Spark starts (ValueError / ModelContractError, FileNotFoundError)."""
    from fink_t2.rubin_processor import rubin_model
    from fink_t2.runtime.inference import T2Model

    ref = rubin_model(model) if survey == RUBIN else ModelRef.resolve(model)
    spec = input_spec(ref.contract)
    if survey != RUBIN and isinstance(spec, SequenceSpec):  # the ZTF stage builds the g/r model's sequences only
        raise ModelContractError(f"{ref.path} is a band-generic model (contract format {ref.contract.get('format')}, "
                                 f"bands {''.join(spec.bands)}): ZTF alerts need a ZTF g/r model such as the shipped "
                                 "fink_t2/data/t2.tflite")
    T2Model(ref.path, contract=ref.contract)  # input shape and outputs against the contract (no inference)
    return ref


def replay_stream(reader, source: str, fmt: str, ref: ModelRef, survey: str = "ztf") -> DataFrame:
    """The replay's stream: the alerts at ``source`` decoded, raw-filtered and classified in one task
    (:func:`fink_t2.stream.stages.classified_alerts`; Rubin alerts: decoded and classified,
    :func:`fink_t2.stream.rubin_stage.classified_rubin_alerts`), with the per-batch counts the log prints."""
    stage = classified_rubin_alerts if survey == RUBIN else classified_alerts
    return _observed(stage(reader, source, fmt, ref))


def _observed(df: DataFrame) -> DataFrame:
    """``df`` with the per-batch counts :class:`fink_t2.stream.progress.BatchLog` prints (Spark's observed metrics)."""
    unreadable = F.sum(F.when(F.col("t2_status") == STATUS_UNREADABLE, 1).otherwise(0))
    return df.observe(BATCH_METRICS, F.count(F.lit(1)).alias("rows"), unreadable.alias("unreadable"))


def replay(
    path: str, output: str, master: str | None = None, max_files_per_trigger: int | None = None, model: str | None = None,
    device: str = "auto",
    progress: bool = True,
    verbose: bool = False,
) -> dict:
    """Replay a night through t2 with Structured Streaming into parquet at ``output``.

    Returns the summary printed by ``fink-t2 replay``. Before Spark starts and before anything is
    written, the input, the model (``model``, else $FINK_T2_MODEL, else the shipped one) and the
    output folder (see :func:`fink_t2.stream.output.claim_output`) are checked; a problem raises ValueError
    or FileNotFoundError. ``device`` (auto, cpu, gpu) is the workers' choice of backend (:mod:`fink_t2.runtime.gpu`);
    ``gpu`` on a local master is checked here first (ValueError: no usable GPU). Java is checked then
    (:class:`fink_t2.stream.spark.JavaNotFoundError`), still before anything is written. ``progress``: print the
    staging bar and one line per micro-batch on stderr. ``verbose``: the JVM this call starts prints on the
    terminal; else into ``OUTPUT/_fink_t2_spark.log``. The first run into ``output`` raises
    :class:`NoAlertError` when the input holds no alert (an empty folder: before anything is written; only
    unreadable files: once they are kept aside and the summary written).
    """
    fmt = input_format(path)
    survey = input_survey(path, fmt)  # from the data; a folder mixing ZTF and Rubin files is refused here
    ref = check_model(model, survey)
    device = gpu.check_device(device)
    if device == "gpu" and (master or os.environ.get("SPARK_MASTER") or "local").startswith("local"):
        gpu.choose_model(ref, "gpu")  # the workers run on this machine: fail before Spark starts
    output = os.path.abspath(output)
    first_run = read_summary(output) is None
    if java_needed():
        check_java()
    if first_run and is_empty_folder(path):
        check_first_run_has_alerts(path, output, None)
    claim_output(output, path, ref.path)
    check_output_survey(output, survey)  # a rerun: its rows' survey (nothing written on a first run)
    start, started_at = time.perf_counter(), time.time()
    stager = Stager(path, os.path.join(output, STAGING_DIR)) if fmt == "tarball" else None
    source, fmt = (str(stager.folder), "staged") if stager else (path, fmt)
    unlisted = [] if stager else empty_files(path, fmt)
    spark = replay_session(master, log_file=None if verbose else os.path.join(output, SPARK_LOG))
    reader = spark.readStream
    if stager is not None:  # a chunk is deleted once its batch is committed: staging disk stays bounded
        reader = reader.option("cleanSource", "delete")
        max_files_per_trigger = max_files_per_trigger or CHUNKS_PER_BATCH
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    before = count_output(spark, output)
    backend_dir = os.path.join(output, gpu.BACKEND_RECORDS)
    # the workers' environment (pyspark sends it with each Python UDF): device policy, where to record the backend
    spark.sparkContext.environment.update({gpu.DEVICE_ENV: device, gpu.BACKEND_DIR_ENV: backend_dir})
    staging_line = None if stager is None else (lambda: _staging_text(stager))
    log = BatchLog(start, staging_line, lines=None if progress else [])
    spark.streams.addListener(log)
    writer = (
        replay_stream(reader, source, fmt, ref, survey)
        .writeStream.format("parquet")
        .option("path", output)
        .option("checkpointLocation", os.path.join(output, CHECKPOINT_DIR))
    )
    staging_now = stager is not None and not stager.done
    query = (writer.trigger(processingTime=STAGING_TRIGGER) if staging_now else writer.trigger(availableNow=True)).start()
    log.query_id = str(query.id)
    try:
        if staging_now:
            _stage_while_streaming(stager, query, progress, PENDING_BATCHES * max_files_per_trigger)
            query.processAllAvailable()  # every chunk written is processed and committed
            query.stop()
        query.awaitTermination()
    finally:
        if query.isActive:
            query.stop()
        log.wait_terminated()  # no event left for the listener once it is removed (else a Java ERROR at exit)
        spark.streams.removeListener(log)
    wall = time.perf_counter() - start
    summary = summarize(spark, output, before, wall, previous=read_summary(output))
    if stager is not None:
        summary["staging"] = stager.summary()
    unreadable = keep_aside(spark, output, unlisted)
    summary.update(survey=survey, unreadable_files=len(unreadable), unreadable=unreadable, device=device,
                   **gpu.worker_backends(backend_dir, since=started_at))
    write_summary(output, summary)  # read by fink-t2 report
    if stager is not None:  # every chunk is processed and committed: what the stream left of them goes
        stager.remove_chunks()
    if first_run:
        check_first_run_has_alerts(path, output, summary)
    return summary


def _staging_text(stager: Stager) -> str:
    state = stager.state
    if state.done:
        return f"staging done ({state.members:,} members)"
    share = state.bytes_read / state.source_bytes if state.source_bytes else 1.0
    return f"staging {share:.0%} ({state.members:,} members in {len(state.chunks)} chunks)"


def _stage_while_streaming(stager: Stager, query, progress: bool, max_pending: int) -> None:
    """Cut the tarball into chunks while ``query`` decodes them (at most ``max_pending`` chunks ahead on disk);
    stop the staging if the query dies."""
    bar = StagingBar(stager.state.source_bytes, stager.state.members) if progress else None
    try:
        stager.run(on_progress=None if bar is None else bar.update, should_stop=lambda: not query.isActive,
                   max_pending=max_pending)
    except Exception:
        error = query.exception() if not query.isActive else None
        if error is not None:  # the stream failed first: its error says why
            raise RuntimeError(f"the stream stopped while staging: {error}") from None
        raise
    finally:
        if bar is not None:
            bar.close()
