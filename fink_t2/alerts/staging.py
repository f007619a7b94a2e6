"""A nightly tarball staged as flat parquet chunks, which the binaryFile source then reads.

Spark cannot stream the members of one tar archive, so the replay first streams
``ztf_public_YYYYMMDD.tar.gz`` member by member (bounded memory; never extracted)
into parquet chunks of the alert table, written atomically, under ``OUTPUT/_staging``.
Damage met on the way (a member that cannot be decoded, a truncated archive) becomes
one row each with ``ingest_error`` in a last chunk, so the stream reports it like an
unreadable file (:mod:`fink_t2.alerts.binaryfile`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow.parquet as pq

from fink_t2.alerts.binaryfile import error_rows
from fink_t2.alerts.table import records_to_table
from fink_t2.alerts.tarball import read_tarball

_LOG = logging.getLogger(__name__)

#: alerts per staged chunk
ALERTS_PER_CHUNK = 5000
#: written in the staging folder once every chunk is written: the staging is final
DONE_MARKER = "_DONE"


def stage_tarball(path: str, staging_dir: str, alerts_per_chunk: int = ALERTS_PER_CHUNK) -> str:
    """Stream a nightly tarball into flat parquet chunks (written atomically); return their folder.

    A damaged tarball never stops the replay: a member that cannot be decoded is
    saved under ``_unreadable/`` of the folder, and a truncated or corrupt archive
    keeps the alerts read before the damage; each problem becomes one row with
    ``ingest_error`` in a last chunk, so the stream reports it as an unreadable file.
    The staging is then final (``_DONE``): replay a repaired tarball into a new output.
    """
    target = Path(staging_dir) / Path(path).name.replace(".", "_")
    done = target / DONE_MARKER
    if done.exists():
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    chunk, index, errors, n_alerts = [], 0, [], 0

    def write(table):
        nonlocal index
        tmp = target / f".chunk-{index:05d}.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target / f"chunk-{index:05d}.parquet")
        index += 1

    def flush():
        nonlocal chunk
        write(records_to_table(chunk))
        chunk = []

    def on_error(member, data, err):
        where = os.path.abspath(path)
        if member is None:
            message = f"{type(err).__name__}: {err} (archive damaged after {n_alerts} alerts; those are kept)"
        else:
            kept = target / "_unreadable" / Path(member).name
            kept.parent.mkdir(exist_ok=True)
            kept.write_bytes(data)
            where, message = str(kept), f"{type(err).__name__}: {err} (member {member} of {path})"
        _LOG.error("fink-t2: %s: %s", where, message)
        errors.append((where, message))

    for record in read_tarball(path, on_error=on_error):
        chunk.append(record)
        n_alerts += 1
        if len(chunk) >= alerts_per_chunk:
            flush()
    if chunk or index == 0:
        flush()
    if errors:
        write(error_rows([where for where, _ in errors], [message for _, message in errors]))
    done.touch()
    return str(target)
