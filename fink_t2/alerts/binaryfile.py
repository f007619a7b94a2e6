"""Alerts as a Spark DataFrame, from Spark's ``binaryFile`` source (no spark-avro jar needed).

Each Avro or parquet file, or chunk of a staged nightly archive (:mod:`fink_t2.alerts.staging`),
arrives as bytes and is decoded by fastavro/pyarrow in ``mapInArrow`` (in the stream's tasks)
into Fink's layout (``objectId``, ``candid``, a ``candidate`` struct, the ``c*`` history arrays,
``roid``, ``cdsxmatch``), plus ``source_file``, ``ingest_error`` and ``raw_filter`` (the status
:mod:`fink_t2.core.raw_filter` gives a raw alert, null for a science-stage one or one that passes). The
format of each file is told by :func:`fink_t2.alerts.sources.file_format`, the rule
:func:`~fink_t2.alerts.detect_format` uses.

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

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import DataStreamReader

from fink_t2.alerts.avro import decode_avro_bytes
from fink_t2.alerts.parquet import read_fink_parquet
from fink_t2.alerts.sources import FOLDER_GLOBS, detect_format, file_format
from fink_t2.alerts.table import ALERT_SCHEMA, SCALAR_FIELDS, records_to_table, table_reader_schema
from fink_t2.core.raw_filter import raw_status
from fink_t2.stream.output import local_path

_LOG = logging.getLogger(__name__)

#: alerts per Arrow batch produced by the decoder
ALERTS_PER_BATCH = 5000
#: columns of ALERT_SCHEMA that form the ``candidate`` struct of Fink's layout
CANDIDATE_FIELDS = tuple(name for name, _ in SCALAR_FIELDS)
#: the alert table, then the raw-alert status, where each row comes from and, for a row standing for an
#: unreadable input, why
DECODED_SCHEMA = pa.schema(list(ALERT_SCHEMA) + [pa.field(name, pa.string()) for name in
                                                 ("raw_filter", "source_file", "ingest_error")])
#: schema of Spark's binaryFile source (a streaming source needs it declared)
BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
#: longest ``ingest_error`` kept
MAX_ERROR_CHARS = 500
#: a chunk of a staged nightly archive: one row per Avro member of the archive, its name and its bytes
MEMBER_CHUNK_SCHEMA = pa.schema([pa.field("member", pa.string()), pa.field("avro", pa.binary())])
#: ``source_file`` of an alert read from a member of a staged chunk: ``CHUNK!/MEMBER``
MEMBER_SEPARATOR = "!/"
#: folder, beside a staged chunk, where a task keeps the members it cannot decode
UNREADABLE_MEMBERS = "_unreadable"


def error_rows(sources: list[str], errors: list[str]) -> pa.Table:
    """One DECODED_SCHEMA row per unreadable input: alert columns null, ``source_file`` and ``ingest_error`` set."""
    columns = {f.name: pa.nulls(len(sources), f.type) for f in DECODED_SCHEMA}
    columns["source_file"] = pa.array(sources, pa.string())
    columns["ingest_error"] = pa.array([error[:MAX_ERROR_CHARS] for error in errors], pa.string())
    return pa.table(columns, schema=DECODED_SCHEMA)


def _alerts(records: list[dict], sources: list[str]) -> pa.Table:
    """DECODED_SCHEMA rows of decoded alerts: the raw filter applies to those without Fink's ``cdsxmatch``."""
    table = records_to_table(records)
    science = [record.get("cdsxmatch") is not None for record in records]
    status = raw_status({name: table.column(name) for name in table.column_names}, science)
    table = table.append_column("raw_filter", pa.array(status, pa.string()))
    table = table.append_column("source_file", pa.array(sources, pa.string()))
    return table.append_column("ingest_error", pa.nulls(len(records), pa.string()))


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


def _conform(table: pa.Table) -> pa.Table:
    """A table of DECODED_SCHEMA's columns, missing ones null (a chunk staged by an older fink-t2)."""
    for name in DECODED_SCHEMA.names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, DECODED_SCHEMA.field(name).type))
    return table.select(DECODED_SCHEMA.names).cast(DECODED_SCHEMA)


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
                return _conform(table)
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


def decode_batches(batches):
    """The ``mapInArrow`` function: binaryFile batches (path, content, ...) → DECODED_SCHEMA batches.

    Without a ``content`` column (a staged archive's chunks: local files the driver wrote), each task
    reads its files itself: their bytes never travel through the JVM.
    """
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content") if "content" in batch.schema.names else None
        for i, path in enumerate(paths):
            content = _read_local(path) if contents is None else contents[i].as_buffer()  # no copy of the bytes
            table = content if isinstance(content, pa.Table) else decode_file(path, content)
            yield from table.to_batches(max_chunksize=ALERTS_PER_BATCH)


def to_fink_layout(decoded: DataFrame) -> DataFrame:
    """Nest the candidate fields back into a ``candidate`` struct, as in Fink DataFrames."""
    candidate = F.struct(*[F.col(name) for name in CANDIDATE_FIELDS]).alias("candidate")
    others = [F.col(name) for name in decoded.columns if name not in CANDIDATE_FIELDS]
    return decoded.select(*others[:2], candidate, *others[2:])


def decoded_alerts(reader: DataFrameReader | DataStreamReader, path: str, fmt: str) -> DataFrame:
    """binaryFile source (``spark.read`` or ``spark.readStream``) over ``path`` decoded into Fink layout.

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
    if fmt == "staged":  # Spark lists the chunks but does not read them (no content column)
        raw = raw.select("path")
    return to_fink_layout(raw.mapInArrow(decode_batches, from_arrow_schema(DECODED_SCHEMA)))


def load_alerts(spark: SparkSession, path: str) -> DataFrame:
    """Batch DataFrame of the alerts at ``path`` (Avro folder or file, Fink parquet), Fink layout."""
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
