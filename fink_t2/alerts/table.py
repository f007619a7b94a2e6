"""The flat *alert table*: one row per alert, what every reader produces.

Each row holds the identifiers and a few current-epoch fields of one ZTF
alert, plus its light curve as *history-then-current* arrays built exactly as
:func:`fink_utils.spark.utils.concat_col` does in Fink::

    cX = concat(prv_candidates.X, array(candidate.X))  if prv_candidates is not null
         array(candidate.X)                            otherwise

so ``cX[-1]`` is always the current ``candidate.X`` and nulls are kept (a null
``cmagpsf`` entry is an upper limit, i.e. a non-detection).

``roid`` and ``cdsxmatch`` are Fink science-stage columns. They are taken from
the record when it carries them (non-null); otherwise they are derived:

* ``roid`` = 3 when ZTF's own Solar-System match says *known asteroid*
  (``0 <= candidate.ssdistnr < 5`` arcsec and ``ssnamenr`` neither null nor the
  string ``"null"``), else 0. This mirrors the MPC-match condition of Fink's
  rule for known SSO (``roid == 3``, fink-science ``roid_catcher``); Fink also
  requires ``distpsnr1 > ssdistnr`` and few past detections, not applied here.
* ``cdsxmatch`` = ``"Unknown"``: no CDS cross-match was run. ``"Unknown"`` is
  what Fink writes for "no counterpart", which Fink's cuts treat as
  compatible with an extragalactic transient. (The replay's decoder asks for null
  instead, ``raw_cdsxmatch=None``: its raw filter tells raw alerts by it.)

Fields missing from an alert (ZTF schema 3.3 vs 4.x differences, or a
truncated record) become nulls, never a ``KeyError``.

Examples
--------
>>> from fink_t2.alerts import read_avro, records_to_table, sample_data_dir
>>> path = sample_data_dir() / "ztf_alerts/multi_alert_avro_2019/avro_multi_alerts_other.avro"
>>> table = records_to_table(read_avro(path))
>>> table.num_rows, table.schema.equals(ALERT_SCHEMA)
(3, True)
>>> row = table.slice(1, 1).to_pylist()[0]
>>> row["objectId"], len(row["cjd"]), row["cfid"][:4], row["cisdiffpos"][:4]
('ZTF18acjzbxi', 14, [1, 2, 1, 2], [None, None, 'f', None])
>>> [None if m is None else round(m, 2) for m in row["cmagpsf"][:4]]  # None: upper limit
[None, None, 16.06, None]
>>> round(row["cmagpsf"][-1], 2), row["candid"], row["roid"], row["cdsxmatch"]
(15.17, 1788115871115010062, 0, 'Unknown')
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from fink_t2.core.cuts import ASTEROID_ROID, CDSXMATCH_UNKNOWN

#: current-epoch ``candidate`` fields copied as scalar columns, with their type
SCALAR_FIELDS = (
    ("jd", pa.float64()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("magpsf", pa.float64()),
    ("sigmapsf", pa.float64()),
    ("jdstarthist", pa.float64()),
    ("ssdistnr", pa.float64()),
    ("ssmagnr", pa.float64()),
    ("fid", pa.int32()),
    ("ssnamenr", pa.string()),
    # used by Fink's quality cuts and other science modules (asteroid catcher, SuperNNova, ...)
    ("ndethist", pa.int32()),
    ("sgscore1", pa.float64()),
    ("distpsnr1", pa.float64()),
    ("rb", pa.float64()),
    ("drb", pa.float64()),
    ("nbad", pa.int32()),
    ("isdiffpos", pa.string()),
    ("magnr", pa.float64()),
    ("sigmagnr", pa.float64()),
    ("distnr", pa.float64()),
    ("diffmaglim", pa.float64()),
    # the stand-in for Fink's cross-match on raw alerts (fink_t2.core.raw_filter): nearest Gaia source, its G magnitude
    ("neargaia", pa.float64()),
    ("maggaia", pa.float64()),
)

#: history-then-current array columns: ``"c" + field`` holds a list of this type
HISTORY_FIELDS = (
    ("jd", pa.float64()),
    ("magpsf", pa.float64()),
    ("sigmapsf", pa.float64()),
    ("diffmaglim", pa.float64()),
    ("fid", pa.int32()),
    ("isdiffpos", pa.string()),
)

ALERT_SCHEMA = pa.schema(
    [pa.field("objectId", pa.string()), pa.field("candid", pa.int64())]
    + [pa.field(name, dtype) for name, dtype in SCALAR_FIELDS]
    + [pa.field("roid", pa.int32()), pa.field("cdsxmatch", pa.string())]
    + [pa.field("c" + name, pa.list_(dtype)) for name, dtype in HISTORY_FIELDS]
)
"""Arrow schema of the alert table (every column nullable)."""

#: top-level alert fields the table reads (``roid``, ``cdsxmatch``: Fink science-stage columns, when present)
RECORD_FIELDS = ("objectId", "candid", "candidate", "prv_candidates", "roid", "cdsxmatch")

#: largest ZTF ``ssdistnr`` (arcsec, exclusive) still counted as a known-SSO match
SSO_MAX_DISTANCE_ARCSEC = 5.0


def _subset(avro_type, keep: frozenset):
    """``avro_type`` (a record, or a union/array holding one) with its record's fields cut down to ``keep``."""
    if isinstance(avro_type, list):
        return [_subset(member, keep) for member in avro_type]
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return {**avro_type, "items": _subset(avro_type["items"], keep)}
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return {**avro_type, "fields": [f for f in avro_type["fields"] if f["name"] in keep]}
    return avro_type  # "null", or a type referenced by name: left whole


def table_reader_schema(writer: dict) -> dict:
    """The reader schema that decodes only what the alert table needs from an alert file of schema ``writer``.

    A subset of the writer's own fields (same names and types): fastavro skips the others (cutouts, the
    ~80 other candidate fields), which halves the cost of decoding a ZTF alert. Given to
    :func:`fink_t2.alerts.avro.read_avro` as ``project``.

    >>> schema = {"type": "record", "name": "alert", "fields": [{"name": "objectId", "type": "string"},
    ...     {"name": "cutoutScience", "type": ["null", "bytes"]}, {"name": "candidate", "type": {"type": "record",
    ...     "name": "candidate", "fields": [{"name": "jd", "type": "double"}, {"name": "pid", "type": "long"}]}}]}
    >>> reader = table_reader_schema(schema)
    >>> [f["name"] for f in reader["fields"]], [f["name"] for f in reader["fields"][1]["type"]["fields"]]
    (['objectId', 'candidate'], ['jd'])
    """
    candidate = frozenset(name for name, _ in SCALAR_FIELDS) | {"candid"}
    history = frozenset(name for name, _ in HISTORY_FIELDS)
    fields = []
    for field in writer["fields"]:
        if field["name"] == "candidate":
            field = {**field, "type": _subset(field["type"], candidate)}
        elif field["name"] == "prv_candidates":
            field = {**field, "type": _subset(field["type"], history)}
        elif field["name"] not in RECORD_FIELDS:
            continue
        fields.append(field)
    return {**writer, "fields": fields}


def derive_roid(candidate: dict) -> int:
    """Solar-System flag from ZTF's own MPC match, when Fink's ``roid`` is absent.

    Parameters
    ----------
    candidate : dict
        The alert's ``candidate`` record.

    Returns
    -------
    int
        3 (known SSO) if ``0 <= ssdistnr < 5`` arcsec and ``ssnamenr`` is a
        real name (not null nor ``"null"``), else 0.

    Examples
    --------
    >>> derive_roid({"ssdistnr": 0.8, "ssnamenr": "6281"})
    3
    >>> derive_roid({"ssdistnr": -999.0, "ssnamenr": "null"}), derive_roid({})
    (0, 0)
    """
    distance = candidate.get("ssdistnr")
    name = candidate.get("ssnamenr")
    known = (
        distance is not None
        and 0.0 <= distance < SSO_MAX_DISTANCE_ARCSEC
        and name is not None
        and name.strip().lower() not in ("", "null")
    )
    return ASTEROID_ROID if known else 0  # Fink's roid of a known SSO, the asteroid cut's


class AlertTableBuilder:
    """Accumulate alerts column by column, then emit one :class:`pyarrow.Table`.

    Only the values that go into :data:`ALERT_SCHEMA` are kept, so the decoded
    alert dicts can be dropped as soon as they are added (bounded memory).

    Examples
    --------
    >>> builder = AlertTableBuilder()
    >>> builder.add({"objectId": "ZTF0", "candid": 1, "candidate": {"jd": 1.5}, "prv_candidates": None})
    >>> len(builder), builder.finish().column("cjd").to_pylist()
    (1, [[1.5]])
    """

    def __init__(self, raw_cdsxmatch: str | None = CDSXMATCH_UNKNOWN) -> None:
        self.raw_cdsxmatch = raw_cdsxmatch  # the cdsxmatch of an alert that carries none (a raw alert)
        self._columns: dict[str, list] = {name: [] for name in ALERT_SCHEMA.names}

    def __len__(self) -> int:
        return len(self._columns["candid"])

    def add(self, record: dict) -> None:
        """Append one decoded alert (fastavro output or a parquet row as dict)."""
        columns = self._columns
        candidate = record.get("candidate") or {}
        history = record.get("prv_candidates") or ()
        columns["objectId"].append(record.get("objectId"))
        candid = record.get("candid")
        columns["candid"].append(candidate.get("candid") if candid is None else candid)
        for name, _ in SCALAR_FIELDS:
            columns[name].append(candidate.get(name))
        roid = record.get("roid")
        columns["roid"].append(derive_roid(candidate) if roid is None else roid)
        cdsxmatch = record.get("cdsxmatch")
        columns["cdsxmatch"].append(self.raw_cdsxmatch if cdsxmatch is None else cdsxmatch)
        for name, _ in HISTORY_FIELDS:
            values = [previous.get(name) for previous in history]
            values.append(candidate.get(name))
            columns["c" + name].append(values)

    def extend(self, records: Iterable[dict]) -> None:
        """Append every alert of ``records``."""
        for record in records:
            self.add(record)

    def finish(self) -> pa.Table:
        """Return the accumulated alerts as a table of :data:`ALERT_SCHEMA`, and reset."""
        table = pa.Table.from_pydict(self._columns, schema=ALERT_SCHEMA)
        self.__init__(self.raw_cdsxmatch)
        return table


def records_to_table(records: Iterable[dict], raw_cdsxmatch: str | None = CDSXMATCH_UNKNOWN) -> pa.Table:
    """Flatten decoded ZTF alerts into the alert table.

    Parameters
    ----------
    records : iterable of dict
        Decoded alerts: fastavro output or Fink parquet rows as dicts. Cutouts,
        if present, are ignored.
    raw_cdsxmatch : str or None
        ``cdsxmatch`` of an alert without one of its own (a raw alert).

    Returns
    -------
    pyarrow.Table
        One row per alert, schema :data:`ALERT_SCHEMA`.

    Examples
    --------
    >>> from fink_t2.alerts import read_fink_parquet, sample_data_dir
    >>> path = sample_data_dir() / "ztf_alerts/night_20211122_fink_science_parquet"
    >>> table = records_to_table(read_fink_parquet(path))
    >>> table.num_rows, sorted(set(table.column("roid").to_pylist()))
    (124, [0, 3])
    """
    builder = AlertTableBuilder(raw_cdsxmatch)
    builder.extend(records)
    return builder.finish()
