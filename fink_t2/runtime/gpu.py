"""Which runtime runs t2 in this process: a GPU backend, or the CPU interpreter of :mod:`fink_t2.runtime.inference`.

The device policy is ``auto`` (default), ``cpu`` or ``gpu`` (``fink-t2 replay|classify --device``; inside
Spark tasks the environment variable ``FINK_T2_DEVICE``, which the replay puts in the Spark context's
environment, so that every Python worker gets it; Fink's own jobs can set ``spark.executorEnv.FINK_T2_DEVICE``):

* ``cpu``: the CPU interpreter; nothing touches a GPU.
* ``auto``: a GPU when the task was given one by Spark's resource scheduling
  (``spark.task.resource.gpu.amount``), or else when this process sees one (``CUDA_VISIBLE_DEVICES``,
  ``/dev/nvidia<N>``), **and** a GPU backend passes the self-check; otherwise the CPU interpreter, after
  one warning line per worker when a GPU was there but not usable (the reason is kept in ``GPU_FALLBACK``).
* ``gpu``: like ``auto``, but no usable GPU is an error (one line) instead of the CPU.

The GPU routes, tried in this order, each only after it agrees with the CPU interpreter on a fixed
probe batch within ``GPU_TOLERANCE`` (the self-check):

1. ``litert-gpu``: LiteRT's own GPU accelerator, WebGPU over Vulkan (:mod:`fink_t2.runtime.gpu_litert`);
2. ``onnxruntime-cuda``: the model's ONNX conversion on ONNX Runtime's CUDA provider (onnxruntime-gpu);
3. ``torch-cuda``: the same ONNX file run by PyTorch on CUDA (:mod:`fink_t2.runtime.gpu_onnx`).

What a worker chose is written, once per process, to ``$FINK_T2_BACKEND_DIR`` when set (the replay
sets it to ``OUTPUT/_fink_t2_backends``): :func:`worker_backends` sums it up for the run summary.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import socket
import threading
import time

import numpy as np

from fink_t2.runtime.gpu_onnx import probe_batch
from fink_t2.runtime.inference import cached_model, load_model

DEVICES = ("auto", "cpu", "gpu")
DEVICE_ENV = "FINK_T2_DEVICE"
BACKEND_DIR_ENV = "FINK_T2_BACKEND_DIR"
#: the replay's folder (inside its output) of per-worker backend records
BACKEND_RECORDS = "_fink_t2_backends"
#: largest |GPU − CPU interpreter| probability accepted by the self-check of a GPU backend
GPU_TOLERANCE = 1e-3
ROUTES = ("litert-gpu", "onnxruntime-cuda", "torch-cuda")

_LOG = logging.getLogger(__name__)
#: model sha256 → why the GPU this worker had was not used (one log line each)
GPU_FALLBACK: dict[str, str] = {}
_LOCK = threading.Lock()
_RECORDED: set = set()


def check_device(device: str | None) -> str:
    """``device`` (None → ``$FINK_T2_DEVICE``, else ``auto``) if it is one of DEVICES; ValueError otherwise."""
    device = device or os.environ.get(DEVICE_ENV) or "auto"
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    return device


def visible_gpus() -> tuple[str, ...]:
    """CUDA indices of the NVIDIA GPUs this process can see: ``CUDA_VISIBLE_DEVICES`` if set, else ``/dev/nvidia<N>``."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        entries = [e.strip() for e in mask.split(",")]
        usable = []
        for entry in entries:
            if not entry or entry.startswith("-") or entry == "NoDevFiles":
                break  # CUDA stops at the first invalid entry
            usable.append(entry)
        return tuple(str(i) for i in range(len(usable)))
    nodes = [m.group(1) for m in (re.fullmatch(r"/dev/nvidia(\d+)", p) for p in glob.glob("/dev/nvidia*")) if m]
    return tuple(sorted(nodes, key=int))


def task_gpu_addresses() -> tuple[str, ...]:
    """GPU addresses Spark assigned to the running task (``TaskContext.resources()["gpu"]``), () outside a task."""
    try:
        from pyspark.taskcontext import TaskContext
    except ImportError:
        return ()
    context = TaskContext.get()
    if context is None:
        return ()
    gpu = context.resources().get("gpu")
    return tuple(gpu.addresses) if gpu is not None else ()


def _cuda_index(address: str) -> int:
    try:
        return max(0, int(address))
    except ValueError:
        return 0


def gpu_routes(ref, address: str = "0") -> list:
    """[(route name, factory)] in the order they are tried, for the GPU of CUDA index ``address``."""
    from fink_t2.runtime.gpu_litert import litert_gpu_model
    from fink_t2.runtime.gpu_onnx import T2OnnxRuntimeModel, T2TorchModel

    def litert():
        model, reason, _ = litert_gpu_model(ref)
        if model is None:
            raise RuntimeError(reason)
        return model

    index = _cuda_index(address)
    return [("litert-gpu", litert),
            ("onnxruntime-cuda", lambda: T2OnnxRuntimeModel(ref, device_id=index)),
            ("torch-cuda", lambda: T2TorchModel(ref, f"cuda:{index}"))]


def self_check(model, ref) -> float:
    """max |p_model − p_interpreter| on :func:`fink_t2.runtime.gpu_onnx.probe_batch` shaped by ``ref``'s own contract
    (a Rubin model is probed with its ugrizy input, not the default model's)."""
    probe = probe_batch(contract=ref.contract)
    return float(np.abs(model.predict(probe) - load_model(ref).predict(probe)).max())


def try_gpu_model(ref, address: str = "0", routes=None) -> tuple[object | None, str | None]:
    """(first GPU backend that passes the self-check, None), else (None, why each route failed)."""
    reasons = []
    for name, make in routes if routes is not None else gpu_routes(ref, address):
        try:
            model = make()
            difference = self_check(model, ref)
        except ImportError as err:
            reasons.append(f"{name}: not installed ({err.name or err})")
            continue
        except Exception as err:
            reasons.append(f"{name}: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}")
            continue
        if difference <= GPU_TOLERANCE:
            return model, None
        reasons.append(f"{name}: probabilities differ from the CPU interpreter by {difference:.3g}")
    return None, "; ".join(reasons)


def _gpu_or_cpu(ref, gpus, how: str, device: str):
    model, reason = try_gpu_model(ref, gpus[0])
    if model is not None:
        _LOG.warning("fink-t2: %s on GPU %s (%s) with %s (pid %d)", ref.path, ",".join(gpus), how, model.backend,
                     os.getpid())
        return model
    if device == "gpu":
        raise RuntimeError(f"fink-t2: --device gpu: GPU {','.join(gpus)} is not usable ({reason})")
    with _LOCK:
        GPU_FALLBACK[ref.sha256] = reason
    _LOG.warning("fink-t2: GPU %s %s is not usable (%s); using the CPU interpreter (pid %d)",
                 ",".join(gpus), how, reason, os.getpid())
    return load_model(ref)


def _model(ref, device: str, gpus: tuple, how: str):
    if device == "cpu":
        return load_model(ref)
    if not gpus:
        if device == "gpu":
            raise RuntimeError("fink-t2: --device gpu: no GPU visible (CUDA_VISIBLE_DEVICES, /dev/nvidia<N>)")
        return load_model(ref)
    return cached_model((ref.sha256, f"gpu-{gpus[0]}-{device}"), lambda: _gpu_or_cpu(ref, gpus, how, device))


def model_for_task(ref):
    """The model a Spark task runs under ``$FINK_T2_DEVICE`` (see the module doc); one choice per worker."""
    device = check_device(None)
    assigned = task_gpu_addresses()
    gpus, how = (assigned, "assigned to this task") if assigned else (
        (visible_gpus(), "visible to this worker") if device != "cpu" else ((), ""))
    model = _model(ref, device, gpus, how)
    _record(ref, model, gpus)
    return model


def choose_model(ref, device: str | None = "auto"):
    """The model a process outside Spark runs (``fink-t2 classify``, the replay's driver-side check).

    ``device`` ``gpu`` without a usable GPU raises ValueError (one line).
    """
    device = check_device(device)
    try:
        return _model(ref, device, visible_gpus() if device != "cpu" else (), "visible to this process")
    except RuntimeError as err:
        raise ValueError(str(err).removeprefix("fink-t2: ")) from None


def fallback_reason(ref, model) -> str | None:
    """Why a GPU this process had was not used for ``ref`` (None when it was, or when there was none)."""
    return GPU_FALLBACK.get(ref.sha256) if model.backend == "cpu" else None


def backend_report(ref) -> dict:
    """What :func:`model_for_task` runs on in this process/task: for checks of GPU executors."""
    model = model_for_task(ref)
    return {"backend": model.backend, "model": ref.path, "gpu_addresses": list(task_gpu_addresses()),
            "gpu_fallback": fallback_reason(ref, model), "pid": os.getpid()}


def _record(ref, model, gpus) -> None:
    folder = os.environ.get(BACKEND_DIR_ENV)
    key = (folder, ref.sha256, model.backend)
    if not folder or key in _RECORDED:
        return
    _RECORDED.add(key)
    record = {"backend": model.backend, "gpus": list(gpus), "gpu_fallback": fallback_reason(ref, model),
              "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{record['host']}-{record['pid']}-{model.backend}.json"), "w") as out:
            json.dump(record, out)
    except OSError as err:  # an executor that cannot reach the driver's output folder: say so, once
        _LOG.warning("fink-t2: cannot record the backend in %s (%s)", folder, err)


def worker_backends(folder: str, since: float = 0.0) -> dict:
    """``{"backends": {backend: Python worker processes}, "gpu_fallback": [reasons]}`` recorded in ``folder`` since ``since``."""
    backends: dict[str, int] = {}
    reasons = set()
    for path in glob.glob(os.path.join(folder, "*.json")):
        try:
            with open(path) as stream:
                record = json.load(stream)
        except (OSError, ValueError):
            continue
        if record.get("time", 0) >= since:
            backends[record["backend"]] = backends.get(record["backend"], 0) + 1
            if record.get("gpu_fallback"):
                reasons.add(record["gpu_fallback"])
    return {"backends": dict(sorted(backends.items())), "gpu_fallback": sorted(reasons)}
