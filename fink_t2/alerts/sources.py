"""One entry point for every alert source: detect the format, iterate, chunk.

Formats (:func:`detect_format`):

``"avro_dir"``
    a directory of ``*.avro`` files (e.g. an unpacked nightly archive);
``"avro_file"``
    one Avro container file, one or many alerts;
``"tarball"``
    a ZTF nightly archive ``ztf_public_YYYYMMDD.tar.gz`` (any tar);
``"parquet"``
    a Fink parquet file, or a directory holding ``*.parquet`` part files.

Examples
--------
>>> data = sample_data_dir() / "ztf_alerts"
>>> detect_format(data / "night_20200101_avro"), detect_format(data / "night_20211122_fink_science_parquet")
('avro_dir', 'parquet')
>>> [table.num_rows for table in iter_alert_tables(data / "night_20200101_avro", batch_size=20)]
[20, 20, 10]
"""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path
from typing import Iterator, Optional, Union
from urllib.parse import unquote

import pyarrow as pa

from fink_t2.alerts.avro import AVRO_MAGIC, read_avro
from fink_t2.alerts.parquet import PARQUET_MAGIC, parquet_files, read_fink_parquet
from fink_t2.alerts.table import AlertTableBuilder
from fink_t2.alerts.tarball import read_tarball
from fink_t2.paths import shared_data_dir

FORMATS = ("avro_dir", "avro_file", "tarball", "parquet")
#: the files of a folder source that belong to it, by format (the Spark source lists them with these patterns);
#: "staged": the chunks of a nightly tarball (fink_t2.alerts.staging)
FOLDER_GLOBS = {"avro_dir": "*.avro", "parquet": "*.parquet", "staged": "chunk-*"}
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def sample_data_dir() -> Path:
    """Directory of the shared sample data (:func:`fink_t2.paths.shared_data_dir`)."""
    return shared_data_dir()


def _avro_files(directory: Path) -> list[Path]:
    """The ``*.avro`` files directly in ``directory``, sorted by name."""
    return sorted(file for file in directory.glob(FOLDER_GLOBS["avro_dir"]) if file.is_file() and not file.name.startswith("._"))


def detect_format(path: Union[str, os.PathLike]) -> str:
    """Name the format of an alert source, one of :data:`FORMATS`.

    A directory is ``"parquet"`` if it holds ``*.parquet`` files (searched
    recursively, Spark layout), else ``"avro_dir"`` if it holds ``*.avro``
    files. A file is recognised by its suffix, else by its magic bytes.

    Raises
    ------
    ValueError
        If ``path`` does not exist or is not a known alert format.

    Examples
    --------
    >>> detect_format(sample_data_dir() / "ztf_alerts/multi_alert_avro_2019/avro_multi_alerts.avro")
    'avro_file'
    >>> detect_format("/no/such/alerts")
    Traceback (most recent call last):
    ...
    ValueError: alert source /no/such/alerts does not exist
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"alert source {path} does not exist")
    if path.is_dir():
        if parquet_files(path):
            return "parquet"
        if _avro_files(path):
            return "avro_dir"
        raise ValueError(f"alert source {path}: directory holds no .parquet nor .avro files")
    kind = file_format(path.name)
    if kind is None:
        with open(path, "rb") as stream:
            kind = file_format(path.name, stream.read(len(AVRO_MAGIC)))
    if kind is None and tarfile.is_tarfile(path):
        kind = "tarball"
    if kind is None:
        raise ValueError(f"alert source {path}: unknown format (expected one of {', '.join(FORMATS)})")
    return kind


def file_format(name: str, head: bytes = b"") -> Optional[str]:
    """Format of one alert file from its name, else from its first bytes ``head``; None if neither tells.

    The one rule for files, used by :func:`detect_format` and by the Spark source
    (:mod:`fink_t2.alerts.binaryfile`), which has the bytes but not the file:
    ``"tarball"`` (by name only), ``"avro_file"`` or ``"parquet"``.

    >>> file_format("ztf_public_20200101.tar.gz"), file_format("file:/night/1095578115815010001.avro")
    ('tarball', 'avro_file')
    >>> file_format("part-0"), file_format("part-0", b"PAR1"), file_format("alert", b"Obj\\x01")
    (None, 'parquet', 'avro_file')
    """
    name = name.lower()
    if name.endswith(_TAR_SUFFIXES):
        return "tarball"
    if name.endswith(".avro"):
        return "avro_file"
    if name.endswith(".parquet"):
        return "parquet"
    if head.startswith(AVRO_MAGIC):
        return "avro_file"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    return None


def local_path(uri: str) -> str | None:
    """Local path of a plain path or ``file:`` URI (percent-decoded when only that exists), None for another file system.

    >>> local_path("file:///night/a.avro"), local_path("file:/night/a.avro"), local_path("hdfs://nn/a.avro")
    ('/night/a.avro', '/night/a.avro', None)
    """
    if uri.startswith("file:"):
        raw = "/" + uri[len("file:"):].lstrip("/")
        decoded = unquote(raw)
        return decoded if os.path.exists(decoded) and not os.path.exists(raw) else raw
    return None if re.match(r"[A-Za-z][\w+.-]*:", uri) else uri


def iter_alerts(path: Union[str, os.PathLike]) -> Iterator[dict]:
    """Iterate over the decoded alerts (dicts, no cutouts) of any alert source.

    Examples
    --------
    >>> sum(1 for _ in iter_alerts(sample_data_dir() / "ztf_alerts/night_20200101_fink_raw_parquet"))
    12
    """
    kind = detect_format(path)
    if kind == "avro_dir":
        for file in _avro_files(Path(path)):
            yield from read_avro(file)
    elif kind == "avro_file":
        yield from read_avro(path)
    elif kind == "tarball":
        yield from read_tarball(path)
    else:
        yield from read_fink_parquet(path)


def iter_alert_tables(path: Union[str, os.PathLike], batch_size: int = 5000) -> Iterator[pa.Table]:
    """Iterate over the alert table of a source in chunks of at most ``batch_size`` alerts.

    Each decoded alert is reduced to its table values as soon as it is read,
    so memory is bounded by one chunk whatever the size of the source.

    Parameters
    ----------
    path : path-like
        Any source :func:`detect_format` recognises.
    batch_size : int
        Maximum number of rows per table (>= 1).

    Yields
    ------
    pyarrow.Table
        Tables of :data:`~fink_t2.alerts.table.ALERT_SCHEMA`, none empty.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    builder = AlertTableBuilder()
    for alert in iter_alerts(path):
        builder.add(alert)
        if len(builder) >= batch_size:
            yield builder.finish()
    if len(builder):
        yield builder.finish()
