"""``fink-t2 classify --model fink_t2/data/t2_lsst.tflite TABLE``: a flux table through a band-generic model.

Input: one row per measurement (CSV or parquet): ``objectId, mjd, band, flux, flux_err`` and optionally
``detected`` (1 a detection, 0 a forced measurement; without it every row counts as a detection). ``band``
and ``flux`` are in the model contract's bands (Rubin: u..y) and unit (Rubin: nJy); rows of other bands are
ignored. Each object is classified as the alert at its latest detection, as the stream would: every
measurement of the contract's window (365 days) up to that detection, its age since the object's first
detection, built by :func:`fink_t2.core.flux_sequences.build_flux_sequences`.

Output: one row per object (sorted by ``objectId``): ``objectId``, ``mjd`` (its latest detection),
``n_detections`` (in the window), one probability column per class of the contract, ``class`` (the argmax)
and ``t2_status`` (``ok``, or ``no_detection``: every probability -1 and an empty ``class``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.core.contract import input_spec
from fink_t2.core.flux_sequences import band_index, build_flux_sequences

REQUIRED_COLUMNS = ("objectId", "mjd", "band", "flux")


def read_flux_table(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    table = pd.read_parquet(path) if path.suffix == ".parquet" or path.is_dir() else pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: a flux table needs columns {', '.join(REQUIRED_COLUMNS)} (flux_err, detected "
                         f"optional); missing {missing} in {list(table.columns)}")
    return table


def classify_flux_table(table: pd.DataFrame, model) -> pd.DataFrame:
    """One row per object of ``table``, classified by ``model`` (a runner with a format-3 contract)."""
    spec = input_spec(model.contract)
    detected = table["detected"] if "detected" in table.columns else pd.Series(1, index=table.index)
    df = pd.DataFrame({"objectId": table["objectId"].to_numpy(),
                       "mjd": pd.to_numeric(table["mjd"], errors="coerce").to_numpy(np.float64),
                       "band": band_index(spec, table["band"].to_numpy()),
                       "flux": pd.to_numeric(table["flux"], errors="coerce").to_numpy(np.float64),
                       "detected": pd.to_numeric(detected, errors="coerce").fillna(0).to_numpy() > 0})
    df = df[(df["band"] >= 0) & np.isfinite(df["mjd"]) & np.isfinite(df["flux"])]
    objects = np.sort(table["objectId"].unique())
    df = df.sort_values(["objectId", "mjd"], kind="stable")
    det = df[df["detected"]].groupby("objectId")["mjd"]
    t_now = det.max().reindex(objects).to_numpy()
    t_first = det.min().reindex(objects).to_numpy()
    groups = {k: g for k, g in df.groupby("objectId", sort=True)}
    empty = df.iloc[:0]
    parts = [groups.get(o, empty) for o in objects]
    seq = build_flux_sequences(spec, [p["mjd"].to_numpy() for p in parts], [p["band"].to_numpy() for p in parts],
                               [p["flux"].to_numpy() for p in parts], [p["detected"].to_numpy() for p in parts],
                               t_now=t_now, t_first=t_first)
    ok = np.isfinite(t_now)
    proba = np.full((len(objects), len(model.class_names)), -1.0, dtype=np.float32)
    if ok.any():
        proba[ok] = model.predict(seq.values[ok])
    out = pd.DataFrame({"objectId": objects, "mjd": t_now, "n_detections": seq.n_detections})
    for i, name in enumerate(model.class_names):
        out[name] = proba[:, i]
    out["class"] = np.where(ok, np.asarray(model.class_names, dtype=object)[proba.argmax(axis=1)], "")
    out["t2_status"] = np.where(ok, "ok", "no_detection")
    return out


def classify_flux_file(path, output, model) -> dict:
    """Classify the flux table ``path`` with ``model``; write ``output`` (CSV, or parquet)."""
    out = classify_flux_table(read_flux_table(path), model)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(output, index=False) if output.suffix == ".parquet" else out.to_csv(output, index=False)
    ok = out["t2_status"] == "ok"
    return {"output": str(output), "objects": int(len(out)), "classified": int(ok.sum()),
            "per_class": {k: int(v) for k, v in out.loc[ok, "class"].value_counts().items()}, "backend": model.backend}
