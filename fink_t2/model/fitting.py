"""Fit t2 to alert views: the recipe, the Keras training, the dynamic-range TFLite export.

The library under ``fink-t2 train`` (:mod:`fink_t2.model.train`, the command) and the cross-validation
(:mod:`fink_t2.model.crossval`), which both fit models and neither of which this module imports.
Training examples are alert views (:mod:`fink_t2.model.views`), at most ``views_per_bucket`` per object and
alert-age bucket, turned into tensors by the ONE preprocessing :func:`fink_t2.core.sequences.build_sequences`.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

from fink_t2.core.cuts import MIN_EPOCHS
from fink_t2.core.sequences import build_sequences
from fink_t2.model.architecture import build_model
from fink_t2.model.calibration import fit_calibration
from fink_t2.model.datasets import CLASS_NAMES, object_table, validation_ids
from fink_t2.model.export import tflite_bytes
from fink_t2.model.views import Views, alert_views, sample_views


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
    model = compiled(build_model(len(CLASS_NAMES)), recipe.learning_rate)
    pretrained = 0
    if pretrain.any():  # SNPCC first (its own class weights), early-stopped on the BTS validation views
        x_pre, y_pre = view_inputs(sample_views(alert_views(train_table[pretrain]), recipe.views_per_bucket, recipe.seed))
        w_pre = class_weights(y_pre, power=recipe.class_weight_power)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
        pretrained = len(model.fit(x_pre, y_pre, sample_weight=w_pre[y_pre], epochs=recipe.pretrain_epochs,
                                   batch_size=recipe.batch_size, validation_data=(x_val, y_val, weights[y_val]),
                                   callbacks=[stop], shuffle=True, verbose=2 if progress else 0).history["loss"])
        compiled(model, recipe.learning_rate)
    losses = fit_early_stopped(model, (x, y, weights[y]), (x_val, y_val, weights[y_val]), recipe, progress)
    calibration = fit_calibration(model.predict(x_val, batch_size=1024, verbose=0), x_val, y_val, recipe.calibration)
    info = {"calibration": calibration, "training_views": int(len(y)), "validation_views": int(len(y_val)),
            "pretraining_epochs_run": pretrained, "epochs_run": len(losses),
            "best_epoch": int(np.argmin(losses)) + 1, "best_val_loss": float(min(losses)),
            "class_weights": dict(zip(CLASS_NAMES, weights.round(6).tolist()))}
    return model, info


def compiled(model, learning_rate: float):
    """``model`` compiled as every t2 is trained: Adam, sparse categorical cross-entropy, weighted accuracy."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    return model


def fit_early_stopped(model, train: tuple, validation: tuple, recipe, progress: bool = False) -> list[float]:
    """Fit ``model`` on ``train`` (x, y, sample weights) for at most ``recipe.epochs`` epochs of
    ``recipe.batch_size``, the learning rate cut on a plateau and stopped after ``recipe.patience`` epochs without
    a better loss on ``validation`` (x, y, sample weights), the best weights restored; the validation losses."""
    x, y, weights = train
    callbacks = [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=3, min_lr=1e-4),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=True)]
    history = model.fit(x, y, sample_weight=weights, epochs=recipe.epochs, batch_size=recipe.batch_size,
                        validation_data=validation, callbacks=callbacks, shuffle=True, verbose=2 if progress else 0)
    return history.history["val_loss"]


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
