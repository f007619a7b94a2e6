"""Size, speed and quality of every compressed variant of t2 → docs/compression.md and docs/compression.json.

    python scripts/compression_table.py            # fink-t2 compress on build/model, then the table (docs/)
    python scripts/compression_table.py --quick    # small fine-tuning/test subset → build/quick_docs/ (~2 min)
    python scripts/compression_table.py --no-compress   # table of an existing build/compress

Needs the float model kept by ``fink-t2 train`` (build/model). Every timing is on one CPU thread
(LiteRT ``num_threads=1``; TensorFlow intra/inter-op threads 1): load time (file → ready to run),
single-alert latency (median of batch-1 calls) and batched throughput (alerts/s in batches of 1024).
TFLite variants run through the shipping runner ``fink_t2.runtime.inference.T2Model`` (chunks of
``MAX_CHUNK`` alerts, as in the stream). Quality: every alert view (``fink_t2.model.views``) of the
BTS objects the float model never trained on (its early-stopping hold-out), scored through the
stream's cuts and preprocessing (``fink_t2.model.evaluate.score_views``), objects weighted equally:
log-loss against the class prior's, accuracy, macro-F1, and macro-F1 per alert-age bucket. The
cross-validated quality of the recipe is in docs/quality.md.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import gzip
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf
from bench_conditions import conditions

from fink_t2.core.contract import make_contract
from fink_t2.core.sequences import CHANNELS, SEQUENCE_LENGTH
from fink_t2.model import compress as C
from fink_t2.model.architecture import keras
from fink_t2.model.datasets import CLASS_NAMES, load_table
from fink_t2.model.evaluate import bucket_metrics, class_prior, classification_metrics, score_views
from fink_t2.model.train import Recipe, split_train_val, view_inputs
from fink_t2.model.views import Views, alert_views, bucket_names
from fink_t2.runtime.inference import MAX_CHUNK, T2Model

BATCH = 1024


def sizes(path: Path) -> tuple[int, int]:
    """(bytes on disk, gzip bytes); a folder is measured as a gzipped tar."""
    if path.is_dir():
        raw = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
            tar.add(path, arcname=path.name)
        return raw, len(buffer.getvalue())
    data = path.read_bytes()
    return len(data), len(gzip.compress(data, compresslevel=9, mtime=0))


class FloatModel:
    """A float variant (SavedModel, .keras, .h5) with the runner's interface: ``class_names``, ``contract``,
    ``predict``."""

    class_names = CLASS_NAMES

    def __init__(self, path: Path, kind: str, contract: dict):
        self.contract = contract
        if kind == "tf":
            self.fn = tf.saved_model.load(str(path)).signatures["serving_default"]
            self.runtime = "TensorFlow SavedModel signature, 1 thread"
        else:
            self.model = keras.models.load_model(str(path), compile=False)
            self.runtime = "tf-keras model call, 1 thread"
        self.kind = kind

    def predict(self, x: np.ndarray, chunk_size: int | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = chunk_size or BATCH
        if self.kind == "tf":
            return np.concatenate([next(iter(self.fn(tf.constant(x[s : s + step])).values())).numpy()
                                   for s in range(0, len(x), step)])
        return np.concatenate([self.model(x[s : s + step], training=False).numpy() for s in range(0, len(x), step)])


def load_variant(path: Path, kind: str, calibration: dict | None):
    """(model, load seconds to a first prediction): TFLite files through the shipping runner ``T2Model``.

    Every variant is scored with the float model's calibration (the one ``fink-t2 train`` put in the contract).
    """
    start = time.perf_counter()
    contract = make_contract(CLASS_NAMES, calibration=calibration)
    if kind == "tflite":
        model = T2Model(content=path.read_bytes(), contract=contract, num_threads=1)
        model.runtime = f"fink_t2.runtime.inference.T2Model ({model.interpreter_name}), 1 thread, chunks of {MAX_CHUNK}"
    else:
        model = FloatModel(path, kind, contract)
    model.predict(np.zeros((1, SEQUENCE_LENGTH, len(CHANNELS)), np.float32))
    return model, time.perf_counter() - start


def evaluation_views(float_dir: Path, max_objects=None) -> tuple[Views, np.ndarray]:
    """Alert views of the objects the float model never trained on (its early-stopping hold-out), and the prior."""
    saved = json.loads((Path(float_dir) / "float_model.json").read_text())
    recipe = Recipe(**saved["recipe"])
    table = load_table(saved["data_dir"], max_objects or saved["max_objects"], recipe.snpcc_objects, recipe.seed)
    train, val = split_train_val(table, recipe)
    val = val[val["source"] == "bts"]
    return alert_views(val), class_prior(train[train["source"] == "bts"].groupby("object_id")["label"].first())


def measure(path: Path, kind: str, views: Views, prior: np.ndarray, x: np.ndarray, reps: int,
            calibration: dict | None = None) -> dict:
    """Load time, latency, throughput (CPU time of this process) and quality on alert views of one variant."""
    model, load_s = load_variant(path, kind, calibration)
    times = []  # CPU time of this process (all its threads): robust to other jobs sharing the cores
    for _ in range(reps):
        t = time.process_time()
        model.predict(x[:1], chunk_size=1)
        times.append(time.process_time() - t)
    model.predict(x[:BATCH])
    t, n = time.process_time(), 0
    while time.process_time() - t < 1.0 or n == 0:
        model.predict(x)
        n += len(x)
    throughput = n / (time.process_time() - t)
    scores = score_views(model, views)
    proba, status = scores
    ok = status == "ok"
    index = {c: i for i, c in enumerate(CLASS_NAMES)}
    y = np.array([index[c] for c in views.label])
    pred = np.array([index.get(c, -1) for c in scores.label])
    objects = pd.Series(views.object_id[ok])
    weight = 1.0 / objects.map(objects.value_counts()).to_numpy(np.float64)  # every object weighs the same
    pooled = classification_metrics(y[ok], proba[ok], weight, prior, pred[ok])
    buckets = bucket_metrics(views, scores, prior)
    return {"runtime": model.runtime, "load_s": load_s, "latency_ms": 1e3 * float(np.median(times)),
            "throughput_per_s": throughput, "log_loss": pooled["log_loss"], "accuracy": pooled["accuracy"],
            "macro_f1": pooled["macro_f1"], "prior_log_loss": pooled["prior_log_loss"],
            "macro_f1_by_age": {b: r.get("macro_f1") for b, r in buckets.items()},
            "log_loss_by_age": {b: r.get("log_loss") for b, r in buckets.items()}, "_proba": proba}


def markdown(rows: list[dict], meta: dict) -> str:
    ref = meta["float_savedmodel_bytes"]
    lines = [
        "# t2 compression variants",
        "",
        f"Produced by `{meta['command']}` ({meta['created']}). Float model: `{meta['float_dir']}` "
        f"(from `{meta['train_command']}`); variants: `{meta['compress_dir']}` (`fink-t2 compress`, "
        f"fine-tuning {meta['fine_tune_epochs']} epochs, {meta['n_clusters']} clusters, "
        f"{meta['sparsity']:.0%} sparsity, {meta['representative_examples']} calibration sequences).",
        "",
        f"Quality on the alert views of the {meta['n_objects']} BTS objects the float model never trained on "
        f"(its early-stopping hold-out; {meta['n_views']} views, objects weighted equally; class prior's log-loss "
        f"{meta['prior_log_loss']:.4f}). Timings on one CPU thread of {meta['cpu']}, measured as CPU "
        f"time of the process ({_load_note(meta)}): single-alert latency = median CPU time of a "
        "batch-1 call; throughput = alerts per CPU-second (TFLite: the runner's chunks of "
        f"{meta['chunk']} alerts; float formats: batches of {BATCH}); load = wall time to a first prediction. "
        "×SM = float SavedModel directory bytes / file bytes. Δ log-loss vs the float SavedModel. "
        "macro-F1 by age: buckets " + " / ".join(meta["buckets"]) + " d.",
        "",
        "| variant | file bytes | gzip bytes | ×SM | load ms | 1-alert latency ms | alerts/s/core | log-loss | Δ log-loss "
        "| accuracy | macro-F1 | macro-F1 by age | what |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    base = next(r for r in rows if r["variant"] == "savedmodel")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | | | | | | | | | | | | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['variant']} | {r['bytes']:,} | {r['gzip_bytes']:,} | {ref / r['bytes']:.1f} | {1e3 * r['load_s']:.0f} "
            f"| {r['latency_ms']:.2f} | {r['throughput_per_s']:,.0f} | {r['log_loss']:.4f} "
            f"| {r['log_loss'] - base['log_loss']:+.4f} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} "
            f"| {' / '.join('–' if v is None else f'{v:.2f}' for v in r['macro_f1_by_age'].values())} "
            f"| {r['description']} |")
    lines += ["", "Notes:", "",
              "* Pruning and clustering do not shrink a raw file (zeros and repeated values are still stored); only "
              "its gzip size drops. TFLite quantization is what shrinks the FlatBuffer itself.",
              "* `*_stripped`: the same FlatBuffer without tensor names, converter metadata and inner shape signatures "
              "(outputs bit-identical); the signature def and the input/output shape signatures are kept, so LiteRT's "
              "Interpreter and CompiledModel still resize the batch.",
              "* The float `savedmodel`, `keras` and `h5` files are the ones `fink-t2 train` saved, optimizer state "
              "included (Adam moments: about 2/3 of the variables; the SavedModel is mostly its graph protobuf, "
              "`saved_model.pb`); the tfmot `.h5` files are saved without it.",
              "* Full-integer models run slower than dynamic-range ones on this x86 CPU (the LayerNorms and the "
              "attention become many small int8 ops with requantization); they are chosen for size, not speed. "
              "Batched throughput of every TFLite variant is well above a ZTF night's alert rate.",
              "* Every variant is scored with the calibration `fink-t2 train` fitted for the float model and put in the "
              "contract (fink_t2.core.calibration); the tfmot variants are fine-tuned again afterwards with class weights "
              "and not recalibrated, which is part of their log-loss difference.",
              f"* Shipped model: `{meta.get('shipped_variant')}` — see fink_t2/data/t2_metrics.json.", ""]
    row = next((r for r in rows if r["variant"] == meta.get("shipped_variant") and "error" not in r), None)
    if row is not None:
        file_bytes = meta["shipped_file_bytes"]
        delta = row["log_loss"] - base["log_loss"]
        lines += ["## Targets (shipped model)", "",
                  f"* size ≤ 60 KB: fink_t2/data/t2.tflite is {file_bytes:,} bytes (FlatBuffer {row['bytes']:,} + "
                  f"appended contract) — {'met' if file_bytes <= 60_000 else 'missed'};",
                  f"* ≥ 18× smaller than its float SavedModel ({ref:,} bytes): {ref / row['bytes']:.2f}× for the "
                  f"FlatBuffer (the paper's measure), {ref / file_bytes:.2f}× for the file with its contract — "
                  f"{'met' if ref / row['bytes'] >= 18 else 'missed'};",
                  f"* log-loss within 0.02 of float: Δ {delta:+.4f} — {'met' if abs(delta) <= 0.02 else 'missed'}.", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data subset, 1 fine-tuning epoch, build/quick_docs")
    parser.add_argument("--float-dir", default=C.FLOAT_DIR)
    parser.add_argument("--compress-dir", default=None, help=f"default {C.OUT_DIR} ({C.OUT_DIR}_quick with --quick)")
    parser.add_argument("--no-compress", action="store_true", help="use the variants already in --compress-dir")
    parser.add_argument("--out-dir", default=None, help="default docs (build/quick_docs with --quick)")
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(1)  # every timing on one thread
    tf.config.threading.set_inter_op_parallelism_threads(1)
    before = conditions()
    out_dir = Path(args.out_dir or ("build/quick_docs" if args.quick else "docs"))
    compress_dir = Path(args.compress_dir or (C.OUT_DIR + "_quick" if args.quick else C.OUT_DIR))
    max_objects = 150 if args.quick else None
    epochs = 1 if args.quick else 3
    if not args.no_compress:
        C.compress(args.float_dir, compress_dir, epochs=epochs, max_objects=max_objects)
    manifest = json.loads((compress_dir / "variants.json").read_text())
    views, prior = evaluation_views(args.float_dir, max_objects)
    x = view_inputs(views)[0][: BATCH * 4]
    trained = json.loads((Path(args.float_dir) / "t2_metrics.json").read_text())  # written by fink-t2 train
    rows = []
    for name, (file, kind, description) in C.VARIANTS.items():
        path = compress_dir / file
        if not path.exists():
            rows.append({"variant": name, "error": manifest["tfmot_status"].get(name.replace("_tflite", ""), "missing")})
            continue
        print(f"measuring {name} ...", file=sys.stderr)
        row = {"variant": name, "file": str(path), "kind": kind, "description": description}
        row["bytes"], row["gzip_bytes"] = sizes(path)
        row.update(measure(path, kind, views, prior, x, reps=50 if args.quick else 300,
                           calibration=trained["training"].get("calibration")))
        row.pop("_proba")
        rows.append(row)
    shipped = None
    metrics_path = Path("fink_t2/data/t2_metrics.json")
    if metrics_path.is_file():
        shipped = json.loads(metrics_path.read_text()).get("compression", {}).get("variant", "tflite_dynamic")
    meta = {"command": "python scripts/compression_table.py" + (" --quick" if args.quick else ""),
            "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "float_dir": args.float_dir,
            "train_command": trained["command"], "compress_dir": str(compress_dir),
            "fine_tune_epochs": manifest["fine_tune_epochs"], "n_clusters": manifest["n_clusters"],
            "sparsity": manifest["sparsity"], "representative_examples": manifest["representative_examples"],
            "n_views": int(len(views)), "n_objects": int(len(set(views.object_id))), "chunk": MAX_CHUNK,
            "prior_log_loss": next(r["prior_log_loss"] for r in rows if "prior_log_loss" in r),
            "buckets": bucket_names(), "max_objects": max_objects,
            "float_savedmodel_bytes": sizes(compress_dir / C.VARIANTS["savedmodel"][0])[0],
            "cpu": _cpu_name(), "tensorflow": tf.__version__, "shipped_variant": shipped,
            "shipped_file_bytes": Path("fink_t2/data/t2.tflite").stat().st_size,
            "conditions_before": before, "conditions_after": conditions()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compression.json").write_text(json.dumps({"meta": meta, "variants": rows}, indent=1) + "\n")
    (out_dir / "compression.md").write_text(markdown(rows, meta))
    print(f"wrote {out_dir / 'compression.md'} and {out_dir / 'compression.json'}")
    return {"meta": meta, "variants": rows}


def _load_note(meta: dict) -> str:
    """The load the timings ran under, where the run recorded it (older runs did not)."""
    if "conditions_before" not in meta:
        return "the machine was shared with other jobs"
    before, after = (meta[k]["load_average_1_5_15"][0] for k in ("conditions_before", "conditions_after"))
    return f"load average {before} before and {after} after the run, on {meta['conditions_before']['cores']} cores"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
