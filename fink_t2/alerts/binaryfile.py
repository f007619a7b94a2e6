"""Alerts as a Spark DataFrame, from Spark's ``binaryFile`` source (no spark-avro jar needed).

Each Avro or parquet file arrives as bytes and is decoded by fastavro/pyarrow in
``mapInArrow`` into Fink's layout (``objectId``, ``candid``, a ``candidate``
struct, the ``c*`` history arrays, ``roid``, ``cdsxmatch``), plus ``source_file``
and ``ingest_error``. The format of each file is told by
:func:`fink_t2.alerts.sources.file_format`, the rule :func:`~fink_t2.alerts.detect_format` uses.

Bad input never kills the stream nor loses an alert silently: a file that cannot be
decoded becomes one row with ``ingest_error`` set; an Avro container file with damaged
blocks keeps the alerts of its good blocks and adds one such row for the damage.

>>> from fink_t2.samples import SAMPLE_NIGHT
>>> from fink_t2.spark import get_spark
>>> load_alerts(get_spark(), SAMPLE_NIGHT).count()
124
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import DataStreamReader

from fink_t2.alerts.avro import decode_avro_bytes
from fink_t2.alerts.parquet import read_fink_parquet
from fink_t2.alerts.sources import FOLDER_GLOBS, detect_format, file_format
from fink_t2.alerts.table import ALERT_SCHEMA, SCALAR_FIELDS, records_to_table

_LOG = logging.getLogger(__name__)

#: alerts per Arrow batch produced by the decoder
ALERTS_PER_BATCH = 5000
#: columns of ALERT_SCHEMA that form the ``candidate`` struct of Fink's layout
CANDIDATE_FIELDS = tuple(name for name, _ in SCALAR_FIELDS)
#: the alert table plus where each row comes from and, for a row standing for an unreadable file, why
DECODED_SCHEMA = ALERT_SCHEMA.append(pa.field("source_file", pa.string())).append(pa.field("ingest_error", pa.string()))
#: schema of Spark's binaryFile source (a streaming source needs it declared)
BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"
#: longest ``ingest_error`` kept
MAX_ERROR_CHARS = 500


def error_rows(sources: list[str], errors: list[str]) -> pa.Table:
    """One DECODED_SCHEMA row per unreadable input: alert columns null, ``source_file`` and ``ingest_error`` set."""
    columns = {f.name: pa.nulls(len(sources), f.type) for f in ALERT_SCHEMA}
    columns["source_file"] = pa.array(sources, pa.string())
    columns["ingest_error"] = pa.array([error[:MAX_ERROR_CHARS] for error in errors], pa.string())
    return pa.table(columns, schema=DECODED_SCHEMA)


def decode_file(path: str, content: bytes) -> pa.Table:
    """Alerts of one input file (bytes as given by the binaryFile source) as a DECODED_SCHEMA table."""
    try:
        kind = file_format(path, bytes(content[:4]))
        damage = []
        if kind == "avro_file":
            table = records_to_table(decode_avro_bytes(content, on_damage=damage.append))
        elif kind == "parquet":
            if "cjd" in pq.read_schema(pa.BufferReader(content)).names:  # a staged chunk, already flat
                table = pq.read_table(pa.BufferReader(content))
                if "ingest_error" in table.column_names:  # damage met while staging a tarball, one row each
                    return table.select(DECODED_SCHEMA.names).cast(DECODED_SCHEMA)
                table = table.select(ALERT_SCHEMA.names).cast(ALERT_SCHEMA)
            else:
                table = records_to_table(read_fink_parquet(io.BytesIO(content)))
        else:
            raise ValueError(f"not an alert file (format {kind!r}: expected Avro or parquet)")
    except Exception as err:  # noqa: BLE001 - a bad file must not kill the stream
        _LOG.error("fink-t2: cannot decode %s: %s", path, err)
        return error_rows([path], [f"{type(err).__name__}: {err}"])
    n = table.num_rows
    table = table.append_column("source_file", pa.array([path] * n, pa.string()))
    table = table.append_column("ingest_error", pa.nulls(n, pa.string()))
    if damage:  # the good blocks' alerts are kept; one row stands for the damaged ones
        message = (f"{len(damage)} damaged Avro block stretch(es), the alerts of the other blocks ({n}) are kept: "
                   + "; ".join(map(str, damage)))
        _LOG.error("fink-t2: %s: %s", path, message)
        table = pa.concat_tables([table, error_rows([path], [message])])
    return table


def decode_batches(batches):
    """The ``mapInArrow`` function: binaryFile batches (path, content, ...) → DECODED_SCHEMA batches."""
    for batch in batches:
        paths = batch.column("path").to_pylist()
        contents = batch.column("content")
        for i, path in enumerate(paths):
            table = decode_file(path, contents[i].as_py())
            yield from table.to_batches(max_chunksize=ALERTS_PER_BATCH)


def to_fink_layout(decoded: DataFrame) -> DataFrame:
    """Nest the candidate fields back into a ``candidate`` struct, as in Fink DataFrames."""
    candidate = F.struct(*[F.col(name) for name in CANDIDATE_FIELDS]).alias("candidate")
    others = [F.col(name) for name in decoded.columns if name not in CANDIDATE_FIELDS]
    return decoded.select(*others[:2], candidate, *others[2:])


def decoded_alerts(reader: DataFrameReader | DataStreamReader, path: str, fmt: str) -> DataFrame:
    """binaryFile source (``spark.read`` or ``spark.readStream``) over ``path`` decoded into Fink layout.

    ``path``: one file, or a folder whose files of format ``fmt`` ("avro_dir" or "parquet") are read,
    at any depth.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        reader = reader.option("pathGlobFilter", FOLDER_GLOBS[fmt]).option("recursiveFileLookup", "true")
    else:
        reader = reader.option("pathGlobFilter", os.path.basename(path))
        path = os.path.dirname(path)
    raw = reader.format("binaryFile").schema(BINARY_FILE_SCHEMA).load(path)
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
