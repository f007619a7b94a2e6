"""What the GPU tests share: t2's ONNX routes run on the CPU (no GPU here), and a stand-in model that records
the inputs a classify core builds (the real model inputs of real alerts, for comparing backends)."""

import numpy as np
import pytest

from fink_t2.runtime.gpu_onnx import T2OnnxRuntimeModel


def ort_cpu(ref):
    """The onnxruntime route of ``ref``'s model on ONNX Runtime's CPU provider."""
    pytest.importorskip("onnxruntime")
    return T2OnnxRuntimeModel(ref, providers=("CPUExecutionProvider",))


def torch_cpu(ref):
    """The torch route of ``ref``'s model on the CPU."""
    pytest.importorskip("torch")
    from fink_t2.runtime.gpu_onnx import T2TorchModel

    return T2TorchModel(ref, "cpu")


class InputRecorder:
    """A model that keeps what it is asked to predict (``inputs()``) and answers zeros."""

    def __init__(self, class_names, contract):
        self.class_names, self.contract, self.seen = class_names, contract, []

    def predict(self, x):
        self.seen.append(np.array(x))
        return np.zeros((len(x), len(self.class_names)), np.float32)

    def inputs(self) -> np.ndarray:
        return np.concatenate(self.seen)
