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

import io
import json
import logging
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from fink_t2.alerts import ALERT_SCHEMA, decode_avro_bytes, detect_format, read_fink_parquet, read_tarball, records_to_table
from fink_t2.processor import T2_COLUMNS, maxclass, t2, t2_status

_LOG = logging.getLogger(__name__)

#: alerts per staged chunk of a tarball, and per Arrow batch produced by the decoder
ALERTS_PER_CHUNK = 5000
#: columns of ALERT_SCHEMA that form the ``candidate`` struct of Fink's layout
CANDIDATE_FIELDS = ("jd", "fid", "magpsf", "sigmapsf", "ra", "dec", "jdstarthist", "ssdistnr", "ssmagnr", "ssnamenr")
DECODED_SCHEMA = ALERT_SCHEMA.append(pa.field("source_file", pa.string())).append(pa.field("ingest_error", pa.string()))
STATUS_UNREADABLE = "unreadable_file"
#: schema of Spark's binaryFile source (a streaming source needs it declared)
BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
_GLOBS = {"avro_dir": "*.avro", "avro_file": "*.avro", "parquet": "*.parquet", "tarball": "*.parquet"}


def get_spark(master: str | None = None, app_name: str = "fink-t2", **conf) -> SparkSession:
    """A Spark session set up for the replay (local[*] unless ``master`` or $SPARK_MASTER says otherwise)."""
    builder = SparkSession.builder.appName(app_name).master(master or os.environ.get("SPARK_MASTER", "local[*]"))
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
                table = pq.read_table(pa.BufferReader(content)).select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA)
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
    """Stream a nightly tarball into flat parquet chunks (written atomically); return their folder."""
    target = Path(staging_dir) / Path(path).name.replace(".", "_")
    done = target / "_DONE"
    if done.exists():
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    chunk, index = [], 0

    def flush():
        nonlocal chunk, index
        tmp = target / f".chunk-{index:05d}.parquet.tmp"
        pq.write_table(records_to_table(chunk), tmp)
        os.replace(tmp, target / f"chunk-{index:05d}.parquet")
        chunk, index = [], index + 1

    for record in read_tarball(path):
        chunk.append(record)
        if len(chunk) >= alerts_per_chunk:
            flush()
    if chunk or index == 0:
        flush()
    done.touch()
    return str(target)


def with_t2(df: DataFrame) -> DataFrame:
    """Add ``t2`` (map), ``t2_status`` and ``t2_class`` to a Fink-layout DataFrame."""
    status = F.when(F.col("ingest_error").isNotNull(), F.lit(STATUS_UNREADABLE)).otherwise(t2_status(*T2_COLUMNS))
    return df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_status", status).withColumn("t2_class", maxclass("t2"))


def replay(path: str, output: str, master: str | None = None, max_files_per_trigger: int | None = None) -> dict:
    """Replay a night through t2 with Structured Streaming (availableNow) into parquet at ``output``.

    Returns the summary printed by ``fink-t2 replay``.
    """
    fmt = detect_format(path)
    output = os.path.abspath(output)
    start = time.perf_counter()
    if fmt == "tarball":
        path = stage_tarball(path, os.path.join(output, "_staging"))
    spark = get_spark(master)
    reader = spark.readStream
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    before = _count_output(spark, output)
    query = (
        with_t2(_decoded_alerts(reader, path, fmt))
        .writeStream.format("parquet")
        .option("path", output)
        .option("checkpointLocation", os.path.join(output, "_checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    wall = time.perf_counter() - start
    summary = summarize(spark, output, before, wall)
    Path(output, "_fink_t2_summary.json").write_text(json.dumps(summary, indent=2))  # read by fink-t2 report
    return summary


def _count_output(spark: SparkSession, output: str) -> int:
    if not os.path.isdir(os.path.join(output, "_spark_metadata")):
        return 0
    return spark.read.parquet(output).count()


def summarize(spark: SparkSession, output: str, count_before: int, wall_s: float) -> dict:
    """Counts of the whole output (exactly-once view through the sink's log) and this run's speed."""
    counts = {r["t2_status"]: r["count"] for r in spark.read.parquet(output).groupBy("t2_status").count().collect()}
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
