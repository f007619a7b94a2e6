"""The Arrow layouts the replay's stages exchange: a staged chunk, and decoded alerts in Fink's layout.

* :data:`MEMBER_CHUNK_SCHEMA`: a chunk of a staged nightly archive (:mod:`fink_t2.alerts.staging` writes it,
  the decoder reads it): one row per Avro member, its name and its bytes.
* :data:`DECODED_SCHEMA`: what the decoder (:mod:`fink_t2.alerts.binaryfile`) yields: Fink's layout
  (``objectId``, ``candid``, a ``candidate`` struct, ``roid``, ``cdsxmatch``, the ``c*`` history arrays) plus
  ``source_file`` and ``ingest_error``. A raw alert's ``cdsxmatch`` is null there (no cross-match run): the raw
  filter (:mod:`fink_t2.alerts.science_stage`) is the step that decides on it.

Both the staging and the decoder read this module; neither imports the other.

>>> error_rows(["file:/night/bad.avro"], ["ValueError: not Avro"]).to_pylist()[0]["ingest_error"]
'ValueError: not Avro'
>>> from fink_t2.alerts.table import records_to_table
>>> nest(records_to_table([])).schema.equals(DECODED_SCHEMA)
True
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_t2.alerts.table import ALERT_SCHEMA, SCALAR_FIELDS

#: a chunk of a staged nightly archive: one row per Avro member of the archive, its name and its bytes
MEMBER_CHUNK_SCHEMA = pa.schema([pa.field("member", pa.string()), pa.field("avro", pa.binary())])
#: ``source_file`` of an alert read from a member of a staged chunk: ``CHUNK!/MEMBER``
MEMBER_SEPARATOR = "!/"
#: longest ``ingest_error`` kept
MAX_ERROR_CHARS = 500
#: columns of the alert table that form the ``candidate`` struct of Fink's layout
CANDIDATE_FIELDS = tuple(name for name, _ in SCALAR_FIELDS)
CANDIDATE_TYPE = pa.struct([ALERT_SCHEMA.field(name) for name in CANDIDATE_FIELDS])
#: Fink's layout of an alert (what the decoder yields, less where it comes from)
FINK_SCHEMA = pa.schema([ALERT_SCHEMA.field("objectId"), ALERT_SCHEMA.field("candid"),
                         pa.field("candidate", CANDIDATE_TYPE)]
                        + [f for f in ALERT_SCHEMA if f.name not in ("objectId", "candid", *CANDIDATE_FIELDS)])
#: Fink's layout, then where each row comes from and, for a row standing for an unreadable input, why
DECODED_SCHEMA = pa.schema(list(FINK_SCHEMA) + [pa.field("source_file", pa.string()),
                                                pa.field("ingest_error", pa.string())])


def nest(table: pa.Table) -> pa.Table:
    """A table of :data:`DECODED_SCHEMA`: from the flat alert table (:data:`ALERT_SCHEMA`, candidate fields as
    columns) or a nested one; columns it lacks are null (a chunk staged by an older fink-t2), others dropped."""
    n = table.num_rows
    names = table.column_names
    if "candidate" in names:
        candidate = table.column("candidate").combine_chunks().cast(CANDIDATE_TYPE)
    else:
        fields = [table.column(name).combine_chunks().cast(CANDIDATE_TYPE.field(name).type) if name in names
                  else pa.nulls(n, CANDIDATE_TYPE.field(name).type) for name in CANDIDATE_FIELDS]
        candidate = pa.StructArray.from_arrays(fields, fields=list(CANDIDATE_TYPE))
    columns = [candidate if f.name == "candidate" else
               table.column(f.name).combine_chunks().cast(f.type) if f.name in names else pa.nulls(n, f.type)
               for f in DECODED_SCHEMA]
    return pa.Table.from_arrays(columns, schema=DECODED_SCHEMA)


def error_rows(sources: list[str], errors: list[str]) -> pa.Table:
    """One DECODED_SCHEMA row per unreadable input: alert columns null, ``source_file`` and ``ingest_error`` set."""
    columns = {"source_file": pa.array(sources, pa.string()),
               "ingest_error": pa.array([error[:MAX_ERROR_CHARS] for error in errors], pa.string())}
    return nest(pa.table(columns))


#: joins a struct column's name and its field's in the flat columns a ``mapInArrow`` task returns: Spark 3.4
#: (Fink's production stack) cannot take a struct column from Arrow ("Nested StructType not supported"), so the
#: tasks return each struct as its fields plus a validity column ``NAME__`` and Spark nests them again
#: (:func:`fink_t2.alerts.binaryfile.map_tables`)
FLAT_SEPARATOR = "__"


def flat_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with each struct column replaced by its validity (``NAME__``) and its fields (``NAME__FIELD``).

    >>> flat_schema(pa.schema([pa.field("c", pa.struct([("jd", pa.float64())])), pa.field("x", pa.int32())])).names
    ['c__', 'c__jd', 'x']
    """
    fields = []
    for field in schema:
        if pa.types.is_struct(field.type):
            fields.append(pa.field(field.name + FLAT_SEPARATOR, pa.bool_()))
            fields += [pa.field(field.name + FLAT_SEPARATOR + child.name, child.type) for child in field.type]
        else:
            fields.append(field)
    return pa.schema(fields)


def flatten_structs(table: pa.Table) -> pa.Table:
    """``table`` in :func:`flat_schema`'s layout (a null struct keeps its nullness in the validity column).

    >>> s = pa.array([{"jd": 1.0}, None], pa.struct([("jd", pa.float64())]))
    >>> flatten_structs(pa.table({"c": s})).to_pydict()
    {'c__': [True, False], 'c__jd': [1.0, None]}
    """
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_struct(field.type):
            columns.append(pc.is_valid(column))
            columns += [pc.struct_field(column, [i]) for i in range(field.type.num_fields)]
        else:
            columns.append(column)
    return pa.Table.from_arrays(columns, schema=flat_schema(table.schema))
