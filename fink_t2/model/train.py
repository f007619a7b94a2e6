"""Train t2 on the alert views of labelled light curves; export a TFLite file carrying its contract.

    fink-t2 train [--cv 5] [--data-dir ../shared/data] [--output-dir fink_t2/data] [--float-dir build/model]

Training examples are alert views (:mod:`fink_t2.model.views`): the 30-day history an alert would
carry at one of the object's detection epochs, with its header (age, ``ndethist``), at most
``views_per_bucket`` per object and alert-age bucket so that young alerts are not outnumbered by old
ones, turned into tensors by the ONE preprocessing :func:`fink_t2.core.sequences.build_sequences`.

With ``--cv K`` the same recipe is first cross-validated (K grouped, stratified folds over all
objects; each fold's dynamic-range TFLite model is scored on its held-out objects' alert views
through the shipping runner and cuts: :mod:`fink_t2.model.evaluate`). Then the model is trained on
every object (a stratified 15 % held out for early stopping) and written as ``t2.tflite``
(dynamic-range quantized, batch dimension dynamic) with ``t2_metrics.json``: the recipe, the
command, the cross-validation table and the guard metrics that tests recompute from the shipped file.
The float model is kept in ``--float-dir`` for ``fink-t2 compress``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

from fink_t2.core.contract import attach_contract, make_contract
from fink_t2.core.cuts import MIN_EPOCHS
from fink_t2.core.sequences import build_sequences
from fink_t2.model.architecture import build_model
from fink_t2.model.calibration import fit_calibration
from fink_t2.model.datasets import CLASS_NAMES, load_table, object_table, validation_ids
from fink_t2.model.export import DYNAMIC_RANGE, tflite_bytes
from fink_t2.model.views import Views, alert_views, sample_views
from fink_t2.paths import FLOAT_MODEL_DIR, MODEL_DIR

MODEL_NAME = "t2.tflite"
METRICS_NAME = "t2_metrics.json"


@dataclasses.dataclass
class Recipe:
    """Everything that decides the trained model, besides the data (recorded in its metrics)."""

    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 6
    #: class weights (inverse class frequency) ** power: 1 balanced, 0 none
    class_weight_power: float = 0.5
    #: training views per (object, alert-age bucket)
    views_per_bucket: int = 2
    #: redshifted, re-observed copies of each training BTS object (``fink_t2.model.augment``; 0: none)
    augment_copies: int = 0
    #: > augment_copies: rarer classes get more copies, towards balance, at most this many (0: off)
    augment_max_copies: int = 0
    #: class-balanced SNPCC objects added to training (0: BTS only)
    snpcc_objects: int = 0
    #: >0: the SNPCC objects pretrain the network for at most this many epochs, then it is fine-tuned on
    #: the BTS objects alone (0: SNPCC objects, if any, are mixed into the BTS training views)
    pretrain_epochs: int = 0
    validation_fraction: float = 0.15
    #: calibration of the probabilities, fitted on the validation views and carried in the contract (the
    #: decision stays the argmax of the network's output): "none"; "temperature"; "age" (temperature plus
    #: class offsets linear in the alert's age and ndethist channels). See fink_t2.model.calibration
    calibration: str = "age"
    seed: int = 42


def set_seeds(seed: int) -> None:
    """Seed python, numpy and TensorFlow, and ask TensorFlow for deterministic ops."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray, n_classes: int = len(CLASS_NAMES), power: float = 1.0) -> np.ndarray:
    """Weights (inverse class frequency) ** ``power``, mean 1 over the examples (absent classes: 0).

    >>> class_weights(np.array([0, 0, 0, 1]), 3).tolist()
    [0.6666666666666666, 2.0, 0.0]
    >>> [round(w, 3) for w in class_weights(np.array([0, 0, 0, 1]), 3, power=0.5).tolist()]
    [0.845, 1.464, 0.0]
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = (len(labels) / (present.sum() * counts[present])) ** power
    if len(labels):
        weights /= np.sum(weights[labels]) / len(labels)
    return weights


def view_inputs(views: Views) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs, class indices) of the views that pass the detection cut, as the stream builds them."""
    seq = build_sequences(views.jd, views.fid, views.mag, None, views.jd_now, views.jdstarthist, views.ndethist,
                          offsets=views.offsets)
    keep = seq.n_epochs >= MIN_EPOCHS
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    return seq.values[keep], np.array([index[name] for name in views.label[keep]], dtype=np.int64)


def fit(train_table, val_table, recipe: Recipe, progress: bool = True):
    """Train a fresh t2 on the sampled alert views of ``train_table``, early-stopped on ``val_table``'s."""
    set_seeds(recipe.seed)
    if recipe.augment_copies or recipe.augment_max_copies:  # this training table only: held-out objects never leak
        from fink_t2.model.augment import augment

        extra = augment(train_table, recipe.augment_copies, recipe.seed, max_copies=recipe.augment_max_copies)
        train_table = pd.concat([train_table, extra], ignore_index=True)
    pretrain = train_table["source"] == "snpcc" if recipe.pretrain_epochs else np.zeros(len(train_table), bool)
    x, y = view_inputs(sample_views(alert_views(train_table[~pretrain]), recipe.views_per_bucket, recipe.seed))
    x_val, y_val = view_inputs(sample_views(alert_views(val_table), recipe.views_per_bucket, recipe.seed))
    weights = class_weights(y, power=recipe.class_weight_power)
    if progress:
        print(f"training views {len(y)}, validation views {len(y_val)}; class weights {weights.round(3)}")
    model = build_model(len(CLASS_NAMES))
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    pretrained = 0
    if pretrain.any():  # SNPCC first (its own class weights), early-stopped on the BTS validation views
        x_pre, y_pre = view_inputs(sample_views(alert_views(train_table[pretrain]), recipe.views_per_bucket, recipe.seed))
        w_pre = class_weights(y_pre, power=recipe.class_weight_power)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
        pretrained = len(model.fit(x_pre, y_pre, sample_weight=w_pre[y_pre], epochs=recipe.pretrain_epochs,
                                   batch_size=recipe.batch_size, validation_data=(x_val, y_val, weights[y_val]),
                                   callbacks=[stop], shuffle=True, verbose=2 if progress else 0).history["loss"])
        model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="sparse_categorical_crossentropy",
                      weighted_metrics=["accuracy"])
    callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=3, min_lr=1e-4),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=True)]
    history = model.fit(x, y, sample_weight=weights[y], epochs=recipe.epochs, batch_size=recipe.batch_size,
                        validation_data=(x_val, y_val, weights[y_val]), callbacks=callbacks, shuffle=True,
                        verbose=2 if progress else 0)
    losses = history.history["val_loss"]
    calibration = fit_calibration(model.predict(x_val, batch_size=1024, verbose=0), x_val, y_val, recipe.calibration)
    info = {"calibration": calibration, "training_views": int(len(y)), "validation_views": int(len(y_val)),
            "pretraining_epochs_run": pretrained, "epochs_run": len(losses),
            "best_epoch": int(np.argmin(losses)) + 1, "best_val_loss": float(min(losses)),
            "class_weights": dict(zip(CLASS_NAMES, weights.round(6).tolist()))}
    return model, info


def dynamic_tflite(model, keep_dir: Path | None = None) -> bytes:
    """Dynamic-range quantized TFLite bytes (int8 weights, float activations) through a SavedModel.

    ``keep_dir``: also keep the float model there (SavedModel, ``.keras``, ``.h5``) for ``fink-t2 compress``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep_dir) if keep_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "t2_savedmodel", save_format="tf")
        if keep_dir is not None:
            model.save(folder / "t2.keras")
            model.save(folder / "t2.h5")
        return tflite_bytes(folder / "t2_savedmodel", "dynamic")


def split_train_val(table, recipe: Recipe):
    """(training table, validation table): a stratified ``validation_fraction`` of the objects held out."""
    val = set(validation_ids(object_table(table), recipe.validation_fraction, recipe.seed))
    held = table["object_id"].isin(val).to_numpy()
    return table[~held], table[held]


def train_and_export(data_dir=None, output_dir=MODEL_DIR, float_dir=FLOAT_MODEL_DIR,
                     recipe: Recipe | None = None, cv_folds: int = 0, max_objects=None, command=None,
                     progress=True) -> dict:
    """Cross-validate (``cv_folds`` > 1), then train on all objects and write the model and its metrics."""
    from fink_t2.model.evaluate import crossval, guard_metrics
    from fink_t2.runtime.inference import T2Model

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
