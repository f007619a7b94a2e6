"""Decode ZTF alert Avro files with :mod:`fastavro`.

Decoding always uses the writer schema embedded in each Avro container file
(that is what :func:`fastavro.reader` does when no reader schema is given), so
alerts of ZTF schema 3.3 and 4.x, or Avro files re-written by Spark, decode
alike. A container file may hold one alert (the nightly archive) or many.
Cutouts are dropped right after each alert is decoded to bound memory.

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
import os
from typing import BinaryIO, Iterator, Union

import fastavro

#: top-level alert fields holding the (large) FITS image stamps
CUTOUT_FIELDS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def strip_cutouts(record: dict) -> dict:
    """Remove the cutout stamps of a decoded alert in place and return it."""
    for name in CUTOUT_FIELDS:
        record.pop(name, None)
    return record


def read_avro(source: Union[str, os.PathLike, BinaryIO]) -> Iterator[dict]:
    """Iterate over the alerts of one Avro container file, without cutouts.

    Parameters
    ----------
    source : path-like or binary file object
        An Avro object container file (``Obj\\x01`` magic) holding one or
        several alerts.

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
            yield from read_avro(stream)
        return
    for record in fastavro.reader(source):
        yield strip_cutouts(record)


def decode_avro_bytes(data: bytes) -> list[dict]:
    """Decode an in-memory Avro container file into its alerts, without cutouts.

    Examples
    --------
    >>> from fink_t2.alerts import sample_data_dir
    >>> path = sample_data_dir() / "ztf_alerts/night_20200101_avro/1095578115815010001.avro"
    >>> [alert["candid"] for alert in decode_avro_bytes(path.read_bytes())]
    [1095578115815010001]
    """
    return list(read_avro(io.BytesIO(data)))
