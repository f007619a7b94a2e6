"""Train t2, export it as a quantized TFLite file carrying its contract, evaluate that file.

    python -m fink_t2.model.train --data-dir ../shared/data --output-dir fink_t2/data

writes ``t2.tflite`` (dynamic-range quantized, batch dimension dynamic) and
``t2_metrics.json`` (metrics of the *quantized file* on the BTS test objects,
full light curves and truncations, plus what data and command produced it), and keeps the
float model in ``--float-dir`` (default ``build/model``) for ``fink-t2 compress``. The shipped
model is ``fink-t2 train`` then ``fink-t2 compress --ship tflite_int8_pt_stripped`` (full-int8,
~29 KB; see docs/compression.md).
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from sklearn.metrics import confusion_matrix, f1_score, log_loss, precision_recall_fscore_support  # noqa: E402

from fink_t2.contract import attach_contract, make_contract  # noqa: E402
from fink_t2.model.architecture import build_model  # noqa: E402
from fink_t2.model.datasets import CLASS_NAMES, build_datasets  # noqa: E402

MODEL_NAME = "t2.tflite"
METRICS_NAME = "t2_metrics.json"
FRACTIONS = (0.7, 0.15, 0.15)


def set_seeds(seed: int) -> None:
    """Seed python, numpy and TensorFlow, and ask TensorFlow for deterministic ops."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray, n_classes: int = len(CLASS_NAMES), power: float = 1.0) -> np.ndarray:
    """Weights (inverse class frequency) ** ``power``, mean 1 over the examples (absent classes: 0).

    ``power`` 1: every class weighs the same in the loss; 0.5 (square root): softer, trades some
    rare-class recall for accuracy; 0: no weighting.

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


def to_tflite(saved_model_dir) -> bytes:
    """Dynamic-range quantized TFLite (int8 weights, float activations), batch left dynamic."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def predict_tflite(model_path, values: np.ndarray) -> np.ndarray:
    """Class probabilities from a .tflite file (contract zip appended or not), one batch."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(values.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], values.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).copy()


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    """Log-loss, accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix.

    ``balanced_*``: every class present in ``y`` weighs the same (weights inverse to frequency).
    """
    labels = list(range(len(CLASS_NAMES)))
    proba = np.clip(proba.astype(np.float64), 1e-7, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    balanced = class_weights(y)[y]
    return {
        "n_examples": int(len(y)),
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "balanced_log_loss": float(log_loss(y, proba, labels=labels, sample_weight=balanced)),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(np.average(pred == y, weights=balanced)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(CLASS_NAMES)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def _evaluate(proba: np.ndarray, examples) -> dict:
    full = examples.full
    return {"full_curves": classification_metrics(examples.label[full], proba[full]),
            "all_truncations": classification_metrics(examples.label, proba)}


def _baselines(objects, examples) -> dict:
    """Chance references on full test curves: always the majority class, or the BTS training prior."""
    bts_train = objects[(objects["source"] == "bts") & (objects["split"] == "train")]["label"]
    prior = bts_train.value_counts(normalize=True).reindex(CLASS_NAMES, fill_value=0).to_numpy()
    y = examples.label[examples.full]
    majority = classification_metrics(y, np.tile(np.eye(len(CLASS_NAMES))[prior.argmax()], (len(y), 1)))
    with_prior = classification_metrics(y, np.tile(prior, (len(y), 1)))
    return {"majority_class": {k: majority[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")},
            "bts_train_prior": {k: with_prior[k] for k in ("log_loss", "balanced_log_loss")}}


def _dir_size(path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def train_and_export(data_dir="../shared/data", output_dir="fink_t2/data", epochs=40, seed=42, progress=True,
                     max_objects=None, snpcc_objects=0, max_truncations=8, batch_size=256, patience=6,
                     learning_rate=3e-3, command=None, class_weight_power=1.0, float_dir=None) -> dict:
    """Build data, train, export ``output_dir/t2.tflite`` and ``t2_metrics.json``; return the metrics.

    ``max_objects`` caps the objects per source (quick runs and tests); ``snpcc_objects``
    is the size of a class-balanced SNPCC subsample added to training/validation (0: BTS
    only, the shipped model: adding 1,500 or 5,000 SNPCC objects did not improve the BTS
    validation set's class-balanced log-loss). ``class_weight_power``: see :func:`class_weights`.
    ``float_dir``: where to keep the float model (``t2_savedmodel/``, ``t2.keras``, ``t2.h5`` and
    ``float_model.json``, the inputs of ``fink-t2 compress``); None: a temporary folder, nothing kept.
    """
    start = time.time()
    set_seeds(seed)
    if command is None:
        command = (f"train_and_export(data_dir={str(data_dir)!r}, output_dir={str(output_dir)!r}, epochs={epochs}, "
                   f"seed={seed}, max_objects={max_objects}, snpcc_objects={snpcc_objects})")
    objects, data = build_datasets(data_dir, max_objects, snpcc_objects, max_truncations, FRACTIONS, seed)
    train, val, test = data["train"], data["val"], data["test"]
    weights = class_weights(train.label, power=class_weight_power)
    if progress:
        print(f"examples: train {len(train)}, val {len(val)}, test {len(test)}; class weights {weights.round(3)}")

    model = build_model(len(CLASS_NAMES))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=3, min_lr=1e-4,
                                                   verbose=int(progress)),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)]
    fit_start = time.time()
    history = model.fit(train.values, train.label, sample_weight=weights[train.label], epochs=epochs,
                        batch_size=batch_size, validation_data=(val.values, val.label, weights[val.label]),
                        callbacks=callbacks, shuffle=True, verbose=2 if progress else 0)
    train_seconds = time.time() - fit_start
    val_losses = history.history["val_loss"]
    keras_proba = model.predict(test.values, batch_size=1024, verbose=0)
    val_bts = val.select(val.source == "bts")
    val_bts_proba = model.predict(val_bts.values, batch_size=1024, verbose=0)
    val_bts_metrics = {k: {m: v[m] for m in ("log_loss", "balanced_log_loss", "accuracy", "macro_f1")}
                       for k, v in _evaluate(val_bts_proba, val_bts).items()}

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / MODEL_NAME
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(float_dir) if float_dir is not None else Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        model.save(keep / "t2_savedmodel", save_format="tf")
        saved_model_bytes = _dir_size(keep / "t2_savedmodel")
        tflite_bytes = to_tflite(keep / "t2_savedmodel")
        if float_dir is not None:  # inputs of fink-t2 compress: the float model and how its data was built
            model.save(keep / "t2.keras")
            model.save(keep / "t2.h5")
            (keep / "float_model.json").write_text(json.dumps({
                "command": command, "data_dir": str(data_dir), "seed": seed, "max_objects": max_objects,
                "snpcc_objects": snpcc_objects, "max_truncations": max_truncations,
                "fractions": list(FRACTIONS), "class_weight_power": class_weight_power}, indent=1) + "\n")
    counts = objects.groupby(["source", "label"]).size()
    folders = [{"bts": "ztf_bts", "snpcc": "snpcc_des"}[src] for src in sorted(objects["source"].unique())]
    training = {"data": folders, "seed": seed, "epochs_run": len(val_losses),
                "best_epoch": int(np.argmin(val_losses)) + 1, "command": command,
                "objects": {src: int(n) for src, n in objects.groupby("source").size().items()}}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    model_path.write_bytes(attach_contract(tflite_bytes, make_contract(CLASS_NAMES, training=training,
                                                                       created=created)))

    proba = predict_tflite(model_path, test.values)
    metrics = {
        "model": MODEL_NAME,
        "created": created,
        "command": command,
        "evaluated_on": "BTS test objects (never trained on), quantized .tflite via ai_edge_litert",
        "test": _evaluate(proba, test),
        "test_float_keras_reference": {k: {m: v[m] for m in ("log_loss", "accuracy", "macro_f1")}
                                       for k, v in _evaluate(keras_proba, test).items()},
        "test_chance_baselines_full_curves": _baselines(objects, test),
        "val_bts_float_keras": val_bts_metrics,
        "data": {
            "data_dir": str(data_dir),
            "paths": [path for path in ("ztf_bts/lightcurves.csv.gz", "ztf_bts/labels.csv",
                                        "snpcc_des/lightcurves.parquet", "snpcc_des/labels.csv")
                      if path.split("/")[0] in folders],
            "snpcc_cuts": "g and r only, flux/fluxerr >= 5, mag = 27.5 - 2.5 log10(flux)" if snpcc_objects else None,
            "class_names": list(CLASS_NAMES),
            "objects": {src: {lab: int(n) for lab, n in counts[src].items()} for src in counts.index.levels[0]
                        if src in counts.index},
            "objects_per_split": {f"{src}/{split}": int(n)
                                  for (src, split), n in objects.groupby(["source", "split"]).size().items()},
            "examples_per_split": {"train": len(train), "val": len(val), "test": len(test)},
            "max_objects": max_objects, "snpcc_objects": snpcc_objects, "max_truncations": max_truncations,
        },
        "split": {"fractions": dict(zip(("train", "val", "test"), FRACTIONS)), "seed": seed,
                  "stratified_by": ["source", "label"], "test_sources": ["bts"]},
        "training": {"epochs_max": epochs, "epochs_run": len(val_losses), "best_epoch": training["best_epoch"],
                     "best_val_loss": float(min(val_losses)), "batch_size": batch_size,
                     "learning_rate": learning_rate, "lr_schedule": "ReduceLROnPlateau(val_loss, x0.3, patience 3)",
                     "loss": ("class-balanced log-loss (weights inverse to frequency)" if class_weight_power == 1
                              else f"weighted log-loss (weights (inverse frequency) ** {class_weight_power})"),
                     "class_weight_power": class_weight_power,
                     "class_weights": dict(zip(CLASS_NAMES, weights.round(6).tolist())),
                     "early_stopping_patience": patience, "train_seconds": round(train_seconds, 1),
                     "total_seconds": round(time.time() - start, 1)},
        "model_size": {"tflite_bytes": model_path.stat().st_size, "tflite_without_contract_bytes": len(tflite_bytes),
                       "float_savedmodel_dir_bytes": saved_model_bytes, "parameters": int(model.count_params()),
                       "quantization": "dynamic-range (int8 weights, float32 activations)"},
        "versions": {"tensorflow": tf.__version__, "tf_keras": keras.__version__},
    }
    (output_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=1) + "\n")
    if float_dir is not None:  # fink-t2 compress --ship starts from these
        (Path(float_dir) / METRICS_NAME).write_text(json.dumps(metrics, indent=1) + "\n")
    if progress:
        summary = {k: {m: round(v[m], 4) for m in ("log_loss", "accuracy", "macro_f1")}
                   for k, v in metrics["test"].items()}
        print(f"wrote {model_path} ({metrics['model_size']['tflite_bytes']} bytes); test: {summary}")
    return metrics


def main(argv=None) -> dict:
    """Command line entry: ``python -m fink_t2.model.train``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--output-dir", default="fink_t2/data")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-objects", type=int, default=None, help="cap objects per source (quick runs)")
    parser.add_argument("--snpcc-objects", type=int, default=0,
                        help="class-balanced SNPCC subsample added to training (0: BTS only)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    # defaults = the recipe of the shipped model (docs/quality.md): weights (1/frequency)**0.35, 16 examples per object
    parser.add_argument("--max-truncations", type=int, default=16, help="examples per object (full curve + truncations)")
    parser.add_argument("--class-weight-power", type=float, default=0.35,
                        help="class weights = (inverse frequency) ** POWER (1: balanced, 0.5: sqrt, 0: none)")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience (epochs)")
    parser.add_argument("--float-dir", default="build/model",
                        help="where the float model is kept for fink-t2 compress ('' : not kept)")
    args = parser.parse_args(argv)
    return train_and_export(args.data_dir, args.output_dir, args.epochs, args.seed, max_objects=args.max_objects,
                            snpcc_objects=args.snpcc_objects, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, max_truncations=args.max_truncations,
                            class_weight_power=args.class_weight_power, patience=args.patience,
                            float_dir=args.float_dir or None,
                            command=shlex.join(["python", "-m", "fink_t2.model.train", *argv]))


if __name__ == "__main__":
    main()
