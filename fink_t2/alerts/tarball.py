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

import contextlib
import gzip
import os
import posixpath
import tarfile
from typing import BinaryIO, Callable, Iterator, Optional, Union

try:  # ISA-L's gzip (setup.py installs it): the same stream, decompressed ~2x faster than zlib
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover - a platform without its wheel: the standard library
    _fast_gzip = None

from fink_t2.alerts.avro import decode_avro_bytes


def is_alert_member(member: tarfile.TarInfo) -> bool:
    """A regular ``.avro`` file, not a macOS ``._`` resource fork."""
    name = posixpath.basename(member.name)
    return member.isfile() and name.endswith(".avro") and not name.startswith("._")


#: the first bytes of a gzip stream
GZIP_MAGIC = b"\x1f\x8b"


def gzip_file_type(fast: bool = True) -> type:
    """The gzip file class to use: ISA-L's ``IGzipFile`` when ``fast`` and installed, else ``gzip.GzipFile``
    (the same stream either way; ISA-L levels go from 0 to 3)."""
    return _fast_gzip.IGzipFile if fast and _fast_gzip is not None else gzip.GzipFile


@contextlib.contextmanager
def open_archive(stream: BinaryIO, fast_gzip: bool = True):
    """A tar archive read in stream mode from the binary file ``stream`` (gzip, bzip2, xz or none).

    gzip is decompressed with ISA-L (package ``isal``) when it is installed and ``fast_gzip``, else with
    the standard library; the result is the same. Damage raises while the members are read.
    """
    if hasattr(stream, "peek"):
        head = stream.peek(2)[:2]
    else:  # e.g. io.BytesIO: read the magic and step back
        head = stream.read(2)
        stream.seek(-len(head), os.SEEK_CUR)
    if head == GZIP_MAGIC:
        with gzip_file_type(fast_gzip)(fileobj=stream, mode="rb") as plain, tarfile.open(fileobj=plain, mode="r|") as tar:
            yield tar
    else:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            yield tar


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
        with contextlib.ExitStack() as stack:
            stream = stack.enter_context(open(path, "rb")) if isinstance(path, (str, os.PathLike)) else path
            tar = stack.enter_context(open_archive(stream))
            for member in tar:
                if not is_alert_member(member):
                    continue
                content = tar.extractfile(member)
                if content is None:
                    continue
                data = content.read()
                try:
                    alerts = decode_avro_bytes(data)
                except Exception as err:
                    if on_error is None:
                        raise
                    on_error(member.name, data, err)
                    continue
                yield from alerts
    except Exception as err:
        if on_error is None:
            raise
        on_error(None, None, err)
