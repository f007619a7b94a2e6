"""Run the t2 model on a batch of sequences with LiteRT, loading it once per Python worker.

Spark reuses its Python workers between Arrow batches, tasks and jobs
(``spark.python.worker.reuse``, default true), so a module-level cache keyed
by model path means one load per worker, not one per batch. The interpreter
keeps its input shape between calls and is resized only when the chunk size
changes; inputs are cut in chunks of ``MAX_CHUNK`` alerts because the
attention tensor holds batch × heads × 100 × 100 floats.

>>> import numpy as np
>>> model = load_model()
>>> model.class_names
('SN Ia', 'SN II', 'SN Ibc', 'Other')
>>> proba = model.predict(np.zeros((3, 100, 2), dtype=np.float32))
>>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1, atol=1e-3))
((3, 4), True)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from fink_t2.contract import ModelContractError, read_contract

DEFAULT_MODEL_PATH = str(Path(__file__).parent / "data" / "t2.tflite")
#: largest number of alerts given to the interpreter in one call (bounds memory)
MAX_CHUNK = 1024

_LOG = logging.getLogger(__name__)
_CACHE: dict[str, "T2Model"] = {}
_CACHE_LOCK = threading.Lock()
#: how many times a model file was read in this process (tests check it stays at 1)
LOAD_COUNT = {"n": 0}


class T2Model:
    """A LiteRT interpreter for one t2 model file plus the file's contract."""

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
        n_out = int(self._output["shape"][-1])
        if tuple(self._input["shape"][1:]) != (self.contract["sequence_length"], len(self.contract["bands"])):
            raise ModelContractError(f"{self.path}: input shape {self._input['shape']} does not match its contract")
        if n_out != len(self.class_names):
            raise ModelContractError(f"{self.path}: {n_out} outputs but {len(self.class_names)} class names")
        self._batch = None
        self._lock = threading.Lock()

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, 100, 2)."""
        sequences = np.ascontiguousarray(sequences, dtype=np.float32)
        out = np.empty((len(sequences), len(self.class_names)), dtype=np.float32)
        with self._lock:
            for start in range(0, len(sequences), MAX_CHUNK):
                chunk = sequences[start : start + MAX_CHUNK]
                self._resize(len(chunk))
                self._interpreter.set_tensor(self._input["index"], chunk)
                self._interpreter.invoke()
                out[start : start + len(chunk)] = self._interpreter.get_tensor(self._output["index"])
        return out

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self._input["shape"][1:]])
            self._interpreter.allocate_tensors()
            self._batch = batch


def load_model(path: str | None = None) -> T2Model:
    """The model at ``path`` (default: the shipped one, or $FINK_T2_MODEL), loaded once per process."""
    path = os.path.abspath(path or os.environ.get("FINK_T2_MODEL") or DEFAULT_MODEL_PATH)
    with _CACHE_LOCK:
        model = _CACHE.get(path)
        if model is None:
            model = T2Model(path)
            LOAD_COUNT["n"] += 1
            _LOG.info("fink-t2: loaded %s (pid %d)", path, os.getpid())
            _CACHE[path] = model
    return model
