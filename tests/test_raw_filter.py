"""The raw-alert filter: Fink's quality cuts and the stand-in for its cross-match, rule by rule, on real alerts,
and the agreement table in docs/ is what the script computes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from alert_files import AVRO_NIGHT

from fink_t2.alerts import read_fink_parquet
from fink_t2.alerts.binaryfile import decode_file
from fink_t2.alerts.science_stage import raw_filter
from fink_t2.core.cuts import CDSXMATCH_UNKNOWN, RAW_STATUSES
from fink_t2.core.raw_filter import (
    FIELDS,
    GAIA_MAX_DISTANCE_ARCSEC,
    GAIA_MAX_MAG,
    MIN_DRB,
    MIN_RB,
    PS1_MAX_DISTANCE_ARCSEC,
    PS1_MIN_SGSCORE,
    raw_status,
)
from fink_t2.paths import REPO_ROOT, SAMPLE_NIGHT

#: an alert that passes every rule
CLEAN = {"nbad": 0, "rb": 0.9, "fid": 1, "drb": 0.99, "sgscore1": 0.02, "distpsnr1": 0.4, "neargaia": 12.0,
         "maggaia": 15.0, "isdiffpos": "t"}


def _status(**changes):
    return raw_status({name: [changes.get(name, CLEAN[name])] for name in FIELDS})[0]


@pytest.mark.parametrize("changes, expected", [
    ({}, None),
    ({"rb": MIN_RB}, None), ({"rb": MIN_RB - 1e-6}, "bad_quality"), ({"rb": None}, "bad_quality"),
    ({"nbad": 1}, "bad_quality"), ({"nbad": None}, "bad_quality"), ({"fid": 3}, "bad_quality"),
    ({"fid": 2}, None), ({"fid": None}, "bad_quality"),
    ({"drb": MIN_DRB - 1e-6}, "bogus"), ({"drb": MIN_DRB}, None), ({"drb": None}, None),
    ({"sgscore1": PS1_MIN_SGSCORE}, "ps1_star"), ({"sgscore1": 0.99, "distpsnr1": PS1_MAX_DISTANCE_ARCSEC + 0.01}, None),
    ({"sgscore1": 0.5, "distpsnr1": 0.1}, None), ({"sgscore1": 0.99, "distpsnr1": -999.0}, None),
    ({"neargaia": GAIA_MAX_DISTANCE_ARCSEC, "maggaia": GAIA_MAX_MAG}, "gaia_star"),
    ({"neargaia": 0.2, "maggaia": GAIA_MAX_MAG + 0.1}, None), ({"neargaia": -999.0, "maggaia": -999.0}, None),
    ({"neargaia": 0.2, "maggaia": -999.0}, None),
    ({"isdiffpos": "f"}, "negative_difference"), ({"isdiffpos": "0"}, "negative_difference"),
    ({"isdiffpos": "1"}, None), ({"isdiffpos": None}, None),
])
def test_each_rule_and_its_threshold(changes, expected):
    assert _status(**changes) == expected


def test_the_first_rule_failed_is_the_status_and_science_stage_alerts_are_left_alone():
    fails = [{"rb": 0.1}, {"drb": 0.1}, {"sgscore1": 0.99, "distpsnr1": 0.1}, {"neargaia": 0.1, "maggaia": 12.0},
             {"isdiffpos": "f"}]  # one way to fail each rule, in RAW_STATUSES' order
    for first, expected in enumerate(RAW_STATUSES):
        changes = {k: v for fail in fails[first:] for k, v in fail.items()}  # this rule and every later one fail
        assert _status(**changes) == expected
    columns = {name: [CLEAN[name], CLEAN[name]] for name in FIELDS}
    columns["rb"] = [0.1, 0.1]
    assert raw_status(columns, science=np.array([False, True])).tolist() == ["bad_quality", None]
    assert raw_status({name: pa.array(values) for name, values in columns.items()}).tolist() == ["bad_quality"] * 2


def test_the_raw_filter_stage_judges_raw_alerts_only():
    """The stage after the decoder (fink_t2.alerts.science_stage): a raw alert gets the filter's verdict on its own
    fields and cdsxmatch "Unknown"; a science-stage alert keeps its cdsxmatch and gets no verdict."""
    statuses = []
    for path in sorted(AVRO_NIGHT.glob("*.avro"))[:20]:
        decoded = decode_file(f"file:{path}", path.read_bytes())
        row = raw_filter(decoded).to_pylist()[0]
        assert decoded.column("cdsxmatch").to_pylist() == [None] and row["cdsxmatch"] == CDSXMATCH_UNKNOWN
        assert row["raw_filter"] == raw_status({name: [row["candidate"][name]] for name in FIELDS})[0]
        statuses.append(row["raw_filter"])
    assert len(set(statuses)) > 1  # real alerts: some pass, some do not
    part = sorted((REPO_ROOT / "data" / "night_20211122_fink_science").glob("*.parquet"))[0]
    decoded = decode_file(f"file:{part}", part.read_bytes())
    table = raw_filter(decoded)
    assert table.num_rows > 50 and table.column("raw_filter").null_count == table.num_rows  # Fink's cdsxmatch rules
    assert table.column("cdsxmatch").equals(decoded.column("cdsxmatch"))
    unreadable = raw_filter(decode_file("file:/x/bad.avro", b"Obj\x01xyz")).to_pylist()[0]
    assert unreadable["raw_filter"] is None and unreadable["cdsxmatch"] is None and unreadable["ingest_error"]
    # the same alerts without their science-stage columns are raw: most are stars for the stand-in
    records = [{k: v for k, v in r.items() if k != "cdsxmatch"} for r in read_fink_parquet(SAMPLE_NIGHT)]
    statuses = raw_status({name: [r["candidate"][name] for r in records] for name in FIELDS})
    assert sum(s is not None for s in statuses) > len(records) / 2


def test_the_agreement_table_in_docs_is_what_the_script_computes():
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "raw_filter_agreement.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = (REPO_ROOT / "docs" / "raw_filter.md").read_text(encoding="utf-8")
    assert "| `data/night_20211122_fink_science` | 124 |" in text
