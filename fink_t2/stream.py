"""Structured-streaming replay of an archived night through the t2 science module.

The source is Spark's ``binaryFile`` file source (no spark-avro jar needed):
each Avro or parquet file arrives as bytes and is decoded by fastavro/pyarrow
in ``mapInArrow`` into Fink's layout (``objectId``, ``candid``, a
``candidate`` struct, the ``c*`` history arrays, ``roid``, ``cdsxmatch``).
A nightly tarball is first streamed member by member into flat parquet
chunks under ``OUTPUT/_staging`` (bounded memory; never extracted), which the
stream then reads. The sink is parquet with its checkpoint in
``OUTPUT/_checkpoint``: a rerun processes only files it has not committed,
and the sink's log keeps every alert exactly once.

A file that cannot be decoded becomes one row with ``ingest_error`` set and
``t2_status = "unreadable_file"`` — counted in the summary, never dropped silently.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from fink_t2.alerts.table import SCALAR_FIELDS
from fink_t2.alerts import ALERT_SCHEMA, decode_avro_bytes, detect_format, read_fink_parquet, read_tarball, records_to_table
from fink_t2.model_ref import ModelRef
from fink_t2.processor import T2_COLUMNS, t2_result_udf

_LOG = logging.getLogger(__name__)

#: alerts per staged chunk of a tarball, and per Arrow batch produced by the decoder
ALERTS_PER_CHUNK = 5000
#: columns of ALERT_SCHEMA that form the ``candidate`` struct of Fink's layout
CANDIDATE_FIELDS = tuple(name for name, _ in SCALAR_FIELDS)
DECODED_SCHEMA = ALERT_SCHEMA.append(pa.field("source_file", pa.string())).append(pa.field("ingest_error", pa.string()))
STATUS_UNREADABLE = "unreadable_file"
#: schema of Spark's binaryFile source (a streaming source needs it declared)
BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
_GLOBS = {"avro_dir": "*.avro", "avro_file": "*.avro", "parquet": "*.parquet", "tarball": "*.parquet"}
#: written in OUTPUT at the first run: the input (and model) the output folder belongs to
RUN_MARKER = "_fink_t2_run.json"
#: unreadable input files are copied into OUTPUT/_unreadable/ after each run, listed in its index.json
UNREADABLE_DIR = "_unreadable"
#: an unreadable file larger than this (a whole nightly tarball) is listed but left where it is
MAX_KEPT_BYTES = 64 * 2**20


def get_spark(master: str | None = None, app_name: str = "fink-t2", **conf) -> SparkSession:
    """A Spark session set up for the replay.

    Master: ``master``, else $SPARK_MASTER, else the one spark-submit was given (a driver
    started by spark-submit talks to its JVM through $PYSPARK_GATEWAY_PORT), else local[*].
    """
    builder = SparkSession.builder.appName(app_name)
    master = master or os.environ.get("SPARK_MASTER")
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master or "local[*]")
    defaults = {
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }
    for key, value in {**defaults, **conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def decode_file(path: str, content: bytes) -> pa.Table:
    """Alerts of one input file (bytes as given by the binaryFile source) as a DECODED_SCHEMA table."""
    try:
        if path.endswith(".avro"):
            table = records_to_table(decode_avro_bytes(content))
        else:
            buffer = pa.BufferReader(content)
            if "cjd" in pq.read_schema(buffer).names:  # a staged chunk, already flat
                table = pq.read_table(pa.BufferReader(content))
                if "ingest_error" in table.column_names:  # damage met while staging a tarball, one row each
                    return table.select(DECODED_SCHEMA.names).cast(DECODED_SCHEMA)
                table = table.select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA)
            else:
                table = records_to_table(read_fink_parquet(io.BytesIO(content)))
        n = table.num_rows
        return table.append_column("source_file", pa.array([path] * n, pa.string())).append_column(
            "ingest_error", pa.nulls(n, pa.string())
        )
    except Exception as err:  # noqa: BLE001 - a bad file must not kill the stream
        _LOG.error("fink-t2: cannot decode %s: %s", path, err)
        columns = {f.name: pa.nulls(1, f.type) for f in ALERT_SCHEMA}
        columns["source_file"] = pa.array([path])
        columns["ingest_error"] = pa.array([f"{type(err).__name__}: {err}"[:500]])
        return pa.table(columns, schema=DECODED_SCHEMA)


def _decode_batches(batches):
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for i, path in enumerate(paths):
            table = decode_file(path, contents[i].as_py())
            yield from table.to_batches(max_chunksize=ALERTS_PER_CHUNK)


def to_fink_layout(decoded: DataFrame) -> DataFrame:
    """Nest the candidate fields back into a ``candidate`` struct, as in Fink DataFrames."""
    candidate = F.struct(*[F.col(name) for name in CANDIDATE_FIELDS]).alias("candidate")
    others = [F.col(name) for name in decoded.columns if name not in CANDIDATE_FIELDS]
    return decoded.select(*others[:2], candidate, *others[2:])


def _decoded_alerts(reader, path: str, fmt: str) -> DataFrame:
    """binaryFile source over ``path`` (a folder, or one file) decoded into Fink layout."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        reader = reader.option("pathGlobFilter", _GLOBS[fmt]).option("recursiveFileLookup", "true")
    else:
        reader = reader.option("pathGlobFilter", os.path.basename(path))
        path = os.path.dirname(path)
    raw = reader.format("binaryFile").schema(BINARY_FILE_SCHEMA).load(path)
    return to_fink_layout(raw.mapInArrow(_decode_batches, from_arrow_schema(DECODED_SCHEMA)))


def load_alerts(spark: SparkSession, path: str) -> DataFrame:
    """Batch DataFrame of the alerts at ``path`` (Avro dir/file or Fink parquet), Fink layout.

    >>> from fink_t2.samples import SAMPLE_NIGHT
    >>> load_alerts(get_spark(), SAMPLE_NIGHT).count()
    124
    """
    fmt = detect_format(path)
    if fmt == "tarball":
        raise ValueError("load_alerts reads Avro or parquet; stage a tarball first with stage_tarball()")
    return _decoded_alerts(spark.read, path, fmt)


def stage_tarball(path: str, staging_dir: str, alerts_per_chunk: int = ALERTS_PER_CHUNK) -> str:
    """Stream a nightly tarball into flat parquet chunks (written atomically); return their folder.

    A damaged tarball never stops the replay: a member that cannot be decoded is
    saved under ``_unreadable/`` of the folder, and a truncated or corrupt archive
    keeps the alerts read before the damage; each problem becomes one row with
    ``ingest_error`` in a last chunk, so the stream reports it as an unreadable file.
    The staging is then final (``_DONE``): replay a repaired tarball into a new output.
    """
    target = Path(staging_dir) / Path(path).name.replace(".", "_")
    done = target / "_DONE"
    if done.exists():
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    chunk, index, errors, n_alerts = [], 0, [], 0

    def write(table):
        nonlocal index
        tmp = target / f".chunk-{index:05d}.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target / f"chunk-{index:05d}.parquet")
        index += 1

    def flush():
        nonlocal chunk
        write(records_to_table(chunk))
        chunk = []

    def on_error(member, data, err):
        where = os.path.abspath(path)
        if member is None:
            message = f"{type(err).__name__}: {err} (archive damaged after {n_alerts} alerts; those are kept)"
        else:
            kept = target / "_unreadable" / Path(member).name
            kept.parent.mkdir(exist_ok=True)
            kept.write_bytes(data)
            where, message = str(kept), f"{type(err).__name__}: {err} (member {member} of {path})"
        _LOG.error("fink-t2: %s: %s", where, message)
        errors.append((where, message[:500]))

    for record in read_tarball(path, on_error=on_error):
        chunk.append(record)
        n_alerts += 1
        if len(chunk) >= alerts_per_chunk:
            flush()
    if chunk or index == 0:
        flush()
    if errors:
        columns = {f.name: pa.nulls(len(errors), f.type) for f in ALERT_SCHEMA}
        columns["source_file"] = pa.array([where for where, _ in errors], pa.string())
        columns["ingest_error"] = pa.array([message for _, message in errors], pa.string())
        write(pa.table(columns, schema=DECODED_SCHEMA))
    done.touch()
    return str(target)


def with_t2(df: DataFrame, model: ModelRef | None = None) -> DataFrame:
    """Add ``t2`` (map), ``t2_status`` and ``t2_class`` to a Fink-layout DataFrame.

    ``model``: run this model (it travels with the UDF) instead of $FINK_T2_MODEL or the shipped one.
    """
    result = t2_result_udf(model)(*T2_COLUMNS)
    status = F.col("_t2.t2_status")
    if "ingest_error" in df.columns:  # rows standing for an undecodable file (see decode_file)
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
    T2Model(ref.path)  # checks the input shape and the number of outputs against the contract (no inference)
    return ref


def _sha256(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def claim_output(output: str, source: str, model: str) -> None:
    """Make ``output`` the output folder of ``source``, or refuse (ValueError) without writing anything.

    The first run writes ``OUTPUT/_fink_t2_run.json`` with the absolute input path; a later run into the
    same folder must name the same input (results of two nights never mix). A folder that is not empty
    and holds no marker is refused too. A different model only warns (its scores would sit beside the others).
    """
    marker = Path(output, RUN_MARKER)
    source = os.path.abspath(source)
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"output {output} is a file, not a folder")
    if marker.is_file():
        try:
            run = json.loads(marker.read_text())
            recorded = run["input"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"output {output}: unreadable {RUN_MARKER} ({err!r}); use another output folder") from None
        if os.path.realpath(recorded) != os.path.realpath(source):
            raise ValueError(f"output {output} holds the results of {recorded}, not {source}: use another output folder")
        if run.get("model_sha256") not in (None, _sha256(model)):
            _LOG.warning("fink-t2: %s was scored with model %s; new alerts are scored with %s", output, run.get("model"), model)
        return
    if os.path.isdir(output) and os.listdir(output):
        raise ValueError(f"output {output} is not empty and has no {RUN_MARKER}: not a fink-t2 replay output, use another folder")
    os.makedirs(output, exist_ok=True)
    run = {
        "input": source,
        "model": model,
        "model_sha256": _sha256(model),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = Path(output, "." + RUN_MARKER + ".tmp")
    tmp.write_text(json.dumps(run, indent=2))
    os.replace(tmp, marker)


def _empty_files(path: str, fmt: str) -> list[str]:
    """Input files of length 0, which Spark's file source never lists (so no row can stand for them)."""
    if fmt == "tarball":
        return []  # staging reads the tarball itself and reports an empty one
    if os.path.isfile(path):
        return [os.path.abspath(path)] if os.path.getsize(path) == 0 else []
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]  # as Spark's listing
        for name in files:
            file = os.path.join(root, name)
            if fnmatch.fnmatch(name, _GLOBS[fmt]) and not name.startswith(("_", ".")) and os.path.getsize(file) == 0:
                found.append(os.path.abspath(file))
    return sorted(found)


def _local_path(source: str) -> str | None:
    """Local path of a ``source_file`` (plain path or ``file:`` URI), None for another file system."""
    if source.startswith("file:"):
        path = "/" + source[len("file:"):].lstrip("/")
        return path if os.path.exists(path) or not os.path.exists(unquote(path)) else unquote(path)
    return source if source.startswith("/") else None


def keep_aside(spark: SparkSession, output: str, empty_files=()) -> list[dict]:
    """Copy every unreadable input file of the output into ``OUTPUT/_unreadable/`` (once) and list them.

    Unreadable: rows with ``ingest_error`` (one per file that could not be decoded, or per damage met in a
    tarball) and ``empty_files``. Returns (and writes to ``_unreadable/index.json``) one entry per file:
    ``source``, ``error``, ``kept_as`` (file name in ``_unreadable/``, or None with a ``note``).
    """
    problems = {}
    written = read_output(spark, output)
    if written is not None:
        rows = written.where(F.col("ingest_error").isNotNull()).select("source_file", "ingest_error")
        problems = {r["source_file"]: r["ingest_error"] for r in rows.collect()}
    problems.update({f: "empty file: no alert (Spark's file source does not list files of length 0)" for f in empty_files})
    if not problems:
        return []
    folder = Path(output, UNREADABLE_DIR)
    index_file = folder / "index.json"
    known = {e["source"]: e for e in json.loads(index_file.read_text())} if index_file.is_file() else {}
    taken = {e["kept_as"] for e in known.values() if e.get("kept_as")}
    folder.mkdir(exist_ok=True)
    for source, error in sorted(problems.items()):
        if source in known and (known[source].get("kept_as") is None or (folder / known[source]["kept_as"]).is_file()):
            continue
        entry = {"source": source, "error": error, "kept_as": None}
        local = _local_path(source)
        if local is None or not os.path.isfile(local):
            entry["note"] = "not a readable local file: not copied"
        elif os.path.getsize(local) > MAX_KEPT_BYTES:
            entry["note"] = f"larger than {MAX_KEPT_BYTES} bytes: left in place"
        else:
            name, n = Path(local).name, 1
            while name in taken:  # same file name, another source
                name, n = f"{n}-{Path(local).name}", n + 1
            tmp = folder / f".{name}.tmp"
            shutil.copyfile(local, tmp)
            os.replace(tmp, folder / name)
            entry["kept_as"] = name
            taken.add(name)
        _LOG.error("fink-t2: unreadable input %s (%s); kept as %s", source, error, entry["kept_as"] and folder / entry["kept_as"])
        known[source] = entry
    tmp = folder / ".index.json.tmp"
    tmp.write_text(json.dumps(sorted(known.values(), key=lambda e: e["source"]), indent=2))
    os.replace(tmp, index_file)
    return [known[source] for source in sorted(problems)]


def replay(
    path: str, output: str, master: str | None = None, max_files_per_trigger: int | None = None, model: str | None = None
) -> dict:
    """Replay a night through t2 with Structured Streaming (availableNow) into parquet at ``output``.

    Returns the summary printed by ``fink-t2 replay``. Before Spark starts and before anything is
    written, the input, the model (``model``, else $FINK_T2_MODEL, else the shipped one) and the
    output folder (see :func:`claim_output`) are checked; a problem raises ValueError or FileNotFoundError.
    """
    fmt = input_format(path)
    ref = check_model(model)
    output = os.path.abspath(output)
    claim_output(output, path, ref.path)
    start = time.perf_counter()
    empty_files = _empty_files(path, fmt)
    if fmt == "tarball":
        path = stage_tarball(path, os.path.join(output, "_staging"))
    spark = get_spark(master)
    reader = spark.readStream
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    before = _count_output(spark, output)
    query = (
        with_t2(_decoded_alerts(reader, path, fmt), model=ref)
        .writeStream.format("parquet")
        .option("path", output)
        .option("checkpointLocation", os.path.join(output, "_checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    wall = time.perf_counter() - start
    summary = summarize(spark, output, before, wall)
    unreadable = keep_aside(spark, output, empty_files)
    summary.update(unreadable_files=len(unreadable), unreadable=unreadable)
    Path(output, "_fink_t2_summary.json").write_text(json.dumps(summary, indent=2))  # read by fink-t2 report
    return summary


def read_output(spark: SparkSession, output: str) -> DataFrame | None:
    """The committed output (through the sink's log), or None while no batch has written a file."""
    log = Path(output, "_spark_metadata")
    if not log.is_dir() or not any(p.name.split(".")[0].isdigit() for p in log.iterdir()):
        return None
    try:
        return spark.read.parquet(output)
    except AnalysisException as err:  # batches committed without any file (empty ones)
        if err.getCondition() != "UNABLE_TO_INFER_SCHEMA":
            raise
        return None


def _count_output(spark: SparkSession, output: str) -> int:
    written = read_output(spark, output)
    return 0 if written is None else written.count()


def summarize(spark: SparkSession, output: str, count_before: int, wall_s: float) -> dict:
    """Counts of the whole output (exactly-once view through the sink's log) and this run's speed."""
    written = read_output(spark, output)  # None: nothing committed yet (a night with zero files)
    counts = {} if written is None else {r["t2_status"]: r["count"] for r in written.groupBy("t2_status").count().collect()}
    total = sum(counts.values())
    processed_this_run = total - count_before
    return {
        "output": output,
        "alerts_in_output": total,
        "classified": counts.get("ok", 0),
        "rejected_by_cuts": {k: v for k, v in sorted(counts.items()) if k not in ("ok", STATUS_UNREADABLE)},
        "unreadable_files": counts.get(STATUS_UNREADABLE, 0),
        "alerts_processed_this_run": processed_this_run,
        "wall_time_s": round(wall_s, 2),
        "alerts_per_s": round(processed_this_run / wall_s, 1) if wall_s > 0 else None,
    }
