"""A synthetic nightly archive ``ztf_public_YYYYMMDD.tar.gz`` made of real ZTF alerts, for scale tests.

Each member is a real single-alert Avro file of the archive (its header, schema,
history and cutouts byte for byte) with a new ``objectId`` and a new ``candid``
(top-level and ``candidate.candid``), so that every alert of the night is distinct
and the stream's exactly-once accounting can be checked. The ids are patched in
place, with encodings of the same length, so no alert is re-encoded: a 100,000-alert
night is written as fast as gzip allows.

>>> import io
>>> from fink_t2.alerts import read_tarball, sample_data_dir
>>> folder = sample_data_dir() / "ztf_alerts/night_20200101_avro"
>>> buffer = io.BytesIO()
>>> write_night(buffer, templates(folder)[:2], 3)
3
>>> _ = buffer.seek(0)
>>> [(a["objectId"], a["candid"], a["candidate"]["candid"]) for a in read_tarball(buffer)]  # doctest: +NORMALIZE_WHITESPACE
[('ZTF99aaaaaaa', 2000000000000000000, 2000000000000000000),
 ('ZTF99aaaaaab', 2000000000000000001, 2000000000000000001),
 ('ZTF99aaaaaac', 2000000000000000002, 2000000000000000002)]
"""

from __future__ import annotations

import io
import os
import string
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import fastavro

from fink_t2.alerts.avro import read_long
from fink_t2.alerts.tarball import gzip_file_type

#: candid of the first synthetic alert (ZTF's are ~1.1e18; same 9-byte Avro encoding)
FIRST_CANDID = 2_000_000_000_000_000_000
#: objectId prefix of the synthetic alerts (ZTF + a year no real alert has), then 7 letters
OBJECT_PREFIX = "ZTF99"


def _zigzag(value: int) -> bytes:
    """Avro's encoding of a long."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def object_id(index: int) -> str:
    """``ZTF99`` + 7 lower-case letters numbering ``index`` (unique below 26**7)."""
    letters = []
    for _ in range(7):
        index, rest = divmod(index, 26)
        letters.append(string.ascii_lowercase[rest])
    return OBJECT_PREFIX + "".join(reversed(letters))


@dataclass(frozen=True)
class Template:
    """A real single-alert Avro file and where its ids lie in its bytes."""

    name: str
    data: bytes
    object_at: int  # offset of the 12 objectId characters
    candid_at: tuple  # offsets of the top-level candid and of candidate.candid encodings
    candid_size: int

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "Template":
        data = Path(path).read_bytes()
        reader = fastavro.reader(io.BytesIO(data))
        if reader.codec != "null":
            raise ValueError(f"{path}: codec {reader.codec!r}, expected the archive's uncompressed single-alert files")
        record = next(reader)
        header = data.index(data[-16:])  # first occurrence of the sync marker: the end of the header
        offset = header + 16
        _, offset = read_long(data, offset)  # record count
        _, offset = read_long(data, offset)  # block size
        for _ in range(2):  # schemavsn, publisher
            length, offset = read_long(data, offset)
            offset += length
        length, offset = read_long(data, offset)
        if length != 12 or data[offset : offset + 12].decode() != record["objectId"]:
            raise ValueError(f"{path}: objectId not where a ZTF alert has it")
        encoded = _zigzag(record["candid"])
        top = offset + 12
        inner = data.find(encoded, top + len(encoded))
        if data[top : top + len(encoded)] != encoded or inner < 0 or record["candidate"]["candid"] != record["candid"]:
            raise ValueError(f"{path}: candid not where a ZTF alert has it")
        return cls(Path(path).name, data, offset, (top, inner), len(encoded))

    def alert(self, index: int) -> bytes:
        """The template's bytes with objectId and candid of synthetic alert number ``index``."""
        candid = _zigzag(FIRST_CANDID + index)
        if len(candid) != self.candid_size:
            raise ValueError(f"candid {FIRST_CANDID + index} does not encode in {self.candid_size} bytes")
        data = bytearray(self.data)
        data[self.object_at : self.object_at + 12] = object_id(index).encode()
        for at in self.candid_at:
            data[at : at + self.candid_size] = candid
        return bytes(data)


def templates(folder: Union[str, os.PathLike]) -> list[Template]:
    """Templates from every ``*.avro`` single-alert file of ``folder``, sorted by name."""
    found = [Template.from_file(path) for path in sorted(Path(folder).glob("*.avro"))]
    if not found:
        raise ValueError(f"no .avro alert file in {folder}")
    return found


def write_night(target: Union[str, os.PathLike, BinaryIO], pool: Sequence[Template], n_alerts: int,
                night: str = "20991231", compresslevel: int = 1) -> int:
    """Write a gzip tarball of ``n_alerts`` alerts cycling through ``pool`` (member ``NIGHT/<candid>.avro``, as
    the archive names them); returns the number written. ``compresslevel`` 1 writes fast (ISA-L's level 1 when
    installed); decompression speed barely depends on it."""
    if isinstance(target, (str, os.PathLike)):
        tmp = Path(f"{target}.part")
        with open(tmp, "wb") as stream:
            write_night(stream, pool, n_alerts, night, compresslevel)
        os.replace(tmp, target)
        return n_alerts
    now = int(time.time())
    with gzip_file_type()(fileobj=target, mode="wb", compresslevel=min(compresslevel, 3), mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for index in range(n_alerts):
            data = pool[index % len(pool)].alert(index)
            info = tarfile.TarInfo(f"{night}/{FIRST_CANDID + index}.avro")
            info.size, info.mtime = len(data), now
            tar.addfile(info, io.BytesIO(data))
    return n_alerts
