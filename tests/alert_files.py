"""Alert files for the tests, made from real ZTF alerts: Avro re-written with another schema, tarballs,
and real container files with one block damaged (the shared helpers of several test files)."""

from __future__ import annotations

import copy
import io
import tarfile
from pathlib import Path

import fastavro

from fink_t2.paths import SHARED_DATA

AVRO_NIGHT = Path(SHARED_DATA) / "ztf_alerts" / "night_20200101_avro"
#: a real container file of 11 alerts in 6 blocks (2, 2, 2, 2, 2, 1 alerts)
CONTAINER = Path(SHARED_DATA) / "ztf_alerts" / "multi_alert_avro_2019" / "avro_multi_alerts.avro"
#: ways to damage one block, each detectable: its payload, its sync marker, its record count, its byte size
DAMAGES = ("payload", "marker", "count", "size")


def writer_schema(path: Path) -> dict:
    return fastavro.reader(io.BytesIO(path.read_bytes())).writer_schema


def to_avro(record: dict, schema: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), [record])
    return buffer.getvalue()


def schema_4x(schema: dict) -> dict:
    """ZTF 3.3 writer schema made 4.x-like: new version, an added candidate field with a default,
    a removed optional candidate field (ssnamenr) and ZTF 4's top-level forced-photometry history."""
    schema = copy.deepcopy(schema)
    candidate = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    candidate["version"] = "4.02"
    candidate["fields"] = [f for f in candidate["fields"] if f["name"] != "ssnamenr"]
    candidate["fields"].append({"name": "new_in_4x", "type": ["null", "float"], "default": None})
    fp = {"type": "record", "name": "fp_hist", "fields": [
        {"name": "jd", "type": "double"}, {"name": "forcediffimflux", "type": ["null", "float"], "default": None}]}
    schema["fields"].insert(6, {"name": "fp_hists", "type": ["null", {"type": "array", "items": fp}], "default": None})
    return schema


def as_avro_record(record: dict, version: str) -> dict:
    """A Fink science-stage record back into a ZTF alert record (what the nightly archive holds)."""
    return {"schemavsn": version, "publisher": "ZTF (University of Washington)", "objectId": record["objectId"],
            "candid": record["candid"], "candidate": dict(record["candidate"]), "prv_candidates": record["prv_candidates"],
            "cutoutScience": None, "cutoutTemplate": None, "cutoutDifference": None}


def write_tarball(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def container_blocks(data: bytes) -> list[tuple[int, int, list[int]]]:
    """(byte offset, byte size with its sync marker, candids) of each block of an intact container file."""
    return [(block.offset, block.size, [r["candid"] for r in block]) for block in fastavro.block_reader(io.BytesIO(data))]


def damage_block(data: bytes, offset: int, size: int, how: str) -> bytes:
    """``data`` with the block at ``offset`` damaged ``how`` (one of DAMAGES); every other byte unchanged."""
    damaged = bytearray(data)
    if how == "payload":  # the start of its first alert (schema version, publisher): no longer Avro strings
        damaged[offset + 8 : offset + 40] = b"\xff" * 32
    elif how == "marker":  # the 16-byte sync marker that ends it
        damaged[offset + size - 16 : offset + size - 8] = bytes(8)
    elif how == "count":  # its record count (first varint): -64
        damaged[offset] = 0x7F
    elif how == "size":  # its byte size (second varint) off by a few bytes
        damaged[offset + 2] ^= 0x01
    else:
        raise ValueError(how)
    assert damaged != data
    return bytes(damaged)
