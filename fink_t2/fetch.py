"""Download a ZTF public nightly archive ``ztf_public_YYYYMMDD.tar.gz`` (``fink-t2 fetch``).

The archive is written to ``NAME.part``; an interrupted download is resumed
from that file's size with an HTTP ``Range`` request (a server that ignores
the range and answers ``200`` is read again from the start). Only once the
whole file has arrived and reads as a tarball of Avro alerts — every member
scanned to the end, the first alert decoded — is ``NAME.part`` renamed to
``NAME``, so a file with the final name is always complete. Standard library
``urllib`` only; the base URL is ``--base-url``, else ``$FINK_T2_ARCHIVE_URL``,
else :data:`DEFAULT_BASE_URL`.

>>> archive_url("20200101", "http://127.0.0.1:8000/public")
'http://127.0.0.1:8000/public/ztf_public_20200101.tar.gz'
>>> archive_name("2020-01-01")
Traceback (most recent call last):
...
ValueError: bad night '2020-01-01': expected a date YYYYMMDD, e.g. 20200101
"""

from __future__ import annotations

import datetime
import gzip
import http.client
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fink_t2.alerts.avro import decode_avro_bytes
from fink_t2.alerts.tarball import is_alert_member

DEFAULT_BASE_URL = "https://ztf.uw.edu/alerts/public/"
ENV_BASE_URL = "FINK_T2_ARCHIVE_URL"
CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """A night could not be downloaded (missing night, network failure, bad archive)."""


def archive_name(night: str) -> str:
    """``ztf_public_YYYYMMDD.tar.gz`` for a night given as ``YYYYMMDD`` (ValueError otherwise)."""
    try:
        if not re.fullmatch(r"\d{8}", night):
            raise ValueError
        datetime.datetime.strptime(night, "%Y%m%d")
    except ValueError:
        raise ValueError(f"bad night {night!r}: expected a date YYYYMMDD, e.g. 20200101") from None
    return f"ztf_public_{night}.tar.gz"


def archive_url(night: str, base_url: str | None = None) -> str:
    """URL of a night's archive under ``base_url`` (default ``$FINK_T2_ARCHIVE_URL`` or DEFAULT_BASE_URL)."""
    base = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    return base.rstrip("/") + "/" + archive_name(night)


def check_archive(path: str | os.PathLike) -> int:
    """Number of Avro alerts in a nightly tarball; FetchError unless it reads to the end.

    Streams every member (nothing extracted), decodes the first ``.avro`` one,
    and for gzip reads through to the trailer so a truncated file fails.
    """
    count = 0
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
            raw.seek(0)
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    if is_alert_member(member):
                        if count == 0 and not decode_avro_bytes(tar.extractfile(member).read()):
                            raise ValueError(f"first alert file {member.name} holds no alert")
                        count += 1
            while stream.read(CHUNK_BYTES):  # to the end: gzip checks its length and CRC there
                pass
    except Exception as err:
        raise FetchError(f"{path} is not a readable tarball of Avro alerts ({type(err).__name__}: {err})") from err
    if count == 0:
        raise FetchError(f"{path} holds no .avro alert")
    return count


def _download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (Range from its size); FetchError if incomplete."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send for that range: start again
            part.unlink()
            return _download(url, part, timeout, progress)
        raise
    with response:
        if response.status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise FetchError(f"{url}: server answered range {response.headers.get('Content-Range')!r}, asked from {offset}")
        else:  # 200: the server sends the whole file, whatever was asked
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5], disable=not progress
        ) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes")


def fetch_night(
    night: str,
    dest: str | os.PathLike = ".",
    base_url: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download and check the archive of ``night`` (YYYYMMDD) into ``dest``; return its path.

    A network failure is retried ``retries`` times (resuming), then raised as
    FetchError with the partial ``.part`` kept for the next run to resume; a
    missing night (404) or an unreadable archive raise FetchError at once (a
    bad archive's ``.part`` is removed). An archive already in ``dest`` is kept.
    """
    url = archive_url(night, base_url)
    final = Path(dest) / archive_name(night)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    for attempt in range(retries + 1):
        try:
            _download(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise FetchError(f"no archive for night {night}: {url} not found (HTTP 404)") from None
            raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            if attempt == retries:
                kept = f"; {part.stat().st_size} bytes kept in {part}, run again to resume" if part.exists() else ""
                raise FetchError(f"network failure fetching {url}: {reason}{kept}") from None
            time.sleep(min(2**attempt, 30))
    try:
        check_archive(part)
    except FetchError:
        part.unlink()
        raise
    os.replace(part, final)
    return final
