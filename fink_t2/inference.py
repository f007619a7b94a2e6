"""Run the t2 model on a batch of sequences with LiteRT, loading it once per Python worker.

Spark reuses its Python workers between Arrow batches, tasks and jobs
(``spark.python.worker.reuse``, default true), so a module-level cache keyed
by model path means one load per worker, not one per batch. The interpreter
keeps its input shape between calls and is resized only when the chunk size
changes; inputs are cut in chunks of ``MAX_CHUNK`` alerts (the last one
zero-padded, so the interpreter is never resized between Arrow batches).
Small chunks win on CPU: the attention tensor holds batch × heads × 100 × 100
floats, and per-alert cost measured here rose 2.2× from 4 to 1024 alerts per
call as it left the cache (scripts/bench_modules.py, docs/performance.md);
they also bound the worker's memory.

GPU executors: when Spark's resource scheduling gives the task a GPU
(``spark.task.resource.gpu.amount``), ``load_model`` tries LiteRT's GPU
accelerator on the same model file (``T2GpuModel``: ``CompiledModel`` with
``HardwareAccelerator.GPU | CPU``). In ai-edge-litert 2.3 on Linux that is
``libLiteRtWebGpuAccelerator.so`` (WebGPU/Dawn over Vulkan: it needs
``libvulkan.so.1`` and the NVIDIA Vulkan ICD, not CUDA). When no such GPU is
usable the worker logs one line and runs the CPU interpreter; without a GPU
in the task nothing changes. See docs/deploy.md.

>>> import numpy as np
>>> model = load_model()
>>> model.class_names
('SN Ia', 'SN II', 'SN Ibc', 'Other')
>>> proba = model.predict(np.zeros((3, 100, 2), dtype=np.float32))
>>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1, atol=1e-3))
((3, 4), True)
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
from pathlib import Path

import numpy as np

from fink_t2.contract import ModelContractError, read_contract

DEFAULT_MODEL_PATH = str(Path(__file__).parent / "data" / "t2.tflite")
#: largest number of alerts given to the interpreter in one call (bounds memory)
MAX_CHUNK = 4
#: the same on the GPU backend, where a chunk is padded to one of GPU_BATCH_SIZES (static shapes: at most
#: len(GPU_BATCH_SIZES) GPU programs per worker instead of one per distinct batch size)
GPU_MAX_CHUNK = 8192
GPU_BATCH_SIZES = (256, 2048, GPU_MAX_CHUNK)
#: largest |GPU − CPU| probability accepted by the self-check run before the GPU backend is used
GPU_TOLERANCE = 1e-2

_LOG = logging.getLogger(__name__)
_CACHE: dict = {}  # path → T2Model; (path, "gpu") → T2GpuModel, or the CPU T2Model after a fallback
#: path → why the GPU assigned to this worker's tasks was not used (one log line each)
GPU_FALLBACK: dict[str, str] = {}
_CACHE_LOCK = threading.Lock()
#: how many times a model file was read in this process (tests check it stays at 1)
LOAD_COUNT = {"n": 0}


def _check_io(path: str, contract: dict, input_shape, n_outputs: int) -> None:
    """Refuse a model whose input shape or number of outputs disagrees with its own contract."""
    if tuple(input_shape[1:]) != (contract["sequence_length"], len(contract["bands"])):
        raise ModelContractError(f"{path}: input shape {input_shape} does not match its contract")
    if n_outputs != len(contract["class_names"]):
        raise ModelContractError(f"{path}: {n_outputs} outputs but {len(contract['class_names'])} class names")


class T2Model:
    """A LiteRT interpreter for one t2 model file plus the file's contract."""

    backend = "cpu"

    def __init__(self, path: str, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = str(path)
        self.contract = read_contract(self.path)
        self.class_names = tuple(self.contract["class_names"])
        try:
            self._interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        except (ValueError, RuntimeError) as err:
            raise ModelContractError(f"{self.path}: LiteRT cannot load this model ({err})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        _check_io(self.path, self.contract, self._input["shape"], int(self._output["shape"][-1]))
        self._batch = None
        self._lock = threading.Lock()

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, 100, 2)."""
        sequences = np.ascontiguousarray(sequences, dtype=np.float32)
        out = np.empty((len(sequences), len(self.class_names)), dtype=np.float32)
        with self._lock:
            chunk_size = min(MAX_CHUNK, len(sequences)) or 1
            self._resize(chunk_size)
            for start in range(0, len(sequences), chunk_size):
                chunk = sequences[start : start + chunk_size]
                n = len(chunk)
                if n < chunk_size:
                    chunk = np.concatenate([chunk, np.zeros((chunk_size - n, *chunk.shape[1:]), np.float32)])
                self._interpreter.set_tensor(self._input["index"], chunk)
                self._interpreter.invoke()
                out[start : start + n] = self._interpreter.get_tensor(self._output["index"])[:n]
        return out

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._batch = batch


class T2GpuModel:
    """The same model file through LiteRT's ``CompiledModel`` API with a hardware accelerator.

    ``accelerator`` defaults to ``HardwareAccelerator.GPU | HardwareAccelerator.CPU`` (ops the GPU
    cannot run stay on the CPU); the tests build it with ``CPU`` alone to check the buffer handling
    against ``T2Model``. Each chunk of at most ``GPU_MAX_CHUNK`` alerts is zero-padded to the next of
    ``GPU_BATCH_SIZES`` so that the accelerator sees few distinct shapes.
    """

    backend = "gpu"

    def __init__(self, path: str, accelerator=None):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        self.path = str(path)
        self.contract = read_contract(self.path)
        self.class_names = tuple(self.contract["class_names"])
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
        _check_io(self.path, self.contract, shape, n_out)
        self._item_shape = [int(d) for d in shape[1:]]
        self.fully_accelerated = self._model.is_fully_accelerated()
        self._batch = None
        self._buffers = None
        self._lock = threading.Lock()

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, 100, 2)."""
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

            self._model.resize_input_tensor(0, [batch, *self._item_shape])
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
    from pyspark.taskcontext import TaskContext

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


def try_gpu_model(path: str) -> tuple["T2GpuModel | None", str | None]:
    """(LiteRT GPU model, None) when a GPU is really usable for ``path``, else (None, why not).

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
                model = T2GpuModel(path)
                probe = np.random.default_rng(0).normal(size=(8, *model._item_shape)).astype(np.float32)
                difference = float(np.abs(model.predict(probe) - T2Model(path).predict(probe)).max())
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


def resolve_model_path(path: str | None = None) -> str:
    """Absolute path of the model file to load in this process.

    ``path`` (else $FINK_T2_MODEL, else the shipped model) when it exists here; otherwise, on a Spark
    executor, the copy of a file of that name shipped with ``spark-submit --files`` / ``addFile``
    (``SparkFiles.get``), so executors need not see the driver's file system.
    """
    name = path or os.environ.get("FINK_T2_MODEL") or DEFAULT_MODEL_PATH
    if name in _CACHE or (os.path.isabs(name) and os.path.exists(name)):  # the usual cases: loaded, or here
        return name
    if not os.path.exists(name):
        try:
            from pyspark import SparkFiles

            shipped = SparkFiles.get(os.path.basename(name))
        except Exception:  # noqa: BLE001 - no SparkContext or no SparkFiles root: nothing shipped
            shipped = None
        if shipped and os.path.isfile(shipped):
            return shipped
    return os.path.abspath(name)


def _cpu_model(path: str) -> T2Model:
    model = _CACHE.get(path)  # caller holds _CACHE_LOCK
    if model is None:
        model = T2Model(path)
        LOAD_COUNT["n"] += 1
        _LOG.info("fink-t2: loaded %s (pid %d)", path, os.getpid())
        _CACHE[path] = model
    return model


def load_model(path: str | None = None) -> "T2Model | T2GpuModel":
    """The model at ``path`` (default: the shipped one, or $FINK_T2_MODEL), loaded once per process.

    Inside a Spark task that was given a GPU, the LiteRT GPU backend when the GPU is usable
    (``try_gpu_model``), else the CPU interpreter after one warning per worker process.
    """
    path = resolve_model_path(path)
    gpus = task_gpu_addresses()
    with _CACHE_LOCK:
        if not gpus:
            return _cpu_model(path)
        model = _CACHE.get((path, "gpu"))
        if model is None:
            model, reason = try_gpu_model(path)
            if model is None:
                GPU_FALLBACK[path] = reason
                _LOG.warning(
                    "fink-t2: GPU %s assigned to this task is not usable by LiteRT (%s); using the CPU interpreter (pid %d)",
                    ",".join(gpus), reason, os.getpid(),
                )
                model = _cpu_model(path)
            else:
                LOAD_COUNT["n"] += 1
                _LOG.warning(
                    "fink-t2: %s on GPU %s with LiteRT's GPU accelerator (fully accelerated: %s, pid %d)",
                    path, ",".join(gpus), model.fully_accelerated, os.getpid(),
                )
            _CACHE[(path, "gpu")] = model
    return model


def backend_report(path: str | None = None) -> dict:
    """What ``load_model(path)`` runs on in this process/task: for checks of GPU executors."""
    model = load_model(path)
    resolved = resolve_model_path(path)
    return {
        "backend": model.backend,
        "model": resolved,
        "gpu_addresses": list(task_gpu_addresses()),
        "gpu_fallback": GPU_FALLBACK.get(resolved) if model.backend == "cpu" else None,
        "pid": os.getpid(),
    }
