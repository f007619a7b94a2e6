"""Decode ZTF alert Avro files with :mod:`fastavro`, block by block.

Decoding always uses the writer schema embedded in each Avro container file
(what :func:`fastavro.block_reader` does when no reader schema is given), so
alerts of ZTF schema 3.3 and 4.x, or Avro files re-written by Spark, decode
alike. A container file may hold one alert (the nightly archive) or many.
Cutouts are dropped right after each alert is decoded to bound memory.

A container file is a header (schema, codec, a 16-byte sync marker) followed by
blocks, each ending with that sync marker. The file is cut at the markers and
each block is decoded on its own (:func:`fastavro.block_reader` over the header
and that block), so a damaged block costs only its own alerts: the reader
resumes at the next marker. A block is damaged when fastavro cannot decode it,
when its records do not use exactly its bytes, or when its own marker is wrong.

Examples
--------
>>> from fink_t2.alerts import sample_data_dir
>>> path = sample_data_dir() / "ztf_alerts/night_20200101_avro/1095578115815010001.avro"
>>> alerts = list(read_avro(path))
>>> len(alerts), alerts[0]["objectId"], alerts[0]["schemavsn"]
(1, 'ZTF20aabaesm', '3.3')
>>> "cutoutScience" in alerts[0]
False
"""

from __future__ import annotations

import io
import mmap
import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Union

import fastavro

#: top-level alert fields holding the (large) FITS image stamps
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
#: bytes of the marker that ends the header and every block of a container file
SYNC_SIZE = 16
#: bytes read first for the header (ZTF's schema is about 9 KB)
HEADER_PEEK = 1 << 16


@dataclass(frozen=True)
class AvroDamage:
    """A stretch of a container file that could not be decoded: ``size`` bytes from ``offset``, skipped."""

    offset: int
    size: int
    error: Exception

    def __str__(self) -> str:
        return f"{type(self.error).__name__}: {self.error} (bytes {self.offset}-{self.offset + self.size} skipped)"


#: ``on_damage(damage)``: called once per damaged stretch (one block, or several contiguous ones)
OnDamage = Callable[[AvroDamage], None]


def strip_cutouts(record: dict) -> dict:
    """Remove the cutout stamps of a decoded alert in place and return it."""
    for name in CUTOUT_FIELDS:
        record.pop(name, None)
    return record


def read_avro(source: Union[str, os.PathLike, BinaryIO, bytes], on_damage: Optional[OnDamage] = None) -> Iterator[dict]:
    """Iterate over the alerts of one Avro container file, without cutouts, block by block.

    Parameters
    ----------
    source : path-like, binary file object or bytes
        An Avro object container file (``Obj\\x01`` magic) holding one or
        several alerts.
    on_damage : callable, optional
        Without it, the first damaged block raises (the alerts of the blocks
        before it have been yielded). With it, each damaged stretch is reported
        as ``on_damage(AvroDamage)`` and skipped, and reading goes on at the next
        sync marker. A file whose header cannot be read always raises.

    Yields
    ------
    dict
        One decoded alert per record, cutout fields removed.

    Examples
    --------
    >>> from fink_t2.alerts import sample_data_dir
    >>> path = sample_data_dir() / "ztf_alerts/multi_alert_avro_2019/avro_multi_alerts.avro"
    >>> sum(1 for _ in read_avro(path))
    11
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            yield from read_avro(stream, on_damage)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield from _read_blocks(bytes(source), on_damage)
        return
    try:  # a file on disk: map it instead of reading it (a container file can be large)
        if source.tell() != 0:
            raise io.UnsupportedOperation("not at the start of the file")
        data = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError):  # not a real file, or an empty one
        yield from _read_blocks(source.read(), on_damage)
        return
    with data:
        yield from _read_blocks(data, on_damage)


def decode_avro_bytes(data: bytes, on_damage: Optional[OnDamage] = None) -> list[dict]:
    """Decode an in-memory Avro container file into its alerts, without cutouts (see :func:`read_avro`).

    Examples
    --------
    >>> from fink_t2.alerts import sample_data_dir
    >>> path = sample_data_dir() / "ztf_alerts/night_20200101_avro/1095578115815010001.avro"
    >>> [alert["candid"] for alert in decode_avro_bytes(path.read_bytes())]
    [1095578115815010001]
    """
    return list(read_avro(bytes(data), on_damage))


def _read_blocks(data, on_damage: Optional[OnDamage]) -> Iterator[dict]:
    """Alerts of a container file held in ``data`` (bytes or mmap), one block at a time."""
    header_end = _header_size(data)
    header, sync = bytes(data[:header_end]), bytes(data[header_end - SYNC_SIZE : header_end])
    damaged: Optional[AvroDamage] = None
    position = header_end
    while position < len(data):
        marker = data.find(sync, position)
        stop = len(data) if marker < 0 else marker + SYNC_SIZE
        try:
            records = _decode_block(header, data[position:stop])
        except Exception as err:  # noqa: BLE001 - one damaged block must not lose the others
            if on_damage is None:
                raise
            # a damaged marker merges a block with the next one: resume where the block itself says it ends
            end = _declared_end(data, position)
            resume = end + SYNC_SIZE if end is not None and position < end and end + SYNC_SIZE < stop else stop
            if damaged is None:
                damaged = AvroDamage(position, resume - position, err)
            else:  # contiguous with the previous damaged stretch: one report
                damaged = AvroDamage(damaged.offset, resume - damaged.offset, damaged.error)
            position = resume
            continue
        if damaged is not None:
            on_damage(damaged)
            damaged = None
        yield from records
        position = stop
    if damaged is not None:
        on_damage(damaged)


def _header_size(data) -> int:
    """Bytes of the file's header (schema, codec, sync marker), as fastavro reads it; raises if unreadable."""
    peek = bytes(data[:HEADER_PEEK])
    try:
        return _read_header(peek)
    except Exception:  # noqa: BLE001 - fastavro reports a header cut short as ValueError
        if len(peek) == len(data):
            raise
    return _read_header(bytes(data))  # a schema larger than the peek


def _read_header(head: bytes) -> int:
    stream = io.BytesIO(head)
    fastavro.block_reader(stream)  # reads the header only
    return stream.tell()


def _decode_block(header: bytes, block: bytes) -> list[dict]:
    """Records of one block (its bytes up to and including its sync marker), or an exception."""
    records = []
    for decoded in fastavro.block_reader(io.BytesIO(header + block)):
        records.extend(strip_cutouts(record) for record in decoded)
        buffer = decoded.bytes_
        if hasattr(buffer, "getbuffer") and buffer.tell() != len(buffer.getbuffer()):
            raise ValueError(
                f"Avro block of {decoded.num_records} records uses {buffer.tell()} of its {len(buffer.getbuffer())} bytes"
            )
    return records


def _declared_end(data, position: int) -> Optional[int]:
    """Offset of the sync marker of the block at ``position``, from its own record count and byte size."""
    offset = position
    values = []
    for _ in range(2):  # zig-zag varints: record count, then byte size
        shift = value = 0
        while True:
            if offset >= len(data) or shift > 63:
                return None
            byte = data[offset]
            offset += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append((value >> 1) ^ -(value & 1))
    count, size = values
    return offset + size if count >= 0 and size >= 0 else None
