"""``fink-t2 compress``: compressed variants of the float t2 model kept by ``fink-t2 train``.

    fink-t2 train                         # → fink_t2/data/t2.tflite + build/model/ (float model, data recipe)
    fink-t2 compress                      # → build/compress/<variant>... + build/compress/variants.json
    fink-t2 compress --ship full_int8     # also writes that variant as fink_t2/data/t2.tflite (+ metrics)

Variants (``VARIANTS``), all from ``build/model``:

* ``savedmodel``, ``keras``, ``h5``: the float model in TF SavedModel, Keras v3 and HDF5 formats;
* ``tflite_float``, ``tflite_dynamic`` (int8 weights, float activations), ``tflite_int8`` (int8 weights
  and activations, calibrated on training sequences; float32 input/output so the runtime is unchanged);
* ``clustered`` (16 weight clusters per layer), ``pruned`` (magnitude pruning to 50 % sparsity),
  ``clustered_pruned`` (pruned, then sparsity-preserving clustering): fine-tuned a few epochs on the
  training split, stripped of their tfmot wrappers, saved as ``.h5`` and as dynamic-range ``.tflite``.

tfmot cannot wrap a whole model holding a custom layer (the positional encoding), so the Conv1D, Dense and
MultiHeadAttention layers are wrapped one by one through ``keras.models.clone_model``; each tfmot variant
is built in its own Python process (a failed tfmot attempt can poison later ones in the same process).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fink_t2.model.export import DYNAMIC_RANGE, strip_flatbuffer, tflite_bytes
from fink_t2.paths import COMPRESS_DIR, FLOAT_MODEL_DIR, MODEL_DIR

FLOAT_DIR = str(FLOAT_MODEL_DIR)
OUT_DIR = str(COMPRESS_DIR)
N_CLUSTERS = 16
SPARSITY = 0.5
REPRESENTATIVE_SIZE = 512
#: variant → (file name under OUT_DIR, kind, what it is)
VARIANTS = {
    "savedmodel": ("t2_savedmodel", "tf", "float32 TF SavedModel (protobuf + variables)"),
    "keras": ("t2.keras", "keras", "float32 Keras v3 zip"),
    "h5": ("t2.h5", "keras", "float32 Keras HDF5"),
    "tflite_float": ("t2_float.tflite", "tflite", "float32 TFLite FlatBuffer"),
    "tflite_dynamic": ("t2_dynamic.tflite", "tflite", DYNAMIC_RANGE),
    "tflite_int8": ("t2_int8.tflite", "tflite", "TFLite full-integer quantization (int8 weights and activations, "
                    "float32 input/output and softmax), calibrated on training sequences"),
    "tflite_int8_stripped": ("t2_int8_stripped.tflite", "tflite", "tflite_int8 without nonessential FlatBuffer "
                             "strings and shapes (tensor names, metadata, shape signatures of inner tensors)"),
    "tflite_int8_pt_stripped": ("t2_int8_pt_stripped.tflite", "tflite", "full-integer quantization with per-tensor "
                                "(not per-channel) weight scales, stripped as tflite_int8_stripped"),
    "clustered": ("t2_clustered.h5", "keras", f"{N_CLUSTERS} weight clusters per layer, fine-tuned, stripped (HDF5)"),
    "clustered_tflite": ("t2_clustered.tflite", "tflite", "clustered, then TFLite dynamic-range quantization"),
    "pruned": ("t2_pruned.h5", "keras", f"magnitude pruning to {SPARSITY:.0%} sparsity, fine-tuned, stripped (HDF5)"),
    "pruned_tflite": ("t2_pruned.tflite", "tflite", "pruned, then TFLite dynamic-range quantization"),
    "clustered_pruned": ("t2_clustered_pruned.h5", "keras", f"pruned to {SPARSITY:.0%}, then sparsity-preserving "
                         f"clustering ({N_CLUSTERS} clusters), fine-tuned, stripped (HDF5)"),
    "clustered_pruned_tflite": ("t2_clustered_pruned.tflite", "tflite",
                                "clustered+pruned, then TFLite dynamic-range quantization"),
}
TFMOT_VARIANTS = ("clustered", "pruned", "clustered_pruned")


def load_data(float_dir=FLOAT_DIR, max_objects=None):
    """((x, y) training, (x, y) validation) alert views rebuilt from the recipe the float model was trained with."""
    from fink_t2.model.datasets import load_table
    from fink_t2.model.train import Recipe, split_train_val, view_inputs
    from fink_t2.model.views import alert_views, sample_views

    saved = json.loads((Path(float_dir) / "float_model.json").read_text())
    recipe = Recipe(**saved["recipe"])
    table = load_table(saved["data_dir"], max_objects or saved["max_objects"], recipe.snpcc_objects, recipe.seed)
    train, val = split_train_val(table, recipe)
    return tuple(view_inputs(sample_views(alert_views(t), recipe.views_per_bucket, recipe.seed))
                 for t in (train, val[val["source"] == "bts"]))


def _run_tflite(model_bytes: bytes, values: np.ndarray) -> np.ndarray:
    from fink_t2.core.contract import make_contract
    from fink_t2.runtime.inference import T2Model

    runner = T2Model(content=model_bytes, contract=make_contract(_class_names()))
    return runner.predict(values, chunk_size=len(values))


def _class_names():
    from fink_t2.model.datasets import CLASS_NAMES

    return CLASS_NAMES


def _wrap_layers(model, wrap):
    """Clone ``model`` with ``wrap(layer)`` on its Conv1D, Dense and MultiHeadAttention layers."""
    from fink_t2.model.architecture import keras

    supported = (keras.layers.Conv1D, keras.layers.Dense, keras.layers.MultiHeadAttention)
    return keras.models.clone_model(model, clone_function=lambda layer: wrap(layer) if isinstance(layer, supported)
                                    else layer)


def canonical_copy(model):
    """A fresh t2 model holding ``model``'s weights, matched by variable name.

    ``strip_clustering`` rebuilds MultiHeadAttention with its variables in another order, which HDF5
    (order-based) cannot load back; copying into a freshly built t2 gives the usual order.
    """
    from fink_t2.model.architecture import build_model

    fresh = build_model(int(model.output_shape[-1]))
    for layer in fresh.layers:
        if not layer.weights:
            continue
        source = {w.name.split("/", 1)[-1]: w for w in model.get_layer(layer.name).weights}
        layer.set_weights([source[w.name.split("/", 1)[-1]].numpy() for w in layer.weights])
    return fresh


def _fine_tune(model, train, val, epochs, power, extra_callbacks=(), batch_size=256, learning_rate=5e-4):
    from fink_t2.model.architecture import keras
    from fink_t2.model.train import class_weights

    (x, y), (x_val, y_val) = train, val
    weights = class_weights(y, power=power)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(x, y, sample_weight=weights[y], epochs=epochs, batch_size=batch_size,
              validation_data=(x_val, y_val, weights[y_val]), callbacks=list(extra_callbacks), shuffle=True, verbose=0)
    return model


def make_tfmot_variant(name: str, float_dir=FLOAT_DIR, out_dir=OUT_DIR, epochs=3, max_objects=None, seed=42) -> None:
    """Build one tfmot variant (run in its own process by :func:`compress`)."""
    import tensorflow_model_optimization as tfmot

    from fink_t2.model.architecture import keras
    from fink_t2.model.train import set_seeds

    set_seeds(seed)
    power = json.loads((Path(float_dir) / "float_model.json").read_text())["recipe"]["class_weight_power"]
    train, val = load_data(float_dir, max_objects)
    base = keras.models.load_model(Path(float_dir) / "t2.h5")
    cluster = tfmot.clustering.keras
    sparsity = tfmot.sparsity.keras
    if name in ("pruned", "clustered_pruned"):
        steps = int(np.ceil(len(train[1]) / 256)) * epochs
        schedule = sparsity.PolynomialDecay(0.0, SPARSITY, begin_step=0, end_step=max(1, steps * 2 // 3), frequency=10)
        pruned = _wrap_layers(base, lambda layer: sparsity.prune_low_magnitude(layer, pruning_schedule=schedule))
        _fine_tune(pruned, train, val, epochs, power, [sparsity.UpdatePruningStep()])
        base = sparsity.strip_pruning(pruned)
    if name in ("clustered", "clustered_pruned"):
        clustered = _wrap_layers(base, lambda layer: cluster.cluster_weights(
            layer, number_of_clusters=N_CLUSTERS, cluster_centroids_init=cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=(name == "clustered_pruned")))
        _fine_tune(clustered, train, val, epochs, power, learning_rate=2e-4)
        base = cluster.strip_clustering(clustered)
    base = canonical_copy(base)
    out_dir = Path(out_dir)
    base.save(out_dir / VARIANTS[name][0], include_optimizer=False)
    (out_dir / VARIANTS[f"{name}_tflite"][0]).write_bytes(tflite_bytes(base, "dynamic"))


def compress(float_dir=FLOAT_DIR, out_dir=OUT_DIR, epochs=3, max_objects=None, seed=42, progress=True) -> dict:
    """Write every variant of ``VARIANTS`` under ``out_dir``; return {variant: path or error}."""
    float_dir, out_dir = Path(float_dir), Path(out_dir)
    if not (float_dir / "float_model.json").is_file():
        raise FileNotFoundError(f"{float_dir}: no float model; run fink-t2 train (it keeps it in {FLOAT_DIR})")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    shutil.copytree(float_dir / "t2_savedmodel", out_dir / VARIANTS["savedmodel"][0])
    shutil.copy(float_dir / "t2.keras", out_dir / VARIANTS["keras"][0])
    shutil.copy(float_dir / "t2.h5", out_dir / VARIANTS["h5"][0])
    (x_train, _), _ = load_data(float_dir, max_objects)
    rng = np.random.default_rng(seed)
    representative = x_train[rng.choice(len(x_train), min(REPRESENTATIVE_SIZE, len(x_train)), replace=False)]
    for mode in ("float", "dynamic", "int8"):
        (out_dir / VARIANTS[f"tflite_{mode}"][0]).write_bytes(
            tflite_bytes(float_dir / "t2_savedmodel", mode, representative))
    int8 = (out_dir / VARIANTS["tflite_int8"][0]).read_bytes()
    stripped = strip_flatbuffer(int8)
    check = x_train[:64]
    if not np.array_equal(_run_tflite(int8, check), _run_tflite(stripped, check)):
        raise RuntimeError("stripping the FlatBuffer changed the model's outputs")
    (out_dir / VARIANTS["tflite_int8_stripped"][0]).write_bytes(stripped)
    (out_dir / VARIANTS["tflite_int8_pt_stripped"][0]).write_bytes(strip_flatbuffer(
        tflite_bytes(float_dir / "t2_savedmodel", "int8", representative, per_channel=False)))
    status = {}
    for name in TFMOT_VARIANTS:  # one process each
        cmd = [sys.executable, "-m", "fink_t2.model.compress", "--variant", name, "--float-dir", str(float_dir),
               "--out-dir", str(out_dir), "--epochs", str(epochs), "--seed", str(seed)]
        if max_objects:
            cmd += ["--max-objects", str(max_objects)]
        if progress:
            print(f"fink-t2 compress: {name} ...", file=sys.stderr)
        run = subprocess.run(cmd, capture_output=True, text=True)
        status[name] = "ok" if run.returncode == 0 else f"failed: {run.stderr.strip().splitlines()[-1][:300]}"
    written = {name: str(out_dir / file) for name, (file, _, _) in VARIANTS.items() if (out_dir / file).exists()}
    manifest = {"float_dir": str(float_dir), "out_dir": str(out_dir), "fine_tune_epochs": epochs,
                "n_clusters": N_CLUSTERS, "sparsity": SPARSITY, "representative_examples": len(representative),
                "max_objects": max_objects, "tfmot_status": status, "variants": written,
                "descriptions": {name: desc for name, (_, _, desc) in VARIANTS.items()}}
    (out_dir / "variants.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def ship(variant: str, out_dir=OUT_DIR, float_dir=FLOAT_DIR, model_dir=MODEL_DIR, command=None) -> dict:
    """Write ``variant`` (a .tflite of ``out_dir``) as ``model_dir/t2.tflite`` with its contract; update the metrics.

    The metrics of ``fink-t2 train`` (recipe, cross-validation) are kept; the guard metrics and sizes are
    measured again on the written file by the shipping runner.
    """
    from fink_t2.core.contract import attach_contract, make_contract
    from fink_t2.model.datasets import load_bts
    from fink_t2.model.evaluate import guard_metrics
    from fink_t2.model.train import METRICS_NAME, MODEL_NAME
    from fink_t2.runtime.inference import T2Model

    file, kind, description = VARIANTS[variant]
    if kind != "tflite":
        raise ValueError(f"only a .tflite variant can be shipped, not {variant}")
    train_metrics = Path(float_dir) / METRICS_NAME  # what fink-t2 train measured for this float model
    if not train_metrics.is_file():
        raise FileNotFoundError(f"{train_metrics}: no training metrics beside the float model; run fink-t2 train")
    metrics = json.loads(train_metrics.read_text())
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    compression = {"variant": variant, "description": description, "command": command, "created": created}
    # the calibration fitted for the float model applies to every variant made from it (fink_t2.core.calibration)
    contract = make_contract(_class_names(), created=created, compression=compression,
                             calibration=metrics["training"].get("calibration"),
                             training={"command": metrics.get("command"), "recipe": metrics.get("recipe")})
    raw = (Path(out_dir) / file).read_bytes()
    model_dir = Path(model_dir)
    shipped = model_dir / MODEL_NAME
    shipped.write_bytes(attach_contract(raw, contract))
    metrics["guard"] = guard_metrics(T2Model(str(shipped)), load_bts(metrics["data"]["data_dir"]))
    metrics["compression"] = compression
    metrics["command"] = f"{metrics.get('command', 'fink-t2 train')} && {command}"
    saved = sum(p.stat().st_size for p in (Path(float_dir) / "t2_savedmodel").rglob("*") if p.is_file())
    metrics["model_size"] = {**metrics.get("model_size", {}), "tflite_bytes": shipped.stat().st_size,
                             "tflite_without_contract_bytes": len(raw), "float_savedmodel_dir_bytes": saved,
                             "savedmodel_over_tflite": round(saved / len(raw), 2), "quantization": description,
                             "variant": variant}
    (model_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=1) + "\n")
    return {"shipped": str(shipped), "variant": variant, "bytes": shipped.stat().st_size}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-dir", default=FLOAT_DIR, help="float model kept by fink-t2 train")
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of the tfmot variants")
    parser.add_argument("--max-objects", type=int, default=None, help="cap objects per source (quick runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ship", default=None, choices=[n for n, v in VARIANTS.items() if v[1] == "tflite"],
                        help="write this variant as the shipped model fink_t2/data/t2.tflite and update its metrics")
    parser.add_argument("--model-dir", default=str(MODEL_DIR), help="where --ship writes t2.tflite")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # worker: one tfmot variant
    args = parser.parse_args(argv)
    if args.variant:
        make_tfmot_variant(args.variant, args.float_dir, args.out_dir, args.epochs, args.max_objects, args.seed)
        return {"variant": args.variant}
    result = compress(args.float_dir, args.out_dir, args.epochs, args.max_objects, args.seed)
    if args.ship:
        result["ship"] = ship(args.ship, args.out_dir, args.float_dir, args.model_dir,
                              command=shlex.join(["fink-t2", "compress", *argv]))
    return result


if __name__ == "__main__":
    out = main()
    if "variant" not in out:
        print(json.dumps(out, indent=1))
