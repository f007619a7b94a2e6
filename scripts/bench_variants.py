"""Quantized vs float, LiteRT vs TensorFlow: the model variants at the runtime's chunk size.

Needs the variants built by ``fink-t2 compress`` (``build/compress/``) and, for the
SavedModel row, the train extra (TensorFlow). TFLite files run through the shipping runner
:class:`fink_t2.runtime.inference.T2Model`. Alerts/s on one thread, the same real inputs for every variant
(alert views of BTS light curves, ``(n, 31, 7)`` as :func:`fink_t2.core.sequences.build_sequences` makes
them), median of repeats, in one run:

    python scripts/bench_variants.py --output docs/bench_variants.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_conditions import conditions, pin_threads, provenance, sha256

from fink_t2.paths import SHARED_DATA
from fink_t2.runtime.inference import MAX_CHUNK

VARIANTS = ("t2_float.tflite", "t2_dynamic.tflite", "t2_int8_pt_stripped.tflite")


def litert_runner(path: str, chunk: int):
    from fink_t2.core.contract import make_contract
    from fink_t2.model.datasets import CLASS_NAMES
    from fink_t2.runtime.inference import T2Model

    # a compress output is a bare FlatBuffer: the contract is appended to the shipped file only
    model = T2Model(content=Path(path).read_bytes(), contract=make_contract(CLASS_NAMES), num_threads=1,
                    chunk_size=chunk)
    return model.predict


def real_inputs(n: int) -> np.ndarray:
    """``n`` model inputs: seeded alert views of BTS light curves through the one preprocessing."""
    from fink_t2.core.sequences import build_sequences
    from fink_t2.model.datasets import load_bts
    from fink_t2.model.views import alert_views, sample_views

    views = sample_views(alert_views(load_bts(SHARED_DATA)), per_bucket=1, seed=0)
    seq = build_sequences(views.jd, views.fid, views.mag, None, views.jd_now, views.jdstarthist, views.ndethist,
                          offsets=views.offsets)
    x = seq.values[seq.n_epochs >= 2]
    return x[np.random.default_rng(0).choice(len(x), n, replace=len(x) < n)]


def savedmodel_runner(path: str, chunk: int):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(x):
        for start in range(0, len(x), chunk):
            serve(tf.constant(x[start : start + chunk]))

    return run


def rate(make, path, chunk, x, repeats):
    start = time.perf_counter()
    run = make(path, chunk)
    run(x[:chunk])
    load = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return {"alerts_per_second": round(len(x) / statistics.median(times), 1), "load_and_first_call_s": round(load, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants-dir", default=str(REPO / "build" / "compress"))
    parser.add_argument("--output", default=str(REPO / "docs" / "bench_variants.json"))
    parser.add_argument("--alerts", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    pin_threads(1)  # LiteRT and TensorFlow are also given one thread below; this covers the BLAS/OpenMP pools
    x = real_inputs(args.alerts)
    folder = Path(args.variants_dir)
    result = {"command": " ".join(["python", "scripts/bench_variants.py", *(argv or sys.argv[1:])]),
              "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **provenance(),
              "conditions_before": conditions(), "alerts": args.alerts, "runtime_chunk": MAX_CHUNK, "variants": {}}
    for chunk in (MAX_CHUNK, 1024):
        for name in VARIANTS:
            path = folder / name
            if path.is_file():
                row = rate(litert_runner, str(path), chunk, x, args.repeats)
                entry = result["variants"].setdefault(name, {"bytes": path.stat().st_size,
                                                             "sha256": sha256(path)})
                entry[f"chunk_{chunk}"] = row
        saved = folder / "t2_savedmodel"
        if saved.is_dir():
            row = rate(savedmodel_runner, str(saved), chunk, x, args.repeats)
            size = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
            result["variants"].setdefault("t2_savedmodel (TensorFlow)", {"bytes": size})[f"chunk_{chunk}"] = row
    result["conditions_after"] = conditions()
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
