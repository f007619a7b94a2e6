"""Which survey a replay's input holds, told once by the data before anything runs: ZTF or Rubin.

Each file the stream will read (:func:`input_files`: the same files Spark's file source lists) is named by
the top-level fields of its alert schema (:func:`fink_t2.alerts.rubin.packet_survey`: ``diaSource`` for
Rubin ``lsst.v10_0`` and ELAsTiCC, ``candidate`` for ZTF), read from its Avro header or parquet footer
only, never from its name; an Avro header shared by many files (a night of single-alert files) is parsed
once. A nightly tarball is ZTF's. A file whose schema cannot be read (empty, truncated, garbage) tells
nothing: the stream turns it into an ``unreadable_file`` row as for any survey. An input mixing ZTF and
Rubin files is refused (ValueError: one line, exit 2) before anything is written: the two surveys' rows
have different layouts and cannot share one output; so is a rerun into an output holding the other survey's
rows (:func:`check_output_survey`; a replay output's survey is told by its columns, :func:`output_survey`).

>>> from fink_t2.paths import shared_data_dir
>>> input_survey(shared_data_dir() / "lsst_alerts" / "part-2-918301.avro", "avro_file")
'rubin'
>>> input_survey(shared_data_dir() / "ztf_alerts" / "night_20200101_avro", "avro_dir")
'ztf'
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pyarrow.parquet as pq

from fink_t2.alerts.rubin import packet_survey, schema_fields
from fink_t2.alerts.sources import FOLDER_GLOBS
from fink_t2.stream.output import RUN_MARKER, committed_files

ZTF, RUBIN = "ztf", "rubin"
#: the surveys a replay reads
SURVEYS = (ZTF, RUBIN)


def input_files(path, fmt: str) -> list[Path]:
    """``path`` itself, or the files of format ``fmt`` under a folder that Spark's file source lists (at any
    depth, names and folders starting with ``_`` or ``.`` skipped), in name order."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        found += [Path(root, name) for name in files
                  if fnmatch.fnmatch(name, FOLDER_GLOBS[fmt]) and not name.startswith(("_", "."))]
    return sorted(found)


def survey_of_file(path, cache: dict | None = None) -> str | None:
    """``"ztf"``, ``"rubin"``, or None when the file's schema cannot be read or names neither survey.
    ``cache``: Avro schemas' fields by their text, shared across calls
    (:func:`fink_t2.alerts.rubin.schema_fields`)."""
    try:
        return packet_survey(schema_fields(path, cache))
    except Exception:  # unreadable here: the stream makes it an unreadable_file row
        return None


def input_survey(path, fmt: str) -> str:
    """The survey of the replay's input ``path`` (format ``fmt``, :func:`fink_t2.alerts.sources.detect_format`):
    ``"rubin"`` when its readable files are Rubin alerts, else ``"ztf"`` (a tarball, an empty folder, a folder of
    unreadable files: ZTF's path, as before Rubin). ValueError when it holds files of both surveys."""
    if fmt in ("tarball", "staged"):
        return ZTF
    cache: dict = {}
    first: dict[str, Path] = {}
    for file in input_files(path, fmt):
        survey = survey_of_file(file, cache)
        if survey is not None:
            first.setdefault(survey, file)
        if len(first) == len(SURVEYS):
            raise ValueError(f"{path} mixes ZTF and Rubin alert files ({first[ZTF]} is ZTF, {first[RUBIN]} is Rubin): "
                             "replay each survey from its own folder into its own output")
    return RUBIN if RUBIN in first else ZTF


def output_survey(output) -> str | None:
    """The survey of the rows committed in a replay output (``diaSourceId`` among its columns: Rubin), None
    while nothing is committed."""
    files = committed_files(output) if Path(output).is_dir() else []
    if not files:
        return None
    return RUBIN if "diaSourceId" in pq.read_schema(files[0]).names else ZTF


def check_output_survey(output, survey: str) -> None:
    """Refuse (ValueError) to add ``survey``'s rows to a replay output holding the other survey's rows (e.g. a
    first run whose files were all unreadable, written in ZTF's layout, then Rubin files added to its input)."""
    if not Path(output, RUN_MARKER).is_file():
        return
    found = output_survey(output)
    if found is not None and found != survey:
        raise ValueError(f"output {output} holds {found.upper() if found == ZTF else 'Rubin'} rows and the input "
                         f"now holds {'Rubin' if survey == RUBIN else 'ZTF'} alerts: use another output folder")
