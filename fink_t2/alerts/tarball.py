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
from typing import BinaryIO, Callable, Iterator, Optional, Union

from fink_t2.alerts.avro import decode_avro_bytes


def is_alert_member(member: tarfile.TarInfo) -> bool:
    """A regular ``.avro`` file, not a macOS ``._`` resource fork."""
    name = posixpath.basename(member.name)
    return member.isfile() and name.endswith(".avro") and not name.startswith("._")


#: ``on_error(member_name, member_bytes, exception)``; name and bytes are None for damage to the archive itself
OnError = Callable[[Optional[str], Optional[bytes], Exception], None]


def read_tarball(path: Union[str, os.PathLike, BinaryIO], on_error: Optional[OnError] = None) -> Iterator[dict]:
    """Iterate over the alerts of a tar archive of Avro files, streaming.

    Parameters
    ----------
    path : path-like or binary file object
        A tar archive (gzip, bzip2, xz or uncompressed); members not ending
        in ``.avro`` are skipped.
    on_error : callable, optional
        Without it, any damage raises. With it, a member that cannot be decoded
        is reported as ``on_error(name, bytes, error)`` and skipped, and damage to
        the archive itself (empty or truncated file, corrupt compression) is
        reported as ``on_error(None, None, error)`` and ends the iteration: the
        alerts read before the damage have been yielded.

    Yields
    ------
    dict
        Decoded alerts without cutouts, in archive order.
    """
    try:
        if isinstance(path, (str, os.PathLike)):
            opened = tarfile.open(path, mode="r|*")
        else:
            opened = tarfile.open(fileobj=path, mode="r|*")
        with opened as tar:
            for member in tar:
                if not is_alert_member(member):
                    continue
                stream = tar.extractfile(member)
                if stream is None:
                    continue
                data = stream.read()
                try:
                    alerts = decode_avro_bytes(data)
                except Exception as err:  # noqa: BLE001 - one bad member must not lose the others
                    if on_error is None:
                        raise
                    on_error(member.name, data, err)
                    continue
                yield from alerts
    except Exception as err:  # noqa: BLE001 - truncated or corrupt archive: keep what was read
        if on_error is None:
            raise
        on_error(None, None, err)
