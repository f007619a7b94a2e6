"""How far the raw-alert filter's stand-in for Fink's cross-match agrees with Fink's real ``cdsxmatch``.

Every science-stage parquet (a parquet dataset with a ``cdsxmatch`` column) under ``data/`` and the shared
data (``$FINK_T2_DATA``) is read; each alert is judged by :func:`fink_t2.core.raw_filter.raw_status` as if it
were raw, and compared with Fink's verdict: *Galactic* when its ``cdsxmatch`` is not compatible with an
extragalactic host (t2's ``galactic_xmatch`` cut, :data:`fink_t2.core.cuts.EXTRAGALACTIC_XMATCH`), else
*extragalactic-compatible*. Writes ``docs/raw_filter.md`` and ``docs/raw_filter.json``;
``--check`` only compares them with what this run computes (exit 1 if they differ: regenerate them).

    python scripts/raw_filter_agreement.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fink_t2.alerts import read_fink_parquet
from fink_t2.alerts.parquet import parquet_files
from fink_t2.core import raw_filter
from fink_t2.core.cuts import EXTRAGALACTIC_XMATCH, RAW_STATUSES
from fink_t2.core.raw_filter import FIELDS, raw_status, rules
from fink_t2.paths import REPO_ROOT, SHARED_DATA

DOCS = REPO_ROOT / "docs"
THRESHOLDS = ("MAX_NBAD", "MIN_RB", "EXCLUDED_FID", "MIN_DRB", "PS1_MAX_DISTANCE_ARCSEC", "PS1_MIN_SGSCORE",
              "GAIA_MAX_DISTANCE_ARCSEC", "GAIA_MAX_MAG", "NEGATIVE_ISDIFFPOS")


def science_datasets() -> list[tuple[str, Path]]:
    """(name shown, folder) of every parquet dataset with a ``cdsxmatch`` column in data/ and the shared data."""
    found = []
    for label, root in (("data", REPO_ROOT / "data"), ("$FINK_T2_DATA", Path(SHARED_DATA))):
        folders = sorted({p.parent for p in root.rglob("*.parquet")})
        for folder in folders:
            files = parquet_files(folder)
            if files and "cdsxmatch" in pq.read_schema(files[0]).names:
                found.append((f"{label}/{folder.relative_to(root)}", folder))
    return found


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def judge(folder: Path) -> dict:
    """The stand-in's verdicts on the alerts of one dataset, against Fink's ``cdsxmatch``."""
    records = list(read_fink_parquet(folder))
    columns = {name: [(r.get("candidate") or {}).get(name) for r in records] for name in FIELDS}
    status = raw_status(columns)
    galactic = np.array([r.get("cdsxmatch") not in EXTRAGALACTIC_XMATCH for r in records])
    rejected = status != None  # noqa: E711 - elementwise on an object array
    alone = rules(columns)
    return {
        "alerts": len(records),
        "candids": [r.get("candid") for r in records],
        "galactic": int(galactic.sum()),
        "galactic_rejected": int((galactic & rejected).sum()),
        "extragalactic_compatible": int((~galactic).sum()),
        "extragalactic_kept": int((~galactic & ~rejected).sum()),
        "first_status": {name: {"galactic": int((galactic & (status == name)).sum()),
                                "extragalactic_compatible": int((~galactic & (status == name)).sum())}
                         for name in RAW_STATUSES},
        "rule_alone": {name: {"galactic": int((galactic & alone[name]).sum()),
                              "extragalactic_compatible": int((~galactic & alone[name]).sum())} for name in RAW_STATUSES},
        "extragalactic_rejected": sorted((str(r.get("cdsxmatch")), str(s)) for r, s, g in zip(records, status, galactic)
                                         if not g and s is not None),
    }


def agreement() -> dict:
    datasets = science_datasets()
    if not datasets:
        raise SystemExit("no science-stage parquet (with cdsxmatch) found in data/ nor the shared data")
    result = {"thresholds": {name: getattr(raw_filter, name) for name in THRESHOLDS}, "datasets": {}}
    seen = {}  # the sample in data/ is a copy of the shared one: said so, not hidden
    for name, folder in datasets:
        judged = judge(folder)
        key = tuple(sorted(judged.pop("candids")))
        judged["same_alerts_as"] = seen.get(key)
        seen.setdefault(key, name)
        result["datasets"][name] = judged
    return result


def markdown(result: dict) -> str:
    t = result["thresholds"]
    lines = [
        "# Raw alerts: the stand-in for Fink's cross-match, against Fink's real `cdsxmatch`",
        "",
        "Written by `python scripts/raw_filter_agreement.py` (checked by `tests/test_raw_filter.py`); the filter is",
        "`fink_t2/core/raw_filter.py`. Each alert of every science-stage parquet in `data/` and the shared data is judged",
        "as if it were raw; *Galactic* means Fink's `cdsxmatch` is not compatible with an extragalactic host (t2's",
        "`galactic_xmatch` cut), *extragalactic-compatible* the others (`Unknown`, galaxies, AGN hosts, SN, `Fail`).",
        "",
        f"Rules, first failed wins: `bad_quality` (Fink's quality cuts: `nbad` ≤ {t['MAX_NBAD']}, `rb` ≥ {t['MIN_RB']},"
        f" `fid` ≠ {t['EXCLUDED_FID']}; these alerts passed them in Fink), `bogus` (`drb` < {t['MIN_DRB']}),"
        f" `ps1_star` (`distpsnr1` ≤ {t['PS1_MAX_DISTANCE_ARCSEC']}\" and `sgscore1` ≥ {t['PS1_MIN_SGSCORE']}),"
        f" `gaia_star` (`neargaia` ≤ {t['GAIA_MAX_DISTANCE_ARCSEC']}\" and `maggaia` ≤ {t['GAIA_MAX_MAG']}),"
        f" `negative_difference` (`isdiffpos` in {', '.join(map(repr, t['NEGATIVE_ISDIFFPOS']))}).",
        "",
        "| science-stage parquet | alerts | Galactic | Galactic rejected | extragalactic-compatible | extragalactic-compatible kept |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, d in result["datasets"].items():
        same = f" (the same alerts as `{d['same_alerts_as']}`)" if d["same_alerts_as"] else ""
        lines.append(f"| `{name}`{same} | {d['alerts']} | {d['galactic']} | {d['galactic_rejected']} "
                     f"(**{_share(d['galactic_rejected'], d['galactic']):.0%}**) | {d['extragalactic_compatible']} | "
                     f"{d['extragalactic_kept']} (**{_share(d['extragalactic_kept'], d['extragalactic_compatible']):.0%}**) |")
    name, first = next(iter(result["datasets"].items()))
    lines += ["", f"Each rule of `{name}`: alerts it rejects alone, and as the first rule failed (what `t2_status` says).",
              "", "| rule | Galactic, alone | extragalactic-compatible, alone | Galactic, first | "
              "extragalactic-compatible, first |", "|---|---:|---:|---:|---:|"]
    for rule in RAW_STATUSES:
        a, f = first["rule_alone"][rule], first["first_status"][rule]
        lines.append(f"| `{rule}` | {a['galactic']} | {a['extragalactic_compatible']} | {f['galactic']} | "
                     f"{f['extragalactic_compatible']} |")
    lines += ["", "Extragalactic-compatible alerts the stand-in rejects (Fink's `cdsxmatch` → status): "
              + ", ".join(f"`{x}` → `{s}`" for x, s in first["extragalactic_rejected"]) + ".",
              "", "Reading (of this sample, as of the commit that wrote this file): the PS1 star-galaxy score does "
              "most of the work; Gaia adds bright stars, mostly where `sgscore1` is 0.5 (no information); a negative "
              "difference rejects fading variables, and also AGN and old supernovae whose reference image holds more "
              "light than the alert. The `Unknown` and `Fail` alerts rejected as `ps1_star` sit on a PS1 point source: "
              "Fink's `Unknown` means no SIMBAD entry, not a galaxy. The sample is small: read the shares as an order "
              "of magnitude, not a measurement to the percent.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/raw_filter.{md,json}, write nothing")
    args = parser.parse_args(argv)
    result = agreement()
    text, data = markdown(result), json.dumps(result, indent=1, sort_keys=True) + "\n"
    paths = {DOCS / "raw_filter.md": text, DOCS / "raw_filter.json": data}
    if args.check:
        stale = [str(p) for p, content in paths.items() if not p.is_file() or p.read_text(encoding="utf-8") != content]
        if stale:
            print(f"stale: {', '.join(stale)}: run python scripts/raw_filter_agreement.py", file=sys.stderr)
            return 1
        return 0
    for path, content in paths.items():
        path.write_text(content, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
