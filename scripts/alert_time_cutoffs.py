"""The anchors' cut-offs, from saved fold predictions (``scripts/fresh_folds.py``): t2 judged as ORACLE and Gagliano et al. judge.

* ORACLE (Shah et al. 2025): macro-F1 at 1, 2, 4, 8, 16, 32 and 64 days after the first detection;
* Gagliano et al. 2023: three-class accuracy over the SNe (true SN Ia / SN II / SN Ibc) within 3 and within 30
  days of the first detection (82 % and 87 % with host-galaxy information, which t2 does not have).

Each held-out object is classified once per cut-off, as the alert a broker holds at that time: its latest alert
view (the stream's cuts passed) at most that many days after its first detection. Objects with no such view (a
second detection epoch only later) are not scored; ``coverage`` is the share of held-out objects scored. Mean ±
std over folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from fink_t2.core.cuts import STATUS_OK
from fink_t2.model.datasets import CLASS_NAMES

ORACLE_DAYS = (1, 2, 4, 8, 16, 32, 64)
GAGLIANO_DAYS = (3, 30)
GAGLIANO_PUBLISHED = {3: 0.82, 30: 0.87}
SN_CLASSES = ("SN Ia", "SN II", "SN Ibc")


def latest_views(pred: dict, days: float) -> pd.DataFrame:
    """One row per object: its latest classified view at most ``days`` after its first detection."""
    frame = pd.DataFrame({"object": pred["object_id"], "age": pred["age"], "y": pred["y"], "label": pred["label"],
                          "row": np.arange(len(pred["age"]))})
    frame = frame[(pred["status"] == STATUS_OK) & (pred["age"] <= days)]
    return frame.sort_values(["object", "age"], kind="stable").groupby("object", sort=True).tail(1)


def _stats(values) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": [float(v) for v in values]}


def oracle(folds: list[dict]) -> dict:
    out = {}
    for days in ORACLE_DAYS:
        f1, cover, n = [], [], 0
        for fold in folds:
            pred = fold["pred"]
            rows = latest_views(pred, days)
            present = [c for c in CLASS_NAMES if c in set(rows["y"])]
            f1.append(f1_score(rows["y"], rows["label"], labels=present, average="macro", zero_division=0))
            cover.append(len(rows) / len(np.unique(pred["object_id"])))
            n += len(rows)
        out[str(days)] = {"macro_f1": _stats(f1), "coverage": _stats(cover), "objects": n}
    return out


def gagliano(folds: list[dict]) -> dict:
    sn = [CLASS_NAMES.index(c) for c in SN_CLASSES]
    out = {}
    for days in GAGLIANO_DAYS:
        by_map, by_class, cover, n = [], [], [], 0
        for fold in folds:
            pred = fold["pred"]
            rows = latest_views(pred, days)
            rows = rows[rows["y"].isin(SN_CLASSES)]
            proba = pred["proba"][rows["row"].to_numpy()][:, sn]
            by_map.append(np.mean(np.array(SN_CLASSES)[proba.argmax(axis=1)] == rows["y"].to_numpy()))
            by_class.append(np.mean(rows["label"].to_numpy() == rows["y"].to_numpy()))
            all_sn = np.unique(pred["object_id"][np.isin(pred["y"], SN_CLASSES)])
            cover.append(len(rows) / len(all_sn))
            n += len(rows)
        out[str(days)] = {"accuracy_t2_map": _stats(by_map), "accuracy_t2_class": _stats(by_class),
                          "coverage": _stats(cover), "objects": n, "published": GAGLIANO_PUBLISHED[days]}
    return out


def cutoffs(folds: list[dict]) -> dict:
    return {
        "oracle": oracle(folds), "gagliano": gagliano(folds),
        "how": "each held-out object once per cut-off: its latest classified alert view at most that many days after "
               "its first detection; ORACLE: macro-F1 of t2_class over the classes present; Gagliano: accuracy over "
               "true SN Ia/II/Ibc, 't2 map' = most probable of the three SN classes in the calibrated t2 map, "
               "'t2_class' = the shipped decision (Other counts as wrong); coverage = share of held-out objects "
               "(for Gagliano: of the SNe) with such a view; mean ± std over folds",
    }
