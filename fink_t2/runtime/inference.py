"""The one TFLite runner: a t2 model file on the CPU, loaded once per Python process.

:class:`T2Model` runs a model file (or its bytes) with LiteRT's interpreter (``ai-edge-litert``),
or with TensorFlow's ``tf.lite.Interpreter`` where LiteRT is not installed (Fink's images ship
TensorFlow): :data:`INTERPRETER` says which. Training metrics, the compression table, the
evaluation and serving all use it, so a published number is always the shipping runner's.

Spark reuses its Python workers between Arrow batches, tasks and jobs
(``spark.python.worker.reuse``, default true), so :func:`load_model`'s module-level cache, keyed
by the model's checksum, means one load per worker, not one per batch. The interpreter keeps its
input shape between calls and is resized only when the chunk size changes; inputs are cut in
chunks of ``chunk_size`` alerts (default ``MAX_CHUNK``; the last one zero-padded, so the
interpreter is never resized between Arrow batches). Small chunks win on CPU: the attention tensor
holds batch × heads × length² floats and leaves the cache on large batches; they also bound the
worker's memory (docs/performance.md).

This module knows nothing of Spark or GPUs: GPU backends live in :mod:`fink_t2.runtime.gpu`.

>>> import numpy as np
>>> from fink_t2.runtime.model_ref import ModelRef
>>> model = load_model(ModelRef.resolve())
>>> model.class_names
('SN Ia', 'SN II', 'SN Ibc', 'Other')
>>> proba = model.predict(np.zeros((3, *model.input_shape), dtype=np.float32))
>>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1, atol=1e-3))
((3, 4), True)
>>> load_model(ModelRef.resolve()) is model
True
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from fink_t2.core.contract import ModelContractError, check_io, read_contract

#: alerts given to the interpreter in one call by default (bounds memory; fastest per alert on CPU)
MAX_CHUNK = 4

_LOG = logging.getLogger(__name__)


def _interpreter_class():
    """LiteRT's interpreter, else TensorFlow's ``tf.lite`` one; ImportError naming both otherwise.

    ai-edge-litert is a dependency of fink-t2 on the platforms it has wheels for (setup.py); elsewhere an
    installed TensorFlow (``fink-t2[tflite]``; Fink's science images ship 2.19) runs the same file, under the
    same contract checks.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError as litert_error:
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError(f"fink-t2 needs ai-edge-litert (pip install ai-edge-litert) or TensorFlow's tf.lite "
                              f"to run its model ({litert_error})") from None
        return tf.lite.Interpreter, f"tensorflow {tf.__version__} tf.lite"


def _load_error(path: str, interpreter_name: str, err: Exception) -> str:
    """Why ``interpreter_name`` cannot load ``path``; for an op version it lacks, what would run the file."""
    message = f"{path}: {interpreter_name} cannot load this model ({' '.join(str(err).split())})"
    if "Didn't find op for builtin opcode" in str(err):
        message += ("; the file needs a newer TFLite runtime than this one: install ai-edge-litert, or run a model "
                    "exported for older runtimes (per-tensor dense weights, docs/fink.md)")
    return message


class T2Model:
    """A TFLite interpreter for one t2 model plus the model's contract.

    ``path``: a model file carrying its contract. Or ``content`` (model bytes) with ``contract``,
    for variants that are not files yet (``fink-t2 compress``). ``chunk_size``: alerts per call.
    """

    backend = "cpu"

    def __init__(self, path: str | None = None, *, content: bytes | None = None, contract: dict | None = None,
                 chunk_size: int = MAX_CHUNK, num_threads: int | None = None):
        if (path is None) == (content is None):
            raise ValueError("give a model path or its content, not both")
        interpreter_class, self.interpreter_name = _interpreter_class()
        self.path = str(path) if path is not None else "<model bytes>"
        self.contract = read_contract(self.path) if contract is None else contract
        self.class_names = tuple(self.contract["class_names"])
        self.chunk_size = max(1, int(chunk_size))
        source = {"model_path": self.path} if content is None else {"model_content": bytes(content)}
        try:
            self._interpreter = interpreter_class(**source, num_threads=num_threads)
        except (ValueError, RuntimeError) as err:
            raise ModelContractError(_load_error(self.path, self.interpreter_name, err)) from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        check_io(self.path, self.contract, self._input["shape"], int(self._output["shape"][-1]))
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self._batch = None
        self._lock = threading.Lock()

    def predict(self, sequences: np.ndarray, chunk_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, *input_shape)."""
        sequences = np.ascontiguousarray(sequences, dtype=np.float32)
        out = np.empty((len(sequences), len(self.class_names)), dtype=np.float32)
        with self._lock:
            chunk = min(chunk_size or self.chunk_size, len(sequences)) or 1
            self._resize(chunk)
            for start in range(0, len(sequences), chunk):
                part = sequences[start : start + chunk]
                n = len(part)
                if n < chunk:
                    part = np.concatenate([part, np.zeros((chunk - n, *part.shape[1:]), np.float32)])
                self._interpreter.set_tensor(self._input["index"], part)
                self._interpreter.invoke()
                out[start : start + n] = self._interpreter.get_tensor(self._output["index"])[:n]
        return out

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._batch = batch


_CACHE: dict = {}  # (sha256, backend) → model
_LOADED: list = []  # one entry per model file read by this process: see loaded_models()
_CACHE_LOCK = threading.RLock()  # re-entrant: a GPU backend falls back to the CPU model inside its own make()


def cached_model(key, make):
    """The model cached under ``key`` in this process, made by ``make()`` (and recorded) the first time."""
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = make()
            _CACHE[key] = model
            _LOADED.append({"key": key, "backend": model.backend, "pid": os.getpid(), "loaded_at": time.time()})
            _LOG.info("fink-t2: loaded %s on %s (pid %d)", model.path, model.backend, os.getpid())
        return model


def loaded_models() -> list[dict]:
    """Every model this process has read (key, backend, pid, time), oldest first: one per worker is the goal."""
    return list(_LOADED)


def load_model(ref) -> T2Model:
    """The CPU model of ``ref`` (a :class:`fink_t2.runtime.model_ref.ModelRef`), read once per process.

    The file is found with ``ref.verified_path()`` (its checksum must be the one the driver resolved).
    """
    return cached_model((ref.sha256, "cpu"), lambda: T2Model(ref.verified_path(), contract=ref.contract))
