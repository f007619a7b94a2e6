"""docs/performance.md, written from the benchmark files of docs/ and nothing else.

    python scripts/performance_report.py            # rewrite docs/performance.md
    python scripts/performance_report.py --check    # exit 1 if docs/performance.md is not what the files give

Every figure of the page is read from a JSON file that a script of scripts/ wrote (bench_modules.py,
bench_night.py, compression_table.py, gpu_check.py, bench_variants.py); a file that is absent drops its
section, and a run that did not record its load, threads or model says so. tests/test_performance_doc.py
regenerates the page and fails when the file differs: rerun this script after any benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from perf_sections import (
    EXPERIMENTS,
    lsst,
    micro,
    modules_table,
    night,
    run_conditions,
    stack_finding,
    variants,
    write_or_check,
)

FILES = ("bench_modules_fink_stack.json", "bench_modules.json", "bench_local2.json", "night_scale.json",
         "compression.json", "gpu_check.json", "bench_variants.json")
#: the commands that rewrite each file (the file records the command of its own last run)
RERUN = {
    "bench_modules.json": "python scripts/bench_modules.py --sizes 1000,10000,50000 --output docs/bench_modules.json "
                          "--chart docs/bench_modules.png",
    "bench_modules_fink_stack.json": "python scripts/bench_modules.py --sizes 1000,10000,50000 --no-micro "
                                     "--modules t2,t2+status,nalerthist,roid,snn_snia_vs_nonia "
                                     "--output docs/bench_modules_fink_stack.json --chart docs/bench_modules_fink_stack.png",
    "bench_local2.json": "python scripts/bench_modules.py --sizes 50000 --modules t2 --no-micro --local2 "
                         "--output docs/bench_local2.json",
    "night_scale.json": "python scripts/bench_night.py",
    "compression.json": "python scripts/compression_table.py",
    "gpu_check.json": "bash scripts/gpu_check.sh",
    "bench_variants.json": "python scripts/bench_variants.py",
}


def load(docs: Path = REPO / "docs") -> dict:
    """The benchmark files present in ``docs``, by file name (the experiments on t2 alone in Fink's stack last)."""
    names = [name for name in FILES if (docs / name).is_file()]
    names += sorted(p.name for p in docs.glob(EXPERIMENTS + "*.json"))
    return {name: json.loads((docs / name).read_text()) for name in names}


def shipped_sha256() -> str:
    return hashlib.sha256((REPO / "fink_t2" / "data" / "t2.tflite").read_bytes()).hexdigest()


def fink_install() -> list[str]:
    """How .ci/run builds Fink's production stack (its FINK_INSTALL and FINK_SNN lines), read from the script."""
    text = (REPO / ".ci" / "run").read_text()
    return [re.search(rf"^{name}='([^']+)'", text, re.M)[1] for name in ("FINK_INSTALL", "FINK_SNN")]


def markdown(files: dict, shipped: str, install: list[str]) -> str:
    out = [
        "# Throughput of t2 beside other Fink science modules",
        "",
        "Written by `python scripts/performance_report.py` from the benchmark files of `docs/` below, and only "
        "from them: `tests/test_performance_doc.py` regenerates this page and fails if it differs (a hand edit, or "
        "a benchmark rerun without regenerating the page). The machine the files were made on is shared and noisy: "
        "each file says the load it ran under where it recorded it; compare modules **within one file**.",
        "",
        "## Files, and how to rerun them",
        "",
        "| file | command that rewrites it | command of the run in the file |",
        "|---|---|---|",
    ]
    for name, data in files.items():
        recorded = data.get("command") or data.get("meta", {}).get("command")
        rerun = f"`{RERUN[name]}`" if name in RERUN else "an experiment: its own command"
        if name == "gpu_check.json":
            rerun += " on a GPU machine (its `build/gpu_check/gpu_check.json` copied to docs/), then `python scripts/gpu_report.py`"
        out.append(f"| `{name}` | {rerun} | {f'`{recorded}`' if recorded else 'not recorded'} |")
    old_pins = "`git show 2e82ff9:constraints/fink-production.txt`: Spark 3.4.1, pandas 1.5.3, TensorFlow 2.15"
    stack = files.get("bench_modules_fink_stack.json", {}).get("stack", {})
    if str(stack.get("pyspark", "")).startswith("3.4"):
        when = (f"The Fink-stack figures on this page were measured before fink-broker PR #1235 moved those pins "
                f"({old_pins}); these commands now measure the stack of #1235:")
    else:
        when = (f"`bench_modules_fink_stack.json` was measured on the stack of fink-broker PR #1235 (pyspark "
                f"{stack.get('pyspark')}, pandas {stack.get('pandas')}, numpy {stack.get('numpy')}); the "
                f"`bench_modules_fink_stack_t2_*` experiments on the pins before it ({old_pins}):")
    out += [
        "",
        "Both stacks, then this page (the Fink stack is the venv `.ci/run` builds third, from "
        "`constraints/fink-production.txt`; docs/fink.md). " + when,
        "",
        "```bash",
        "# main environment: pip install -e \".[train,test]\"",
        RERUN["bench_modules.json"],
        "# Fink's production stack, in a fresh venv",
        *install,
        RERUN["bench_modules_fink_stack.json"],
        "python scripts/performance_report.py",
        "```",
        "",
        "`--quick` times 1,000 alerts once (`--output` elsewhere than docs/ for a trial). `--threads N` (default 1) "
        "sets the thread pools of Spark's Python workers (OpenMP, MKL, OpenBLAS, TensorFlow, and torch, which reads "
        "`OMP_NUM_THREADS`): with 1, SuperNNova's torch gets one core, as t2's LiteRT does; `--threads 0` leaves "
        "each library's default, for comparison.",
        "",
        "## Conditions of each run",
        "",
        *run_conditions(files, shipped),
        "",
        "## Method (fink-science-perf's)",
        "",
        "Spark `local[1]` (one core), Arrow on, the same cached input for every module, `df.select(module(...))"
        ".toPandas()`, alerts/s/core counting every alert including those the module's own cuts reject. Volume: the "
        "124 real alerts of 2021-11-22 (`data/night_20211122_fink_science`, Fink science stage) replicated with new "
        "candids and times shifted by whole copies of 0.01 d, so every copy meets the same cuts. \"Every alert "
        "classified\" (`all_pass` in `scripts/bench_modules.py`): the alerts with ≥ 2 g/r detections, positive "
        "differences, `cdsxmatch` `Unknown`, `roid` 0 and `jdstarthist` the first `cjd`, which opens t2's cuts and "
        "SuperNNova's own (`apply_selection_cuts_ztf`); the run checks that every alert of the set passes both "
        "before timing them. `t2` is the Fink UDF (map output); `t2+status` is what the replay writes (map, status "
        "and class in one struct UDF). Each file's `method` says how its repeats were taken.",
        "",
    ]
    for name, title in (("bench_modules_fink_stack.json", "inside Fink's production stack"),
                        ("bench_modules.json", "main environment")):
        if name in files:
            out += [f"## Modules, {title} (`{name}`)", "", *modules_table(files[name], name), ""]
    if "bench_modules_fink_stack.json" in files:
        out += ["## What the Fink-stack figures measured", "", *stack_finding(files["bench_modules_fink_stack.json"], files), ""]
    if "bench_modules.json" in files and files["bench_modules.json"].get("micro"):
        out += ["## Micro-benchmarks (`bench_modules.json` → `micro`)", "", *micro(files["bench_modules.json"], shipped), ""]
    if "bench_local2.json" in files:
        runs = files["bench_local2.json"]["local_1_vs_2"]
        one, two = runs["local[1]"]["alerts_per_second"], runs["local[2]"]["alerts_per_second"]
        out += ["## `local[1]` vs `local[2]` (`bench_local2.json`)", "",
                f"t2 with every alert classified, two partitions: {one:,.0f} alerts/s with `local[1]`, {two:,.0f} with "
                f"`local[2]`: {two / one:.2f}× on 2 cores (the cores are shared with the OS, the JVM and other jobs).",
                ""]
    out += variants(files)
    if "gpu_check.json" in files:
        gpu = files["gpu_check.json"]
        same = "the file shipped now" if gpu.get("model_sha256") == shipped else "an earlier shipped file"
        out += ["## GPU", "",
                f"Measured by `scripts/gpu_check.py` ({gpu['started']}, on {same}): `docs/gpu.md`, written from "
                "`gpu_check.json`.", ""]
    out += lsst(files)
    if "night_scale.json" in files:
        out += ["## A whole night, end to end (`night_scale.json`)", "", *night(files["night_scale.json"]), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with docs/performance.md")
    args = parser.parse_args(argv)
    text = markdown(load(), shipped_sha256(), fink_install())
    page = REPO / "docs" / "performance.md"
    return write_or_check(page, text, args.check, "python scripts/performance_report.py")

if __name__ == "__main__":
    sys.exit(main())
