"""LiteRT's own GPU route for t2: ``CompiledModel`` with the GPU accelerator (WebGPU over Vulkan on Linux).

In ai-edge-litert 2.3 on Linux the GPU accelerator is ``libLiteRtWebGpuAccelerator.so`` (Dawn over
Vulkan: it needs ``libvulkan.so.1`` and the NVIDIA Vulkan ICD, not CUDA). :func:`litert_gpu_model`
tries it and keeps LiteRT's whole native log of the attempt (it writes to file descriptor 2, not
through Python): :mod:`fink_t2.runtime.gpu` quotes its first GPU error, ``scripts/gpu_check.sh`` records all of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import tempfile
import threading

import numpy as np

from fink_t2.core.contract import ModelContractError, check_io

#: on the GPU a chunk is padded to one of GPU_BATCH_SIZES (static shapes: at most len(GPU_BATCH_SIZES)
#: GPU programs per worker instead of one per distinct batch size)
GPU_MAX_CHUNK = 8192
GPU_BATCH_SIZES = (256, 2048, GPU_MAX_CHUNK)


class T2GpuModel:
    """The same model file through LiteRT's ``CompiledModel`` API with a hardware accelerator.

    ``accelerator`` defaults to ``HardwareAccelerator.GPU | HardwareAccelerator.CPU`` (ops the GPU
    cannot run stay on the CPU); the tests build it with ``CPU`` alone to check the buffer handling
    against the CPU runner. Each chunk of at most ``GPU_MAX_CHUNK`` alerts is zero-padded to the next
    of ``GPU_BATCH_SIZES`` so that the accelerator sees few distinct shapes.
    """

    backend = "litert-gpu"

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


def litert_gpu_model(ref) -> tuple["T2GpuModel | None", str | None, str]:
    """(model, None, log) when LiteRT compiles ``ref`` for its GPU accelerator, else (None, why not, log).

    ``log``: everything LiteRT's native code wrote to stderr during the attempt (kept off the worker's stderr).
    """
    if not vulkan_loader_present():
        return None, "libvulkan.so.1 not found (LiteRT's GPU accelerator on Linux is WebGPU over Vulkan)", ""
    model = failure = None
    with tempfile.TemporaryFile(mode="w+") as log:
        with _native_stderr(log):
            try:
                model = T2GpuModel(ref.verified_path(), ref.contract)
                model.predict(np.zeros((1, *model.input_shape), np.float32))  # compiles the first program
            except Exception as err:
                model, failure = None, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
            gc.collect()  # a failed attempt's LiteRT environment logs its teardown: keep that in `log` too
        log.seek(0)
        text = log.read()
    if failure is not None:
        lines = [line.strip() for line in text.splitlines() if line.startswith(("ERROR", "E0"))]
        errors = [line for line in lines if "gpu" in line.lower()] or lines  # the GPU's, not a vendor plugin's
        return None, f"LiteRT GPU accelerator failed: {(errors[0] if errors else failure)[:300]}", text
    return model, None, text
