"""The raw filter as a stage over Arrow tables: raw alerts meet Fink's raw -> science step, as rebuilt offline.

Input: decoded alerts (:data:`fink_t2.alerts.layout.DECODED_SCHEMA`), where a raw alert is one without a
``cdsxmatch`` of its own (a public nightly archive, Fink raw parquet: no cross-match was run). Output: the same
rows, :data:`SCIENCE_SCHEMA`, with

* ``raw_filter``: the status :func:`fink_t2.core.raw_filter.raw_status` gives a raw alert (the first of Fink's
  quality cuts or of the stand-in for its cross-match it fails), null for one that passes, for an alert that
  carries Fink's science-stage columns (left to t2's own cuts) and for a row standing for an unreadable input;
* a raw alert's ``cdsxmatch`` set to :data:`fink_t2.core.cuts.CDSXMATCH_UNKNOWN`, what Fink writes for "no
  counterpart": the stand-in has judged it, t2's cross-match cut lets it through.

t2 (:mod:`fink_t2.stream.stages`) folds ``raw_filter`` into ``t2_status`` and spends nothing on those alerts.

>>> from fink_t2.alerts import read_avro, sample_data_dir
>>> from fink_t2.alerts.binaryfile import decode_file
>>> path = sample_data_dir() / "ztf_alerts/multi_alert_avro_2019/avro_multi_alerts_other.avro"
>>> decoded = decode_file(str(path), path.read_bytes())
>>> decoded.column("cdsxmatch").to_pylist()
[None, None, None]
>>> filtered = raw_filter(decoded)
>>> filtered.column("cdsxmatch").to_pylist(), filtered.schema.equals(SCIENCE_SCHEMA)
(['Unknown', 'Unknown', 'Unknown'], True)
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_t2.alerts.layout import CANDIDATE_FIELDS, DECODED_SCHEMA
from fink_t2.core.cuts import CDSXMATCH_UNKNOWN
from fink_t2.core.raw_filter import FIELDS, raw_status

#: the column holding the raw filter's status
RAW_FILTER = "raw_filter"
#: decoded alerts after the raw filter: Fink's layout, the raw filter's status, where each row comes from
SCIENCE_SCHEMA = pa.schema([f for f in DECODED_SCHEMA if f.name not in ("source_file", "ingest_error")]
                           + [pa.field(RAW_FILTER, pa.string()), DECODED_SCHEMA.field("source_file"),
                              DECODED_SCHEMA.field("ingest_error")])


def candidate_field(table: pa.Table, name: str) -> pa.Array:
    """One field of the ``candidate`` struct of every row (null where the struct is null)."""
    return pc.struct_field(table.column("candidate").combine_chunks(), [CANDIDATE_FIELDS.index(name)])


def raw_filter(table: pa.Table) -> pa.Table:
    """The stage: DECODED_SCHEMA rows → SCIENCE_SCHEMA rows (see the module doc)."""
    raw = pc.and_(pc.is_null(table.column("cdsxmatch")), pc.is_null(table.column("ingest_error")))
    raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    status = raw_status({name: candidate_field(table, name) for name in FIELDS},
                        science=~raw.to_numpy(zero_copy_only=False))
    cdsxmatch = pc.if_else(raw, pa.scalar(CDSXMATCH_UNKNOWN), table.column("cdsxmatch"))
    table = table.set_column(table.schema.get_field_index("cdsxmatch"), "cdsxmatch", cdsxmatch)
    table = table.add_column(table.schema.get_field_index("source_file"), RAW_FILTER, pa.array(status, pa.string()))
    return table.cast(SCIENCE_SCHEMA)
