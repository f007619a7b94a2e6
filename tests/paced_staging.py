"""Pace the staging of a tarball so that it certainly overlaps the stream that decodes it (tests only).

After ``hold_after`` chunks the stager waits until the stream has committed its first batch
(``OUTPUT/_checkpoint/commits/0``), then writes each further chunk ``delay`` seconds apart: the
stream is decoding and committing chunks while the staging is still going on, whatever the load
of the machine. The replay itself runs unchanged.

As a script: ``python tests/paced_staging.py CHUNK_BYTES fink-t2-arguments...`` runs ``fink-t2`` paced.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fink_t2.alerts import staging


def pace(output: Path, hold_after: int = 2, delay: float = 0.3, timeout: float = 600.0) -> None:
    """Patch :class:`fink_t2.alerts.staging.Stager` in this process (see the module doc)."""
    write = staging.Stager._write_chunk
    first_commit = Path(output) / "_checkpoint" / "commits" / "0"

    def paced(self, members):
        write(self, members)
        if len(self.state.chunks) == hold_after:
            deadline = time.monotonic() + timeout
            while not first_commit.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no batch committed in {timeout} s")
                time.sleep(0.05)
        elif len(self.state.chunks) > hold_after:
            time.sleep(delay)

    staging.Stager._write_chunk = paced


if __name__ == "__main__":
    from fink_t2.cli import main

    chunk_bytes, argv = int(sys.argv[1]), sys.argv[2:]
    staging.CHUNK_BYTES = chunk_bytes
    pace(Path(argv[argv.index("--output") + 1]))
    sys.exit(main(argv))
