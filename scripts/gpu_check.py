"""What t2 does on this machine's GPU, as ONE JSON file (run by scripts/gpu_check.sh; usable alone).

    python scripts/gpu_check.py --out gpu_check.json [--quick] [--bts PATH] [--pipeline-alerts 100000]

Sections: packages; ``nvidia-smi``; the Vulkan loader and ICD files; LiteRT's GPU probe with its whole
native log; every GPU route of :mod:`fink_t2.runtime.gpu` and the one ``auto`` chooses; agreement of each usable
backend with the CPU interpreter on real alerts (the sample night, the BTS alert views); alerts/s of the
model alone at batch sizes 1 to 65,536 on one CPU core and on each usable GPU backend; the whole
non-Spark pipeline (decode, cuts, sequences, model) on the sample night replicated to
``--pipeline-alerts`` alerts; the same for the Rubin model (section ``rubin``: scripts/gpu_check_rubin.py);
the Spark GPU-scheduled replay (``scripts/gpu_check.sh`` runs it and merges
its result in). Nothing here needs a GPU: without one each GPU part says why it was not run.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from importlib import metadata

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_conditions import conditions
from gpu_check_rubin import rubin_report

from fink_t2.alerts import iter_alert_tables
from fink_t2.core.classifier import classify_columns
from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA
from fink_t2.runtime import gpu
from fink_t2.runtime.gpu_litert import litert_gpu_model, vulkan_loader_present
from fink_t2.runtime.inference import T2Model, load_model
from fink_t2.runtime.model_ref import ModelRef

BATCHES = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
PACKAGES = ("numpy", "pandas", "pyarrow", "ai-edge-litert", "onnx", "onnxruntime", "onnxruntime-gpu", "torch",
            "pyspark", "fastavro", "fink-utils")
ICD_GLOBS = ("/usr/local/nvidia/share/vulkan/icd.d/*.json", "/usr/share/vulkan/icd.d/*.json",
             "/etc/vulkan/icd.d/*.json")


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    smi = shutil.which("nvidia-smi")
    out = subprocess.run([smi], capture_output=True, text=True, timeout=60).stdout if smi else None
    try:
        ctypes.CDLL("libvulkan.so.1")
        loader = True
    except OSError:
        loader = False
    return {"host": platform.node(), "python": sys.version.split()[0], "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "java": shutil.which("java"),
            "packages": {p: _version(p) for p in PACKAGES},
            "nvidia_smi": out if out is not None else "nvidia-smi not found",
            "visible_gpus": list(gpu.visible_gpus()),
            "vulkan": {"libvulkan.so.1": loader, "icd_files": sorted(f for g in ICD_GLOBS for f in glob.glob(g)),
                       **{k: os.environ.get(k) for k in ("VK_DRIVER_FILES", "VK_ICD_FILENAMES",
                                                         "NVIDIA_DRIVER_CAPABILITIES")}}}


def litert_probe(ref) -> dict:
    start = time.perf_counter()
    model, reason, log = litert_gpu_model(ref)
    result = {"ok": model is not None, "reason": reason, "seconds": round(time.perf_counter() - start, 2),
              "vulkan_loader": vulkan_loader_present(), "native_log": log}
    if model is not None:
        result.update(fully_accelerated=model.fully_accelerated, self_check_max_abs_diff=gpu.self_check(model, ref))
    return result


def routes(ref) -> tuple[dict, dict]:
    """Each GPU route alone: 'ok' or why not; and the usable models by backend name."""
    report, usable = {}, {}
    for name, make in gpu.gpu_routes(ref, "0"):
        model, reason = gpu.try_gpu_model(ref, routes=[(name, make)])
        report[name] = "ok" if model is not None else reason
        if model is not None:
            usable[model.backend] = model
    chosen = gpu.choose_model(ref, "auto")
    report["auto_chooses"] = chosen.backend
    return report, usable


def real_sequences(bts_path: str | None, ref) -> dict:
    """Model inputs of real alerts: the sample night's (after the cuts) and the BTS alert views."""
    class Recorder:
        class_names = ref.class_names

        def __init__(self):
            self.inputs = []

        def predict(self, x):
            self.inputs.append(np.array(x))
            return np.zeros((len(x), len(self.class_names)), np.float32)

    df = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    rec = Recorder()
    classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch, df.jdstarthist, df.ndethist, rec)
    out = {"sample_night": np.concatenate(rec.inputs) if rec.inputs else np.zeros((0, 31, 7), np.float32)}
    if bts_path and os.path.isfile(bts_path):
        from fink_t2.core.sequences import build_sequences
        from fink_t2.model.views import alert_views

        t = pd.read_csv(bts_path)
        t = t[np.isfinite(t["mag"]) & t["band"].isin(["g", "r"])]
        t = t.assign(object_id=t["objectId"], jd=t["mjd"] + 2400000.5, fid=t["band"].map({"g": 1, "r": 2}),
                     label="", source="bts")
        v = alert_views(t)
        s = build_sequences(v.jd, v.fid, v.mag, None, v.jd_now, v.jdstarthist, v.ndethist, offsets=v.offsets)
        out["bts_views"] = s.values[s.n_epochs >= 2]
    return out


def agreement(models: dict, data: dict, cpu) -> dict:
    report = {}
    for name, x in data.items():
        expected = cpu.predict(x)
        for backend, model in models.items():
            d = np.abs(model.predict(x) - expected).max(axis=1) if len(x) else np.zeros(0)
            report.setdefault(backend, {})[name] = {
                "alerts": int(len(x)), "max_abs_diff": float(d.max()) if len(d) else None,
                "p9999_abs_diff": float(np.quantile(d, 0.9999)) if len(d) else None,
                "alerts_over_1e-3": int((d > 1e-3).sum())}
    return report


def reference_kernels_vs_xnnpack(ref, x) -> dict:
    """TFLite's own reference kernels against its XNNPACK kernels (the CPU runner) on ``x``: the scale of Δp
    that two correct CPU implementations of this quantized model already show."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from fink_t2.core.contract import strip_contract

    it = Interpreter(model_content=strip_contract(ref.path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], [256, *x.shape[1:]])
    it.allocate_tensors()
    padded = np.concatenate([x, np.zeros(((-len(x)) % 256, *x.shape[1:]), np.float32)])
    out = []
    for i in range(0, len(padded), 256):
        it.set_tensor(inp["index"], padded[i : i + 256])
        it.invoke()
        out.append(it.get_tensor(outp["index"]).copy())
    d = np.abs(np.concatenate(out)[: len(x)] - load_model(ref).predict(x)).max(axis=1)
    return {"alerts": int(len(x)), "max_abs_diff": float(d.max()), "alerts_over_1e-3": int((d > 1e-3).sum())}


def _rate(model, x, budget_s: float) -> float:
    model.predict(x[: min(len(x), 4)])  # warm-up (programs, allocations)
    model.predict(x)
    calls, start = 0, time.perf_counter()
    while True:
        model.predict(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return calls * len(x) / elapsed


def model_alone(models: dict, batches, budget_s: float, contract: dict | None = None) -> dict:
    rng = np.random.default_rng(0)
    from fink_t2.runtime.gpu_onnx import probe_batch

    pool = probe_batch(max(batches), contract=contract)  # shaped as the model's input (default: the ZTF model's)
    table = {}
    for backend, model in models.items():
        table[backend] = {str(b): round(_rate(model, pool[rng.permutation(len(pool))[:b]], budget_s), 1)
                          for b in batches}
    return table


def overtakes(table: dict, cpu_key: str) -> dict:
    out = {}
    for backend, rates in table.items():
        if backend != cpu_key:
            beaten = [int(b) for b, r in rates.items() if r > table[cpu_key][b]]
            out[backend] = min(beaten) if beaten else None
    return out


def pipeline(models: dict, n_alerts: int, decode_budget_s: float) -> dict:
    """Decode (sample night read again and again), then cuts + sequences + model on ``n_alerts`` alerts."""
    reads, decoded, start = 0, 0, time.perf_counter()
    while True:
        tables = list(iter_alert_tables(SAMPLE_NIGHT))
        reads, decoded = reads + 1, decoded + sum(len(t) for t in tables)
        if time.perf_counter() - start >= decode_budget_s or decoded >= n_alerts:
            break
    decode_s = time.perf_counter() - start
    one = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    df = pd.concat([one] * int(np.ceil(n_alerts / len(one))), ignore_index=True)
    cols = (df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch, df.jdstarthist, df.ndethist)
    result = {"alerts": int(len(df)), "decode": {"alerts": decoded, "seconds": round(decode_s, 2),
                                                 "alerts_per_s": round(decoded / decode_s, 1)}}
    start = time.perf_counter()
    _, status = classify_columns(*cols, model=None)
    cuts_s = time.perf_counter() - start
    result["cuts_and_sequences"] = {"seconds": round(cuts_s, 2), "alerts_per_s": round(len(df) / cuts_s, 1),
                                    "alerts_to_model": int((status == "ok").sum())}
    for backend, model in models.items():
        classify_columns(*(c[:1000] for c in cols), model=model)  # warm-up
        start = time.perf_counter()
        classify_columns(*cols, model=model)
        total = time.perf_counter() - start
        per_alert = decode_s / decoded + total / len(df)
        result[backend] = {"cuts_sequences_model_s": round(total, 2), "model_s": round(max(total - cuts_s, 0), 2),
                           "whole_pipeline_alerts_per_s": round(1 / per_alert, 1)}
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--bts", default=os.path.join(SHARED_DATA, "ztf_bts", "lightcurves.csv.gz"))
    parser.add_argument("--pipeline-alerts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="short timings, batches up to 4096 (a CPU rehearsal)")
    args = parser.parse_args(argv)
    started = time.time()
    ref = ModelRef.resolve()
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "model": ref.path,
              "model_sha256": ref.sha256, **environment(), "conditions_before": conditions()}

    def save():
        report["seconds"] = round(time.time() - started, 1)
        report["conditions_after"] = conditions()  # load and threads (torch's once a route imported it)
        with open(args.out, "w") as out:
            json.dump(report, out, indent=1, default=str)

    def section(name, run):  # one failing part is recorded, the others still run
        try:
            report[name] = run()
        except Exception as err:
            report[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        save()
        return report[name]

    usable: dict = {}
    section("litert_gpu", lambda: litert_probe(ref))

    def run_routes():
        found, models = routes(ref)
        usable.update(models)
        return found

    section("routes", run_routes)
    cpu_key = "cpu-1-core"
    one_core = T2Model(ref.path, contract=ref.contract, num_threads=1)
    data = {}

    def run_real_alerts():
        data.update(real_sequences(args.bts, ref))
        return {name: int(len(x)) for name, x in data.items()}

    section("real_alerts", run_real_alerts)

    def run_agreement():
        comparisons = dict(usable)
        if "torch-cuda" not in usable:  # the same ONNX route on the CPU, where torch is installed
            from fink_t2.runtime.gpu_onnx import T2TorchModel

            comparisons["torch-cpu"] = T2TorchModel(ref, "cpu")
        result = agreement(comparisons, data, one_core)
        if "bts_views" in data:
            result["tflite_reference_kernels_vs_xnnpack"] = reference_kernels_vs_xnnpack(ref, data["bts_views"])
        return result

    section("agreement", run_agreement)
    batches = [b for b in BATCHES if not args.quick or b <= 4096]
    rates = section("model_alone_alerts_per_s",
                    lambda: model_alone({cpu_key: one_core, **usable}, batches, 0.2 if args.quick else 1.0))
    section("gpu_overtakes_one_core_at_batch", lambda: overtakes(rates, cpu_key))
    section("pipeline", lambda: pipeline({cpu_key: one_core, **usable}, args.pipeline_alerts, 5 if args.quick else 20))
    section("rubin", lambda: rubin_report(sys.modules[__name__], batches, 0.2 if args.quick else 1.0))
    print(json.dumps({k: report.get(k) for k in ("routes", "gpu_overtakes_one_core_at_batch")} |
                     {"rubin_routes": report["rubin"].get("routes")}, indent=1))
    return report


if __name__ == "__main__":
    main()
