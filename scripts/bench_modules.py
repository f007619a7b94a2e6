"""Throughput of t2 beside other Fink science modules, measured the way fink-science-perf does.

Fink's method: Spark ``local[1]`` (one core), Arrow on, the same cached alerts for every module,
``select(module(...)).toPandas()``, alerts/s/core counting every alert (those rejected by a module's
cuts included), median of repeats. The volume is the real sample alerts replicated with new candids
and jittered times (cuts give the same answers on every copy). Also measured: t2 and SuperNNova when
every alert passes their cuts (:func:`all_pass`, checked), and micro-benchmarks (Avro decode, sequence
building, inference and Arrow batch sizes, float model, load time, worker memory, local[1] vs local[2]).

    python scripts/bench_modules.py --quick --output docs/bench_modules_quick.json
    python scripts/bench_modules.py --output docs/bench_modules.json --chart docs/bench_modules.png

SuperNNova (``snn_snia_vs_nonia``) needs numpy < 2: it is timed beside t2 in Fink's own stack, the venv
``.ci/run`` builds from ``constraints/fink-production.txt`` (docs/performance.md), with
``--modules t2,t2+status,nalerthist,roid,snn_snia_vs_nonia``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyspark.sql import functions as F

from fink_t2.alerts import decode_avro_bytes, iter_alert_tables
from fink_t2.alerts.binaryfile import load_alerts
from fink_t2.core.sequences import build_sequences
from fink_t2.fink_modules import FINK_MODULES
from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA
from fink_t2.processor import T2_COLUMNS, t2
from fink_t2.runtime import inference
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
from fink_t2.stream.replay import with_t2
from fink_t2.stream.spark import get_spark


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def replicate(df, n_alerts: int):
    """``n_alerts`` rows made of copies of ``df``: new candids, times shifted by whole copies of 0.01 d."""
    base = df.count()
    copies = -(-n_alerts // base)
    k = F.col("copy")
    out = (
        df.crossJoin(df.sparkSession.range(copies).withColumnRenamed("id", "copy"))
        .withColumn("candid", F.monotonically_increasing_id())
        .withColumn("cjd", F.transform("cjd", lambda x: x + k * 0.01))
        .withColumn("candidate", F.col("candidate").withField("jd", F.col("candidate.jd") + k * 0.01)
                    .withField("jdstarthist", F.col("candidate.jdstarthist") + k * 0.01))
        .drop("copy")
        .limit(n_alerts)
    )
    return out.repartition(1).cache()


def all_pass(df):
    """Alerts with ≥ 2 g/r detections, cut columns set so that every one reaches the classifiers.

    t2's and SuperNNova's cuts read the same columns (``roid`` ≠ 3, an extragalactic ``cdsxmatch``, the age
    from ``jdstarthist``, enough points): both are opened here, and :func:`cuts_passed` checks it. Every
    detection is made a positive difference (``cisdiffpos`` 't'): the sample night is mostly variable stars,
    whose negative differences t2 would otherwise (rightly) not count.
    """
    dets = F.size(F.filter(F.arrays_zip("cmagpsf", "cfid"), lambda p: p.cmagpsf.isNotNull() & p.cfid.isin(1, 2)))
    return (
        df.where(dets >= 2)
        .withColumn("cisdiffpos", F.transform("cisdiffpos", lambda s: F.lit("t")))
        .withColumn("cdsxmatch", F.lit("Unknown"))
        .withColumn("roid", F.lit(0))
        .withColumn("candidate", F.col("candidate").withField("jdstarthist", F.array_min("cjd")))
    )


#: modules whose own cuts decide which alerts are classified (timed again on the all-pass alerts)
WITH_CUTS = ("t2", "t2+status", "snn_snia_vs_nonia")


def cuts_passed(df, modules) -> dict:
    """Fraction of the alerts of ``df`` that pass each module's own cuts (t2's and SuperNNova's)."""
    from fink_t2.core.classifier import classify_columns

    rows = df.select(*T2_COLUMNS).toPandas()  # SuperNNova's cuts read a subset of them
    cols = [rows[c.split(".")[-1]] for c in T2_COLUMNS]
    out = {"t2": float((classify_columns(*cols, model=None)[1] == "ok").mean())}
    if "snn_snia_vs_nonia" in modules:
        from fink_science.ztf.snn.processor import apply_selection_cuts_ztf

        out["snn_snia_vs_nonia"] = float(apply_selection_cuts_ztf(
            rows.cmagpsf, rows.cdsxmatch, rows.cjd, rows.jdstarthist, rows.roid).mean())
    return out


def stack() -> dict:
    """Versions of what is timed: Spark, pandas, numpy, pyarrow, the TFLite runtime, SuperNNova's."""
    from importlib.metadata import distributions

    names = {"pyspark", "pandas", "numpy", "pyarrow", "ai-edge-litert", "tensorflow", "fink-science", "supernnova", "torch"}
    return dict(sorted((d.metadata["Name"].lower(), d.version) for d in distributions() if d.metadata["Name"].lower() in names))


def module_rate(df, name: str, n: int, repeats: int) -> dict:
    if name == "t2":
        column = t2(*T2_COLUMNS)
    elif name == "t2+status":  # what the replay writes: t2 map, t2_status, t2_class
        return _rate(lambda: with_t2(df).select("t2", "t2_status", "t2_class").toPandas(), n, repeats)
    else:
        module = FINK_MODULES[name]
        column = module.udf()(*[F.col(c) for c in module.columns], *[F.lit(v) for v in module.literals])
    return _rate(lambda: df.select(column.alias("out")).toPandas(), n, repeats)


def _rate(fn, n, repeats):
    seconds = timed(fn, repeats)
    return {"alerts": n, "seconds": round(seconds, 4), "alerts_per_second_per_core": round(n / seconds, 1)}


def avro_decode_rate(repeats: int) -> dict:
    files = sorted(glob.glob(os.path.join(SHARED_DATA, "ztf_alerts", "night_20200101_avro", "*.avro")))
    blobs = [Path(f).read_bytes() for f in files]
    n = sum(len(decode_avro_bytes(b)) for b in blobs)
    return _rate(lambda: [decode_avro_bytes(b) for b in blobs], n, repeats)


def sequence_rate(alerts: pd.DataFrame, n: int, repeats: int) -> dict:
    reps = -(-n // len(alerts))
    cols = {c: list(alerts[c]) * reps for c in ("cjd", "cfid", "cmagpsf", "cisdiffpos", "jdstarthist", "ndethist")}
    now = [a[-1] for a in cols["cjd"][:n]]
    return _rate(lambda: build_sequences(cols["cjd"][:n], cols["cfid"][:n], cols["cmagpsf"][:n], cols["cisdiffpos"][:n],
                                         now, cols["jdstarthist"][:n], cols["ndethist"][:n]), n, repeats)


def inference_sweep(model_path: str, sizes, repeats: int) -> dict:
    model = inference.T2Model(model_path)
    rng = np.random.default_rng(0)
    out = {}
    for size in sizes:
        x = rng.uniform(0, 1, (max(size, 2048 if size < 2048 else size), *model.input_shape)).astype(np.float32)
        out[str(size)] = _rate(lambda x=x, size=size: model.predict(x, chunk_size=size), len(x), repeats)
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k alerts, 1 repeat: under a minute")
    parser.add_argument("--output", default=str(REPO / "docs" / "bench_modules.json"))
    parser.add_argument("--chart", default=None, help="PNG bar chart of alerts/s/core per module")
    parser.add_argument("--modules", default="t2,t2+status,nalerthist,roid",
                        help="comma-separated: t2, t2+status, " + ", ".join(FINK_MODULES))
    parser.add_argument("--local2", action="store_true",
                        help="also time t2 (all pass, largest volume) under local[1] and local[2] sessions")
    parser.add_argument("--no-micro", action="store_true", help="modules only (e.g. in the SuperNNova venv)")
    parser.add_argument("--sizes", default=None, help="comma-separated volumes (default 1000,10000,100000)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000,100000")).split(",")]
    repeats = 1 if args.quick else 3
    modules = args.modules.split(",")

    spark = get_spark("local[1]", app_name="fink-t2-bench")
    base = load_alerts(spark, SAMPLE_NIGHT).drop("source_file").cache()
    alerts = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    result = {
        "method": "Spark local[1], Arrow on, input cached, select(module).toPandas(), median of "
                  f"{repeats} after a warm-up; volume = 124 real alerts of 2021-11-22 replicated",
        "command": " ".join(["python", "scripts/bench_modules.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "stack": {**stack(), "tflite_runtime": inference.T2Model(DEFAULT_MODEL_PATH).interpreter_name},
        "realistic": {}, "all_pass": {}, "micro": {},
    }
    for n in sizes:
        df = replicate(base, n)
        df.count()
        passing = replicate(all_pass(base), n)
        passing.count()
        result["realistic"][str(n)] = {m: module_rate(df, m, n, repeats) for m in modules}
        if n == sizes[0]:
            result["all_pass_cuts_passed"] = cuts_passed(passing, modules)
            assert all(v == 1.0 for v in result["all_pass_cuts_passed"].values()), result["all_pass_cuts_passed"]
        result["all_pass"][str(n)] = {m: module_rate(passing, m, n, repeats) for m in modules if m in WITH_CUTS}
        print(json.dumps({n: {m: v["alerts_per_second_per_core"] for m, v in result["realistic"][str(n)].items()}}))
        if n != sizes[-1]:
            df.unpersist(), passing.unpersist()
    largest = str(sizes[-1])
    result["modules"] = {m: {"alerts_per_second_per_core": v["alerts_per_second_per_core"]}
                         for m, v in result["realistic"][largest].items()}
    for m, v in result["all_pass"][largest].items():
        result["modules"][m + " (all pass)"] = {"alerts_per_second_per_core": v["alerts_per_second_per_core"]}

    if not args.no_micro:
        micro_benchmarks(result["micro"], spark, alerts, passing, int(largest), args.quick, repeats)

    if args.local2:
        spark.stop()
        result["local_1_vs_2"] = {f"local[{k}]": parallel_rate(k, int(largest), repeats) for k in (1, 2)}

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    if args.chart:
        bar_chart(result["modules"], args.chart)
    print(json.dumps(result["modules"], indent=1))
    return result


def micro_benchmarks(micro: dict, spark, alerts, passing, n: int, quick: bool, repeats: int) -> None:
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
        arrow[str(records)] = module_rate(passing, "t2", n, repeats)
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    micro["arrow_max_records_per_batch_all_pass"] = arrow
    micro["python_worker_peak_rss_mb_all_pass"] = worker_peak_memory_mb(passing)


def parallel_rate(cores: int, n: int, repeats: int) -> dict:
    """t2 on ``n`` all-pass alerts in a fresh ``local[cores]`` session split in ``cores`` partitions."""
    spark = get_spark(f"local[{cores}]", app_name=f"fink-t2-bench-local{cores}")
    base = load_alerts(spark, SAMPLE_NIGHT).drop("source_file").cache()
    passing = replicate(all_pass(base), n).repartition(cores).cache()
    passing.count()
    row = module_rate(passing, "t2", n, repeats)
    spark.stop()
    return {"alerts_per_second": row["alerts_per_second_per_core"],
            "alerts_per_second_per_core": round(row["alerts_per_second_per_core"] / cores, 1)}


def bar_chart(modules: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(modules, key=lambda m: modules[m]["alerts_per_second_per_core"])
    rates = [modules[m]["alerts_per_second_per_core"] for m in names]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    ax.barh(names, rates, color=["tab:red" if n.startswith("t2") else "tab:blue" for n in names])
    ax.axvline(75, color="k", ls="--", lw=1, label="Fink requirement (75)")
    ax.set_xscale("log")
    ax.set_xlabel("alerts / s / core (Spark local[1])")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
