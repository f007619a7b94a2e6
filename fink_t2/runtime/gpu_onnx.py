"""CUDA backends for t2: the model's ONNX conversion on ONNX Runtime's CUDA provider, or on PyTorch.

Both run ``t2.onnx``, the conversion of ``t2.tflite`` written beside it by ``fink-t2 export-onnx``
(:mod:`fink_t2.model.onnx_export`: the same per-row dynamic quantization as the TFLite interpreter).
:func:`onnx_file_for` finds it beside the model file the worker reads and refuses it when its recorded
source SHA-256 or contract is not the running model's (a stale conversion).

* :class:`T2OnnxRuntimeModel`: ``onnxruntime-gpu``'s ``CUDAExecutionProvider`` (any provider list can be
  given: the tests use the CPU one). Basic graph optimizations only (see :mod:`fink_t2.model.onnx_export`).
* :class:`T2TorchModel`: PyTorch (``torch.cuda``), through :class:`fink_t2.runtime.onnx_torch.TorchGraph`.

Each cuts its input in chunks of at most ``ONNX_MAX_CHUNK`` alerts (bounds GPU memory: the attention
tensor is 4 × 31 × 31 floats per alert). Which of them runs, and whether at all, is :mod:`fink_t2.runtime.gpu`'s choice.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from fink_t2.core.contract import ModelContractError
from fink_t2.runtime.model_ref import ModelRef

#: alerts per call on the GPU (a chunk of 16,384 alerts holds ~250 MB of attention weights)
ONNX_MAX_CHUNK = 16384
META_SHA = "fink_t2.source_sha256"
#: channel-name prefixes of the 0/1 masks: ZTF ``observed_<band>``; format 3 ``measured_<band>``, ``detected_<band>``
MASK_CHANNELS = ("observed", "measured", "detected")
META_CONTRACT = "fink_t2.contract"  # the key the shipped t2.onnx carries (a metadata key, not a module path)


def onnx_path_for(model_path) -> str:
    """Where the ONNX conversion of a model file lives: beside it, suffix ``.onnx``."""
    return str(Path(model_path).with_suffix(".onnx"))


def probe_batch(n: int = 512, seed: int = 0, contract: dict | None = None) -> np.ndarray:
    """A fixed batch shaped like t2's input (the contract's nodes × channels), with masks and empty nodes as
    real ones have. ``contract``: the model's (default: the one :class:`fink_t2.runtime.model_ref.ModelRef`
    resolves, $FINK_T2_MODEL or the shipped file).

    What the GPU self-check and the export's check compare against the TFLite interpreter.

    >>> probe_batch(3).shape
    (3, 31, 7)
    >>> from fink_t2.paths import LSST_MODEL_PATH
    >>> probe_batch(3, contract=ModelRef.resolve(LSST_MODEL_PATH).contract).shape
    (3, 64, 22)
    """
    if contract is None:
        contract = ModelRef.resolve().contract
    nodes, channels = int(contract["sequence_length"]), list(contract["channels"])
    masks = [i for i, name in enumerate(channels) if name.startswith(MASK_CHANNELS)]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, nodes, len(channels))).astype(np.float32)
    x[..., masks] = rng.random((n, nodes, len(masks))) < 0.3  # observed-node masks
    x[rng.random((n, nodes)) < 0.5] = 0.0  # empty nodes
    return x


def onnx_file_for(ref) -> str:
    """The ONNX conversion of ``ref``'s model, checked: path beside the file this process reads.

    FileNotFoundError when there is none (run ``fink-t2 export-onnx``); ModelContractError when it was
    converted from another file or carries another contract.
    """
    import onnx

    path = onnx_path_for(ref.local_path())
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no ONNX conversion {path} beside the model (make it with fink-t2 export-onnx)")
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if meta.get(META_SHA) != ref.sha256:
        raise ModelContractError(f"{path} was converted from sha256 {str(meta.get(META_SHA))[:12]}…, the model is "
                                 f"{ref.sha256[:12]}…: stale conversion, rerun fink-t2 export-onnx")
    if json.loads(meta.get(META_CONTRACT, "null")) != ref.contract:
        raise ModelContractError(f"{path}: its contract is not the model's: rerun fink-t2 export-onnx")
    return path


def _check_outputs(path, contract, n_out):
    if n_out != len(contract["class_names"]):
        raise ModelContractError(f"{path}: {n_out} outputs but {len(contract['class_names'])} class names")


class _Chunked:
    """Chunking and locking shared by the ONNX backends; subclasses define ``_run(chunk) -> ndarray``."""

    backend = "onnx"

    def predict(self, sequences: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), for sequences of shape (n, *input_shape)."""
        sequences = np.ascontiguousarray(sequences, dtype=np.float32)
        out = np.empty((len(sequences), len(self.class_names)), dtype=np.float32)
        with self._lock:
            for start in range(0, len(sequences), ONNX_MAX_CHUNK):
                chunk = sequences[start : start + ONNX_MAX_CHUNK]
                out[start : start + len(chunk)] = self._run(chunk)
        return out


class T2OnnxRuntimeModel(_Chunked):
    """``ref``'s ONNX conversion on ONNX Runtime, CUDA provider (device ``device_id``) unless told otherwise."""

    def __init__(self, ref, providers=("CUDAExecutionProvider",), device_id: int = 0):
        import onnxruntime

        self.path = onnx_file_for(ref)
        self.contract = ref.contract
        self.class_names = tuple(ref.contract["class_names"])
        missing = [p for p in providers if p not in onnxruntime.get_available_providers()]
        if missing:
            raise RuntimeError(f"onnxruntime {onnxruntime.__version__} has no {', '.join(missing)} "
                               f"(available: {', '.join(onnxruntime.get_available_providers())})")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        chosen = [(p, {"device_id": device_id}) if p == "CUDAExecutionProvider" else p for p in providers]
        self._session = onnxruntime.InferenceSession(self.path, options, providers=chosen)
        if self._session.get_providers()[0] != providers[0]:  # ORT falls back silently: refuse that
            raise RuntimeError(f"onnxruntime did not start {providers[0]} (it runs {self._session.get_providers()})")
        self._input = self._session.get_inputs()[0].name
        _check_outputs(self.path, self.contract, int(self._session.get_outputs()[0].shape[-1]))
        self.input_shape = tuple(int(d) for d in self._session.get_inputs()[0].shape[1:])
        self.backend = "onnxruntime-" + ("cuda" if providers[0] == "CUDAExecutionProvider" else
                                         providers[0].replace("ExecutionProvider", "").lower())
        self._lock = threading.Lock()

    def _run(self, chunk):
        return self._session.run(None, {self._input: chunk})[0]


class T2TorchModel(_Chunked):
    """``ref``'s ONNX conversion run by PyTorch on ``device`` (``"cuda:0"`` on a GPU executor)."""

    def __init__(self, ref, device="cuda:0"):
        import onnx
        import torch

        from fink_t2.runtime.onnx_torch import TorchGraph

        self.path = onnx_file_for(ref)
        self.contract = ref.contract
        self.class_names = tuple(ref.contract["class_names"])
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"torch {torch.__version__}: CUDA is not available")
        self.device = device
        self._graph = TorchGraph(onnx.load(self.path), device)
        self.input_shape = (int(ref.contract["sequence_length"]), len(ref.contract["channels"]))
        self.backend = f"torch-{device.type}"
        self._torch = torch
        self._lock = threading.Lock()
        _check_outputs(self.path, self.contract, int(self._run(np.zeros((1, *self.input_shape), np.float32)).shape[-1]))

    def _run(self, chunk):
        x = self._torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
        return self._graph(x).to("cpu").numpy()
