"""Stream the alerts of a ZTF nightly archive ``ztf_public_YYYYMMDD.tar.gz``.

The tarball is read member by member in stream mode (``tarfile`` mode
``"r|*"``: any compression, no seeking), nothing is extracted to disk, and
each ``.avro`` member is decoded in memory with its embedded writer schema.
Only one member's bytes are held at a time.

Examples
--------
>>> import io, tarfile
>>> from fink_t2.alerts import sample_data_dir
>>> path = sample_data_dir() / "ztf_alerts/night_20200101_avro/1095578115815010001.avro"
>>> buffer = io.BytesIO()
>>> with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
...     tar.add(path, arcname=path.name)
>>> _ = buffer.seek(0)
>>> [alert["candid"] for alert in read_tarball(buffer)]
[1095578115815010001]
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from typing import BinaryIO, Iterator, Union

from fink_t2.alerts.avro import decode_avro_bytes


def _is_alert_member(member: tarfile.TarInfo) -> bool:
    """A regular ``.avro`` file, not a macOS ``._`` resource fork."""
    name = posixpath.basename(member.name)
    return member.isfile() and name.endswith(".avro") and not name.startswith("._")


def read_tarball(path: Union[str, os.PathLike, BinaryIO]) -> Iterator[dict]:
    """Iterate over the alerts of a tar archive of Avro files, streaming.

    Parameters
    ----------
    path : path-like or binary file object
        A tar archive (gzip, bzip2, xz or uncompressed); members not ending
        in ``.avro`` are skipped.

    Yields
    ------
    dict
        Decoded alerts without cutouts, in archive order.
    """
    if isinstance(path, (str, os.PathLike)):
        opened = tarfile.open(path, mode="r|*")
    else:
        opened = tarfile.open(fileobj=path, mode="r|*")
    with opened as tar:
        for member in tar:
            if not _is_alert_member(member):
                continue
            stream = tar.extractfile(member)
            if stream is None:
                continue
            data = stream.read()
            yield from decode_avro_bytes(data)
