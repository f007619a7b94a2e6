"""A nightly tarball cut into chunks of raw Avro members, which the stream decodes in its tasks.

Spark cannot stream the members of one gzip tar archive (gzip cannot be split), so the driver
reads ``ztf_public_YYYYMMDD.tar.gz`` once, member by member (bounded memory, never extracted),
and writes the Avro members unchanged into chunks of about :data:`CHUNK_BYTES`
(``chunk-00000.parquet``, ...: one row per member, its name and its bytes, uncompressed) under
``OUTPUT/_staging/<tarball>/``, each written atomically. It decodes nothing: decompressing and
cutting is all the driver does, the Avro decoding runs in the stream's tasks
(:mod:`fink_t2.alerts.binaryfile`), which start on the first chunks while the driver writes the
next ones. (A chunk is parquet, not tar: reading 500 tar headers in Python cost a task as much
as a fifth of its decoding.)

Every written chunk is recorded in ``_progress.json`` (members and bytes of each chunk), so an
interrupted staging resumes after the last recorded chunk: the chunks are cut by a fixed rule
from the start of the archive, so a chunk written again is byte for byte the one written before.
``_DONE`` marks a finished staging. Damage to the archive itself (a truncated or corrupt file)
keeps the members read before it and becomes one row with ``ingest_error`` in a last chunk
(``chunk-NNNNN.parquet`` in the decoded layout); a member that cannot be decoded is found, and
kept aside, by the task that decodes it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from fink_t2.alerts.layout import MEMBER_CHUNK_SCHEMA, error_rows
from fink_t2.alerts.sources import FOLDER_GLOBS
from fink_t2.alerts.tarball import is_alert_name, tar_members

_LOG = logging.getLogger(__name__)

#: bytes of Avro members per chunk (a chunk is one row of the binaryFile source, so it bounds a task's input)
CHUNK_BYTES = 32 * 2**20
#: members per chunk at most
MAX_MEMBERS_PER_CHUNK = 2000
#: written in the staging folder once every chunk is written: the staging is final
DONE_MARKER = "_DONE"
#: the chunks written so far, and the rule that cut them
PROGRESS_FILE = "_progress.json"
#: seconds the staging waits for the stream to delete a chunk before it writes the next one anyway
MAX_STALL_S = 300.0
#: the stream's file pattern of a staging folder: tar chunks, and the parquet of archive damage
CHUNK_GLOB = FOLDER_GLOBS["staged"]


class StagingStopped(RuntimeError):
    """The staging was asked to stop (the stream that reads it failed); a later run resumes it."""


@dataclass
class StagingState:
    """Where a staging stands: the archive's bytes read, the members and chunks written."""

    source: str
    source_bytes: int
    chunk_bytes: int = CHUNK_BYTES
    max_members: int = MAX_MEMBERS_PER_CHUNK
    chunks: list = field(default_factory=list)  # [name, members, bytes] per chunk
    members: int = 0
    staged_bytes: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    resumed_at_member: int = 0
    done: bool = False


def staging_folder(path: str, staging_dir: str) -> Path:
    """The folder where ``path`` (a tarball) is staged inside ``staging_dir``."""
    return Path(staging_dir) / Path(path).name.replace(".", "_")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: Spark's file source never lists it
    try:
        write(tmp)
    except OSError as err:  # a full disk: an OSError with errno ENOSPC naming the file (pyarrow's may lack both)
        if err.errno != errno.ENOSPC and "No space left on device" not in str(err):
            raise
        tmp.unlink(missing_ok=True)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp)) from err
    os.replace(tmp, path)


class Stager:
    """Cuts one tarball into chunks under ``staging_dir`` (see the module doc); :meth:`run` does the work."""

    def __init__(self, path: str, staging_dir: str, chunk_bytes: Optional[int] = None,
                 max_members: Optional[int] = None):
        self.path = os.path.abspath(path)
        self.folder = staging_folder(path, staging_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        progress = self.folder / PROGRESS_FILE
        if progress.is_file():  # resume with the rule that cut the chunks already written
            self.state = StagingState(**json.loads(progress.read_text()))
            self.state.resumed_at_member = self.state.members
        else:
            self.state = StagingState(self.path, os.path.getsize(path), chunk_bytes or CHUNK_BYTES,
                                      max_members or MAX_MEMBERS_PER_CHUNK)
        self.state.done = (self.folder / DONE_MARKER).exists()

    @property
    def done(self) -> bool:
        return self.state.done

    def remove_chunks(self) -> int:
        """Delete the chunks left once every chunk is processed (the stream deletes the others as it commits
        them); returns how many. ``_progress.json``, ``_DONE`` and the members kept aside stay: a rerun finds
        the staging done and nothing new to read."""
        if not self.done:
            raise RuntimeError(f"staging of {self.path} is not done: its chunks are still needed")
        chunks = sorted(self.folder.glob(CHUNK_GLOB))
        for chunk in chunks:
            chunk.unlink()
        return len(chunks)

    def summary(self) -> dict:
        """What the run's summary says of the staging: members and chunks, bytes read and staged, time spent."""
        state = self.state
        return {"members": state.members, "chunks": len(state.chunks), "archive_bytes": state.source_bytes,
                "staged_bytes": state.staged_bytes, "seconds": round(state.seconds, 2),
                "resumed_at_member": state.resumed_at_member, "done": state.done}

    def _save(self) -> None:
        text = json.dumps(asdict(self.state), indent=1)
        _write_atomically(self.folder / PROGRESS_FILE, lambda tmp: tmp.write_text(text))

    def _write_chunk(self, members: list) -> None:
        name = f"chunk-{len(self.state.chunks):05d}.parquet"
        table = pa.table([pa.array([m for m, _ in members], pa.string()), pa.array([d for _, d in members], pa.binary())],
                         schema=MEMBER_CHUNK_SCHEMA)
        # Avro bytes as they are: no compression, no dictionary (it hashes every ~64 KB value, and no two are
        # equal), no statistics; a chunk is written in less than half the CPU of the defaults
        _write_atomically(self.folder / name, lambda tmp: pq.write_table(table, tmp, compression="none",
                                                                           use_dictionary=False, write_statistics=False))
        size = sum(len(data) for _, data in members)
        self.state.chunks.append([name, len(members), size])
        self.state.members += len(members)
        self.state.staged_bytes += size
        self._save()

    def _wait_for_room(self, max_pending: Optional[int], should_stop: Optional[Callable[[], bool]]) -> None:
        """Wait while ``max_pending`` chunks or more are on disk (the stream deletes those it has committed);
        if none is deleted for :data:`MAX_STALL_S` (a file system where Spark cannot delete), go on anyway."""
        last, since = None, time.monotonic()
        while max_pending and (pending := len(list(self.folder.glob(CHUNK_GLOB)))) >= max_pending:
            if should_stop is not None and should_stop():
                raise StagingStopped(f"staging of {self.path} stopped after {self.state.members} members")
            if pending != last:
                last, since = pending, time.monotonic()
            elif time.monotonic() - since > MAX_STALL_S:
                _LOG.warning("fink-t2: no staged chunk deleted in %.0f s: staging goes on past %d chunks on disk",
                             MAX_STALL_S, max_pending)
                return
            time.sleep(0.2)

    def run(self, on_progress: Optional[Callable[[StagingState], None]] = None,
            should_stop: Optional[Callable[[], bool]] = None, max_pending: Optional[int] = None) -> StagingState:
        """Write the chunks not written yet, then ``_DONE``; returns the final state.

        ``on_progress(state)`` is called after each member read; ``should_stop()`` is asked after each chunk
        written, and True stops the staging (:class:`StagingStopped`) where it is: a later run resumes it.
        ``max_pending``: write a chunk only while fewer chunks lie on disk (staging disk stays bounded while the
        stream deletes the chunks it commits; it must exceed two micro-batches' worth of chunks, or the stream,
        which deletes a batch's chunks when it plans the next one, would wait for chunks that never come).
        """
        if self.done:
            return self.state
        start, state = time.perf_counter(), self.state
        skip, seen, chunk, size, damage = state.members, 0, [], 0, None
        with open(self.path, "rb") as raw:
            try:
                for name, data in tar_members(raw):
                    if not is_alert_name(name):
                        continue
                    seen += 1
                    if seen <= skip:  # staged by an earlier run: read through, not written again
                        continue
                    chunk.append((name, data))
                    size += len(data)
                    state.bytes_read = raw.tell()
                    if on_progress is not None:
                        on_progress(state)
                    if size >= state.chunk_bytes or len(chunk) >= state.max_members:
                        self._wait_for_room(max_pending, should_stop)
                        self._write_chunk(chunk)
                        chunk, size = [], 0
                        if should_stop is not None and should_stop():
                            raise StagingStopped(f"staging of {self.path} stopped after {state.members} members")
            except StagingStopped:
                raise
            except Exception as err:
                damage = f"{type(err).__name__}: {err} (archive damaged after {seen} alerts; those are kept)"
            state.bytes_read = raw.tell()
        if chunk:
            self._wait_for_room(max_pending, should_stop)
            self._write_chunk(chunk)
        if damage is not None:
            _LOG.error("fink-t2: %s: %s", self.path, damage)
            name = f"chunk-{len(state.chunks):05d}.parquet"  # rows of the decoded layout: one per damage
            _write_atomically(self.folder / name, lambda tmp: pq.write_table(error_rows([self.path], [damage]), tmp))
            state.chunks.append([name, 0, 0])
        state.seconds += time.perf_counter() - start
        state.done = True
        self._save()
        (self.folder / DONE_MARKER).touch()
        if on_progress is not None:
            on_progress(state)
        return state


def stage_tarball(path: str, staging_dir: str, chunk_bytes: Optional[int] = None) -> str:
    """Stage ``path`` into chunks under ``staging_dir`` in one go (see :class:`Stager`); return their folder."""
    stager = Stager(path, staging_dir, chunk_bytes)
    stager.run()
    return str(stager.folder)
