"""Sections of docs/performance.md, each from the benchmark files (scripts/performance_report.py puts them together).

Every function takes the loaded JSON files and returns markdown lines; no figure is written here by hand.
Targets are the issues' own: module throughput (issue #5) and a whole night (issue #18).
"""

from __future__ import annotations

from pathlib import Path

#: issue #5: alerts/s/core in Spark local[1], realistic night and every alert classified
MODULE_TARGETS = {"realistic": 20_000, "all_pass": 5_000}
#: issue #18: a 60,000-alert night with local[2]: CPU ms per alert (every process) and alerts/s end to end
NIGHT_TARGETS = {"alerts": 60_000, "master": "local[2]", "cpu_ms_per_alert": 0.6, "alerts_per_s": 2_000}
NAMES = {"t2": "t2", "t2+status": "t2 + status + class", "nalerthist": "nalerthist",
         "roid": "asteroid catcher (`roid`)", "snn_snia_vs_nonia": "SuperNNova (`snn_snia_vs_nonia`)"}
SNN = "snn_snia_vs_nonia"
#: experiment files of t2 alone in Fink's stack (bench_modules.py outputs), shown beside the published run
EXPERIMENTS = "bench_modules_fink_stack_t2_"


def n(x: float) -> str:
    return f"{x:,.0f}"


def _load(data: dict) -> str:
    if "conditions_before" in data:
        before, after = (data[k]["load_average_1_5_15"][0] for k in ("conditions_before", "conditions_after"))
        return f"{before} → {after}"
    runs = [r["load_average_before"][0] for r in data.get("runs", []) if "load_average_before" in r]
    return "before each run: " + ", ".join(str(x) for x in runs) if runs else "not recorded"


def _threads(data: dict) -> str:
    worker = data.get("python_worker_threads")
    if worker:
        pinned = data["threads_pinned"]
        text = f"workers pinned to {pinned}" if pinned else "library defaults"
        if "torch" in worker:
            text += f"; torch in the worker: {worker['torch']['intra_op']} intra-op"
        return text + f"; {worker['threads_alive']} threads alive in the worker"
    env = data.get("conditions_before", {}).get("threads", {}).get("environment")
    return ("OMP_NUM_THREADS=" + str(env["OMP_NUM_THREADS"])) if env else "not recorded"


def _model(data: dict, shipped: str) -> str:
    sha = data.get("model_sha256")
    if not sha:
        return "not recorded"
    return "the shipped file" if sha == shipped else f"another file (`{sha[:12]}…`)"


def run_conditions(files: dict, shipped: str) -> list[str]:
    lines = ["| file | written (UTC) | commit | model timed | load average, 1 min (before → after) | threads |",
             "|---|---|---|---|---|---|"]
    for name, data in files.items():
        meta = data.get("meta", {})
        when = data.get("when_utc") or data.get("started") or meta.get("created") or "not recorded"
        commit = f"`{data['commit']}`" + (" + changes" if data.get("tree_changed") else "") if data.get("commit") else "not recorded"
        lines.append(f"| `{name}` | {when} | {commit} | {_model(data, shipped)} | {_load(data if 'meta' not in data else meta)} "
                     f"| {_threads(data if 'meta' not in data else meta)} |")
    return lines + ["", "\"Not recorded\": the run predates the field (scripts/bench_conditions.py now records load, "
                        "threads, commit and model in every benchmark file)."]


def _rate(data: dict, kind: str, size: str, module: str):
    return data[kind].get(size, {}).get(module, {}).get("alerts_per_second_per_core")


def _verdict(value: float, target: float) -> str:
    return "**met**" if value >= target else f"**missed** ({(1 - value / target):.0%} short)"


def modules_table(data: dict, name: str) -> list[str]:
    sizes = sorted(data["realistic"], key=int)
    stack = data.get("stack")
    lines = ["Stack: " + (", ".join(f"{k} {v}" for k, v in stack.items()) if stack else "not recorded") + ".", ""]
    if "conditions_before" not in data:
        lines += ["**This run recorded neither the load nor the thread settings** (it predates them): its rates may "
                  "reflect the machine's other jobs as much as the modules. Compare modules within it, not with other "
                  "files.", ""]
    lines += ["| module (alerts/s/core) | " + " | ".join(f"{int(s):,} alerts" for s in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for kind, suffix in (("realistic", ""), ("all_pass", ", every alert classified")):
        for module in data[kind][sizes[0]]:
            cells = [_rate(data, kind, s, module) for s in sizes]
            lines.append(f"| {NAMES.get(module, module)}{suffix} | " + " | ".join(n(c) if c else "" for c in cells) + " |")
    chart = name.replace(".json", ".png")
    lines += ["", f"![alerts per second per core]({chart})", ""]
    if SNN in data["realistic"][sizes[0]]:
        for kind, label in (("realistic", "realistic night"), ("all_pass", "every alert classified")):
            ratios = [_rate(data, kind, s, "t2") / _rate(data, kind, s, SNN) for s in sizes]
            lines.append(f"t2 ÷ SuperNNova in this run, {label}: " + " / ".join(f"{r:.2f}×" for r in ratios)
                         + f" ({' / '.join(f'{int(s):,}' for s in sizes)} alerts).")
        lines.append("")
    big = sizes[-1]
    real, every = _rate(data, "realistic", big, "t2"), _rate(data, "all_pass", big, "t2")
    lines += [f"Targets (issue #5) at {int(big):,} alerts: realistic replay ≥ {n(MODULE_TARGETS['realistic'])} "
              f"alerts/s/core: {n(real)}, {_verdict(real, MODULE_TARGETS['realistic'])}; every alert classified ≥ "
              f"{n(MODULE_TARGETS['all_pass'])}: {n(every)}, {_verdict(every, MODULE_TARGETS['all_pass'])}."]
    return lines


def stack_finding(published: dict, files: dict) -> list[str]:
    """Per-alert costs of the published Fink-stack run, and the experiments on t2 alone beside it."""
    big = sorted(published["realistic"], key=int)[-1]
    cost = {(k, m): 1e6 / v["alerts_per_second_per_core"] for k in ("realistic", "all_pass")
            for m, v in published[k][big].items()}
    lines = [f"Per alert at {int(big):,} alerts in `bench_modules_fink_stack.json`: t2 {cost['realistic', 't2']:.0f} µs on "
             f"the realistic night and {cost['all_pass', 't2']:.0f} µs with every alert classified; nalerthist, which "
             f"reads one array column and runs neither a network nor torch, {cost['realistic', 'nalerthist']:.0f} µs."]
    if ("all_pass", SNN) in cost:
        lines[-1] += f" SuperNNova with every alert classified: {cost['all_pass', SNN]:.0f} µs."
    if "conditions_before" in published:
        lines += ["", f"This run recorded its conditions: load average {_load(published)}, {_threads(published)}, the modules "
                  "timed in turn round after round, each in the same Python worker (`local[1]`); see the experiments "
                  "below for what load alone does to the figure."]
    else:
        lines += ["", "The file records no load and no thread settings (the benchmark did not record them then). In that "
                  "run every module was timed in one Python worker, one after the other (`local[1]`: one task at a time), "
                  "each module's repeats in a row: torch's threads were idle while t2 ran, and could slow it only by spinning "
                  "on after SuperNNova's calls (the alternated runs below, where available, measure it); torch's default "
                  "pool, one thread per core, could however give SuperNNova's own timings both cores. `scripts/bench_modules.py` now pins the workers' pools (`--threads`, default 1), times the "
                  "modules in turn round after round, and records the load and threads."]
    runs = {name: data for name, data in files.items() if name.startswith(EXPERIMENTS)}
    if runs:
        lines += ["", "t2 run again in the same stack's pins, each file a run of `scripts/bench_modules.py` with its "
                  "load and threads recorded:", "",
                  "| file | alerts | modules in the run | threads | load average, 1 min (before → after) | t2, realistic "
                  "| t2, every alert classified |", "|---|---:|---|---|---|---:|---:|"]
        for name, data in sorted(runs.items()):
            size = _largest(data)
            lines.append(f"| `{name}` | {int(size):,} | {', '.join(data['realistic'][size])} | {_threads(data)} | "
                         f"{_load(data)} | {n(_rate(data, 'realistic', size, 't2'))} | {n(_rate(data, 'all_pass', size, 't2'))} |")
        lines += _experiment_findings(runs, published)
    return lines


def _largest(data: dict) -> str:
    return sorted(data["realistic"], key=int)[-1]


def _experiment_findings(runs: dict, published: dict) -> list[str]:
    """What the runs of t2 alone and beside SuperNNova say, as computed from them and the published run."""
    lines = []
    every = {name: _rate(d, "all_pass", _largest(d), "t2") for name, d in runs.items()}
    alone_below = [name for name, d in sorted(runs.items()) if "torch" not in d["python_worker_threads"]
                   and _rate(published, "all_pass", _largest(d), "t2") and every[name] <= _rate(published, "all_pass", _largest(d), "t2")]
    alone_below.sort(key=lambda name: -int(_largest(runs[name])))  # the largest volume first: the headline figure
    if alone_below:
        d = runs[alone_below[0]]
        size = _largest(d)
        quiet = _rate(published, 'all_pass', size, 't2')
        lines += ["", f"Without SuperNNova or torch in the worker, under a load average of {_load(d)}, t2 classified every "
                  f"alert at {n(every[alone_below[0]])} alerts/s/core at {int(size):,} alerts (`{alone_below[0]}`), "
                  + (f"{quiet / every[alone_below[0]]:.1f}× below this file's quiet run ({n(quiet)}): the machine's load "
                     "alone divides the figure that much." if "conditions_before" in published else
                     f"below the published {n(quiet)} at the same volume: the machine's load alone is enough to give the "
                     "published figures.")]
    sizes = {_largest(d) for d in runs.values()}
    for size in sorted(sizes, key=int):
        alone = [every[k] for k, d in runs.items() if _largest(d) == size and SNN not in d["realistic"][size]]
        beside = [(every[k], d) for k, d in runs.items() if _largest(d) == size and SNN in d["realistic"][size]]
        if alone and beside:
            with_snn = [r for r, _ in beside]
            torch = {d["python_worker_threads"].get("torch", {}).get("intra_op") for _, d in beside}
            overlap = min(with_snn) <= max(alone) and min(alone) <= max(with_snn)
            lines += ["", f"At {int(size):,} alerts, runs alternated: t2 with every alert classified ran at "
                      f"{' / '.join(n(r) for r in alone)} alerts/s/core alone and {' / '.join(n(r) for r in with_snn)} "
                      f"with SuperNNova timed in the same Python worker (torch's pool: {', '.join(str(t) for t in torch)} "
                      f"intra-op threads), means {n(sum(alone) / len(alone))} and {n(sum(with_snn) / len(with_snn))}: "
                      + ("the ranges overlap: under this load, no slowdown from SuperNNova's torch in the same worker "
                         "stands out from the noise." if overlap else "the ranges do not overlap.")]
    if lines and "conditions_before" not in published:
        lines += ["", "The published figure measured the machine's other jobs, not Fink's stack; it stays in its file "
                  "until a run on a quiet machine, with its conditions recorded, replaces it."]
    return lines


def micro(data: dict, shipped: str) -> list[str]:
    m = data["micro"]
    calls = m["inference_batch_size"]
    arrow = m["arrow_max_records_per_batch_all_pass"]
    rows = [("Avro decode (fastavro, single-alert files of 2020-01-01 incl. cutouts)",
             f"{n(m['avro_decode']['alerts_per_second_per_core'])} alerts/s/core ({m['avro_decode']['alerts']:,} alerts)"),
            (f"sequence building (`build_sequences`, {m['sequence_building']['alerts']:,} real alerts)",
             f"{n(m['sequence_building']['alerts_per_second_per_core'])} alerts/s/core"),
            ("inference, alerts per LiteRT call " + " / ".join(calls),
             " / ".join(n(v["alerts_per_second_per_core"]) for v in calls.values()) + " alerts/s"),
            ("Arrow batch (`spark.sql.execution.arrow.maxRecordsPerBatch`) " + " / ".join(f"{int(k):,}" for k in arrow)
             + ", every alert classified", " / ".join(n(v["alerts_per_second_per_core"]) for v in arrow.values())
             + " alerts/s/core"),
            ("model load (LiteRT, the model file timed)", f"{m['model_load_seconds'] * 1000:.2f} ms"),
            ("Python worker peak RSS, every alert classified", f"{n(m['python_worker_peak_rss_mb_all_pass'])} MB")]
    if "float_tflite_inference_1024" in m:
        rows.append(("float TFLite (`build/model`), 1,024 alerts per call",
                     f"{n(m['float_tflite_inference_1024']['alerts_per_second_per_core'])} alerts/s"))
    return [f"Model timed: {_model(data, shipped)}; load average {_load(data)}.", "",
            "| what | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]


def variants(files: dict) -> list[str]:
    lines = []
    if "compression.json" in files:
        rows = {r["variant"]: r for r in files["compression.json"]["variants"] if "bytes" in r}
        shipped = files["compression.json"]["meta"]["shipped_variant"]
        lines += ["## Model variants (`compression.json`, `docs/compression.md`)", "",
                  "| variant | FlatBuffer bytes | alerts/s/core | 1-alert latency ms |", "|---|---:|---:|---:|"]
        for name in ("tflite_float", "tflite_dynamic", "tflite_int8"):
            if name in rows:
                r = rows[name]
                lines.append(f"| {name}{' (shipped)' if name == shipped else ''} | {r['bytes']:,} | "
                             f"{n(r['throughput_per_s'])} | {r['latency_ms']:.2f} |")
        lines += ["", "Every variant, its quality and how each figure was taken: `docs/compression.md`.", ""]
    if "bench_variants.json" in files:
        data = files["bench_variants.json"]
        lines += ["## Variants at the runtime's chunk size (`bench_variants.json`)", "",
                  f"Run {data.get('when_utc', 'at a time not recorded')}, load {_load(data)}; alerts/s on one thread:", "",
                  "| file | bytes | " + " | ".join(k for k in next(iter(data["variants"].values())) if k.startswith("chunk_"))
                  + " |", "|---|---:|" + "---:|" * 2]
        for name, v in data["variants"].items():
            chunks = [v[k]["alerts_per_second"] for k in v if k.startswith("chunk_")]
            lines.append(f"| {name} | {v['bytes']:,} | " + " | ".join(n(c) for c in chunks) + " |")
        lines.append("")
    return lines


def lsst(files: dict) -> list[str]:
    name = next((f for f in ("bench_modules_fink_stack.json", "bench_modules.json") if f in files), None)
    if name is None:
        return []
    data = files[name]
    big = sorted(data["all_pass"], key=int)[-1]
    every = _rate(data, "all_pass", big, "t2")
    lines = ["## LSST, the module alone", "",
             f"10 million alerts a night, bursts of 2,000 alerts/s, at the rate of t2 with every alert classified in "
             f"`{name}` ({n(every)} alerts/s/core at {int(big):,} alerts; load average {_load(data)}): {2000 / every:.2f} core for a burst, "
             f"{1e7 / every / 60:,.0f} core-minutes for a night. The module alone; the whole replay's cost per alert is "
             "in the night section below."]
    return lines + [""]


def _cpu_ms(run: dict) -> tuple[float, dict]:
    """CPU ms per alert of a replay, in all and per process (new files give it per process, older ones in all)."""
    value = run.get("cpu_ms_per_alert")
    if isinstance(value, dict):
        return sum(value.values()), value
    parts = {k[len("cpu_s_"):]: 1000 * v / run["alerts"] for k, v in run.items() if k.startswith("cpu_s_")}
    return (value if value is not None else sum(parts.values())), parts


def night(data: dict) -> list[str]:
    lines = [f"`{data['command'].strip()}`, {data.get('when_utc', 'time not recorded')}, commit `{data.get('commit')}`; "
             f"other jobs on the machine: {data['machine'].get('shared', 'not recorded')}. Wall time of the whole command, Spark's "
             "start included; CPU time of every process of the replay (driver, JVM, Python workers).", "",
             "| alerts | master | wall (s) | alerts/s | CPU ms/alert (all) | per process | load before (1 min) |",
             "|---:|---|---:|---:|---:|---|---:|"]
    for run in data["runs"]:
        total, parts = _cpu_ms(run)
        load = run.get("load_average_before", [None])[0]
        lines.append(f"| {run['alerts']:,} | `{run['master']}` | {run['wall_s']} | {n(run['alerts_per_s'])} | {total:.2f} | "
                     + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()) + f" | {load if load is not None else 'not recorded'} |")
    t = NIGHT_TARGETS
    lines += ["", f"Targets (issue #18), a {t['alerts']:,}-alert night with `{t['master']}`: ≤ {t['cpu_ms_per_alert']} CPU ms "
              f"per alert and ≥ {n(t['alerts_per_s'])} alerts/s end to end."]
    target_runs = [r for r in data["runs"] if r["master"] == t["master"] and r["alerts"] == t["alerts"]]
    if not target_runs:
        lines.append(f"Not measured at {t['alerts']:,} alerts (no such run in the file); the `{t['master']}` runs above, "
                     "against the same targets:")
        target_runs = [r for r in data["runs"] if r["master"] == t["master"]]
    for run in target_runs:
        total = _cpu_ms(run)[0]
        cpu = "met" if total <= t["cpu_ms_per_alert"] else f"missed by {total - t['cpu_ms_per_alert']:.2f} ms"
        rate = "met" if run["alerts_per_s"] >= t["alerts_per_s"] else f"missed by {n(t['alerts_per_s'] - run['alerts_per_s'])}"
        lines.append(f"- {run['alerts']:,} alerts: {total:.2f} CPU ms/alert ({cpu}), {n(run['alerts_per_s'])} alerts/s ({rate}).")
    p = data.get("projections")
    if p:
        lines += ["", f"Marginal cost (the larger night minus the smaller, every process): {p['marginal_cpu_ms_per_alert']} CPU "
                  f"ms per alert, {n(p['alerts_per_s_per_core'])} alerts/s per core; LSST's 10 million alerts a night: "
                  f"{p['lsst']['cores_to_keep_pace_over_a_10h_night']} core to keep pace over 10 hours, "
                  f"{p['lsst']['cores_to_replay_a_night_in_1h']} cores to replay one in an hour."]
    return lines


def write_or_check(page: Path, text: str, check: bool, command: str) -> int:
    """Write ``text`` to ``page``; with ``check``, only say whether the page already holds it (exit status 1 if not)."""
    if check:
        same = page.read_text(encoding="utf-8") == text
        print(f"docs/{page.name} is " + ("up to date" if same else f"stale: run {command}"))
        return 0 if same else 1
    page.write_text(text, encoding="utf-8")
    print(f"wrote {page}")
    return 0
