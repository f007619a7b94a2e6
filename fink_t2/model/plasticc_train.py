"""Train t2 on PLAsTiCC inputs and cross-validate it, every fold quantized and scored by the shipping runner.

Training is class-balanced (class weights ∝ 1 / frequency, the weighting of PLAsTiCC's flat log-loss) and
early-stopped on a stratified 15 % of the training objects; a temperature fitted on those same validation
objects (flat log-loss) is folded into the last layer (logits / T: the decision is unchanged), so the file
needs no runtime calibration. Each fold's model is exported as a dynamic-range TFLite file with its contract
and scored through :class:`fink_t2.runtime.inference.T2Model`, as the stream would run it.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from fink_t2.core.contract import attach_contract, make_contract
from fink_t2.model.architecture import build_model
from fink_t2.model.fitting import compiled, fit_early_stopped
from fink_t2.model.plasticc import flat_log_loss, split_objects
from fink_t2.model.train import class_weights, dynamic_tflite, set_seeds


@dataclasses.dataclass
class PlasticcRecipe:
    """Everything besides the data and its view that decides a PLAsTiCC model (recorded in its metrics)."""

    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 3e-3
    patience: int = 6
    #: class weights (inverse class frequency) ** power: 1 balanced (PLAsTiCC's flat weighting)
    class_weight_power: float = 1.0
    validation_fraction: float = 0.15
    #: fit a temperature on the validation objects and fold it into the last layer
    temperature: bool = True
    seed: int = 42


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the flat log-loss of softmax(log p / T) on (proba, y)."""
    logits = np.log(np.clip(proba, 1e-15, 1.0))
    best, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.4), np.log(4.0), 41)):
        z = logits / t
        p = np.exp(z - z.max(axis=1, keepdims=True))
        loss = flat_log_loss(y, p / p.sum(axis=1, keepdims=True))
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def fit(x, y, x_val, y_val, n_classes: int, recipe: PlasticcRecipe, progress: bool = False):
    """A fresh t2 trained on (x, y), early-stopped (and its temperature fitted) on (x_val, y_val)."""
    set_seeds(recipe.seed)
    weights = class_weights(y, n_classes, power=recipe.class_weight_power)
    val_weights = class_weights(y_val, n_classes, power=recipe.class_weight_power)
    model = compiled(build_model(n_classes, input_shape=x.shape[1:]), recipe.learning_rate)
    losses = fit_early_stopped(model, (x, y, weights[y]), (x_val, y_val, val_weights[y_val]), recipe, progress)
    temperature = 1.0
    if recipe.temperature:
        temperature = fit_temperature(model.predict(x_val, batch_size=1024, verbose=0), y_val)
        last = model.get_layer("probabilities")
        kernel, bias = last.get_weights()
        last.set_weights([kernel / temperature, bias / temperature])
    return model, {"epochs_run": len(losses), "best_epoch": int(np.argmin(losses)) + 1,
                   "best_val_loss": float(min(losses)), "temperature": temperature,
                   "training_examples": int(len(y)), "validation_examples": int(len(y_val))}


def quantized_file(model, spec, class_names, keep_dir=None, **extra) -> tuple[bytes, dict]:
    """(dynamic-range TFLite bytes with the contract appended, the contract)."""
    contract = make_contract(class_names, spec=spec, calibration=None, **extra)
    return attach_contract(dynamic_tflite(model, keep_dir), contract), contract


def scores(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    """Flat-weighted and plain log-loss, macro-F1, accuracy and confusion matrix (rows: true class)."""
    p = np.clip(proba.astype(np.float64), 1e-15, 1.0)
    p /= p.sum(axis=1, keepdims=True)
    labels = list(range(n_classes))
    pred = p.argmax(axis=1)
    present = np.isin(labels, y)
    f1 = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    return {"n": int(len(y)), "flat_log_loss": flat_log_loss(y, p, n_classes),
            "log_loss": float(log_loss(y, p, labels=labels)), "macro_f1": float(np.mean(f1[present])),
            "accuracy": float(np.mean(pred == y)),
            "confusion": confusion_matrix(y, pred, labels=labels).tolist()}


def prior_scores(y_train: np.ndarray, y: np.ndarray, n_classes: int, flat: bool) -> dict:
    """Scores of a constant class prior: the training frequencies, or (``flat``) uniform, which is the
    prior that the flat log-loss rewards."""
    counts = np.bincount(y_train, minlength=n_classes).astype(np.float64) + 1e-9
    prior = np.full(n_classes, 1.0 / n_classes) if flat else counts / counts.sum()
    return scores(y, np.tile(prior, (len(y), 1)), n_classes)


def fold_splits(objects, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(training object ids, held-out object ids)] of each fold: grouped (one object in one fold), stratified by
    ``objects["y"]``, seeded; the split :func:`crossval` scores."""
    ids, labels = objects["object_id"].to_numpy(), objects["y"].to_numpy()
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(ids[train], ids[test]) for train, test in splitter.split(ids, labels)]


def train_fold(objects, train_ids, inputs, spec, class_names, recipe: PlasticcRecipe, progress: bool = False):
    """(TFLite bytes with its contract, the contract, training info, training labels) of the model a fold fits on
    ``train_ids``: a stratified validation share held out for early stopping and the temperature
    (:func:`split_objects`), then :func:`fit` and :func:`quantized_file`. ``inputs`` as for :func:`crossval`."""
    labels = objects.set_index("object_id").loc[train_ids, "y"].to_numpy()
    fit_ids, val_ids = split_objects(train_ids, labels, recipe.validation_fraction, recipe.seed)
    (x, y), (x_val, y_val) = inputs(fit_ids, "train_augmented"), inputs(val_ids, "train")
    model, info = fit(x, y, x_val, y_val, len(class_names), recipe, progress=progress)
    content, contract = quantized_file(model, spec, class_names)
    return content, contract, info, y


def crossval(objects, inputs, spec, class_names, recipe: PlasticcRecipe, n_folds: int = 5,
             progress: bool = True, max_folds: int | None = None) -> dict:
    """Grouped (one object in one fold), class-stratified ``n_folds`` cross-validation.

    ``objects``: object_id, y. ``inputs(ids, part)``: ``part`` "train" → (x, y) of those objects
    ("train_augmented": with their augmented copies, if any, for fitting);
    "test" → ``{evaluation set: (x, y, extra)}`` where ``extra`` is a dict of per-example arrays (age
    bucket, detection count, ...) or None. Returns per-fold scores and the training information.
    """
    folds = []
    for k, (train_ids, test_ids) in enumerate(fold_splits(objects, n_folds, recipe.seed)):
        if max_folds is not None and k >= max_folds:  # quick studies: the first folds of the same split only
            break
        start = time.time()
        content, contract, info, y = train_fold(objects, train_ids, inputs, spec, class_names, recipe)
        from fink_t2.runtime.inference import T2Model

        runner = T2Model(content=content, contract=contract)
        fold = {"fold": k, "training": info, "tflite_bytes": len(content), "sets": {}}
        for name, (x_test, y_test, extra) in inputs(test_ids, "test").items():
            proba = runner.predict(x_test)
            fold["sets"][name] = {"all": scores(y_test, proba, len(class_names)),
                                  "prior": prior_scores(y, y_test, len(class_names), flat=False),
                                  "flat_prior": prior_scores(y, y_test, len(class_names), flat=True)}
            for key, values in (extra or {}).items():
                fold["sets"][name][key] = {str(v): scores(y_test[values == v], proba[values == v], len(class_names))
                                           | {"prior": prior_scores(y, y_test[values == v], len(class_names), False)}
                                           for v in np.unique(values)}
        fold["seconds"] = round(time.time() - start, 1)
        folds.append(fold)
        if progress:
            first = next(iter(fold["sets"].values()))["all"]
            print(f"fold {k}: flat log-loss {first['flat_log_loss']:.3f}, macro-F1 {first['macro_f1']:.3f}, "
                  f"{info['epochs_run']} epochs, {fold['seconds']} s", flush=True)
    return {"n_folds": n_folds, "recipe": dataclasses.asdict(recipe), "folds": folds,
            "summary": summarize(folds)}


def summarize(folds: list[dict]) -> dict:
    """Mean ± std over the folds of every scalar score of every evaluation set (and subset)."""
    def walk(entries):
        first = entries[0]
        if isinstance(first, dict):
            keys = set(first).intersection(*[set(e) for e in entries[1:]]) if len(entries) > 1 else set(first)
            return {k: walk([e[k] for e in entries]) for k in sorted(keys) if k != "confusion"} | (
                {"confusion": np.sum([e["confusion"] for e in entries], axis=0).tolist()} if "confusion" in first else {})
        if isinstance(first, (int, float)):
            return {"mean": float(np.mean(entries)), "std": float(np.std(entries))}
        return None
    return walk([f["sets"] for f in folds])


def recipe_fields(args) -> dict:
    """The :class:`PlasticcRecipe` fields of parsed command-line ``args``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(PlasticcRecipe)}
