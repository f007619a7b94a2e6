"""Helpers of the replay and output tests: run the command line, split an output, snapshot a folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyspark.sql import functions as F


def split_output(spark, out) -> dict:
    """Alert rows and unreadable-file rows of an output (split in Spark: a null candid would make pandas use floats)."""
    df = spark.read.parquet(str(out))
    return {"good": df.where(F.col("ingest_error").isNull()).toPandas(), "errors": df.where(F.col("ingest_error").isNotNull()).toPandas()}


def replay_cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """``fink-t2 replay ARGS`` in a new process of this interpreter."""
    return subprocess.run([sys.executable, "-m", "fink_t2.cli", "replay", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(proc, *words):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fink-t2 replay: error:"), proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` still runs."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
