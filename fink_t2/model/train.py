"""Train t2 on the alert views of labelled light curves; export a TFLite file carrying its contract.

    fink-t2 train [--cv 5] [--data-dir ../shared/data] [--output-dir fink_t2/data] [--float-dir build/model]

Training examples are alert views (:mod:`fink_t2.model.views`): the 30-day history an alert would
carry at one of the object's detection epochs, with its header (age, ``ndethist``), at most
``views_per_bucket`` per object and alert-age bucket so that young alerts are not outnumbered by old
ones, turned into tensors by the ONE preprocessing :func:`fink_t2.core.sequences.build_sequences`.

With ``--cv K`` the same recipe is first cross-validated (K grouped, stratified folds over all
objects; each fold's dynamic-range TFLite model is scored on its held-out objects' alert views
through the shipping runner and cuts: :mod:`fink_t2.model.crossval`). Then the model is trained on
every object (a stratified 15 % held out for early stopping) and written as ``t2.tflite``
(dynamic-range quantized, batch dimension dynamic) with ``t2_metrics.json``: the recipe, the
command, the cross-validation table and the guard metrics that tests recompute from the shipped file.
The float model is kept in ``--float-dir`` for ``fink-t2 compress``. The fitting itself is
:mod:`fink_t2.model.fitting` (re-exported here).
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

import tensorflow as tf
import tf_keras as keras

from fink_t2.core.contract import attach_contract, make_contract
from fink_t2.model.crossval import crossval
from fink_t2.model.datasets import CLASS_NAMES, load_table, object_table
from fink_t2.model.evaluate import guard_metrics
from fink_t2.model.export import DYNAMIC_RANGE
from fink_t2.model.fitting import (
    Recipe,
    class_weights,
    dynamic_tflite,
    fit,
    set_seeds,
    split_train_val,
    view_inputs,
)
from fink_t2.paths import FLOAT_MODEL_DIR, MODEL_DIR
from fink_t2.runtime.inference import T2Model

#: what ``from fink_t2.model.train import ...`` gives: the command, and the fitting library (fink_t2.model.fitting)
__all__ = ["METRICS_NAME", "MODEL_NAME", "Recipe", "class_weights", "dynamic_tflite", "fit", "main",
           "recipe_arguments", "recipe_from", "set_seeds", "split_train_val", "train_and_export", "view_inputs"]

MODEL_NAME = "t2.tflite"
METRICS_NAME = "t2_metrics.json"


def train_and_export(data_dir=None, output_dir=MODEL_DIR, float_dir=FLOAT_MODEL_DIR,
                     recipe: Recipe | None = None, cv_folds: int = 0, max_objects=None, command=None,
                     progress=True) -> dict:
    """Cross-validate (``cv_folds`` > 1), then train on all objects and write the model and its metrics."""
    recipe = recipe or Recipe()
    start = time.time()
    table = load_table(data_dir, max_objects, recipe.snpcc_objects, recipe.seed)
    bts = table[table["source"] == "bts"]
    cv = crossval(table, recipe, cv_folds, progress=progress) if cv_folds > 1 else None
    train, val = split_train_val(table, recipe)
    model, info = fit(train, val[val["source"] == "bts"], recipe, progress)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = command or "fink_t2.model.train.train_and_export()"
    contract = make_contract(CLASS_NAMES, created=created, calibration=info["calibration"],
                             training={"command": command, "recipe": dataclasses.asdict(recipe)})
    raw = dynamic_tflite(model, Path(float_dir) if float_dir else None)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / MODEL_NAME
    model_path.write_bytes(attach_contract(raw, contract))
    metrics = {
        "model": MODEL_NAME, "created": created, "command": command,
        "recipe": dataclasses.asdict(recipe), "training": {**info, "seconds": round(time.time() - start, 1)},
        "data": {"data_dir": data_dir and str(data_dir), "max_objects": max_objects, "class_names": list(CLASS_NAMES),
                 "objects": {src: {lab: int(n) for lab, n in g.groupby("label").size().items()}
                             for src, g in object_table(table).groupby("source")}},
        "cross_validation": cv,
        "guard": guard_metrics(T2Model(str(model_path)), bts),
        "model_size": {"tflite_bytes": model_path.stat().st_size, "tflite_without_contract_bytes": len(raw),
                       "parameters": int(model.count_params()),
                       "quantization": DYNAMIC_RANGE, "variant": "tflite_dynamic"},
        "versions": {"tensorflow": tf.__version__, "tf_keras": keras.__version__},
    }
    (output_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=1) + "\n")
    if float_dir:  # fink-t2 compress starts from these
        (Path(float_dir) / "float_model.json").write_text(json.dumps(
            {"data_dir": data_dir and str(data_dir), "max_objects": max_objects, "recipe": dataclasses.asdict(recipe)}, indent=1))
        (Path(float_dir) / METRICS_NAME).write_text(json.dumps(metrics, indent=1) + "\n")
    if progress:
        print(f"wrote {model_path} ({model_path.stat().st_size} bytes)")
    return metrics


def recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """One command-line option per :class:`Recipe` field (defaults: the shipped recipe)."""
    for f in dataclasses.fields(Recipe):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)


def recipe_from(args) -> Recipe:
    return Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)})


def main(argv=None) -> dict:
    """Command line entry: ``fink-t2 train`` / ``python -m fink_t2.model.train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--dataset=plasticc" in argv or any(a == "--dataset" and b == "plasticc" for a, b in zip(argv, argv[1:])):
        from fink_t2.model.plasticc_run import main as plasticc_main  # PLAsTiCC: its own options

        return plasticc_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="shared data sets (default: $FINK_T2_DATA, else ../shared/data)")
    parser.add_argument("--dataset", choices=["bts", "plasticc"], default="bts",
                        help="plasticc: t2 on PLAsTiCC in any band set (options: python -m fink_t2.model.plasticc_run --help)")
    parser.add_argument("--output-dir", default=str(MODEL_DIR), help="where the model file and its metrics are written")
    parser.add_argument("--float-dir", default=str(FLOAT_MODEL_DIR), help="where the float model is kept ('' : not kept)")
    parser.add_argument("--cv", type=int, default=0, help="cross-validate the recipe over K folds first (0: no)")
    parser.add_argument("--max-objects", type=int, default=None, help="cap objects per source (quick runs, tests)")
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    return train_and_export(args.data_dir, args.output_dir, args.float_dir or None, recipe_from(args), args.cv,
                            args.max_objects, command=shlex.join(["fink-t2", "train", *argv]))


if __name__ == "__main__":
    main()
