"""One experiment of the recipe search: K-fold cross-validation of a recipe, logged in docs/quality_experiments.json.

    python scripts/recipe_search.py NAME [--folds 5] [any fink-t2 train recipe option, e.g. --class-weight-power 1]

The cross-validation is the one of ``fink-t2 train --cv`` (:func:`fink_t2.model.evaluate.crossval`:
grouped, stratified folds over all BTS objects, each fold's dynamic-range TFLite scored on its held-out
objects' alert views through the shipping runner). It is the only evaluation used to choose the recipe.
Writes ``build/exp/NAME/cv.json`` and the folds' predictions (``fold<k>.npz``), and records the recipe
with its per-bucket table (mean over folds) under ``NAME`` in ``docs/quality_experiments.json``.

    python scripts/recipe_search.py NAME --shipped

records the cross-validation that ``fink-t2 train --cv`` wrote into fink_t2/data/t2_metrics.json
(the shipped recipe's confirming run) under ``NAME``.

    python scripts/recipe_search.py NAME --posthoc temperature|age

re-scores a finished experiment's saved fold outputs: probabilities under a calibration fitted on each fold's
validation views (as `fink-t2 train` puts it into the contract), decisions the raw argmax, without
retraining: a cheap screen of calibrations, logged as ``NAME+MODE, raw-argmax decision``; adopted only
after a full cross-validation with it.
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

import numpy as np  # noqa: E402

from fink_t2.model.datasets import CLASS_NAMES, load_table  # noqa: E402
from fink_t2.model.evaluate import crossval  # noqa: E402
from fink_t2.model.train import Recipe, recipe_arguments, recipe_from  # noqa: E402
from fink_t2.calibration import CALIBRATION_CHANNELS  # noqa: E402
from fink_t2.model.views import age_bucket  # noqa: E402

LOG = ROOT / "docs" / "quality_experiments.json"
SUMMARY = ("macro_f1", "log_loss", "prior_log_loss", "accuracy")


def summary(cv: dict) -> dict:
    """{metric: {bucket: mean over folds}} of a cross-validation result (3 decimals)."""
    return {m: {b: round(r[m]["mean"], 3) for b, r in cv["buckets"].items() if m in r} for m in SUMMARY}


def record(name: str, entry: dict, log: Path = LOG) -> None:
    """Add or replace ``name`` in the experiment log, keeping the order of first appearance."""
    data = json.loads(log.read_text()) if log.is_file() else {"about": __doc__.splitlines()[0], "experiments": {}}
    data["experiments"][name] = entry
    log.write_text(json.dumps(data, indent=1) + "\n")


class _Scored:
    """The fields of :class:`fink_t2.model.views.Views` that ``bucket_metrics`` reads, from a saved fold."""

    def __init__(self, fold):
        self.object_id, self.age = fold["object_id"], fold["age"]
        self.label = np.array(CLASS_NAMES)[fold["y"]]

    def bucket(self):
        return age_bucket(self.age)


def posthoc(name: str, mode: str, data_dir: str) -> dict:
    """Re-score experiment ``name``'s folds with a calibration (``fink_t2.model.calibration``) fitted on their
    validation views; the decisions stay the argmax of each fold's raw output, as in the shipped model."""
    from fink_t2.calibration import calibrated_probabilities
    from fink_t2.classifier import Classification
    from fink_t2.model.calibration import fit_calibration
    from fink_t2.model.datasets import cv_folds, load_bts, object_table
    from fink_t2.model.evaluate import bucket_metrics, class_prior, summarize_folds
    from fink_t2.sequences import CHANNELS

    out = Path("build/exp") / name
    cv = json.loads((out / "cv.json").read_text())
    objects = object_table(load_bts(data_dir))
    splits = cv_folds(objects, cv["folds"], cv["seed"])
    chan = [CHANNELS.index(c) for c in CALIBRATION_CHANNELS]
    results = []
    for k, (train_ids, _) in enumerate(splits):
        fold = np.load(out / f"fold{k}.npz", allow_pickle=False)
        x_val = np.zeros((len(fold["val_y"]), 1, len(CHANNELS)), np.float32)
        x_val[:, -1, chan] = fold["val_now"][:, chan]
        params = fit_calibration(fold["val_proba"], x_val, fold["val_y"], mode)
        ok = fold["status"] == "ok"
        proba = fold["proba"].copy()
        proba[ok] = calibrated_probabilities(fold["proba"][ok], fold["now"][ok][:, chan].astype(np.float64), params)
        label = np.where(ok, np.array(CLASS_NAMES, dtype=object)[fold["proba"].argmax(axis=1)], None)
        prior = class_prior(objects.set_index("object_id").loc[train_ids, "label"])
        results.append(bucket_metrics(_Scored(fold), Classification(proba, fold["status"], label), prior))
        print(f"fold {k + 1}: {params and {'temperature': round(params['temperature'], 3)}}", flush=True)
    summary_cv = {**cv, "buckets": summarize_folds(results), "posthoc_calibration": mode}
    entry = {"command": f"python scripts/recipe_search.py {name} --posthoc {mode}",
             "note": f"post-hoc screen: {name}'s saved fold outputs, probabilities calibrated ({mode}) on each fold's "
                     "validation views, decisions the raw argmax; not retrained",
             "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "folds": cv["folds"], "recipe": {**cv["recipe"], "calibration": mode}, "cv_mean": summary(summary_cv)}
    record(f"{name}+{mode}, raw-argmax decision", entry)
    print(json.dumps(entry["cv_mean"], indent=1))
    return entry


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--note", default="", help="why this experiment (kept in the log)")
    parser.add_argument("--posthoc", choices=("temperature", "age"), default=None,
                        help="re-score the saved folds of NAME under this calibration (no training)")
    parser.add_argument("--shipped", action="store_true", help="record the shipped model's cross-validation as NAME")
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    if args.posthoc:
        return posthoc(args.name, args.posthoc, args.data_dir)
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
