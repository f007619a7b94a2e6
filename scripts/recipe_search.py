"""One experiment of the recipe search: K-fold cross-validation of a recipe, logged in docs/quality_experiments.json.

    python scripts/recipe_search.py NAME [--folds 5] [any fink-t2 train recipe option, e.g. --class-weight-power 1]

The cross-validation is the one of ``fink-t2 train --cv`` (:func:`fink_t2.model.crossval.crossval`:
grouped, stratified folds over all BTS objects, each fold's dynamic-range TFLite scored on its held-out
objects' alert views through the shipping runner). It is the only evaluation used to choose the recipe.
Writes ``build/exp/NAME/cv.json`` and the folds' predictions (``fold<k>.npz``), and records the recipe
with its per-bucket table (mean over folds) under ``NAME`` in ``docs/quality_experiments.json``.

    python scripts/recipe_search.py NAME --shipped

records the cross-validation that ``fink-t2 train --cv`` wrote into fink_t2/data/t2_metrics.json
(the shipped recipe's confirming run) under ``NAME``.

    python scripts/recipe_search.py NAME --not-reproducible "REASON"

flags a logged entry that no script can write again (e.g. typed in from a run's log). No entry is ever
replaced: a NAME already in the log is refused.

    python scripts/recipe_search.py NAME --posthoc temperature|age

re-scores a finished experiment's saved fold outputs: probabilities under a calibration fitted on each fold's
validation views (as `fink-t2 train` puts it into the contract), decisions the raw argmax, without
retraining: a cheap screen of calibrations, logged as ``NAME+MODE, raw-argmax decision``; adopted only
after a full cross-validation with it. ``--decision balanced`` also stores each fold's fitted β (``decision_beta``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from fink_t2.core.calibration import CALIBRATION_CHANNELS
from fink_t2.model.crossval import crossval
from fink_t2.model.datasets import CLASS_NAMES, load_table
from fink_t2.model.train import Recipe, recipe_arguments, recipe_from
from fink_t2.model.views import age_bucket

LOG = ROOT / "docs" / "quality_experiments.json"
SUMMARY = ("macro_f1", "log_loss", "prior_log_loss", "accuracy")


def summary(cv: dict) -> dict:
    """{metric: {bucket: mean over folds}} of a cross-validation result (3 decimals)."""
    return {m: {b: round(r[m]["mean"], 3) for b, r in cv["buckets"].items() if m in r} for m in SUMMARY}


def _read_log(log: Path) -> dict:
    return json.loads(log.read_text()) if log.is_file() else {"about": __doc__.splitlines()[0], "experiments": {}}


def record(name: str, entry: dict, log: Path = LOG) -> None:
    """Append ``name`` to the experiment log; an existing entry is never replaced (exit with a message)."""
    data = _read_log(log)
    if name in data["experiments"]:
        raise SystemExit(f"{name!r} is already in {log.name}: entries are never overwritten, choose another name")
    data["experiments"][name] = entry
    log.write_text(json.dumps(data, indent=1) + "\n")


def mark_not_reproducible(name: str, reason: str, log: Path = LOG) -> dict:
    """Flag entry ``name`` as not reproducible (its numbers stay, for the record; no number is changed or added)."""
    data = _read_log(log)
    if name not in data["experiments"]:
        raise SystemExit(f"{name!r} is not in {log.name}")
    entry = data["experiments"][name]
    entry["reproducible"] = False
    entry["not_reproducible_because"] = reason
    log.write_text(json.dumps(data, indent=1) + "\n")
    return entry


class _Scored:
    """The fields of :class:`fink_t2.model.views.Views` that ``bucket_metrics`` reads, from a saved fold."""

    def __init__(self, fold):
        self.object_id, self.age = fold["object_id"], fold["age"]
        self.label = np.array(CLASS_NAMES)[fold["y"]]

    def bucket(self):
        return age_bucket(self.age)


def balance_strength(val_proba, val_y, val_age_days) -> float:
    """β of the decision argmax(log p − β·log f) (f: class frequencies of the validation views) that maximises the
    validation views' macro-F1, averaged over the age buckets; β = 0 is the shipped decision (the raw argmax)."""
    from sklearn.metrics import f1_score

    log_freq = np.log(np.bincount(val_y, minlength=len(CLASS_NAMES)) / len(val_y))
    bucket = age_bucket(val_age_days)

    def score(beta):
        pred = (np.log(np.clip(val_proba, 1e-7, 1.0)) - beta * log_freq).argmax(axis=1)
        return np.mean([f1_score(val_y[bucket == b], pred[bucket == b], average="macro", zero_division=0,
                                 labels=range(len(CLASS_NAMES))) for b in np.unique(bucket) if b >= 0 and (bucket == b).sum() > 20])
    return float(max(BALANCE_GRID, key=score))


#: β values screened by :func:`balance_strength`
BALANCE_GRID = tuple(np.round(np.arange(-0.5, 1.51, 0.25), 2))


def posthoc(name: str, mode: str, data_dir: str, decision: str = "raw") -> dict:
    """Re-score experiment ``name``'s folds with a calibration (``fink_t2.model.calibration``) fitted on their
    validation views; the decisions stay the argmax of each fold's raw output, as in the shipped model, or with
    ``decision="balanced"`` that argmax shifted by β·(−log class frequency), β fitted on the validation views."""
    from fink_t2.core.calibration import calibrated_probabilities
    from fink_t2.core.classifier import Classification
    from fink_t2.core.sequences import CHANNELS
    from fink_t2.model.calibration import fit_calibration
    from fink_t2.model.datasets import cv_folds, load_bts, object_table
    from fink_t2.model.evaluate import bucket_metrics, class_prior, summarize_folds

    out = Path("build/exp") / name
    cv = json.loads((out / "cv.json").read_text())
    objects = object_table(load_bts(data_dir))
    splits = cv_folds(objects, cv["folds"], cv["seed"])
    chan = [CHANNELS.index(c) for c in CALIBRATION_CHANNELS]
    results, betas = [], []
    for k, (train_ids, _) in enumerate(splits):
        fold = np.load(out / f"fold{k}.npz", allow_pickle=False)
        x_val = np.zeros((len(fold["val_y"]), 1, len(CHANNELS)), np.float32)
        x_val[:, -1, chan] = fold["val_now"][:, chan]
        params = fit_calibration(fold["val_proba"], x_val, fold["val_y"], mode)
        ok = fold["status"] == "ok"
        proba = fold["proba"].copy()
        proba[ok] = calibrated_probabilities(fold["proba"][ok], fold["now"][ok][:, chan].astype(np.float64), params)
        beta = 0.0
        if decision == "balanced":
            beta = balance_strength(fold["val_proba"], fold["val_y"], fold["val_now"][:, CHANNELS.index("age")] * 30.0)
        betas.append(beta)
        log_freq = np.log(np.bincount(fold["val_y"], minlength=len(CLASS_NAMES)) / len(fold["val_y"]))
        shifted = np.log(np.clip(fold["proba"], 1e-7, 1.0)) - beta * log_freq
        label = np.where(ok, np.array(CLASS_NAMES, dtype=object)[shifted.argmax(axis=1)], None)
        prior = class_prior(objects.set_index("object_id").loc[train_ids, "label"])
        results.append(bucket_metrics(_Scored(fold), Classification.from_predictions(proba, fold["status"], label), prior))
        print(f"fold {k + 1}: {params and {'temperature': round(params['temperature'], 3)}}, decision beta {beta}", flush=True)
    summary_cv = {**cv, "buckets": summarize_folds(results), "posthoc_calibration": mode}
    how = ("the raw argmax" if decision == "raw" else
           "the argmax of log p − β·log(class frequency), β fitted on each fold's validation views")
    flag = "" if decision == "raw" else f" --decision {decision}"
    entry = {"command": f"python scripts/recipe_search.py {name} --posthoc {mode}{flag}",
             "note": f"post-hoc screen: {name}'s saved fold outputs, probabilities calibrated ({mode}) on each fold's "
                     f"validation views, decisions {how}; not retrained",
             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "folds": cv["folds"], "recipe": {**cv["recipe"], "calibration": mode}, "cv_mean": summary(summary_cv)}
    if decision == "balanced":
        entry["decision_beta"] = {"per_fold": betas, "grid": list(map(float, BALANCE_GRID))}
    record(f"{name}+{mode}, {decision}-argmax decision", entry)
    print(json.dumps(entry["cv_mean"], indent=1))
    return entry


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data-dir", default=None, help="default: $FINK_T2_DATA, else ../shared/data")
    parser.add_argument("--note", default="", help="why this experiment (kept in the log)")
    parser.add_argument("--posthoc", choices=("temperature", "age"), default=None,
                        help="re-score the saved folds of NAME under this calibration (no training)")
    parser.add_argument("--decision", choices=("raw", "balanced"), default="raw",
                        help="with --posthoc: the decision rule screened (balanced: see balance_strength)")
    parser.add_argument("--shipped", action="store_true", help="record the shipped model's cross-validation as NAME")
    parser.add_argument("--not-reproducible", metavar="REASON", default=None,
                        help="flag the logged entry NAME as not reproducible, saying why (no number changes)")
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    if args.not_reproducible:
        return mark_not_reproducible(args.name, args.not_reproducible)
    if args.posthoc:
        return posthoc(args.name, args.posthoc, args.data_dir, args.decision)
    if args.shipped:
        metrics = json.loads((ROOT / "fink_t2" / "data" / "t2_metrics.json").read_text())
        cv = metrics["cross_validation"]
        entry = {"command": metrics["command"], "note": args.note or "the shipped model's own cross-validation",
                 "date": metrics["created"], "folds": cv["folds"], "recipe": cv["recipe"], "cv_mean": summary(cv)}
        record(args.name, entry)
        return entry
    recipe = recipe_from(args)
    start = time.time()
    table = load_table(args.data_dir, None, recipe.snpcc_objects, recipe.seed)
    out = Path("build/exp") / args.name
    cv = crossval(table, recipe, args.folds, progress=True, save_dir=out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv.json").write_text(json.dumps(cv, indent=1) + "\n")
    default = dataclasses.asdict(Recipe())
    entry = {"command": shlex.join(["python", "scripts/recipe_search.py", *argv]), "note": args.note,
             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "minutes": round((time.time() - start) / 60, 1), "folds": args.folds,
             "recipe_changes": {k: v for k, v in dataclasses.asdict(recipe).items() if default.get(k) != v},
             "recipe": dataclasses.asdict(recipe), "cv_mean": summary(cv)}
    record(args.name, entry)
    print(json.dumps(entry["cv_mean"], indent=1))
    return entry


if __name__ == "__main__":
    main()
