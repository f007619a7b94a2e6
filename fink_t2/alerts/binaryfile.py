"""The decoder: Spark's ``binaryFile`` source (no spark-avro jar needed) → alerts in Fink's layout.

Each Avro or parquet file, or chunk of a staged nightly archive (:mod:`fink_t2.alerts.staging`),
arrives as bytes and is decoded by fastavro/pyarrow (:func:`decode_file`, in the stream's tasks)
into rows of :data:`fink_t2.alerts.layout.DECODED_SCHEMA`: Fink's layout (``objectId``, ``candid``, a
``candidate`` struct, the ``c*`` history arrays, ``roid``, ``cdsxmatch``; null for a raw alert) plus
``source_file`` and ``ingest_error``, and nothing else. The format of each file is told by
:func:`fink_t2.alerts.sources.file_format`, the rule :func:`~fink_t2.alerts.detect_format` uses.
What comes after is a stage of its own: the raw filter (:mod:`fink_t2.alerts.science_stage`; with it,
:func:`decoded_alerts` and :func:`load_alerts`), then t2 (:mod:`fink_t2.stream.stages`, the replay).

Bad input never kills the stream nor loses an alert silently: a file that cannot be
decoded becomes one row with ``ingest_error`` set; an Avro container file with damaged
blocks keeps the alerts of its good blocks and adds one such row for the damage. A member of
a staged chunk that cannot be decoded is kept aside by the task, in the chunk's folder under
``_unreadable/``, and its row names that copy.

>>> from fink_t2.paths import SAMPLE_NIGHT
>>> from fink_t2.stream.spark import get_spark
>>> load_alerts(get_spark(), SAMPLE_NIGHT).count()
124
"""

from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import DataStreamReader

from fink_t2.alerts.avro import decode_avro_bytes
from fink_t2.alerts.layout import (
    DECODED_SCHEMA,
    FLAT_SEPARATOR,
    MEMBER_CHUNK_SCHEMA,
    MEMBER_SEPARATOR,
    error_rows,
    flat_schema,
    flatten_structs,
    nest,
)
from fink_t2.alerts.parquet import read_fink_parquet
from fink_t2.alerts.science_stage import SCIENCE_SCHEMA, raw_filter
from fink_t2.alerts.sources import FOLDER_GLOBS, detect_format, file_format, local_path
from fink_t2.alerts.table import records_to_table, table_reader_schema

_LOG = logging.getLogger(__name__)

__all__ = ["ALERTS_PER_BATCH", "BINARY_FILE_SCHEMA", "DECODED_SCHEMA", "UNREADABLE_MEMBERS", "binary_source",
           "decode_file", "decode_inputs", "decoded_alerts", "empty_files", "keep_member", "map_tables",
           "load_alerts"]

#: alerts per Arrow batch yielded to Spark
ALERTS_PER_BATCH = 5000
#: schema of Spark's binaryFile source (a streaming source needs it declared)
BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
#: folder, beside a staged chunk, where a task keeps the members it cannot decode
UNREADABLE_MEMBERS = "_unreadable"


def _alerts(records: list[dict], sources: list[str]) -> pa.Table:
    """DECODED_SCHEMA rows of decoded alerts (a raw alert's ``cdsxmatch`` null: no cross-match was run)."""
    table = records_to_table(records, raw_cdsxmatch=None)
    return nest(table.append_column("source_file", pa.array(sources, pa.string())))


def _damage_row(path: str, n_kept: int, damage: list) -> pa.Table:
    message = (f"{len(damage)} damaged Avro block stretch(es), the alerts of the other blocks ({n_kept}) are kept: "
               + "; ".join(map(str, damage)))
    _LOG.error("fink-t2: %s: %s", path, message)
    return error_rows([path], [message])


def keep_member(chunk: str, member: str, data: bytes) -> str:
    """Copy an undecodable member of a staged chunk into ``_unreadable/`` beside the chunk; return where it is
    (``CHUNK!/MEMBER`` when it cannot be written there)."""
    local = local_path(chunk)
    try:
        if local is None:
            raise OSError("not a local file")
        folder = Path(local).parent / UNREADABLE_MEMBERS
        folder.mkdir(exist_ok=True)
        kept = folder / posixpath.basename(member)
        if kept.exists() and kept.read_bytes() != data:  # another member of the same name
            kept = folder / f"{Path(local).stem}-{kept.name}"
        tmp = kept.with_name(f".{kept.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, kept)
        return str(kept)
    except OSError as err:
        _LOG.error("fink-t2: cannot keep member %s of %s aside: %s", member, chunk, err)
        return f"{chunk}{MEMBER_SEPARATOR}{member}"


def _member_chunk(path: str, content) -> pa.Table:
    """Alerts of every Avro member of a staged chunk (:data:`MEMBER_CHUNK_SCHEMA`); bad members kept aside."""
    chunk = pq.read_table(pa.BufferReader(content))
    records, sources, errors = [], [], []
    for member, data in zip(chunk.column("member").to_pylist(), chunk.column("avro").to_pylist()):
        damage = []
        try:
            alerts = decode_avro_bytes(data, on_damage=damage.append, project=table_reader_schema)
        except Exception as err:
            where = keep_member(path, member, data)
            errors.append(error_rows([where], [f"{type(err).__name__}: {err} (member {member} of {path})"]))
            _LOG.error("fink-t2: cannot decode member %s of %s: %s", member, path, err)
            continue
        records.extend(alerts)
        sources.extend([f"{path}{MEMBER_SEPARATOR}{member}"] * len(alerts))
        if damage:
            errors.append(_damage_row(keep_member(path, member, data), len(alerts), damage))
    return pa.concat_tables([_alerts(records, sources)] + errors)


def decode_file(path: str, content) -> pa.Table:
    """Alerts of one input file (bytes or an Arrow buffer, as given by the binaryFile source), DECODED_SCHEMA."""
    try:
        kind = file_format(path, bytes(content[:4]))
        damage = []
        if kind == "avro_file":
            records = decode_avro_bytes(content, on_damage=damage.append, project=table_reader_schema)
        elif kind == "parquet":
            names = pq.read_schema(pa.BufferReader(content)).names
            if names == MEMBER_CHUNK_SCHEMA.names:  # a chunk of a staged nightly archive
                return _member_chunk(path, content)
            if "cjd" in names:  # a staged chunk of decoded rows: damage to the archive, or an older fink-t2's staging
                table = pq.read_table(pa.BufferReader(content))
                if "source_file" not in table.column_names:
                    table = table.append_column("source_file", pa.array([path] * table.num_rows, pa.string()))
                return nest(table)
            records = list(read_fink_parquet(pa.BufferReader(content)))
        else:
            raise ValueError(f"not an alert file (format {kind!r}: expected Avro or parquet)")
        table = _alerts(records, [path] * len(records))
    except Exception as err:
        _LOG.error("fink-t2: cannot decode %s: %s", path, err)
        return error_rows([path], [f"{type(err).__name__}: {err}"])
    if damage:  # the good blocks' alerts are kept; one row stands for the damaged ones
        table = pa.concat_tables([table, _damage_row(path, table.num_rows, damage)])
    return table


def _read_local(path: str) -> bytes | pa.Table:
    """The bytes of a staged chunk read by the task itself, or one row saying why it cannot be read."""
    try:
        return Path(local_path(path) or path).read_bytes()
    except OSError as err:
        _LOG.error("fink-t2: cannot read %s: %s", path, err)
        return error_rows([path], [f"{type(err).__name__}: {err}"])


def decode_inputs(batch: pa.RecordBatch) -> Iterator[pa.Table]:
    """The decoder over one batch of the binaryFile source (path, content, ...): one DECODED_SCHEMA table per file.

    Without a ``content`` column (a staged archive's chunks: local files the driver wrote), the task
    reads each file itself: their bytes never travel through the JVM.
    """
    paths = batch.column("path").to_pylist()
    contents = batch.column("content") if "content" in batch.schema.names else None
    for i, path in enumerate(paths):
        content = _read_local(path) if contents is None else contents[i].as_buffer()  # no copy of the bytes
        yield content if isinstance(content, pa.Table) else decode_file(path, content)


def _decode_and_filter(batches):
    """The tables of :func:`decoded_alerts`: decoder, then raw filter, in one task."""
    for batch in batches:
        for table in decode_inputs(batch):
            yield raw_filter(table)


def map_tables(df: DataFrame, tables, schema: pa.Schema) -> DataFrame:
    """``df.mapInArrow`` with ``tables`` (a function of the task's batches yielding Arrow tables of ``schema``).

    The task returns struct columns flattened (:func:`fink_t2.alerts.layout.flatten_structs`; Spark 3.4, Fink's
    production stack, takes no struct column from Arrow) and Spark nests them again, a projection in the JVM.
    """
    def task(batches):
        for table in tables(batches):
            yield from flatten_structs(table).to_batches(max_chunksize=ALERTS_PER_BATCH)

    flat = df.mapInArrow(task, from_arrow_schema(flat_schema(schema)))
    columns = []
    for field in schema:
        if pa.types.is_struct(field.type):
            prefix = field.name + FLAT_SEPARATOR
            struct = F.struct(*[F.col(f"`{prefix}{child.name}`").alias(child.name) for child in field.type])
            columns.append(F.when(F.col(f"`{prefix}`"), struct).alias(field.name))
        else:
            columns.append(F.col(f"`{field.name}`"))
    return flat.select(*columns)


def binary_source(reader: DataFrameReader | DataStreamReader, path: str, fmt: str) -> DataFrame:
    """binaryFile source (``spark.read`` or ``spark.readStream``) over ``path``, what :func:`decode_inputs` reads.

    ``path``: one file, or a folder whose files of format ``fmt`` ("avro_dir", "parquet", or "staged": the
    chunks of a nightly archive, read by the tasks from the local or shared file system) are read, at any depth.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        reader = reader.option("pathGlobFilter", FOLDER_GLOBS[fmt]).option("recursiveFileLookup", "true")
    else:
        reader = reader.option("pathGlobFilter", os.path.basename(path))
        path = os.path.dirname(path)
    raw = reader.format("binaryFile").schema(BINARY_FILE_SCHEMA).load(path)
    return raw.select("path") if fmt == "staged" else raw  # Spark lists the chunks but does not read them


def decoded_alerts(reader: DataFrameReader | DataStreamReader, path: str, fmt: str) -> DataFrame:
    """The alerts at ``path`` (see :func:`binary_source`) in Fink's layout, raw alerts through the raw filter
    (:data:`fink_t2.alerts.science_stage.SCIENCE_SCHEMA`: its ``raw_filter`` status column included)."""
    return map_tables(binary_source(reader, path, fmt), _decode_and_filter, SCIENCE_SCHEMA)


def load_alerts(spark: SparkSession, path: str) -> DataFrame:
    """Batch DataFrame of the alerts at ``path`` (Avro folder or file, Fink parquet): :func:`decoded_alerts`."""
    fmt = detect_format(path)
    if fmt == "tarball":
        raise ValueError("load_alerts reads Avro or parquet; stage a tarball first (fink_t2.alerts.staging)")
    return decoded_alerts(spark.read, path, fmt)


def empty_files(path: str, fmt: str) -> list[str]:
    """Input files of length 0 under ``path``, which Spark's file source never lists (so no row can stand for them)."""
    if os.path.isfile(path):
        return [os.path.abspath(path)] if os.path.getsize(path) == 0 else []
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]  # as Spark's listing
        for name in files:
            file = os.path.join(root, name)
            if fnmatch.fnmatch(name, FOLDER_GLOBS[fmt]) and not name.startswith(("_", ".")) and os.path.getsize(file) == 0:
                found.append(os.path.abspath(file))
    return sorted(found)
