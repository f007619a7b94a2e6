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

import bz2
import contextlib
import gzip
import lzma
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
    return member.isfile() and is_alert_name(member.name)


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


#: the first bytes of a bzip2 and of an xz stream
BZIP2_MAGIC, XZ_MAGIC = b"BZh", b"\xfd7zXZ\x00"
#: bytes of a tar block; header fields used: (offset, length)
BLOCK = 512
_NAME, _SIZE, _CHECKSUM, _TYPE, _MAGIC, _PREFIX = (0, 100), (124, 12), (148, 8), 156, (257, 5), (345, 155)
#: bytes read from the decompressed stream at a time (tarfile's record size)
PIECE_BYTES = tarfile.RECORDSIZE
#: tar member types that hold a file's bytes (regular, old regular, contiguous)
_FILE_TYPES = frozenset(b"0\x007")


def _number(field: bytes) -> int:
    """A tar header number: octal text, or base-256 (GNU) when its first byte has the high bit set."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _decompressed(stream: BinaryIO, fast_gzip: bool = True):
    """The plain tar stream inside ``stream`` (gzip, bzip2, xz or none, told by its first bytes)."""
    head = stream.peek(6)[:6] if hasattr(stream, "peek") else stream.read(6)
    if not hasattr(stream, "peek"):
        stream.seek(-len(head), os.SEEK_CUR)
    if head.startswith(GZIP_MAGIC):
        return gzip_file_type(fast_gzip)(fileobj=stream, mode="rb")
    if head.startswith(BZIP2_MAGIC):
        return bz2.BZ2File(stream)
    if head.startswith(XZ_MAGIC):
        return lzma.LZMAFile(stream)
    return stream


def tar_members(stream: BinaryIO, fast_gzip: bool = True) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file of a tar archive read in stream mode (gzip, bzip2, xz or none).

    What :mod:`tarfile` gives in mode ``r|*`` (ustar, GNU long names, pax paths), with less of its cost per
    member: the header, then the member's bytes read into one buffer (in tarfile's record-sized pieces: an archive cut
    short loses no more than with tarfile), no object per header.
    Damage raises (:class:`tarfile.ReadError`: an empty file, a header whose checksum fails or that is cut short,
    an archive cut inside a member; a decompression error as the decompressor raises it) after the members read
    before it. (tarfile ends quietly at a bad or cut header after the first: here that is damage, reported.)

    >>> import io
    >>> buffer = io.BytesIO()
    >>> with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    ...     for name, data in (("a/" + "x" * 120 + ".avro", b"long name"), ("b.avro", b"")):
    ...         info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    >>> _ = buffer.seek(0)
    >>> [(len(name), data) for name, data in tar_members(buffer)]
    [(127, b'long name'), (6, b'')]
    """
    plain = _decompressed(stream, fast_gzip)
    long_name = pax_name = None

    def take(n: int) -> bytes:
        if n <= PIECE_BYTES:
            data = plain.read(n) if n else b""
            got = len(data)
        else:  # in pieces, as tarfile reads: a decompressor that raises at a cut loses only the piece it was in
            data, got = bytearray(n), 0
            with memoryview(data) as view:
                while got < n and (count := plain.readinto(view[got:got + PIECE_BYTES])):
                    got += count
        if got < n:
            raise tarfile.ReadError(f"unexpected end of data ({got} of {n} bytes)")
        return bytes(data)

    first = True
    while True:
        header = plain.read(BLOCK)
        if not header and first:
            raise tarfile.ReadError("empty file")  # not even an end-of-archive block: as tarfile says
        if not header:
            return  # the end of the stream between members: an archive without end blocks
        if len(header) < BLOCK:
            raise tarfile.ReadError(f"unexpected end of data ({len(header)} of {BLOCK} header bytes)")
        if not any(header):
            return  # the end-of-archive blocks
        first = False
        stored = _number(header[_CHECKSUM[0]:_CHECKSUM[0] + _CHECKSUM[1]])
        if stored != sum(header) - sum(header[_CHECKSUM[0]:_CHECKSUM[0] + _CHECKSUM[1]]) + 8 * 32:
            raise tarfile.ReadError("bad checksum: a damaged tar header")
        size = _number(header[_SIZE[0]:_SIZE[0] + _SIZE[1]])
        kind = header[_TYPE]
        data = take(size)
        if kind == ord("L"):  # GNU long name of the next member
            long_name = _text(data)
        elif kind == ord("x"):  # pax extended header of the next member
            for record in data.decode("utf-8", "surrogateescape").split("\n"):
                if " path=" in record:
                    pax_name = record.split(" path=", 1)[1]
        elif kind in _FILE_TYPES:
            name = _text(header[_NAME[0]:_NAME[0] + _NAME[1]])
            if header[_MAGIC[0]:_MAGIC[0] + _MAGIC[1]] == b"ustar" and header[_PREFIX[0]]:
                name = _text(header[_PREFIX[0]:_PREFIX[0] + _PREFIX[1]]) + "/" + name
            yield pax_name or long_name or name, data  # whole: given before its padding is read
            long_name = pax_name = None
        else:  # a folder, a link, a global pax header: no file of its own
            long_name = pax_name = None
        take(-size % BLOCK)


def is_alert_name(name: str) -> bool:
    """A ``.avro`` member name, not a macOS ``._`` resource fork (:func:`is_alert_member` by name alone)."""
    base = posixpath.basename(name)
    return base.endswith(".avro") and not base.startswith("._")


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
            for name, data in tar_members(stream):
                if not is_alert_name(name):
                    continue
                try:
                    alerts = decode_avro_bytes(data)
                except Exception as err:
                    if on_error is None:
                        raise
                    on_error(name, data, err)
                    continue
                yield from alerts
    except Exception as err:
        if on_error is None:
            raise
        on_error(None, None, err)
