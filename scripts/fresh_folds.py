"""A fresh-fold check of the shipped recipe: its 5-fold cross-validation with a new fold seed → build/fresh_folds/.

    nice -n 5 python scripts/fresh_folds.py train [--fold-seed 7]   # trains 5 fold models (~30 min on 2 busy cores)
    python scripts/fresh_folds.py report                           # docs/fresh_folds.json from the saved folds

``train`` runs the loop of ``fink-t2 train --cv`` (:func:`fink_t2.model.evaluate.crossval`) with the shipped
recipe unchanged (its own seed still seeds training, view sampling and the validation split) and only the fold
split drawn with ``--fold-seed``, so the objects each fold model is judged on are new. Unlike ``crossval`` it
keeps what later studies need, so no report has to retrain: each fold's dynamic-range TFLite file (calibration in
its contract: ``fold<k>.tflite`` + ``fold<k>.json``) and its held-out alert views' calibrated probabilities,
decisions and statuses (``fold<k>.npz``).

``report`` reads them back and writes ``docs/fresh_folds.json``: the per-bucket cross-validation (the same
metrics as ``crossval``), the held-out views scored again with headers drawn from the measured ZTF distribution
(``docs/headers.json``, :mod:`header_census`), and the anchors' cut-offs (:mod:`alert_time_cutoffs`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fink_t2.model.datasets import CLASS_NAMES, cv_folds, load_table, object_table
from fink_t2.model.evaluate import class_prior, score_views
from fink_t2.model.train import Recipe
from fink_t2.model.views import alert_views

BUILD = ROOT / "build" / "fresh_folds"
OUTPUT = ROOT / "docs" / "fresh_folds.json"
METRICS_PATH = ROOT / "fink_t2" / "data" / "t2_metrics.json"
FOLD_SEED = 7


def shipped_recipe() -> tuple[Recipe, dict]:
    """The recipe and data options recorded with the shipped model."""
    metrics = json.loads(METRICS_PATH.read_text())
    return Recipe(**metrics["cross_validation"]["recipe"]), metrics


def bts_table(recipe: Recipe, metrics: dict, data_dir=None):
    return load_table(data_dir or metrics["data"]["data_dir"], metrics["data"]["max_objects"], recipe.snpcc_objects,
                      recipe.seed)


def train_fold(table, train_ids, test_ids, recipe: Recipe):
    """One fold as :func:`fink_t2.model.evaluate.crossval` runs it: train on ``train_ids`` (plus the non-BTS rows),
    quantize, score the held-out objects' alert views. Returns (tflite bytes, contract, fit info, views, scores)."""
    import pandas as pd

    from fink_t2.core.contract import make_contract
    from fink_t2.model.train import dynamic_tflite, fit, split_train_val
    from fink_t2.runtime.inference import T2Model

    fold_train = pd.concat([table[table["object_id"].isin(train_ids)], table[table["source"] != "bts"]])
    fold_train, val = split_train_val(fold_train, recipe)
    model, info = fit(fold_train, val[val["source"] == "bts"], recipe, progress=False)
    content = dynamic_tflite(model)
    contract = make_contract(CLASS_NAMES, calibration=info["calibration"])
    views = alert_views(table[table["object_id"].isin(test_ids)])
    return content, contract, info, views, score_views(T2Model(content=content, contract=contract), views)


def train(fold_seed: int, n_folds: int, data_dir=None, out: Path = BUILD) -> None:
    """Train and save the fold models and their held-out predictions (see the module doc)."""
    recipe, metrics = shipped_recipe()
    table = bts_table(recipe, metrics, data_dir)
    objects = object_table(table[table["source"] == "bts"])
    out.mkdir(parents=True, exist_ok=True)
    for k, (train_ids, test_ids) in enumerate(cv_folds(objects, n_folds, fold_seed)):
        start = time.time()
        content, contract, info, views, scores = train_fold(table, train_ids, test_ids, recipe)
        (out / f"fold{k}.tflite").write_bytes(content)
        (out / f"fold{k}.json").write_text(json.dumps(
            {"fold": k, "fold_seed": fold_seed, "n_folds": n_folds, "recipe": dataclasses.asdict(recipe),
             "contract": contract, "train_ids": [str(i) for i in train_ids], "test_ids": [str(i) for i in test_ids],
             "info": {k_: v for k_, v in info.items() if k_ != "calibration"}, "minutes": (time.time() - start) / 60},
            indent=1) + "\n")
        np.savez_compressed(out / f"fold{k}.npz", proba=scores.proba, status=scores.status.astype(str),
                            label=np.array([s if s is not None else "" for s in scores.label]),
                            age=views.age, object_id=views.object_id.astype(str), y=views.label.astype(str))
        print(f"fold {k + 1}/{n_folds}: {info['epochs_run']} epochs, {(time.time() - start) / 60:.1f} min", flush=True)


def load_folds(out: Path = BUILD) -> list[dict]:
    """The saved folds: {'meta': fold<k>.json, 'pred': fold<k>.npz arrays, 'path': fold<k>.tflite}."""
    folds = []
    for meta_path in sorted(out.glob("fold*.json")):
        meta = json.loads(meta_path.read_text())
        with np.load(meta_path.with_suffix(".npz"), allow_pickle=False) as npz:
            pred = {k: npz[k] for k in npz.files}
        folds.append({"meta": meta, "pred": pred, "path": meta_path.with_suffix(".tflite")})
    if not folds:
        raise SystemExit(f"no saved folds in {out}: run `python scripts/fresh_folds.py train` first")
    return folds


class SavedScores(tuple):
    """A saved fold's predictions as :func:`bucket_metrics` reads a Classification."""

    def __new__(cls, pred):
        result = super().__new__(cls, (pred["proba"], pred["status"].astype(object)))
        result.label = np.where(pred["label"] == "", None, pred["label"].astype(object))
        return result


def fold_prior(objects, meta) -> np.ndarray:
    return class_prior(objects.set_index("object_id").loc[meta["train_ids"], "label"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("train", "report"))
    parser.add_argument("--fold-seed", type=int, default=FOLD_SEED)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if args.step == "train":
        train(args.fold_seed, args.folds, args.data_dir)
    else:
        from fresh_folds_report import report

        report(args.data_dir)


if __name__ == "__main__":
    main()
