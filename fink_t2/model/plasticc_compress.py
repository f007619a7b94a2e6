"""The seed paper's compression table on the g/r PLAsTiCC model: size, speed and CV quality of each variant.

    python -m fink_t2.model.plasticc_compress [--folds 2] [--fine-tune-epochs 3]

Variants (as in :mod:`fink_t2.model.compress`, for this model's input shape): the float SavedModel, float
TFLite, dynamic-range TFLite (int8 weights), full-int8 TFLite (int8 weights and activations, float softmax),
16-cluster, 50 %-pruned and clustered + pruned models (tfmot, fine-tuned a few epochs, then dynamic-range
quantized: the paper's clustered + pruned + quantized model). Quality: each of the first ``--folds`` folds of
the g/r cross-validation is trained again, every variant built from it and scored on its held-out objects
by the shipping runner. Size and speed: the variants of the model trained on every object
(``fink-t2 train --dataset plasticc --setting gr --ship``, kept in ``build/plasticc/models/gr_float``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np

from fink_t2.model.export import tflite_bytes
from fink_t2.model.plasticc import CLASS_NAMES, split_objects
from fink_t2.model.plasticc_run import BUILD, VIEW, full_curve_data
from fink_t2.model.plasticc_train import PlasticcRecipe, fit, scores

N_CLUSTERS = 16
SPARSITY = 0.5
VARIANTS = ("savedmodel", "tflite_float", "tflite_dynamic", "tflite_int8", "clustered", "pruned", "clustered_pruned")


def _wrap(model, wrap):
    from fink_t2.model.architecture import keras

    supported = (keras.layers.Conv1D, keras.layers.Dense, keras.layers.MultiHeadAttention)
    return keras.models.clone_model(model, clone_function=lambda layer: wrap(layer) if isinstance(layer, supported)
                                    else layer)


def tfmot_variant(name, model, train, val, epochs, seed=42):
    """``clustered`` / ``pruned`` / ``clustered_pruned`` copy of ``model``, fine-tuned, stripped, as Keras."""
    import tensorflow_model_optimization as tfmot

    from fink_t2.model.architecture import keras
    from fink_t2.model.train import class_weights, set_seeds

    set_seeds(seed)
    (x, y), (x_val, y_val) = train, val
    weights = class_weights(y, len(CLASS_NAMES))
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())

    def tune(m, lr, callbacks=()):
        m.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
        m.fit(x, y, sample_weight=weights[y], epochs=epochs, batch_size=128, callbacks=list(callbacks), verbose=0,
              validation_data=(x_val, y_val))
    if name in ("pruned", "clustered_pruned"):
        sparsity = tfmot.sparsity.keras
        steps = int(np.ceil(len(y) / 128)) * epochs
        schedule = sparsity.PolynomialDecay(0.0, SPARSITY, begin_step=0, end_step=max(1, steps * 2 // 3), frequency=10)
        wrapped = _wrap(base, lambda layer: sparsity.prune_low_magnitude(layer, pruning_schedule=schedule))
        tune(wrapped, 5e-4, [sparsity.UpdatePruningStep()])
        base = sparsity.strip_pruning(wrapped)
    if name in ("clustered", "clustered_pruned"):
        cluster = tfmot.clustering.keras
        wrapped = _wrap(base, lambda layer: cluster.cluster_weights(
            layer, number_of_clusters=N_CLUSTERS, cluster_centroids_init=cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=(name == "clustered_pruned")))
        tune(wrapped, 2e-4)
        base = cluster.strip_clustering(wrapped)
    return base


def build_variants(model, train, val, epochs, folder: Path | None = None) -> dict:
    """{variant: TFLite bytes} (the SavedModel as the float TFLite's source, its size from ``folder``)."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(folder or tmp) / "t2_savedmodel"
        if not saved.exists():
            model.save(saved, save_format="tf")
        rng = np.random.default_rng(0)
        representative = train[0][rng.choice(len(train[0]), min(512, len(train[0])), replace=False)]
        for mode in ("float", "dynamic", "int8"):
            out[f"tflite_{mode}"] = tflite_bytes(saved, mode, representative)
        out["savedmodel"] = out["tflite_float"]  # same float weights: scored as the float TFLite
        for name in ("clustered", "pruned", "clustered_pruned"):
            try:
                out[name] = tflite_bytes(tfmot_variant(name, model, train, val, epochs), "dynamic")
            except Exception as err:  # a tfmot failure is recorded in the table, not fatal
                out[name] = f"failed: {type(err).__name__}: {err}"[:300]
    return out


def directory_bytes(path: Path) -> tuple[int, int]:
    """(bytes on disk, gzip bytes of its tar) of a file or folder."""
    if path.is_file():
        data = path.read_bytes()
        return len(data), len(gzip.compress(data, 9))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()), len(gzip.compress(buffer.getvalue(), 9))


def speed(content: bytes, contract: dict, x: np.ndarray, repeats: int = 3) -> dict:
    """Load time, latency of one alert (batch 1) and alerts/s (chunks of 4): CPU time of one thread (robust to a
    shared machine), best of ``repeats``."""
    from fink_t2.runtime.inference import T2Model

    clock = time.process_time
    start = clock()
    runner = T2Model(content=content, contract=contract, num_threads=1)
    load = clock() - start
    single, batch = [], []
    for _ in range(repeats):
        t = clock()
        for i in range(100):
            runner.predict(x[i : i + 1], chunk_size=1)
        single.append((clock() - t) / 100)
        t = clock()
        runner.predict(x)
        batch.append(len(x) / (clock() - t))
    return {"load_s": load, "latency_ms": 1000 * min(single), "alerts_per_s": max(batch)}


def compression_table(n_folds: int = 2, epochs: int = 3, recipe: PlasticcRecipe | None = None) -> dict:
    """CV quality of every variant on the first ``n_folds`` of 5 folds, size and speed of the shipped ones."""
    from sklearn.model_selection import StratifiedKFold

    from fink_t2.core.contract import make_contract
    from fink_t2.model.architecture import keras
    from fink_t2.runtime.inference import T2Model

    recipe = recipe or PlasticcRecipe(**json.loads((BUILD / "models" / "gr_float" / "float_model.json").read_text())["recipe"])
    view = json.loads((BUILD / "models" / "gr_float" / "float_model.json").read_text())["view"]
    objects, inputs, spec = full_curve_data("gr", {**VIEW, **view})
    contract = make_contract(CLASS_NAMES, spec=spec, calibration=None)
    ids, labels = objects["object_id"].to_numpy(), objects["y"].to_numpy()
    quality = {name: [] for name in VARIANTS}
    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=recipe.seed).split(ids, labels))[:n_folds]
    for k, (train, test) in enumerate(folds):
        fit_ids, val_ids = split_objects(ids[train], labels[train], recipe.validation_fraction, recipe.seed)
        tr, va = inputs(fit_ids, "train_augmented"), inputs(val_ids, "train")
        model, _ = fit(*tr, *va, len(CLASS_NAMES), recipe)
        x_test, y_test, _ = inputs(ids[test], "test")["full"]
        for name, content in build_variants(model, tr, va, epochs).items():
            if isinstance(content, bytes):
                proba = T2Model(content=content, contract=contract).predict(x_test)
                quality[name].append(scores(y_test, proba, len(CLASS_NAMES))["flat_log_loss"])
            else:
                quality[name].append(content)
        print(f"compression fold {k}: {quality}", flush=True)
    folder = BUILD / "models" / "gr_float"
    model = keras.models.load_model(folder / "t2.h5")  # the same float weights as its SavedModel
    x, _ = inputs(ids[:2000], "train")
    shipped = build_variants(model, inputs(ids, "train"), inputs(ids[:500], "train"), epochs, folder)
    table = {}
    for name in VARIANTS:
        content = shipped[name]
        row = {"cv_flat_log_loss": quality[name]}
        if isinstance(content, bytes):
            size, gz = directory_bytes(folder / "t2_savedmodel") if name == "savedmodel" else (len(content), len(gzip.compress(content, 9)))
            row.update({"bytes": size, "gzip_bytes": gz, **speed(content, contract, x)})
        else:
            row["error"] = content
        table[name] = row
    if "load_s" in table["savedmodel"]:  # the SavedModel is loaded by TensorFlow, run through Keras
        clock = time.process_time  # TensorFlow may use both cores here: CPU time over all its threads
        start = clock()
        loaded = keras.models.load_model(folder / "t2_savedmodel")
        table["savedmodel"]["load_s"] = clock() - start
        t = clock()
        for i in range(50):
            loaded(x[i : i + 1], training=False)
        table["savedmodel"]["latency_ms"] = 1000 * (clock() - t) / 50
        t = clock()
        loaded.predict(x, batch_size=4, verbose=0)
        table["savedmodel"]["alerts_per_s"] = len(x) / (clock() - t)
    result = {"n_folds_of_5": n_folds, "fine_tune_epochs": epochs, "n_clusters": N_CLUSTERS, "sparsity": SPARSITY,
              "variants": table}
    out = BUILD / "runs" / "compression.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    args = parser.parse_args(argv)
    return compression_table(args.folds, args.fine_tune_epochs)


if __name__ == "__main__":
    main()
