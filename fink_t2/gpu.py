"""GPU backends for t2, and the choice between them and the CPU runner.

The same model file runs through LiteRT's ``CompiledModel`` API with its GPU accelerator
(:class:`T2GpuModel`: ``HardwareAccelerator.GPU | CPU``). In ai-edge-litert 2.3 on Linux that is
``libLiteRtWebGpuAccelerator.so`` (WebGPU/Dawn over Vulkan: it needs ``libvulkan.so.1`` and the
NVIDIA Vulkan ICD, not CUDA). A GPU backend is used only after it agrees with the CPU interpreter
on a fixed batch (``GPU_TOLERANCE``); otherwise the CPU runner runs, after one log line per process.

:func:`model_for_task` is what the science module calls inside a Spark task: a GPU backend when
Spark's resource scheduling assigned the task a GPU (``spark.task.resource.gpu.amount``), else the
CPU runner of :mod:`fink_t2.inference`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import sys
import tempfile
import threading

import numpy as np

from fink_t2.contract import ModelContractError, check_io
from fink_t2.inference import cached_model, load_model

#: on the GPU a chunk is padded to one of GPU_BATCH_SIZES (static shapes: at most len(GPU_BATCH_SIZES)
#: GPU programs per worker instead of one per distinct batch size)
GPU_MAX_CHUNK = 8192
GPU_BATCH_SIZES = (256, 2048, GPU_MAX_CHUNK)
#: largest |GPU − CPU| probability accepted by the self-check run before a GPU backend is used
GPU_TOLERANCE = 1e-2

_LOG = logging.getLogger(__name__)
#: model sha256 → why the GPU assigned to this worker's tasks was not used (one log line each)
GPU_FALLBACK: dict[str, str] = {}
_FALLBACK_LOCK = threading.Lock()


class T2GpuModel:
    """The same model file through LiteRT's ``CompiledModel`` API with a hardware accelerator.

    ``accelerator`` defaults to ``HardwareAccelerator.GPU | HardwareAccelerator.CPU`` (ops the GPU
    cannot run stay on the CPU); the tests build it with ``CPU`` alone to check the buffer handling
    against the CPU runner. Each chunk of at most ``GPU_MAX_CHUNK`` alerts is zero-padded to the next
    of ``GPU_BATCH_SIZES`` so that the accelerator sees few distinct shapes.
    """

    backend = "gpu"

    def __init__(self, path: str, contract: dict, accelerator=None):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        self.path = str(path)
        self.contract = contract
        self.class_names = tuple(contract["class_names"])
        if accelerator is None:
            accelerator = HardwareAccelerator.GPU | HardwareAccelerator.CPU
        self.accelerator = accelerator
        self._model = CompiledModel.from_file(self.path, hardware_accel=accelerator)
        signatures = self._model.get_signature_list()
        if len(signatures) != 1:
            raise ModelContractError(f"{self.path}: expected one signature, found {sorted(signatures)}")
        (key, io_names), = signatures.items()
        if len(io_names["inputs"]) != 1 or len(io_names["outputs"]) != 1:
            raise ModelContractError(f"{self.path}: expected one input and one output, found {io_names}")
        shape = self._model.get_input_tensor_details(key)[io_names["inputs"][0]]["shape"]
        n_out = int(self._model.get_output_tensor_details(key)[io_names["outputs"][0]]["shape"][-1])
        check_io(self.path, contract, shape, n_out)
        self.input_shape = tuple(int(d) for d in shape[1:])
        self.fully_accelerated = self._model.is_fully_accelerated()
        self._batch = None
        self._buffers = None
        self._lock = threading.Lock()

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, *input_shape)."""
        sequences = np.ascontiguousarray(sequences, dtype=np.float32)
        n_classes = len(self.class_names)
        out = np.empty((len(sequences), n_classes), dtype=np.float32)
        with self._lock:
            for start in range(0, len(sequences), GPU_MAX_CHUNK):
                chunk = sequences[start : start + GPU_MAX_CHUNK]
                size = next((b for b in GPU_BATCH_SIZES if b >= len(chunk)), len(chunk))
                if size != len(chunk):
                    chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), np.float32)])
                inputs, outputs = self._resize(size)
                inputs[0].write(chunk)
                self._model.run_by_index(0, inputs, outputs)
                n = min(GPU_MAX_CHUNK, len(sequences) - start)
                out[start : start + n] = outputs[0].read(size * n_classes, np.float32).reshape(size, n_classes)[:n]
        return out

    def _resize(self, batch: int):
        if batch != self._batch:
            from ai_edge_litert.tensor_buffer import TensorBuffer

            self._model.resize_input_tensor(0, [batch, *self.input_shape])
            inputs = self._model.create_input_buffers(0)
            # the output buffers that CompiledModel creates keep the pre-resize shape: bind host memory
            # of the right size instead (64-byte aligned, as LiteRT requires; kept alive on self)
            raw = np.zeros(batch * len(self.class_names) + 16, np.float32)
            offset = (-raw.ctypes.data % 64) // raw.itemsize
            host = raw[offset : offset + batch * len(self.class_names)].reshape(batch, len(self.class_names))
            self._buffers = (inputs, [TensorBuffer.create_from_host_memory(host)], host)
            self._batch = batch
        return self._buffers[0], self._buffers[1]


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


@contextlib.contextmanager
def _native_stderr(sink):
    """Send file descriptor 2 (where LiteRT's C++ logs go) to ``sink`` for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def vulkan_loader_present() -> bool:
    """Whether ``libvulkan.so.1``, which LiteRT's WebGPU accelerator opens on Linux, can be loaded."""
    try:
        ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return False
    return True


def try_gpu_model(ref) -> tuple["T2GpuModel | None", str | None]:
    """(LiteRT GPU model, None) when a GPU is really usable for ``ref``, else (None, why not).

    Usable means: the Vulkan loader that LiteRT's WebGPU accelerator opens is present, a compiled model
    with ``GPU | CPU`` is created, and its probabilities on a fixed batch agree with the CPU interpreter
    within ``GPU_TOLERANCE``. LiteRT's own C++ log lines of the attempt are kept out of the worker's stderr.
    """
    if not vulkan_loader_present():
        return None, "libvulkan.so.1 not found (LiteRT's GPU accelerator on Linux is WebGPU over Vulkan)"
    model = failure = None
    with tempfile.TemporaryFile(mode="w+") as log:
        with _native_stderr(log):
            try:
                model = T2GpuModel(ref.verified_path(), ref.contract)
                probe = np.random.default_rng(0).normal(size=(8, *model.input_shape)).astype(np.float32)
                difference = float(np.abs(model.predict(probe) - load_model(ref).predict(probe)).max())
            except Exception as err:  # noqa: BLE001 - any failure means: not usable, use the CPU
                model, failure = None, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
            gc.collect()  # a failed attempt's LiteRT environment logs its teardown: keep that in `log` too
        if failure is not None:
            log.seek(0)
            lines = [line.strip() for line in log if line.startswith(("ERROR", "E0"))]
            errors = [line for line in lines if "gpu" in line.lower()] or lines  # the GPU's, not a vendor plugin's
            return None, f"LiteRT GPU accelerator failed: {(errors[0] if errors else failure)[:300]}"
    if not difference <= GPU_TOLERANCE:
        return None, f"GPU probabilities differ from the CPU interpreter by {difference:.3g}"
    return model, None


def _gpu_or_cpu(ref, gpus):
    model, reason = try_gpu_model(ref)
    if model is not None:
        _LOG.warning("fink-t2: %s on GPU %s with LiteRT's GPU accelerator (fully accelerated: %s, pid %d)",
                     ref.path, ",".join(gpus), model.fully_accelerated, os.getpid())
        return model
    with _FALLBACK_LOCK:
        GPU_FALLBACK[ref.sha256] = reason
    _LOG.warning("fink-t2: GPU %s assigned to this task is not usable (%s); using the CPU interpreter (pid %d)",
                 ",".join(gpus), reason, os.getpid())
    return load_model(ref)


def model_for_task(ref):
    """The model a Spark task runs: a usable GPU backend when the task was given a GPU, else the CPU runner."""
    gpus = task_gpu_addresses()
    if not gpus:
        return load_model(ref)
    return cached_model((ref.sha256, "gpu-task"), lambda: _gpu_or_cpu(ref, gpus))


def backend_report(ref) -> dict:
    """What :func:`model_for_task` runs on in this process/task: for checks of GPU executors."""
    model = model_for_task(ref)
    return {
        "backend": model.backend,
        "model": ref.path,
        "gpu_addresses": list(task_gpu_addresses()),
        "gpu_fallback": GPU_FALLBACK.get(ref.sha256) if model.backend == "cpu" else None,
        "pid": os.getpid(),
    }
