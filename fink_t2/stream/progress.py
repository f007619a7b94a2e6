"""What ``fink-t2 replay`` says while it runs (on stderr; stdout keeps the summary).

* :class:`StagingBar`: a progress bar while a nightly tarball is cut into chunks (archive bytes
  read, members staged, members/s, i.e. alerts/s: a nightly archive holds one alert per member);
  shown on a terminal only (``tqdm``'s ``disable=None``).
* :class:`BatchLog`: one line per micro-batch of the stream, from Spark's query progress: the alerts
  the batch wrote (counted by the query's observed metric :data:`BATCH_METRICS`), its rate, the
  alerts of this run so far and their rate, and the staging's state.

>>> log = BatchLog(time.perf_counter() - 2.0, lines=[])
>>> log.batch(0, 1500, 1000.0, 0)
>>> log.lines[0].startswith("fink-t2: batch 0: 1,500 alerts in 1.0 s (1,500 alerts/s); this run: 1,500 alerts")
True
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

from pyspark.sql.streaming import StreamingQueryListener
from tqdm import tqdm

#: name of the observed metric (rows written by a batch; rows standing for unreadable inputs) read by BatchLog
BATCH_METRICS = "fink_t2_batch"


class StagingBar:
    """A tqdm bar over the archive's bytes, with members and members/s; ``update(state)`` per member read."""

    def __init__(self, total_bytes: int, already: int = 0, file=None):
        self._bar = tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc="fink-t2 staging",
                         file=file or sys.stderr, disable=None, mininterval=0.5, dynamic_ncols=True)
        self._start, self._first, self._read = time.perf_counter(), already, 0
        self.members = already

    def update(self, state) -> None:
        """``state``: a :class:`fink_t2.alerts.staging.StagingState` (bytes_read, members staged or in hand)."""
        self._bar.update(state.bytes_read - self._read)
        self._read = state.bytes_read
        self.members += 1
        if self.members % 200 == 0 or state.done:
            rate = (self.members - self._first) / max(time.perf_counter() - self._start, 1e-9)
            self._bar.set_postfix_str(f"{self.members:,} members, {rate:,.0f} alerts/s", refresh=False)

    def close(self) -> None:
        self._bar.close()


class BatchLog(StreamingQueryListener):
    """One stderr line per micro-batch (see the module doc); register with ``spark.streams.addListener``.

    ``staging``: a callable giving a short text on the staging, or None; ``lines``: a list to append the
    lines to instead of printing them (tests).
    """

    def __init__(self, start: float, staging=None, lines: Optional[list] = None):
        super().__init__()
        self.start, self.staging, self.lines = start, staging, lines
        self.query_id = None
        self.alerts = 0
        self._lock = threading.Lock()
        self._terminated = threading.Event()

    def wait_terminated(self, timeout: float = 10.0) -> bool:
        """Wait until Spark delivered the query's termination event to this listener (its last event): removed
        before, the listener may still be called from the JVM while Python exits, which logs a Java ERROR."""
        return self._terminated.wait(timeout)

    def batch(self, batch_id: int, rows: int, duration_ms: float, unreadable: int) -> None:
        with self._lock:
            self.alerts += rows
            total = self.alerts
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        seconds = max(duration_ms / 1000.0, 1e-9)
        line = (f"fink-t2: batch {batch_id}: {rows:,} alerts in {seconds:.1f} s ({rows / seconds:,.0f} alerts/s); "
                f"this run: {total:,} alerts, {total / elapsed:,.0f} alerts/s")
        if unreadable:
            line += f"; {unreadable} unreadable input(s)"
        if self.staging is not None:
            line += f"; {self.staging()}"
        if self.lines is not None:
            self.lines.append(line)
        else:
            tqdm.write(line, file=sys.stderr)

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        if self.query_id is not None and str(progress.id) != self.query_id:
            return
        metrics = (progress.observedMetrics or {}).get(BATCH_METRICS)
        if metrics is None:  # a batch without data (none is reported unless it planned files)
            return
        rows, unreadable = int(metrics["rows"] or 0), int(metrics["unreadable"] or 0)
        self.batch(progress.batchId, rows, float(progress.durationMs.get("triggerExecution", 0)), unreadable)

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        if self.query_id is None or str(event.id) == self.query_id:
            self._terminated.set()
