"""The output folder of a replay: whose it is, what is committed in it, what was unreadable, the summary.

``OUTPUT/`` holds the parquet written by the stream's file sink, and beside it:

``_fink_t2_run.json`` (:data:`RUN_MARKER`)
    the input (and model) the folder belongs to, written by the first run (:func:`claim_output`);
``_spark_metadata/`` (:data:`SINK_LOG`)
    the sink's log: which parquet files are committed (:func:`committed_files`, :func:`read_output`);
``_checkpoint/``, ``_staging/``
    the stream's checkpoint, and a staged nightly tarball;
``_unreadable/`` (:data:`UNREADABLE_DIR`)
    a copy of every input file that could not be read, listed in ``index.json`` (:func:`keep_aside`);
``_fink_t2_summary.json`` (:data:`SUMMARY_FILE`)
    the counts of the last run (:func:`summarize`, :func:`write_summary`, :func:`read_summary`);
``_fink_t2_spark.log`` (:data:`SPARK_LOG`)
    what the JVM of each run printed (Spark's log, the Python workers' stderr), unless ``--verbose``.

The sink's log holds one file per committed batch (``0``, ``1``, ..., every tenth compacted
into ``N.compact`` with all earlier entries): a ``v1`` line, then one JSON entry per file written.

>>> import tempfile
>>> out = Path(tempfile.mkdtemp())
>>> (out / SINK_LOG).mkdir()
>>> entry = lambda name: json.dumps({"path": f"file://{out}/{name}", "action": "add"})
>>> _ = (out / SINK_LOG / "9.compact").write_text("v1\\n" + entry("a.parquet"))
>>> _ = (out / SINK_LOG / "10").write_text("v1\\n" + entry("b.parquet"))
>>> _ = (out / SINK_LOG / "3").write_text("v1\\n" + entry("old.parquet"))
>>> [Path(p).name for p in committed_files(out)]
['a.parquet', 'b.parquet']
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path

from fink_t2.alerts.sources import local_path
from fink_t2.core.cuts import STATUS_OK, STATUS_UNREADABLE
from fink_t2.runtime.model_ref import file_sha256

_LOG = logging.getLogger(__name__)

#: written in OUTPUT at the first run: the input (and model) the output folder belongs to
RUN_MARKER = "_fink_t2_run.json"
#: the file sink's log of committed files
SINK_LOG = "_spark_metadata"
CHECKPOINT_DIR = "_checkpoint"
STAGING_DIR = "_staging"
#: unreadable input files are copied into OUTPUT/_unreadable/ after each run, listed in its index.json
UNREADABLE_DIR = "_unreadable"
#: an unreadable file larger than this (a whole nightly tarball) is listed but left where it is
MAX_KEPT_BYTES = 64 * 2**20
#: counts of the last run, read by fink-t2 report
SUMMARY_FILE = "_fink_t2_summary.json"
#: what the JVM of a replay printed (appended run after run), unless the replay is verbose
SPARK_LOG = "_fink_t2_spark.log"
#: how a full disk shows in an error that crossed from the JVM (no errno left by then)
DISK_FULL_TEXT = "No space left on device"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def claim_output(output: str, source: str, model: str) -> None:
    """Make ``output`` the output folder of ``source``, or refuse (ValueError) without writing anything.

    The first run writes ``OUTPUT/_fink_t2_run.json`` with the absolute input path; a later run into the
    same folder must name the same input (results of two nights never mix). A folder that is not empty
    and holds no marker is refused too. A different model only warns (its scores would sit beside the others).
    """
    marker = Path(output, RUN_MARKER)
    source = os.path.abspath(source)
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"output {output} is a file, not a folder")
    if marker.is_file():
        try:
            run = json.loads(marker.read_text())
            recorded = run["input"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"output {output}: unreadable {RUN_MARKER} ({err!r}); use another output folder") from None
        if os.path.realpath(recorded) != os.path.realpath(source):
            raise ValueError(f"output {output} holds the results of {recorded}, not {source}: use another output folder")
        if run.get("model_sha256") not in (None, file_sha256(model)):
            _LOG.warning("fink-t2: %s was scored with model %s; new alerts are scored with %s", output, run.get("model"), model)
        return
    if os.path.isdir(output) and os.listdir(output):
        raise ValueError(f"output {output} is not empty and has no {RUN_MARKER}: not a fink-t2 replay output, use another folder")
    os.makedirs(output, exist_ok=True)
    run = {"input": source, "model": model, "model_sha256": file_sha256(model), "created_utc": _now_utc()}
    _write_atomically(marker, json.dumps(run, indent=2))


def disk_full_folder(err: BaseException, output: str) -> str | None:
    """The folder a "no space left on device" error was writing to, None for another error.

    ``err`` or an error it was raised from is an OSError with ``errno.ENOSPC`` (its ``filename``'s folder, e.g. the
    staging's, else ``output``), or says so in its text (an error of Spark's own writers: ``output``).

    >>> import errno
    >>> disk_full_folder(OSError(errno.ENOSPC, "No space left on device", "/out/_staging/n/.c.tmp"), "/out")
    '/out/_staging/n'
    >>> disk_full_folder(RuntimeError("Job aborted ... java.io.IOException: No space left on device"), "/out")
    '/out'
    >>> disk_full_folder(ValueError("other"), "/out") is None
    True
    """
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return os.path.dirname(os.path.abspath(seen.filename)) if seen.filename else output
        if DISK_FULL_TEXT in str(seen):
            return output
        seen = seen.__cause__ or seen.__context__
    return None


def _log_files(output: Path) -> dict[int, Path]:
    """Batch number → its file in the sink's log (none: no batch committed yet, or no log)."""
    log = output / SINK_LOG
    if not log.is_dir():
        return {}
    return {int(m[1]): f for f in log.iterdir() if (m := re.fullmatch(r"(\d+)(\.compact)?", f.name))}


def committed_files(output_dir) -> list[str]:
    """Parquet files of a Spark file-sink output, as its ``_spark_metadata`` log commits them.

    Without a log, every ``*.parquet`` not under a ``_``/``.`` folder (Spark's own rule). A logged file
    that is not where the log says (the folder was moved) is taken from ``output_dir``.
    """
    output_dir = Path(output_dir)
    if not (output_dir / SINK_LOG).is_dir():
        return sorted(
            str(p) for p in output_dir.rglob("*.parquet")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(output_dir).parts)
        )
    batches = _log_files(output_dir)
    compacted = [b for b, f in batches.items() if f.name.endswith(".compact")]
    start = max(compacted, default=min(batches, default=0))
    files: dict[str, None] = {}
    for batch in sorted(b for b in batches if b >= start):
        lines = batches[batch].read_text().splitlines()
        if not lines or lines[0] != "v1":
            raise ValueError(f"{batches[batch]}: not a Spark file sink log (expected a 'v1' header)")
        for entry in map(json.loads, filter(str.strip, lines[1:])):
            path = local_path(entry["path"])
            path = entry["path"] if path is None else path if os.path.exists(path) else str(output_dir / Path(path).name)
            if entry.get("action", "add") == "delete":
                files.pop(path, None)
            else:
                files[path] = None
    return list(files)


def read_output(spark, output: str):
    """The committed output as a Spark DataFrame (through the sink's log), or None while no batch wrote a file."""
    from pyspark.errors import AnalysisException

    if not _log_files(Path(output)):
        return None
    try:
        return spark.read.parquet(output)
    except AnalysisException as err:  # batches committed without any file (empty ones)
        if err.getCondition() != "UNABLE_TO_INFER_SCHEMA":
            raise
        return None


def count_output(spark, output: str) -> int:
    """Rows committed in ``output`` (0 before the first batch)."""
    written = read_output(spark, output)
    return 0 if written is None else written.count()


def _now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def last_processing_run(summary: dict | None) -> dict | None:
    """The last run into an output that processed alerts, from its summary (also one written by an older
    fink-t2, which kept only the last run's counts); None when no run processed any alert."""
    if not summary:
        return None
    if summary.get("last_processing_run"):
        return summary["last_processing_run"]
    if summary.get("alerts_processed_this_run", 0) > 0:
        return {"alerts_processed": summary["alerts_processed_this_run"], "wall_time_s": summary.get("wall_time_s"),
                "alerts_per_s": summary.get("alerts_per_s"), "finished_utc": None}
    return None


def summarize(spark, output: str, count_before: int, wall_s: float, previous: dict | None = None) -> dict:
    """Counts of the whole output (exactly-once view through the sink's log), this run's speed, and
    ``last_processing_run``: this run if it processed alerts, else the one ``previous`` (the summary of the
    run before) names, so that a rerun that had nothing left to do does not hide the night's throughput."""
    written = read_output(spark, output)  # None: nothing committed yet (a night with zero files)
    counts = {} if written is None else {r["t2_status"]: r["count"] for r in written.groupBy("t2_status").count().collect()}
    total = sum(counts.values())
    processed_this_run = total - count_before
    rate = round(processed_this_run / wall_s, 1) if wall_s > 0 and processed_this_run > 0 else None
    this_run = {"alerts_processed": processed_this_run, "wall_time_s": round(wall_s, 2), "alerts_per_s": rate,
                "finished_utc": _now_utc()}
    return {
        "output": output,
        "alerts_in_output": total,
        "classified": counts.get(STATUS_OK, 0),
        "rejected_by_cuts": {k: v for k, v in sorted(counts.items()) if k not in (STATUS_OK, STATUS_UNREADABLE)},
        "unreadable_files": counts.get(STATUS_UNREADABLE, 0),
        "alerts_processed_this_run": processed_this_run,
        "wall_time_s": round(wall_s, 2),
        "alerts_per_s": rate,  # None when this run processed nothing (all was already in the output)
        "last_processing_run": this_run if processed_this_run > 0 else last_processing_run(previous),
    }


def write_summary(output: str, summary: dict) -> None:
    """Write the summary of a run as ``OUTPUT/_fink_t2_summary.json`` (atomically)."""
    _write_atomically(Path(output, SUMMARY_FILE), json.dumps(summary, indent=2))


def read_summary(output) -> dict | None:
    """The summary of the last run into ``output``, None if there is none (an output of an older fink-t2)."""
    path = Path(output, SUMMARY_FILE)
    return json.loads(path.read_text()) if path.is_file() else None


def keep_aside(spark, output: str, empty_files=()) -> list[dict]:
    """Copy every unreadable input file of the output into ``OUTPUT/_unreadable/`` (once) and list them.

    Unreadable: rows with ``ingest_error`` (one per file that could not be decoded, or per damage met in a
    tarball) and ``empty_files``. Returns (and writes to ``_unreadable/index.json``) one entry per file:
    ``source``, ``error``, ``kept_as`` (file name in ``_unreadable/``, or None with a ``note``).
    """
    problems = {}
    written = read_output(spark, output)
    if written is not None:
        rows = written.where(written["ingest_error"].isNotNull()).select("source_file", "ingest_error")
        problems = {r["source_file"]: r["ingest_error"] for r in rows.collect()}
    problems.update({f: "empty file: no alert (Spark's file source does not list files of length 0)" for f in empty_files})
    if not problems:
        return []
    folder = Path(output, UNREADABLE_DIR)
    index_file = folder / "index.json"
    known = {e["source"]: e for e in json.loads(index_file.read_text())} if index_file.is_file() else {}
    taken = {e["kept_as"] for e in known.values() if e.get("kept_as")}
    folder.mkdir(exist_ok=True)
    for source, error in sorted(problems.items()):
        if source in known and (known[source].get("kept_as") is None or (folder / known[source]["kept_as"]).is_file()):
            continue
        entry = {"source": source, "error": error, "kept_as": None}
        local = local_path(source)
        if local is None or not os.path.isfile(local):
            entry["note"] = "not a readable local file: not copied"
        elif os.path.getsize(local) > MAX_KEPT_BYTES:
            entry["note"] = f"larger than {MAX_KEPT_BYTES} bytes: left in place"
        else:
            name, n = Path(local).name, 1
            while name in taken:  # same file name, another source
                name, n = f"{n}-{Path(local).name}", n + 1
            tmp = folder / f".{name}.tmp"
            shutil.copyfile(local, tmp)
            os.replace(tmp, folder / name)
            entry["kept_as"] = name
            taken.add(name)
        _LOG.error("fink-t2: unreadable input %s (%s); kept as %s", source, error, entry["kept_as"] and folder / entry["kept_as"])
        known[source] = entry
    _write_atomically(index_file, json.dumps(sorted(known.values(), key=lambda e: e["source"]), indent=2))
    return [known[source] for source in sorted(problems)]
