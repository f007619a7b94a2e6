"""The Rubin *alert table*: one row per ``lsst.v10_0`` alert (or ELAsTiCC alert mapped to it), the analogue
of the ZTF alert table (:mod:`fink_t2.alerts.table`).

Each row holds the identifiers, the current ``diaSource`` fields t2 and its cuts read, what ``diaObject`` and
``ssSource`` say, the detections as *history-then-current* arrays built exactly as Fink's Rubin science stage
builds them with :func:`fink_utils.spark.utils.concat_col` (``current="diaSource"``,
``history="prvDiaSources"``)::

    cX = concat(prvDiaSources.X, array(diaSource.X))  if prvDiaSources is not null
         array(diaSource.X)                           otherwise

and the forced photometry (``prvDiaForcedSources``, no current entry) as ``fX`` arrays, null when the packet
carries none (Rubin sends none for a solar-system source) and empty when it carries an empty list. Detections
and forced points stay in separate arrays: ``c*`` is what Fink's classifiers read, ``f*`` what they do not
(yet). Order is the packet's (Fink does not sort either).

Units as in ``lsst.v10_0``: times MJD (TAI), fluxes nJy, ``band`` one of ``u g r i z y``. Float fields are
float64 here (Avro ``float`` widens exactly).

ELAsTiCC alerts (the older layout: ``midPointTai``, ``psFlux``, ``filterName``, ``decl``, ...) are mapped to
these names by :func:`elasticc_to_v10`; their ``filterName`` ``Y`` becomes ``y`` and their fluxes are already
nJy (zero point 31.4). Their ``prvDiaNondetectionLimits`` (upper limits, no flux) have no ``lsst.v10_0``
counterpart and are not carried.

``is_sso`` is Fink's ``pred.is_sso`` rule (``ssSource`` not null), made robust to the all-null ``ssSource``
struct that Fink's Spark-written Avro files carry for a non-SSO alert: true when ``ssSource.ssObjectId`` or
``diaSource.ssObjectId`` names an object (not null, not 0).

>>> table = rubin_records_to_table([{"diaSourceId": 7, "diaSource": {"diaSourceId": 7, "diaObjectId": 3,
...     "midpointMjdTai": 61000.5, "psfFlux": 1200.0, "psfFluxErr": 80.0, "band": "g", "ssObjectId": 0},
...     "prvDiaSources": [{"midpointMjdTai": 60990.1, "psfFlux": 900.0, "psfFluxErr": 70.0, "band": "r"}]}])
>>> row = table.to_pylist()[0]
>>> row["cmidpointMjdTai"], row["cband"], row["fpsfFlux"], row["is_sso"]
([60990.1, 61000.5], ['r', 'g'], None, False)
"""

from __future__ import annotations

from typing import Iterable, Optional

import pyarrow as pa

#: current ``diaSource`` fields copied as scalar columns (``lsst.v10_0`` names), with their type
DIASOURCE_FIELDS = (
    ("midpointMjdTai", pa.float64()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("psfFlux", pa.float64()),
    ("psfFluxErr", pa.float64()),
    ("scienceFlux", pa.float64()),
    ("scienceFluxErr", pa.float64()),
    ("snr", pa.float64()),
    ("reliability", pa.float64()),
    ("band", pa.string()),
    ("ssObjectId", pa.int64()),
)
#: ``diaObject`` fields, as columns ``diaObject_X`` (null for an SSO alert, which has no diaObject)
DIAOBJECT_FIELDS = (
    ("firstDiaSourceMjdTai", pa.float64()),
    ("lastDiaSourceMjdTai", pa.float64()),
    ("nDiaSources", pa.int32()),
)
#: ``ssSource`` fields, as columns ``ssSource_X``
SSSOURCE_FIELDS = (("ssObjectId", pa.int64()), ("designation", pa.string()))
#: detection fields of the ``c*`` arrays (prvDiaSources then diaSource), as Fink's Rubin stage builds them
HISTORY_FIELDS = (
    ("midpointMjdTai", pa.float64()),
    ("psfFlux", pa.float64()),
    ("psfFluxErr", pa.float64()),
    ("band", pa.string()),
)
#: forced-photometry fields of the ``f*`` arrays (prvDiaForcedSources)
FORCED_FIELDS = HISTORY_FIELDS

RUBIN_ALERT_SCHEMA = pa.schema(
    [pa.field("diaObjectId", pa.int64()), pa.field("diaSourceId", pa.int64())]
    + [pa.field(name, dtype) for name, dtype in DIASOURCE_FIELDS]
    + [pa.field("diaObject_" + name, dtype) for name, dtype in DIAOBJECT_FIELDS]
    + [pa.field("ssSource_" + name, dtype) for name, dtype in SSSOURCE_FIELDS]
    + [pa.field("is_sso", pa.bool_()), pa.field("lsst_schema_version", pa.string())]
    + [pa.field("c" + name, pa.list_(dtype)) for name, dtype in HISTORY_FIELDS]
    + [pa.field("f" + name, pa.list_(dtype)) for name, dtype in FORCED_FIELDS]
)
"""Arrow schema of the Rubin alert table (every column nullable)."""
#: the columns of the Rubin alert table that :func:`fink_t2.core.rubin_classifier.classify_rubin_columns` reads, in
#: its order: the Fink Rubin UDF's inputs (:data:`fink_t2.rubin_processor.RUBIN_COLUMNS`) as this table names them
CLASSIFIER_INPUTS = ("cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband", "fmidpointMjdTai", "fpsfFlux",
                     "fpsfFluxErr", "fband", "ssObjectId", "ssSource_ssObjectId", "diaObject_firstDiaSourceMjdTai")

#: top-level packet fields the table reads
RECORD_FIELDS = ("diaSourceId", "diaSource", "prvDiaSources", "prvDiaForcedSources", "diaObject", "ssSource",
                 "lsst_schema_version")
#: fields kept, by top-level record, when decoding Avro with :func:`rubin_reader_schema`
_KEEP = {
    "diaSource": frozenset(name for name, _ in DIASOURCE_FIELDS) | {"diaSourceId", "diaObjectId"},
    "prvDiaSources": frozenset(name for name, _ in DIASOURCE_FIELDS) | {"diaSourceId", "diaObjectId"},
    "prvDiaForcedSources": frozenset(name for name, _ in FORCED_FIELDS),
    "diaObject": frozenset(name for name, _ in DIAOBJECT_FIELDS) | {"diaObjectId"},
    "ssSource": frozenset(name for name, _ in SSSOURCE_FIELDS),
}
#: ELAsTiCC name → ``lsst.v10_0`` name, in diaSource, prvDiaSources and prvDiaForcedSources entries
ELASTICC_NAMES = {"midPointTai": "midpointMjdTai", "psFlux": "psfFlux", "psFluxErr": "psfFluxErr",
                  "filterName": "band", "decl": "dec", "ccdVisitId": "visit"}


def _cut(avro_type, keep: frozenset):
    """``avro_type`` (a record, or a union/array holding one) with its record's fields cut down to ``keep``.

    A record type referenced by name (``lsst.v10_0``'s ``prvDiaSources`` items name the type ``diaSource``
    defines) is left as it is: it resolves to the cut definition, which keeps the same fields (:data:`_KEEP`).
    """
    if isinstance(avro_type, list):
        return [_cut(member, keep) for member in avro_type]
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return {**avro_type, "items": _cut(avro_type["items"], keep)}
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return {**avro_type, "fields": [f for f in avro_type["fields"] if f["name"] in keep]}
    return avro_type


def rubin_reader_schema(writer: dict) -> dict:
    """The reader schema that decodes only what the Rubin table needs from a file of schema ``writer``
    (cutouts, ``mpc_orbits``, Fink's added columns and ~90 fields per source are skipped, not decoded);
    given to :func:`fink_t2.alerts.avro.read_avro` as ``project``.

    >>> writer = {"type": "record", "name": "alert", "fields": [{"name": "diaSourceId", "type": "long"},
    ...     {"name": "cutoutScience", "type": ["null", "bytes"]}, {"name": "diaSource", "type": {"type": "record",
    ...     "name": "diaSource", "fields": [{"name": "band", "type": "string"}, {"name": "x", "type": "float"}]}}]}
    >>> reader = rubin_reader_schema(writer)
    >>> [f["name"] for f in reader["fields"]], [f["name"] for f in reader["fields"][1]["type"]["fields"]]
    (['diaSourceId', 'diaSource'], ['band'])
    """
    fields = []
    for field in writer["fields"]:
        if field["name"] in _KEEP:
            field = {**field, "type": _cut(field["type"], _KEEP[field["name"]])}
        elif field["name"] not in RECORD_FIELDS:
            continue
        fields.append(field)
    return {**writer, "fields": fields}


def _renamed(entry: Optional[dict]) -> Optional[dict]:
    if entry is None:
        return None
    out = {ELASTICC_NAMES.get(key, key): value for key, value in entry.items()}
    if out.get("band") == "Y":
        out["band"] = "y"
    return out


def is_elasticc(record: dict) -> bool:
    """Whether a decoded packet uses the ELAsTiCC names (``diaSource.midPointTai``)."""
    source = record.get("diaSource") or {}
    return "midPointTai" in source or "alertId" in record


def elasticc_to_v10(record: dict) -> dict:
    """An ELAsTiCC packet with the ``lsst.v10_0`` names of what the Rubin table reads.

    >>> elasticc_to_v10({"alertId": 1, "diaSource": {"diaSourceId": 2, "midPointTai": 61125.2, "filterName": "Y",
    ...     "psFlux": 978.8, "decl": -43.6}, "prvDiaSources": None})["diaSource"]
    {'diaSourceId': 2, 'midpointMjdTai': 61125.2, 'band': 'y', 'psfFlux': 978.8, 'dec': -43.6}
    """
    out = {"diaSourceId": (record.get("diaSource") or {}).get("diaSourceId"), "diaObject": record.get("diaObject"),
           "diaSource": _renamed(record.get("diaSource")), "ssSource": None, "lsst_schema_version": None}
    for name in ("prvDiaSources", "prvDiaForcedSources"):
        entries = record.get(name)
        out[name] = None if entries is None else [_renamed(entry) for entry in entries]
    return out


def _column(values: list, dtype: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``dtype``; values that do not convert become null, one by one."""
    try:
        return pa.array(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([_value(value, dtype) for value in values], dtype)


def _value(value, dtype: pa.DataType):
    if value is None:
        return None
    if pa.types.is_list(dtype):
        return [_value(item, dtype.value_type) for item in value] if isinstance(value, (list, tuple)) else None
    try:
        pa.array([value], dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    return value


def _named(value) -> bool:
    return value is not None and value != 0


class RubinTableBuilder:
    """Accumulate Rubin packets column by column, then emit one table of :data:`RUBIN_ALERT_SCHEMA`.

    >>> builder = RubinTableBuilder()
    >>> builder.add({"diaSource": {"diaSourceId": 5, "midpointMjdTai": 61000.0, "band": "i"}})
    >>> len(builder), builder.finish().column("cband").to_pylist()
    (1, [['i']])
    """

    def __init__(self) -> None:
        self._columns: dict[str, list] = {name: [] for name in RUBIN_ALERT_SCHEMA.names}

    def __len__(self) -> int:
        return len(self._columns["diaSourceId"])

    def add(self, record: dict) -> None:
        """Append one decoded packet (fastavro output or a parquet row as dict; ELAsTiCC names mapped)."""
        if is_elasticc(record):
            record = elasticc_to_v10(record)
        columns = self._columns
        source = record.get("diaSource") or {}
        dia_object = record.get("diaObject") or {}
        ss_source = record.get("ssSource") or {}
        dia_source_id = record.get("diaSourceId")
        columns["diaSourceId"].append(source.get("diaSourceId") if dia_source_id is None else dia_source_id)
        object_id = source.get("diaObjectId")
        columns["diaObjectId"].append(dia_object.get("diaObjectId") if object_id is None else object_id)
        for name, _ in DIASOURCE_FIELDS:
            columns[name].append(source.get(name))
        for name, _ in DIAOBJECT_FIELDS:
            columns["diaObject_" + name].append(dia_object.get(name))
        for name, _ in SSSOURCE_FIELDS:
            columns["ssSource_" + name].append(ss_source.get(name))
        columns["is_sso"].append(_named(ss_source.get("ssObjectId")) or _named(source.get("ssObjectId")))
        columns["lsst_schema_version"].append(record.get("lsst_schema_version"))
        history = record.get("prvDiaSources") or ()
        for name, _ in HISTORY_FIELDS:
            columns["c" + name].append([entry.get(name) for entry in history] + [source.get(name)])
        forced = record.get("prvDiaForcedSources")
        for name, _ in FORCED_FIELDS:
            columns["f" + name].append(None if forced is None else [entry.get(name) for entry in forced])

    def extend(self, records: Iterable[dict]) -> None:
        """Append every packet of ``records``."""
        for record in records:
            self.add(record)

    def finish(self) -> pa.Table:
        """Return the accumulated packets as a table of :data:`RUBIN_ALERT_SCHEMA`, and reset.

        A value its column's type cannot hold (a NaN or a string where an integer is due) becomes null: the
        alert keeps its row (Fink's parquet stores some integer fields as float, e.g. ``nDiaSources``).
        """
        table = pa.table([_column(self._columns[f.name], f.type) for f in RUBIN_ALERT_SCHEMA],
                         schema=RUBIN_ALERT_SCHEMA)
        self.__init__()
        return table


def rubin_records_to_table(records: Iterable[dict]) -> pa.Table:
    """Flatten decoded Rubin (or ELAsTiCC) packets into the Rubin alert table."""
    builder = RubinTableBuilder()
    builder.extend(records)
    return builder.finish()
