"""The Rubin model's GPU routes without a GPU: its self-check probes with its own (ugrizy) input, its shipped
ONNX conversion (fink_t2/data/t2_lsst.onnx) is current and, on ONNX Runtime's CPU provider and on PyTorch on
the CPU, gives the TFLite interpreter's probabilities on real alerts; the Rubin paths take a usable GPU route
through the one runner choice (fink_t2.runtime.gpu). What needs a real GPU is scripts/gpu_check.sh."""

import json

import numpy as np
import pyarrow as pa
import pytest

from fink_t2.alerts.rubin import iter_rubin_tables
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.core.spec import spec_from_contract
from fink_t2.model.plasticc_guard import guard_inputs
from fink_t2.paths import LSST_MODEL_PATH, MODEL_DIR
from fink_t2.runtime import gpu
from fink_t2.runtime.gpu_onnx import T2OnnxRuntimeModel, probe_batch
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef

SAMPLES = ("rubin_sample_data_10_0.parquet", "part-2-918301.avro", "elasticc_sample_seed0.parquet")
INPUTS = ("cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband", "fmidpointMjdTai", "fpsfFlux", "fpsfFluxErr",
          "fband", "ssObjectId", "ssSource_ssObjectId", "diaObject_firstDiaSourceMjdTai")
METRICS = json.loads((MODEL_DIR / "t2_lsst_metrics.json").read_text())


@pytest.fixture(scope="module")
def ref():
    return ModelRef.resolve(LSST_MODEL_PATH)


def ort_cpu(ref):
    pytest.importorskip("onnxruntime")
    return T2OnnxRuntimeModel(ref, providers=("CPUExecutionProvider",))


def torch_cpu(ref):
    pytest.importorskip("torch")
    from fink_t2.runtime.gpu_onnx import T2TorchModel

    return T2TorchModel(ref, "cpu")


@pytest.fixture(scope="module")
def rubin_tables(shared_data):
    return [pa.concat_tables(iter_rubin_tables(shared_data / "lsst_alerts" / name)).to_pandas() for name in SAMPLES]


def classify(table, model):
    return classify_rubin_columns(*(table[c] for c in INPUTS), model)


@pytest.fixture(scope="module")
def real_inputs(ref, rubin_tables, shared_data):
    """Model inputs of real alerts: the Rubin and ELAsTiCC sample alerts that pass the cuts, and the PLAsTiCC
    last-detection alert views of the model's guard objects."""
    seen = []

    class Recorder:
        class_names, contract = ref.class_names, ref.contract

        def predict(self, x):
            seen.append(np.array(x))
            return np.zeros((len(x), len(self.class_names)), np.float32)

    for table in rubin_tables:
        classify(table, Recorder())
    views, _ = guard_inputs("rubin", spec_from_contract(ref.contract), data_dir=shared_data)
    return np.concatenate(seen + [views])


# --------------------------------------------------------------------------- the self-check


def test_self_check_probes_a_rubin_model_with_its_own_input(ref):
    """Not the default (ZTF, 31 × 7) model's shape: a Rubin backend would fail its self-check and fall back."""
    cpu, shapes = load_model(ref), []

    class Backend:
        backend, class_names = "recording-gpu", ref.class_names

        def predict(self, x):
            shapes.append(x.shape[1:])
            return cpu.predict(x)

    assert gpu.self_check(Backend(), ref) == 0.0
    assert shapes == [(ref.contract["sequence_length"], len(ref.contract["channels"]))] == [(64, 22)]
    probe = probe_batch(contract=ref.contract)
    masks = [i for i, name in enumerate(ref.contract["channels"]) if name.startswith(("measured", "detected"))]
    assert len(masks) == 12 and set(np.unique(probe[..., masks])) == {0.0, 1.0}  # 0/1 masks, as real inputs
