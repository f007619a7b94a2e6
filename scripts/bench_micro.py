"""Micro-benchmarks of t2's parts, for scripts/bench_modules.py (results under its JSON's ``micro``).

Avro decode, sequence building, inference at several alerts per LiteRT call, model load, the Arrow batch
size of the Spark UDF, the float TFLite file where ``build/model`` has it, and a Python worker's peak memory.
"""

from __future__ import annotations

import glob
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.alerts import decode_avro_bytes
from fink_t2.core.sequences import build_sequences
from fink_t2.paths import SHARED_DATA
from fink_t2.processor import T2_COLUMNS
from fink_t2.runtime import inference
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(fn, n, repeats):
    return row(n, timed(fn, repeats))


def row(n, seconds):
    return {"alerts": n, "seconds": round(seconds, 4), "alerts_per_second_per_core": round(n / seconds, 1)}


def avro_decode_rate(repeats: int) -> dict:
    files = sorted(glob.glob(os.path.join(SHARED_DATA, "ztf_alerts", "night_20200101_avro", "*.avro")))
    blobs = [Path(f).read_bytes() for f in files]
    n = sum(len(decode_avro_bytes(b)) for b in blobs)
    return rate(lambda: [decode_avro_bytes(b) for b in blobs], n, repeats)


def sequence_rate(alerts: pd.DataFrame, n: int, repeats: int) -> dict:
    reps = -(-n // len(alerts))
    cols = {c: list(alerts[c]) * reps for c in ("cjd", "cfid", "cmagpsf", "cisdiffpos", "jdstarthist", "ndethist")}
    now = [a[-1] for a in cols["cjd"][:n]]
    return rate(lambda: build_sequences(cols["cjd"][:n], cols["cfid"][:n], cols["cmagpsf"][:n], cols["cisdiffpos"][:n],
                                         now, cols["jdstarthist"][:n], cols["ndethist"][:n]), n, repeats)


def inference_sweep(model_path: str, sizes, repeats: int) -> dict:
    model = inference.T2Model(model_path)
    rng = np.random.default_rng(0)
    out = {}
    for size in sizes:
        x = rng.uniform(0, 1, (max(size, 2048 if size < 2048 else size), *model.input_shape)).astype(np.float32)
        out[str(size)] = rate(lambda x=x, size=size: model.predict(x, chunk_size=size), len(x), repeats)
    return out


def load_time(path: str, repeats: int) -> float:
    return round(timed(lambda: inference.T2Model(path), repeats), 5)


def worker_peak_memory_mb(df) -> float:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def peak(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, cisdiffpos: pd.Series, roid: pd.Series,
             cdsxmatch: pd.Series, jdstarthist: pd.Series, ndethist: pd.Series) -> pd.Series:
        import resource

        from fink_t2.core.classifier import classify_columns
        from fink_t2.processor import DEFAULT_MODEL
        from fink_t2.runtime.gpu import model_for_task

        classify_columns(cjd, cfid, cmagpsf, cisdiffpos, roid, cdsxmatch, jdstarthist, ndethist,
                         model_for_task(DEFAULT_MODEL))
        return pd.Series([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0] * len(cjd))

    return float(df.select(peak(*T2_COLUMNS).alias("m")).toPandas()["m"].max())


def micro_benchmarks(micro: dict, spark, alerts, passing, n: int, quick: bool, repeats: int, t2_call) -> None:
    """Fill ``micro``; ``t2_call(df)`` returns a function running the t2 UDF on ``df``."""
    micro["avro_decode"] = avro_decode_rate(repeats)
    micro["sequence_building"] = sequence_rate(alerts, 10_000 if quick else 100_000, repeats)
    model_path = DEFAULT_MODEL_PATH
    micro["inference_batch_size"] = inference_sweep(
        model_path, [1, 4, 64, 1024] if quick else [1, 4, 16, 64, 256, 1024, 4096, 8192], repeats)
    micro["model_load_seconds"] = load_time(model_path, repeats)
    float_model = REPO / "build" / "model" / "t2_float.tflite"
    if float_model.is_file():
        micro["float_tflite_inference_1024"] = inference_sweep(str(float_model), [1024], repeats)["1024"]
        micro["float_tflite_load_seconds"] = load_time(str(float_model), repeats)
    arrow = {}
    for records in ([1000, 10000] if quick else [100, 1000, 10000]):
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(records))
        arrow[str(records)] = rate(t2_call(passing), n, repeats)
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    micro["arrow_max_records_per_batch_all_pass"] = arrow
    micro["python_worker_peak_rss_mb_all_pass"] = worker_peak_memory_mb(passing)
