"""Quantized vs float, LiteRT vs TensorFlow: the model variants at the runtime's chunk size.

Needs the variants built by ``fink-t2 compress`` (``build/compress/``) and, for the
SavedModel row, the train extra (TensorFlow). Alerts/s on one thread, same random
inputs for every variant, median of repeats, in one run:

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

from fink_t2.inference import MAX_CHUNK  # noqa: E402

VARIANTS = ("t2_float.tflite", "t2_dynamic.tflite", "t2_int8_pt_stripped.tflite")


def litert_runner(path: str, chunk: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [chunk, 100, 2])
    interpreter.allocate_tensors()

    def run(x):
        for start in range(0, len(x), chunk):
            interpreter.set_tensor(inp["index"], x[start : start + chunk])
            interpreter.invoke()
            interpreter.get_tensor(out["index"])

    return run


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
    x = np.random.default_rng(0).uniform(0, 1, (args.alerts, 100, 2)).astype(np.float32)
    folder = Path(args.variants_dir)
    result = {"command": " ".join(["python", "scripts/bench_variants.py", *(argv or sys.argv[1:])]),
              "alerts": args.alerts, "runtime_chunk": MAX_CHUNK, "variants": {}}
    for chunk in (MAX_CHUNK, 1024):
        for name in VARIANTS:
            path = folder / name
            if path.is_file():
                row = rate(litert_runner, str(path), chunk, x, args.repeats)
                result["variants"].setdefault(name, {"bytes": path.stat().st_size})[f"chunk_{chunk}"] = row
        saved = folder / "t2_savedmodel"
        if saved.is_dir():
            row = rate(savedmodel_runner, str(saved), chunk, x, args.repeats)
            size = sum(f.stat().st_size for f in saved.rglob("*") if f.is_file())
            result["variants"].setdefault("t2_savedmodel (TensorFlow)", {"bytes": size})[f"chunk_{chunk}"] = row
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
