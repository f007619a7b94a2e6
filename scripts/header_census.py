"""Headers as ZTF writes them: how `ndethist` and `jd − jdstarthist` relate to the detections an alert carries.

    python scripts/header_census.py        # → docs/headers.json (shown in docs/quality.md)

Reads every real ZTF alert at hand (``../shared/data/ztf_alerts`` and the repository's ``data/``; an alert
found twice, same ``candid``, counts once) through the project's readers, and per alert compares the header
with the packet (``prv_candidates`` + ``candidate``, i.e. Fink's ``c*`` arrays):

* ``n_det``: detections in the packet (a non-null ``magpsf``, any band, either sign); ``n_det_gr``: its
  positive g/r detections, which is what t2's training and evaluation views count as ``ndethist``
  (``fink_t2/model/views.py``: the BTS g/r points up to the epoch);
* ``ndethist / n_det_gr`` (and ``/ n_det``), and the excess ``ndethist − n_det_gr``;
* ``start offset`` = first detection in the packet − ``jdstarthist`` (days; 0 under the training convention,
  where ``jdstarthist`` is the first point), and ``packet age`` = ``jd`` − first detection in the packet.

Separately for the alerts that pass t2's cuts (:func:`fink_t2.core.classifier.classify_columns`, no model):
those are the alerts whose headers reach the model, and the ones the perturbed scoring of the
cross-validation samples from (``scripts/fresh_folds.py report``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fink_t2.alerts import iter_alert_tables
from fink_t2.core.classifier import classify_columns
from fink_t2.core.cuts import MAX_AGE_DAYS, STATUS_OK
from fink_t2.paths import SAMPLE_NIGHT, shared_data_dir

OUTPUT = ROOT / "docs" / "headers.json"
QUANTILES = (0.1, 0.5, 0.9)


def sources(data_dir=None) -> list[Path]:
    alerts = Path(data_dir or shared_data_dir()) / "ztf_alerts"
    return [*sorted(p for p in alerts.iterdir() if p.is_dir()), Path(SAMPLE_NIGHT)]


def packet_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """One row per alert: header fields, packet counts and offsets (see the module doc)."""
    rows = []
    for r in df.itertuples(index=False):
        jd = np.asarray(r.cjd, dtype=float)
        mag = np.array([np.nan if m is None else m for m in r.cmagpsf], dtype=float)
        fid = np.asarray(r.cfid, dtype=float)
        pos = np.array([s in ("t", "1") for s in r.cisdiffpos])
        det = np.isfinite(mag)
        gr = det & np.isin(fid, (1, 2)) & pos
        first = jd[gr].min() if gr.any() else np.nan
        rows.append({"candid": int(r.candid), "objectId": r.objectId, "jd": float(r.jd),
                     "ndethist": float(r.ndethist), "jdstarthist": float(r.jdstarthist),
                     "n_det": int(det.sum()), "n_det_gr": int(gr.sum()), "first_gr": float(first)})
    out = pd.DataFrame(rows)
    out["header_age"] = out["jd"] - out["jdstarthist"]
    out["packet_age"] = out["jd"] - out["first_gr"]
    out["start_offset"] = out["first_gr"] - out["jdstarthist"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio_gr"] = out["ndethist"] / out["n_det_gr"].where(out["n_det_gr"] > 0)
        out["ratio_all"] = out["ndethist"] / out["n_det"].where(out["n_det"] > 0)
    out["excess_gr"] = out["ndethist"] - out["n_det_gr"]
    return out


def read_alerts(data_dir=None) -> tuple[pd.DataFrame, list[dict]]:
    """(numbers per unique alert with its t2 status, what was read from where)."""
    frames, read = [], []
    for path in sources(data_dir):
        df = pd.concat([t.to_pandas() for t in iter_alert_tables(path)], ignore_index=True)
        status = classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch,
                                  df.jdstarthist, df.ndethist, None).status
        numbers = packet_numbers(df).assign(t2_status=np.asarray(status, dtype=str), source=path.name)
        frames.append(numbers)
        read.append({"source": str(path.relative_to(path.parents[1])), "alerts": int(len(df))})
    allrows = pd.concat(frames, ignore_index=True)
    return allrows.drop_duplicates("candid", keep="first").reset_index(drop=True), read


def describe(values) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "min": float(v.min()), "max": float(v.max()),
            **{f"q{int(q * 100)}": float(np.quantile(v, q)) for q in QUANTILES}}


def summary(df: pd.DataFrame) -> dict:
    return {"alerts": int(len(df)), "objects": int(df["objectId"].nunique()),
            "ndethist": describe(df["ndethist"]), "n_det": describe(df["n_det"]), "n_det_gr": describe(df["n_det_gr"]),
            "ratio_gr": describe(df["ratio_gr"]), "ratio_all": describe(df["ratio_all"]),
            "excess_gr": describe(df["excess_gr"]), "start_offset_days": describe(df["start_offset"]),
            "header_age_days": describe(df["header_age"]), "packet_age_days": describe(df["packet_age"]),
            "share_ndethist_equals_n_det_gr": float(np.mean(df["excess_gr"] == 0)) if len(df) else None,
            "share_ratio_gr_above_2": float(np.mean(df["ratio_gr"] > 2)) if len(df) else None,
            "share_start_offset_above_1d": float(np.mean(df["start_offset"] > 1)) if len(df) else None}


def census(data_dir=None) -> dict:
    df, read = read_alerts(data_dir)
    passing = df[df["t2_status"] == STATUS_OK]
    return {
        "command": "python scripts/header_census.py", "read": read, "unique_alerts": int(len(df)),
        "groups": {"all alerts": summary(df),
                   f"header age <= {MAX_AGE_DAYS:g} d (t2's age cut)": summary(df[df["header_age"] <= MAX_AGE_DAYS]),
                   "passing t2's cuts": summary(passing)},
        "by_status": {k: summary(g) for k, g in df.groupby("t2_status", sort=True)},
        # the measured pairs the perturbed scoring draws from (alerts that pass t2's cuts)
        "samples": {"ratio_gr": passing["ratio_gr"].round(6).tolist(),
                    "start_offset_days": passing["start_offset"].round(6).tolist()},
    }


def main(argv=None) -> dict:
    result = census()
    OUTPUT.write_text(json.dumps(result, indent=1) + "\n")
    p = result["groups"]["passing t2's cuts"]
    print(f"wrote {OUTPUT}: {result['unique_alerts']} alerts, {p['alerts']} pass t2's cuts; "
          f"ndethist/n_det_gr median {p['ratio_gr'].get('q50')}, start offset median {p['start_offset_days'].get('q50')}")
    return result


if __name__ == "__main__":
    main()
