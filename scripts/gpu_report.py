"""docs/gpu.md, written from docs/gpu_check.json (the file scripts/gpu_check.sh writes on a GPU machine).

    python scripts/gpu_report.py            # rewrite docs/gpu.md
    python scripts/gpu_report.py --check    # exit 1 if docs/gpu.md is not what the JSON gives

Every figure of the page is read from the JSON (or, for the self-check tolerance, from the code that applies
it); tests/test_performance_doc.py regenerates the page and fails when the file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from perf_sections import write_or_check

from fink_t2.runtime.gpu import GPU_TOLERANCE

ROUTES = {"litert-gpu": "`litert-gpu`: LiteRT `CompiledModel`, GPU accelerator (WebGPU over Vulkan)",
          "onnxruntime-cuda": "`onnxruntime-cuda`: `fink_t2/data/t2.onnx` on ONNX Runtime's CUDA provider",
          "torch-cuda": "`torch-cuda`: the same `t2.onnx` run by PyTorch on CUDA"}
#: a ZTF night's size, for the inference cost of a night at the measured rate
NIGHT_ALERTS = 200_000


def n(x: float) -> str:
    return f"{x:,.0f}"


def _gpu_name(smi: str) -> tuple[str, str, str]:
    name = re.search(r"\|\s+\d+\s+(NVIDIA[^|]*?)\s{2,}", smi)
    driver, cuda = re.search(r"Driver Version:\s*(\S+)", smi), re.search(r"CUDA Version:\s*(\S+)", smi)
    return (name[1].strip() if name else "GPU not named by nvidia-smi", driver[1] if driver else "?", cuda[1] if cuda else "?")


def _run(d: dict, shipped: str) -> list[str]:
    gpu, driver, cuda = _gpu_name(d["nvidia_smi"])
    p = d["packages"]
    ort = f"onnxruntime {p['onnxruntime']}" + (" CPU-only" if not p.get("onnxruntime-gpu") else f", onnxruntime-gpu {p['onnxruntime-gpu']}")
    same = d["model_sha256"] == shipped
    lines = [f"Measured on one {gpu} (driver {driver}, CUDA {cuda}; {d['cpu_count']} CPU cores; Python {d['python']}, "
             f"torch {p['torch']}, ai-edge-litert {p['ai-edge-litert']}, {ort}) by `bash scripts/gpu_check.sh`, which "
             f"wrote [`docs/gpu_check.json`](gpu_check.json) ({d['started']}; its `litert_gpu.native_log` holds "
             "LiteRT's whole log). `python scripts/gpu_report.py` writes this page from it."]
    if same:
        lines.append("The run measured the t2 file shipped now.")
    else:
        lines.append(f"The run measured the t2 file shipped at the time (`model_sha256` `{d['model_sha256'][:8]}…`), "
                     f"not the one shipped now (`{shipped[:8]}…`): its figures on the GPU are not re-measured for the "
                     "current file; the CPU tests below check the current file's ONNX conversion on every commit.")
    if "conditions_before" in d:
        lines.append(f"Load average (1 min) {d['conditions_before']['load_average_1_5_15'][0]} before the run and "
                     f"{d['conditions_after']['load_average_1_5_15'][0]} after it.")
    return [" ".join(lines)]


def _routes(d: dict) -> list[str]:
    lines = ["| route (tried in this order) | on this GPU |", "|---|---|"]
    for route, label in ROUTES.items():
        result = d["routes"].get(route, "not tried")
        if result == "ok":
            result = "**runs**, passes the self-check" + ("; `--device auto` chooses it" if d["routes"].get("auto_chooses") == route else "")
        else:
            result = f"**fails**: `{result}`"
        lines.append(f"| {label} | {result} |")
    if "delegate that only supports static-sized tensors" in d.get("litert_gpu", {}).get("native_log", ""):
        lines += ["", "LiteRT's log (`litert_gpu.native_log`) says why its GPU route fails: `Attempting to use a delegate "
                  "that only supports static-sized tensors with a graph that has dynamic-sized tensors`. They come from "
                  "the model file itself: the two feed-forward `Dense` layers on 3-D inputs are exported as "
                  "`SHAPE → GATHER → REDUCE_PROD → PACK → RESHAPE` (TensorFlow's `Tensordot`). A model exported with "
                  "static reshapes (e.g. `EinsumDense`, or a fixed batch signature) might let LiteRT's own GPU route "
                  "through; that is a change to training/export, not to this module."]
    return lines


def _agreement(d: dict) -> list[str]:
    a, real = d["agreement"], d["real_alerts"]
    backend = next(k for k in a if k != "tflite_reference_kernels_vs_xnnpack")
    ref = a.get("tflite_reference_kernels_vs_xnnpack")
    lines = [f"| inputs | {backend} vs the LiteRT interpreter (XNNPACK) | for scale: TFLite's reference kernels vs XNNPACK |",
             "|---|---|---|"]
    for key, label in (("sample_night", "sample night, alerts that pass the cuts"), ("bts_views", "BTS alert views")):
        r = a[backend][key]
        cell = (f"max \\|Δp\\| {r['max_abs_diff']:.1e}; 99.99th percentile {r['p9999_abs_diff']:.1e}; "
                f"{r['alerts_over_1e-3']:,} above 1e-3")
        scale = (f"max {ref['max_abs_diff']:.1e}; {ref['alerts_over_1e-3']:,} above 1e-3"
                 if ref and key == "bts_views" else "")
        lines.append(f"| {label} ({real[key]:,}) | {cell} | {scale} |")
    lines += ["", "The model is dynamic-range quantized: each dense layer quantizes its input to int8 per row at run "
              "time. A value on the edge of a quantization step rounds the other way after tiny float differences "
              "upstream" + (f", and TFLite's own two CPU kernels differ by up to {ref['max_abs_diff']:.1e} on the same "
                            "views: that is the floor for any re-implementation, not a defect of the CUDA route" if ref else "")
              + f". Every worker's self-check (a fixed probe batch) requires ≤ {GPU_TOLERANCE:g} (`GPU_TOLERANCE`). "
              "`tests/test_gpu.py` runs the same ONNX file on the CPU (ONNX Runtime and PyTorch) on the sample night "
              "and the views of BTS objects, for the file shipped now, with the tolerances it states."]
    return lines


def _throughput(d: dict) -> list[str]:
    rates = d["model_alone_alerts_per_s"]
    batches = list(rates["cpu-1-core"])
    lines = ["Model alone (`predict` on t2 inputs; alerts/s). One CPU core: the LiteRT interpreter with one thread "
             "(XNNPACK), called with the whole batch. GPU: chunks of the batch, host→device copy and back included.", "",
             "| batch | " + " | ".join(f"{int(b):,}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for backend, row in rates.items():
        label = "one CPU core" if backend == "cpu-1-core" else backend
        lines.append(f"| {label} | " + " | ".join(n(row[b]) for b in batches) + " |")
    cpu_best = max(rates["cpu-1-core"].values())
    for backend, at in d.get("gpu_overtakes_one_core_at_batch", {}).items():
        best = max(rates[backend].values())
        if at is None:
            lines += ["", f"**{backend} never overtakes one core** at the batches measured (its best: {n(best)} alerts/s)."]
            continue
        lines += ["", f"**{backend} overtakes one core at a batch of {at:,} alerts** and peaks at {n(best)} alerts/s, "
                  f"{best / cpu_best:.0f} cores' worth (the best one-core rate: {n(cpu_best)}). At a batch of "
                  f"{int(batches[0]):,} it is {rates['cpu-1-core'][batches[0]] / rates[backend][batches[0]]:.0f}× slower "
                  "than a core."]
    return lines


def _pipeline(d: dict) -> list[str]:
    p = d["pipeline"]
    cs = p["cuts_and_sequences"]
    lines = [f"Whole non-Spark pipeline on the sample night replicated to {p['alerts']:,} alerts (one process):", "",
             "| stage | alerts/s |", "|---|---|",
             f"| decode (Fink parquet → alert table; {p['decode']['alerts']:,} alerts in {p['decode']['seconds']} s, one core) "
             f"| {n(p['decode']['alerts_per_s'])} |",
             f"| cuts + sequences (all {p['alerts']:,} alerts) | {n(cs['alerts_per_s'])} |",
             f"| alerts that reach the model | {cs['alerts_to_model']:,} of {p['alerts']:,} ({cs['alerts_to_model'] / p['alerts']:.1%}) |"]
    whole = {}
    for backend, r in p.items():
        if isinstance(r, dict) and "whole_pipeline_alerts_per_s" in r:
            label = "one CPU core" if backend == "cpu-1-core" else backend
            lines.append(f"| cuts + sequences + model, {label} | {r['cuts_sequences_model_s']} s |")
            whole[label] = r["whole_pipeline_alerts_per_s"]
    lines += [f"| **whole pipeline, {label}** | **{n(rate)}** |" for label, rate in whole.items()]
    cpu = whole.get("one CPU core")
    gpus = [r for label, r in whole.items() if label != "one CPU core"]
    cpu_rate = max(d["model_alone_alerts_per_s"]["cpu-1-core"].values())
    lines += ["", "## What the GPU changes for a Fink night, and what it does not", "",
              f"- Decoding (Avro/parquet → Arrow) and the cuts run on the CPU, whatever the device; decoding alone takes "
              f"{cpu / p['decode']['alerts_per_s']:.0%} of the one-core pipeline's time above. Most alerts of a real night "
              f"never reach the model (here {cs['alerts_to_model'] / p['alerts']:.1%}: asteroids, Galactic cross-matches, "
              "old or single-detection alerts)"
              + (f", so the whole pipeline gains {max(gpus) / cpu - 1:.1%} from the GPU." if gpus and cpu else "."),
              f"- The model itself runs at up to {n(cpu_rate)} alerts/s on one core: a {NIGHT_ALERTS:,}-alert ZTF night costs "
              f"{NIGHT_ALERTS / cpu_rate:.0f} core-seconds of t2 inference, small next to decoding. The GPU pays off only "
              "where the model dominates: a re-classification of archives or many alert views at once, in batches of "
              "thousands (`spark.sql.execution.arrow.maxRecordsPerBatch` sets the batch a UDF sees).",
              "- With Spark's small Arrow batches, or one Python worker per GPU fraction, each worker also holds its own "
              "CUDA context and its own copy of the model (GPU memory per worker: not measured)."]
    return lines


def _rubin(d: dict) -> list[str]:
    """The Rubin model's section, when the run has one (``rubin``, scripts/gpu_check_rubin.py)."""
    r = d.get("rubin", {})
    if "routes" not in r:
        return []
    shipped = hashlib.sha256((REPO / "fink_t2" / "data" / "t2_lsst.tflite").read_bytes()).hexdigest()
    lines = ["## The Rubin model", "", f"`t2_lsst.tflite` (ugrizy, {r['input_shape'][0]} nodes × {r['input_shape'][1]} "
             "channels) and its ONNX conversion `t2_lsst.onnx`, in the same run"
             + (" (the file shipped now)." if r["model_sha256"] == shipped else
                f" (the file shipped then, `{r['model_sha256'][:8]}…`, not the one shipped now, `{shipped[:8]}…`)."), "",
             *(line.replace("t2.onnx", "t2_lsst.onnx") for line in _routes({"routes": r["routes"]})), ""]
    for backend, per_input in r["agreement"].items():
        for name, a in per_input.items():
            lines.append(f"- {backend} vs the LiteRT interpreter, {name.replace('_', ' ')} ({a['alerts']:,} alerts): "
                         f"max \\|Δp\\| {a['max_abs_diff']:.1e}, {a['alerts_over_1e-3']:,} above 1e-3")
    lines += ["", *_throughput(r), ""]
    for backend, p in r.get("pipeline", {}).items():
        if isinstance(p, dict) and "alerts_per_s" in p:
            lines.append(f"- Rubin classify core (cuts, sequences, model) on {r['pipeline']['alerts']:,} sample alerts, "
                         f"{'one CPU core' if backend == 'cpu-1-core' else backend}: {n(p['alerts_per_s'])} alerts/s")
    summary = r.get("spark_replay", {}).get("summary") or {}
    if summary.get("backends"):
        lines.append("- Spark GPU-scheduled replay of the real Rubin alerts: workers ran "
                     + ", ".join(f"{backend} ({count} Python workers)" for backend, count in summary["backends"].items()))
    return [*lines, ""]


STATIC = """## Choosing the device

`fink-t2 replay` and `fink-t2 classify` take `--device auto|cpu|gpu` (default `$FINK_T2_DEVICE`, else
`auto`): `auto` uses a GPU when one is visible (`CUDA_VISIBLE_DEVICES`, `/dev/nvidia<N>`) or Spark
assigned one to the task, and a route passes its self-check; else the CPU, with one warning line per
worker that had a GPU. `cpu` never touches the GPU. `gpu` stops with a one-line error (exit status 2)
when no usable GPU is there (the replay checks this on the driver for local masters; on a cluster the
executors' tasks fail with that line). Inside Spark the policy travels as `FINK_T2_DEVICE` in the
context's environment (Fink's own job: `spark.executorEnv.FINK_T2_DEVICE`). The replay summary says
what the workers ran: `device`, `backends` (backend → Python worker processes) and `gpu_fallback`
(reasons); `fink-t2 classify`'s summary says `device`, `backend` and `gpu_fallback`.

Install for GPUs: `pip install -e ".[gpu]"` (onnx, torch, and tf2onnx/onnxruntime for
`fink-t2 export-onnx`); for ONNX Runtime's CUDA route, `onnxruntime-gpu` instead of `onnxruntime`.
`t2.onnx` is `fink-t2 export-onnx`'s conversion of the shipped `t2.tflite` (tf2onnx, then the per-row input
quantization of TFLite/XNNPACK restored: `fink_t2/model/onnx_export.py`). It records the SHA-256 of the
`.tflite` it came from and its contract; a GPU worker refuses a stale one and says so.

The Rubin model has the same routes, chosen by the same policy (`--device`, `$FINK_T2_DEVICE`) in Fink's Rubin
UDF, the Rubin replay and `fink-t2 classify`: `fink_t2/data/t2_lsst.onnx` is the conversion of `t2_lsst.tflite`
(`fink-t2 export-onnx --model fink_t2/data/t2_lsst.tflite`), and each worker's self-check probes a model with its
own input (ugrizy, 64 × 22 for the Rubin model). `tests/test_gpu_rubin.py` checks on the CPU, on every commit,
that the conversion is current and gives the interpreter's probabilities on real Rubin, ELAsTiCC and PLAsTiCC
alerts within the self-check's tolerance (ONNX Runtime and PyTorch).
"""


def markdown(d: dict, shipped: str) -> str:
    spark = d.get("spark_replay", {})
    not_measured = [f"- **The Spark GPU-scheduled replay on the GPU**: `gpu_check.sh` recorded `{spark['skipped']}`. What "
                    "each task runs under Spark's GPU scheduling is tested only without a GPU (`tests/test_deploy.py`, "
                    "fake discovery script: every task falls back to the CPU with one line per worker). Run `bash scripts/gpu_check.sh` "
                    "on a GPU machine with Java 17 and pyspark to fill `spark_replay` in."] if "skipped" in spark else []
    if d["routes"].get("onnxruntime-cuda") != "ok":
        not_measured.append("- **ONNX Runtime's CUDA provider**: not usable in the run (`routes` in the JSON); its code "
                            "path (`T2OnnxRuntimeModel`) is tested with the CPU provider only.")
    if "routes" not in d.get("rubin", {}):
        not_measured.append("- **The Rubin model on a GPU**: its GPU routes exist (see above) but this run predates "
                            "their check: nothing on this page measures them on a GPU. `bash scripts/gpu_check.sh` "
                            "measures them (JSON section `rubin`).")
    not_measured += ["- **The GPU image** (`Dockerfile.gpu`): not built by the check, which runs the machine's own Python.",
                     "- Several GPUs per executor, and GPU memory under many concurrent workers."]
    parts = ["# t2 on an NVIDIA GPU", "", *_run(d, shipped), "", "## Which route runs", "", *_routes(d), "",
             "## Agreement with the CPU interpreter (real alerts)", "", *_agreement(d), "", "## Throughput", "",
             *_throughput(d), "", *_pipeline(d), "", *_rubin(d), STATIC, "## Not measured", "", *not_measured]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with docs/gpu.md")
    args = parser.parse_args(argv)
    data = json.loads((REPO / "docs" / "gpu_check.json").read_text())
    shipped = hashlib.sha256((REPO / "fink_t2" / "data" / "t2.tflite").read_bytes()).hexdigest()
    text, page = markdown(data, shipped), REPO / "docs" / "gpu.md"
    return write_or_check(page, text, args.check, "python scripts/gpu_report.py")

if __name__ == "__main__":
    sys.exit(main())
