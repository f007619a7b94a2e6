"""Read alerts from Fink parquet (raw or science stage) in row batches.

Fink writes alerts as parquet with a nested ``candidate`` struct and a
``prv_candidates`` list of structs; science-stage files add value-added
columns such as ``cdsxmatch`` and ``roid``. Only the columns the alert table
needs are read (never the cutouts), batch by batch with
:meth:`pyarrow.parquet.ParquetFile.iter_batches`.

Examples
--------
>>> from fink_t2.alerts import sample_data_dir
>>> path = sample_data_dir() / "ztf_alerts/night_20200101_fink_raw_parquet"
>>> alerts = list(read_fink_parquet(path))
>>> len(alerts), sorted(alerts[0])
(12, ['candid', 'candidate', 'objectId', 'prv_candidates'])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import pyarrow.parquet as pq

#: the first (and last) bytes of a parquet file
PARQUET_MAGIC = b"PAR1"
#: columns read when present; everything else (cutouts, classifier scores) is skipped
PARQUET_COLUMNS = ("objectId", "candid", "candidate", "prv_candidates", "roid", "cdsxmatch")


def parquet_files(path: Union[str, os.PathLike]) -> list[Path]:
    """The parquet files of ``path``: itself, or the ``*.parquet`` under a directory.

    Files and folders whose name starts with ``_`` or ``.`` (Spark's
    ``_SUCCESS``, ``.crc`` checksums) are ignored; order is sorted by path.
    """
    if hasattr(path, "read"):  # an open binary file (e.g. bytes from Spark's binaryFile source)
        return [path]
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(
        file
        for file in path.rglob("*.parquet")
        if file.is_file()
        and not any(part.startswith(("_", ".")) for part in file.relative_to(path).parts)
    )


def read_fink_parquet(path: Union[str, os.PathLike, BinaryIO], batch_size: int = 1024) -> Iterator[dict]:
    """Iterate over the alerts of a Fink parquet file or directory of part files.

    Parameters
    ----------
    path : path-like
        A parquet file, a directory of part files (searched recursively), or an open binary file.
    batch_size : int
        Rows decoded at a time.

    Yields
    ------
    dict
        One alert per row with the keys of :data:`PARQUET_COLUMNS` present
        in the file (``candidate`` a dict, ``prv_candidates`` a list of dicts
        or None).
    """
    for file in parquet_files(path):
        with pq.ParquetFile(file) as parquet:
            names = set(parquet.schema_arrow.names)
            columns = [name for name in PARQUET_COLUMNS if name in names]
            for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                yield from batch.to_pylist()
