"""Read Rubin ``lsst.v10_0`` alerts (and ELAsTiCC ones) into the Rubin alert table, nothing lost.

Inputs: single-alert Avro files, Avro container files (Fink's Rubin output is one), Fink Rubin parquet,
ELAsTiCC parquet, or a folder of those. Which survey a file holds is told by its schema's fields
(:func:`packet_survey`: a ``diaSource`` field for Rubin, ``candidate`` for ZTF), never by its name.

The same guarantees as for ZTF alerts (:mod:`fink_t2.alerts.binaryfile`): Avro is decoded block by block
with :func:`fink_t2.alerts.avro.read_avro`, so a damaged block costs only its own alerts; a parquet file is
read row group by row group. Every alert that can be decoded becomes a row; every file, block stretch or row
group that cannot becomes one row with ``ingest_error`` set (alert columns null) and ``source_file`` naming
the file: nothing raises into a stream, nothing is dropped silently.

>>> from fink_t2.paths import shared_data_dir
>>> path = shared_data_dir() / "lsst_alerts" / "part-2-918301.avro"
>>> file_survey(path)
'rubin'
>>> table = pa.concat_tables(iter_rubin_tables(path))
>>> table.num_rows, table.column("ingest_error").null_count, table.column("is_sso").to_pylist().count(True)
(7, 7, 2)
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from fastavro.read import HEADER_SCHEMA

from fink_t2.alerts.avro import AVRO_MAGIC, read_avro
from fink_t2.alerts.parquet import PARQUET_MAGIC
from fink_t2.alerts.rubin_table import RECORD_FIELDS, RUBIN_ALERT_SCHEMA, RubinTableBuilder, rubin_reader_schema
from fink_t2.alerts.sources import file_format

#: the Rubin table, then where each row comes from and, for a row standing for what could not be read, why
RUBIN_DECODED_SCHEMA = pa.schema(list(RUBIN_ALERT_SCHEMA) + [pa.field("source_file", pa.string()),
                                                             pa.field("ingest_error", pa.string())])
#: survey of an alert schema, by the top-level field that only its packets have
SURVEY_FIELDS = (("diaSource", "rubin"), ("candidate", "ztf"))
#: files of a folder source, read in name order (names starting with ``_`` or ``.`` are skipped, as Spark does)
FILE_SUFFIXES = (".avro", ".parquet")
#: longest ``ingest_error`` kept
MAX_ERROR_CHARS = 500
_AVRO_HEADER = fastavro.parse_schema(HEADER_SCHEMA)

Source = Union[str, os.PathLike]
OnError = Callable[[str], None]


def packet_survey(field_names) -> Optional[str]:
    """``"rubin"`` (``lsst.v10_0`` or ELAsTiCC), ``"ztf"``, or None, from the top-level field names of a schema.

    >>> packet_survey(["diaSourceId", "diaSource", "prvDiaSources"]), packet_survey(["objectId", "candidate"])
    ('rubin', 'ztf')
    """
    names = set(field_names)
    return next((survey for field, survey in SURVEY_FIELDS if field in names), None)


def schema_fields(source, cache: dict | None = None) -> list[str]:
    """Top-level field names of an Avro container or parquet file (a path, or its bytes), read from its Avro
    header or parquet footer only; raises ``ValueError`` (or fastavro's / pyarrow's error) when unreadable.
    ``cache``: field names by Avro schema text, shared across calls, so that a schema many files share (a night
    of single-alert files) is parsed once."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            head = stream.read(len(AVRO_MAGIC))
            stream.seek(0)
            if head.startswith(AVRO_MAGIC):
                return _avro_fields(stream, {} if cache is None else cache)
        source_arg = str(source)
    else:
        head, source_arg = bytes(source[: len(AVRO_MAGIC)]), pa.BufferReader(source)
        if head.startswith(AVRO_MAGIC):
            return _avro_fields(io.BytesIO(source), {} if cache is None else cache)
    if head.startswith(PARQUET_MAGIC):
        return pq.read_schema(source_arg).names
    raise ValueError("neither an Avro container file nor parquet (no Obj\\x01 nor PAR1 magic)")


def _avro_fields(stream, cache: dict) -> list[str]:
    """The fields of an Avro container's schema, from its header alone (no block read)."""
    schema = fastavro.schemaless_reader(stream, _AVRO_HEADER)["meta"]["avro.schema"]
    if schema not in cache:
        cache[schema] = [field["name"] for field in json.loads(schema)["fields"]]
    return cache[schema]


def file_survey(path: Source) -> Optional[str]:
    """Survey (:func:`packet_survey`) of an alert file, or of the first alert file of a folder; None when its
    schema names neither; ``"ztf"`` for a nightly tarball (``ztf_public_YYYYMMDD.tar.gz``). Raises ``ValueError``
    when there is no such file or it is neither Avro nor parquet.

    >>> from fink_t2.paths import shared_data_dir
    >>> file_survey(shared_data_dir() / "ztf_alerts/multi_alert_avro_2019/avro_multi_alerts.avro")
    'ztf'
    >>> file_survey(shared_data_dir() / "lsst_alerts/elasticc_sample_seed0.parquet")
    'rubin'
    """
    if file_format(Path(path).name) == "tarball":  # a nightly archive: ZTF's format
        return "ztf"
    files = alert_files(path) if Path(path).exists() else []
    if not files:
        raise ValueError(f"{path}: no .avro nor .parquet alert file")
    return packet_survey(schema_fields(files[0]))


def alert_files(path: Source) -> list[Path]:
    """``path`` itself, or the ``.avro`` and ``.parquet`` files under a folder (at any depth, name order)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(file for file in path.rglob("*") if file.is_file() and file.name.endswith(FILE_SUFFIXES)
                  and not any(part.startswith(("_", ".")) for part in file.relative_to(path).parts))


def rubin_error_rows(sources: list[str], errors: list[str]) -> pa.Table:
    """One row per unreadable input: alert columns null, ``source_file`` and ``ingest_error`` set."""
    columns = {f.name: pa.nulls(len(sources), f.type) for f in RUBIN_DECODED_SCHEMA}
    columns["source_file"] = pa.array(sources, pa.string())
    columns["ingest_error"] = pa.array([error[:MAX_ERROR_CHARS] for error in errors], pa.string())
    return pa.table(columns, schema=RUBIN_DECODED_SCHEMA)


def _parquet_records(data, on_error: OnError, batch_size: int) -> Iterator[dict]:
    """Packets of a parquet file, row group by row group; a row group that cannot be read is reported."""
    with pq.ParquetFile(pa.BufferReader(data)) as parquet:
        names = set(parquet.schema_arrow.names)
        if packet_survey(names) != "rubin":
            raise ValueError(f"not Rubin alerts (survey {packet_survey(names)!r}; top-level fields "
                             f"{', '.join(sorted(names)[:8])}, ...)")
        columns = [name for name in RECORD_FIELDS + ("alertId",) if name in names]
        for group in range(parquet.num_row_groups):
            done = 0
            try:
                for batch in parquet.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns):
                    rows = batch.to_pylist()
                    done += len(rows)
                    yield from rows
            except Exception as err:
                lost = parquet.metadata.row_group(group).num_rows - done
                on_error(f"{type(err).__name__}: {err} (row group {group}: {lost} alerts lost, {done} read)")


def _avro_records(data, on_error: OnError) -> Iterator[dict]:
    """Packets of an Avro container file, block by block (damaged stretches reported and skipped)."""
    fields = schema_fields(data)
    if packet_survey(fields) != "rubin":
        raise ValueError(f"not Rubin alerts (survey {packet_survey(fields)!r})")
    yield from read_avro(bytes(data), on_damage=lambda damage: on_error(f"damaged Avro block stretch: {damage}"),
                         project=rubin_reader_schema)


def decode_rubin_bytes(name: str, data, batch_size: int = 5000) -> Iterator[pa.Table]:
    """Tables of :data:`RUBIN_DECODED_SCHEMA` for one alert file given as bytes (``name`` its path, kept in
    ``source_file``): its alerts, then one error row per damaged part, or one error row for the whole file."""
    errors: list[str] = []
    builder = RubinTableBuilder()
    head = bytes(data[:4])
    try:
        if head.startswith(AVRO_MAGIC):
            records = _avro_records(data, errors.append)
        elif head.startswith(PARQUET_MAGIC):
            records = _parquet_records(data, errors.append, batch_size)
        else:
            raise ValueError("neither an Avro container file nor parquet (no Obj\\x01 nor PAR1 magic)")
        for record in records:
            builder.add(record)
            if len(builder) >= batch_size:
                yield _with_source(builder.finish(), name)
    except Exception as err:  # the rest of the file is lost: say so, keep what was decoded before
        errors.append(f"{type(err).__name__}: {err}")
    if len(builder):
        yield _with_source(builder.finish(), name)
    if errors:
        yield rubin_error_rows([name] * len(errors), errors)


def _with_source(table: pa.Table, name: str) -> pa.Table:
    table = table.append_column("source_file", pa.array([name] * table.num_rows, pa.string()))
    return table.append_column("ingest_error", pa.nulls(table.num_rows, pa.string()))


def iter_rubin_tables(path: Source, batch_size: int = 5000) -> Iterator[pa.Table]:
    """Tables of :data:`RUBIN_DECODED_SCHEMA` (at most ``batch_size`` alerts each) for a Rubin alert file or a
    folder of them: every decoded alert, and one row per unreadable file, damaged Avro stretch or row group.

    Raises ``ValueError`` only when ``path`` does not exist or holds no alert file.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(path)
    if not path.exists():
        raise ValueError(f"alert source {path} does not exist")
    files = alert_files(path)
    if not files:
        raise ValueError(f"alert source {path}: no .avro nor .parquet alert file")
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as err:
            yield rubin_error_rows([str(file)], [f"{type(err).__name__}: {err}"])
            continue
        yield from decode_rubin_bytes(str(file), data, batch_size)


def read_rubin_table(path: Source) -> pa.Table:
    """The whole Rubin alert table of ``path`` (:func:`iter_rubin_tables` concatenated)."""
    return pa.concat_tables(iter_rubin_tables(path), promote_options="none")
