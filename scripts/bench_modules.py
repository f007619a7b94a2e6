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
``--modules t2,t2+status,nalerthist,roid,snn_snia_vs_nonia``. Every module gets the same conditions: the
thread pools of the Spark workers are pinned to ``--threads`` (default 1, so torch's SuperNNova uses one core
as t2 does; 0 leaves each library's default), and the modules are timed in turn, round after round, so a
change of load meets them all. The JSON records the load average before and after each volume and the
thread settings of the driver and of a Python worker after the modules ran (scripts/bench_conditions.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_conditions import conditions, load_average, pin_threads, provenance, versions, worker_threads
from bench_micro import micro_benchmarks, rate, row
from pyspark.sql import functions as F

from fink_t2.alerts import iter_alert_tables
from fink_t2.alerts.binaryfile import load_alerts
from fink_t2.fink_modules import FINK_MODULES
from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.processor import T2_COLUMNS, t2
from fink_t2.runtime import inference
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
from fink_t2.stream.replay import with_t2
from fink_t2.stream.spark import get_spark


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
    return versions(["pyspark", "pandas", "numpy", "pyarrow", "ai-edge-litert", "tensorflow", "fink-science",
                     "supernnova", "torch"])


def module_call(df, name: str):
    """A function that runs module ``name`` on every alert of ``df`` and brings the result to the driver."""
    if name == "t2+status":  # what the replay writes: t2 map, t2_status, t2_class
        return lambda: with_t2(df).select("t2", "t2_status", "t2_class").toPandas()
    if name == "t2":
        column = t2(*T2_COLUMNS)
    else:
        module = FINK_MODULES[name]
        column = module.udf()(*[F.col(c) for c in module.columns], *[F.lit(v) for v in module.literals])
    return lambda: df.select(column.alias("out")).toPandas()


def module_rate(df, name: str, n: int, repeats: int) -> dict:
    return rate(module_call(df, name), n, repeats)


def rotated_rates(df, names, n: int, repeats: int) -> dict:
    """Each module once to warm up, then ``repeats`` rounds over all of them in turn; median per module.

    Modules compared in one run thus meet the same load: a busy minute slows a round, not one module.
    """
    runs = {name: module_call(df, name) for name in names}
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: row(n, statistics.median(t)) for name, t in times.items()}


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
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of every library's pool in Spark's workers (torch, OpenMP, BLAS); 0: defaults")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("1000" if args.quick else "1000,10000,100000")).split(",")]
    repeats = 1 if args.quick else 3
    modules = args.modules.split(",")
    pin_threads(args.threads)  # before Spark starts: its JVM and Python workers inherit the environment

    spark = get_spark("local[1]", app_name="fink-t2-bench")
    base = load_alerts(spark, SAMPLE_NIGHT).drop("source_file").cache()
    alerts = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    result = {
        "method": "Spark local[1], Arrow on, input cached, select(module).toPandas(), a warm-up then the median of "
                  f"{repeats} rounds over the modules in turn; volume = 124 real alerts of 2021-11-22 replicated",
        "command": " ".join(["python", "scripts/bench_modules.py", *(argv if argv is not None else sys.argv[1:])]),
        "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **provenance(DEFAULT_MODEL_PATH),
        "stack": {**stack(), "tflite_runtime": inference.T2Model(DEFAULT_MODEL_PATH).interpreter_name},
        "threads_pinned": args.threads, "conditions_before": conditions(spark),
        "realistic": {}, "all_pass": {}, "load_by_size": {}, "micro": {},
    }
    for n in sizes:
        df = replicate(base, n)
        df.count()
        passing = replicate(all_pass(base), n)
        passing.count()
        load = load_average()
        result["realistic"][str(n)] = rotated_rates(df, modules, n, repeats)
        if n == sizes[0]:
            result["all_pass_cuts_passed"] = cuts_passed(passing, modules)
            assert all(v == 1.0 for v in result["all_pass_cuts_passed"].values()), result["all_pass_cuts_passed"]
        result["all_pass"][str(n)] = rotated_rates(passing, [m for m in modules if m in WITH_CUTS], n, repeats)
        result["load_by_size"][str(n)] = {"before": load, "after": load_average()}
        print(json.dumps({n: {m: v["alerts_per_second_per_core"] for m, v in result["realistic"][str(n)].items()}}))
        if n != sizes[-1]:
            df.unpersist(), passing.unpersist()
    result["python_worker_threads"] = worker_threads(spark)
    largest = str(sizes[-1])
    result["modules"] = {m: {"alerts_per_second_per_core": v["alerts_per_second_per_core"]}
                         for m, v in result["realistic"][largest].items()}
    for m, v in result["all_pass"][largest].items():
        result["modules"][m + " (all pass)"] = {"alerts_per_second_per_core": v["alerts_per_second_per_core"]}

    if not args.no_micro:
        micro_benchmarks(result["micro"], spark, alerts, passing, int(largest), args.quick, repeats,
                         lambda df: module_call(df, "t2"))
    result["conditions_after"] = conditions(spark)

    if args.local2:
        spark.stop()
        result["local_1_vs_2"] = {f"local[{k}]": parallel_rate(k, int(largest), repeats) for k in (1, 2)}

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    if args.chart:
        bar_chart(result["modules"], args.chart)
    print(json.dumps(result["modules"], indent=1))
    return result


def parallel_rate(cores: int, n: int, repeats: int) -> dict:
    """t2 on ``n`` all-pass alerts in a fresh ``local[cores]`` session split in ``cores`` partitions."""
    spark = get_spark(f"local[{cores}]", app_name=f"fink-t2-bench-local{cores}")
    base = load_alerts(spark, SAMPLE_NIGHT).drop("source_file").cache()
    passing = replicate(all_pass(base), n).repartition(cores).cache()
    passing.count()
    load = load_average()
    row = module_rate(passing, "t2", n, repeats)
    spark.stop()
    return {"alerts_per_second": row["alerts_per_second_per_core"],
            "alerts_per_second_per_core": round(row["alerts_per_second_per_core"] / cores, 1),
            "load_average_before": load, "load_average_after": load_average()}


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
