"""Decode ZTF alert Avro files with :mod:`fastavro`, block by block.

Decoding always uses the writer schema embedded in each Avro container file,
so alerts of ZTF schema 3.3 and 4.x, or Avro files re-written by Spark, decode
alike. A container file may hold one alert (the nightly archive) or many.
Cutouts are dropped right after each alert is decoded to bound memory; a caller
may also name the fields it needs (``project``), and fastavro skips the others.

A container file is a header (schema, codec, a 16-byte sync marker) followed by
blocks, each ending with that sync marker. The header is parsed once per distinct
header bytes (a night's ~23 KB ZTF header is the same in every file: parsing it was
most of the cost of a single-alert file). The file is cut at the markers (where each
block's byte count says its marker is, else at the next marker found) and each block
is decoded on its own (:func:`fastavro.schemaless_reader` over its records), so a
damaged block costs only its own alerts: the reader resumes at the next marker.
A block is damaged when fastavro cannot decode it, when its records do not use
exactly its bytes, or when its own marker is wrong.

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

import copy
import io
import mmap
import os
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Union

import fastavro
from fastavro import schemaless_reader

#: top-level alert fields holding the (large) FITS image stamps
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
#: bytes of the marker that ends the header and every block of a container file
SYNC_SIZE = 16
#: first bytes of an Avro object container file
AVRO_MAGIC = b"Obj\x01"


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
#: ``project(writer_schema) -> reader_schema``: decode only the fields a caller needs (fastavro skips the others)
Projection = Callable[[dict], dict]


def strip_cutouts(record: dict) -> dict:
    """Remove the cutout stamps of a decoded alert in place and return it."""
    for name in CUTOUT_FIELDS:
        record.pop(name, None)
    return record


def read_avro(source: Union[str, os.PathLike, BinaryIO, bytes], on_damage: Optional[OnDamage] = None,
              project: Optional[Projection] = None) -> Iterator[dict]:
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
    project : callable, optional
        ``project(writer_schema)`` gives the reader schema to decode with (a subset of the writer's
        fields, same names and types; e.g. :func:`fink_t2.alerts.table.table_reader_schema`): the
        other fields are skipped, not decoded. Without it every field but the cutouts is returned.

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
            yield from read_avro(stream, on_damage, project)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield from _read_blocks(bytes(source), on_damage, project)
        return
    try:  # a file on disk: map it instead of reading it (a container file can be large)
        if source.tell() != 0:
            raise io.UnsupportedOperation("not at the start of the file")
        data = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError):  # not a real file, or an empty one
        yield from _read_blocks(source.read(), on_damage, project)
        return
    with data:
        yield from _read_blocks(data, on_damage, project)


def decode_avro_bytes(data: bytes, on_damage: Optional[OnDamage] = None, project: Optional[Projection] = None) -> list[dict]:
    """Decode an in-memory Avro container file into its alerts, without cutouts (see :func:`read_avro`).

    Examples
    --------
    >>> from fink_t2.alerts import sample_data_dir
    >>> path = sample_data_dir() / "ztf_alerts/night_20200101_avro/1095578115815010001.avro"
    >>> [alert["candid"] for alert in decode_avro_bytes(path.read_bytes())]
    [1095578115815010001]
    """
    return list(read_avro(bytes(data), on_damage, project))


def _read_blocks(data, on_damage: Optional[OnDamage], project: Optional[Projection] = None) -> Iterator[dict]:
    """Alerts of a container file held in ``data`` (bytes or mmap), one block at a time."""
    header_end = _header_size(data)
    layout = _layout(bytes(data[: header_end - SYNC_SIZE]), project)
    sync = bytes(data[header_end - SYNC_SIZE : header_end])
    damaged: Optional[AvroDamage] = None
    position = header_end
    while position < len(data):
        end = _declared_end(data, position)  # where the block says its marker is: no need to search for it
        if end is not None and data[end : end + SYNC_SIZE] == sync:
            stop = end + SYNC_SIZE
        else:  # damaged count or size: cut at the next marker found
            marker = data.find(sync, position)
            stop = len(data) if marker < 0 else marker + SYNC_SIZE
        try:
            records = _decode_block(layout, sync, data[position:stop])
        except Exception as err:
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


@dataclass(frozen=True)
class _Layout:
    """What decoding a container file needs from its header (but its sync marker), parsed once per distinct
    header and projection."""

    metadata: bytes  # the header without its sync marker: magic and metadata map (schema, codec)
    codec: str
    schema: dict
    reader: Optional[dict]


#: parsed headers, keyed by (header bytes without the sync marker, projection): every single-alert file of a
#: night carries the same ~23 KB schema, and only its random sync marker differs
_LAYOUTS: dict = {}
#: distinct headers kept parsed (a night has one or two: ZTF schema versions)
MAX_LAYOUTS = 32


def _layout(metadata: bytes, project: Optional[Projection]) -> _Layout:
    key = (metadata, project)
    layout = _LAYOUTS.get(key)
    if layout is None:
        reader = fastavro.block_reader(io.BytesIO(metadata + bytes(SYNC_SIZE)))  # reads the header only
        writer = reader.writer_schema
        projected = None if project is None else fastavro.parse_schema(project(copy.deepcopy(writer)))
        layout = _Layout(metadata, reader.metadata.get("avro.codec", "null"),
                         fastavro.parse_schema(copy.deepcopy(writer)), projected)
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


def _header_size(data) -> int:
    """Bytes of the file's header (magic, metadata map, sync marker), read from its structure; raises if unreadable."""
    if bytes(data[:4]) != AVRO_MAGIC:
        raise ValueError("not an Avro container file (no Obj\\x01 magic)")
    position = len(AVRO_MAGIC)
    while True:  # the metadata map: blocks of (count, [byte size,] count × (key, value)), ended by a count of 0
        count, position = read_long(data, position)
        if count == 0:
            break
        if count < 0:
            count = -count
            _, position = read_long(data, position)
        for _ in range(2 * count):
            size, position = read_long(data, position)
            if size < 0:
                raise ValueError("Avro header: negative string length")
            position += size
    end = position + SYNC_SIZE
    if end > len(data):
        raise ValueError(f"Avro header cut short ({len(data)} bytes)")
    return end


def _decode_block(layout: _Layout, sync: bytes, block: bytes) -> list[dict]:
    """Records of one block (its bytes up to and including its sync marker), or an exception."""
    count, position = read_long(block, 0)
    size, position = read_long(block, position)
    if count < 0 or size < 0 or position + size + SYNC_SIZE != len(block):
        raise ValueError(f"Avro block declares {count} records in {size} bytes, but {len(block) - position} bytes "
                         "(sync marker included) lie before the next marker")
    if block[position + size:] != sync:
        raise ValueError("Avro block does not end with the file's sync marker")
    payload = block[position : position + size]
    if layout.codec == "deflate":
        payload = zlib.decompress(payload, -15)
    elif layout.codec != "null":  # another codec: fastavro's own block reader
        blocks = fastavro.block_reader(io.BytesIO(layout.metadata + sync + block), layout.reader)
        return [strip_cutouts(record) for decoded in blocks for record in decoded]
    stream = io.BytesIO(payload)
    records = [strip_cutouts(schemaless_reader(stream, layout.schema, layout.reader)) for _ in range(count)]
    if stream.tell() != len(payload):
        raise ValueError(f"Avro block of {count} records uses {stream.tell()} of its {len(payload)} bytes")
    return records


def read_long(data, offset: int) -> tuple[int, int]:
    """The zig-zag varint (Avro long) at ``offset`` and the offset after it; raises if cut short."""
    shift = value = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise ValueError("Avro varint cut short or too long")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), offset


def _declared_end(data, position: int) -> Optional[int]:
    """Offset of the sync marker of the block at ``position``, from its own record count and byte size."""
    try:
        count, offset = read_long(data, position)
        size, offset = read_long(data, offset)
    except ValueError:
        return None
    return offset + size if count >= 0 and size >= 0 else None
