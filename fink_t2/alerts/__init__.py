"""Alert ingestion: ZTF alerts from Avro, nightly tarballs or Fink parquet → the alert table.

Every reader yields decoded alert dicts (cutouts removed); :func:`records_to_table`
flattens them into a :class:`pyarrow.Table` of :data:`ALERT_SCHEMA` with
Fink-style history-then-current arrays (``cjd``, ``cmagpsf``, ...).
:func:`iter_alert_tables` does both for any source, in bounded-size chunks.
For Spark, :mod:`fink_t2.alerts.binaryfile` reads the same files as a DataFrame in
Fink's layout and :mod:`fink_t2.alerts.staging` prepares a nightly tarball for it
(both import pyspark, so neither is imported here).

Examples
--------
>>> from fink_t2.alerts import iter_alert_tables, sample_data_dir
>>> path = sample_data_dir() / "ztf_alerts/multi_alert_avro_2019"
>>> sum(table.num_rows for table in iter_alert_tables(path))
14
"""

from fink_t2.alerts.avro import CUTOUT_FIELDS, AvroDamage, decode_avro_bytes, read_avro, strip_cutouts
from fink_t2.alerts.parquet import PARQUET_COLUMNS, read_fink_parquet
from fink_t2.alerts.sources import FORMATS, detect_format, file_format, iter_alert_tables, iter_alerts, sample_data_dir
from fink_t2.alerts.table import ALERT_SCHEMA, AlertTableBuilder, derive_roid, records_to_table
from fink_t2.alerts.tarball import is_alert_member, read_tarball

__all__ = [
    "ALERT_SCHEMA",
    "AlertTableBuilder",
    "AvroDamage",
    "CUTOUT_FIELDS",
    "FORMATS",
    "PARQUET_COLUMNS",
    "decode_avro_bytes",
    "derive_roid",
    "detect_format",
    "file_format",
    "is_alert_member",
    "iter_alert_tables",
    "iter_alerts",
    "read_avro",
    "read_fink_parquet",
    "read_tarball",
    "records_to_table",
    "sample_data_dir",
    "strip_cutouts",
]
