"""``python scripts/fresh_folds.py report``: docs/fresh_folds.json from the fold models saved by its ``train`` step.

Three studies of the same held-out alert views, no retraining:

* ``cross_validation``: the fresh-seed per-bucket metrics (as :func:`fink_t2.model.evaluate.crossval` reports
  them), beside the original run recorded in ``fink_t2/data/t2_metrics.json``;
* ``headers``: each fold's model scores its held-out views again with the header fields changed, per bucket the
  change of macro-F1 and log-loss (mean over folds). ``measured``: every view's (``ndethist`` ratio, start
  offset) drawn from the real alerts that pass t2's cuts (``docs/headers.json``): ``ndethist`` → round(ndethist ×
  ratio), ``jdstarthist`` → jdstarthist − offset. The other scenarios are the shifts issue 20 measured on unseen
  objects (a sensitivity, not a distribution);
* ``cutoffs``: the anchors' cut-offs (:mod:`alert_time_cutoffs`).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
from alert_time_cutoffs import cutoffs
from fresh_folds import OUTPUT, SavedScores, bts_table, fold_prior, load_folds, shipped_recipe

from fink_t2.core.cuts import STATUS_OK
from fink_t2.model.datasets import CLASS_NAMES, object_table
from fink_t2.model.evaluate import bucket_metrics, score_views, summarize_folds
from fink_t2.model.views import alert_views, bucket_names

HEADERS = OUTPUT.parent / "headers.json"
#: a move of macro-F1 or log-loss larger than this in any bucket calls for a header-robust model (issue 20)
TOLERANCE = 0.02
PERTURB_SEED = 20
STRESS = {"ndethist x2": {"ndethist_factor": 2.0}, "ndethist x3": {"ndethist_factor": 3.0},
          "jdstarthist 5 d earlier": {"start_offset_days": 5.0}}


def perturb(views, ratio, offset):
    """``views`` with ``ndethist`` scaled by ``ratio`` (rounded, at least 1) and ``jdstarthist`` ``offset`` days earlier
    (one value per view, or scalars); the alert age the buckets use stays the true one."""
    ndethist = np.maximum(1.0, np.round(views.ndethist * ratio))
    return dataclasses.replace(views, ndethist=ndethist, jdstarthist=views.jdstarthist - offset)


def measured_draw(n: int, samples: dict, seed: int = PERTURB_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(ratio, offset) per view, pairs drawn with replacement from the measured real alerts."""
    ratio = np.asarray(samples["ratio_gr"], dtype=float)
    offset = np.asarray(samples["start_offset_days"], dtype=float)
    keep = np.isfinite(ratio) & np.isfinite(offset)
    if not keep.any():
        raise SystemExit(f"{HEADERS} holds no measured alert that passes t2's cuts")
    pick = np.random.default_rng(seed).integers(0, keep.sum(), n)
    return ratio[keep][pick], offset[keep][pick]


def deltas(base: list[dict], moved: list[dict]) -> dict:
    """Per bucket: mean over folds of the change in macro-F1, log-loss and coverage, and whether it exceeds TOLERANCE."""
    out = {}
    for b in bucket_names():
        rows = [(f[b], g[b]) for f, g in zip(base, moved) if f[b]["n_views"] and g[b]["n_views"]]
        entry = {m: float(np.mean([g[m] - f[m] for f, g in rows])) for m in ("macro_f1", "log_loss", "classified_share")}
        entry["over_tolerance"] = bool(abs(entry["macro_f1"]) > TOLERANCE or abs(entry["log_loss"]) > TOLERANCE)
        out[b] = entry
    return out


def sn_ia_auc(views, scores) -> dict:
    """Per bucket: ROC-AUC of P(SN Ia) (the calibrated t2 map) for SN Ia against the rest, classified views,
    every object weighing the same (None where a bucket holds one class only)."""
    from sklearn.metrics import roc_auc_score

    proba, status = scores
    bucket, out = views.bucket(), {}
    for b, name in enumerate(bucket_names()):
        ok = (bucket == b) & (status == STATUS_OK)
        truth = views.label[ok] == "SN Ia"
        objects = pd.Series(views.object_id[ok])
        weight = 1.0 / objects.map(objects.value_counts()).to_numpy(np.float64)
        out[name] = float(roc_auc_score(truth, proba[ok, CLASS_NAMES.index("SN Ia")], sample_weight=weight)) if 0 < truth.sum() < len(truth) else None
    return out


def auc_summary(folds: list[dict]) -> dict:
    return {b: {"mean": float(np.mean(v)), "std": float(np.std(v)), "folds": v}
            for b in bucket_names() if (v := [f[b] for f in folds if f[b] is not None])}


def compare(original: dict, fresh: dict) -> dict:
    """Per bucket and metric: original and fresh means, and fresh − original."""
    return {b: {m: {"original": original[b][m]["mean"], "fresh": fresh[b][m]["mean"],
                    "difference": fresh[b][m]["mean"] - original[b][m]["mean"]}
                for m in ("accuracy", "macro_f1", "log_loss", "prior_log_loss")} for b in bucket_names()}


def report(data_dir=None) -> dict:
    from fink_t2.runtime.inference import T2Model

    recipe, metrics = shipped_recipe()
    folds = load_folds()
    table = bts_table(recipe, metrics, data_dir)
    objects = object_table(table[table["source"] == "bts"])
    measured = json.loads(HEADERS.read_text())
    scenarios = {"measured": None, **STRESS}
    base, moved = [], {name: [] for name in scenarios}
    auc = {"unchanged": [], "measured": []}
    for fold in folds:
        meta, pred = fold["meta"], fold["pred"]
        views = alert_views(table[table["object_id"].isin(meta["test_ids"])])
        if not np.array_equal(views.object_id.astype(str), pred["object_id"]) or not np.allclose(views.age, pred["age"]):
            raise SystemExit(f"fold {meta['fold']}: the saved predictions are not of these views (data changed?)")
        prior = fold_prior(objects, meta)
        base.append(bucket_metrics(views, SavedScores(pred), prior))
        auc["unchanged"].append(sn_ia_auc(views, SavedScores(pred)))
        model = T2Model(content=fold["path"].read_bytes(), contract=meta["contract"])
        for name, how in scenarios.items():
            if how is None:
                ratio, offset = measured_draw(len(views), measured["samples"], PERTURB_SEED + meta["fold"])
            else:
                ratio, offset = how.get("ndethist_factor", 1.0), how.get("start_offset_days", 0.0)
            scores = score_views(model, perturb(views, ratio, offset))
            moved[name].append(bucket_metrics(views, scores, prior))
            if name == "measured":
                auc["measured"].append(sn_ia_auc(views, scores))
        print(f"fold {meta['fold']}: scored with perturbed headers", flush=True)
    fresh = summarize_folds(base)
    original = metrics["cross_validation"]
    result = {
        "command": "python scripts/fresh_folds.py report", "train_command": "nice -n 5 python scripts/fresh_folds.py train "
        f"--fold-seed {folds[0]['meta']['fold_seed']}",
        "fold_seed": folds[0]["meta"]["fold_seed"], "original_fold_seed": original["seed"], "folds": len(folds),
        "recipe": folds[0]["meta"]["recipe"], "objects": int(len(objects)),
        "epochs_run": [f["meta"]["info"]["epochs_run"] for f in folds],
        "train_minutes": [round(f["meta"]["minutes"], 1) for f in folds],
        "cross_validation": {"folds": len(folds), "seed": folds[0]["meta"]["fold_seed"], "objects": int(len(objects)),
                             "buckets": fresh},
        "versus_original": compare(original["buckets"], fresh),
        "headers": {"tolerance": TOLERANCE, "perturb_seed": PERTURB_SEED,
                    "measured_from": f"{len(measured['samples']['ratio_gr'])} real alerts that pass t2's cuts "
                                     "(docs/headers.json)",
                    "scenarios": {name: {"deltas": deltas(base, moved[name]), "buckets": summarize_folds(moved[name])}
                                  for name in scenarios}},
        "sn_ia_auc": {k: auc_summary(v) for k, v in auc.items()},
        "cutoffs": cutoffs(folds),
    }
    OUTPUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUTPUT}")
    return result
