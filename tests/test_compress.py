"""fink-t2 compress: the quantized, stripped FlatBuffer runs like the converter's output, on both LiteRT paths."""

import numpy as np
import pytest
import tensorflow_model_optimization  # noqa: F401 - train extra: a missing install must fail, not skip
import tf_keras  # noqa: F401 - train extra: a missing install must fail, not skip

from fink_t2.core.contract import attach_contract, make_contract
from fink_t2.core.sequences import CHANNELS, SEQUENCE_LENGTH
from fink_t2.model.architecture import build_model
from fink_t2.model.compress import canonical_copy
from fink_t2.model.datasets import CLASS_NAMES
from fink_t2.model.export import strip_flatbuffer, tflite_bytes
from fink_t2.runtime.gpu_litert import T2GpuModel
from fink_t2.runtime.inference import T2Model

SHAPE = (SEQUENCE_LENGTH, len(CHANNELS))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("float") / "t2_savedmodel"
    build_model(len(CLASS_NAMES)).save(path, save_format="tf")
    return path


def _run(model_bytes, x):
    return T2Model(content=model_bytes, contract=make_contract(CLASS_NAMES)).predict(x, chunk_size=len(x))


@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_stripped_is_smaller_and_identical(saved_model, tmp_path, per_channel):
    x = np.random.default_rng(0).random((40, *SHAPE)).astype(np.float32)
    int8 = tflite_bytes(saved_model, "int8", x, per_channel=per_channel)
    stripped = strip_flatbuffer(int8)
    assert len(stripped) < len(int8) - 4000
    assert len(stripped) < tflite_bytes(saved_model, "dynamic").__len__()
    np.testing.assert_array_equal(_run(stripped, x), _run(int8, x))
    path = tmp_path / "t2.tflite"
    path.write_bytes(attach_contract(stripped, make_contract(CLASS_NAMES)))
    cpu = T2Model(str(path))
    proba = cpu.predict(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-2)
    np.testing.assert_array_equal(cpu.predict(x[:3]), proba[:3])  # batch resized down and up again
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    compiled = T2GpuModel(str(path), cpu.contract, accelerator=HardwareAccelerator.CPU)  # needs the kept signature
    np.testing.assert_allclose(compiled.predict(x), proba, atol=1e-6)


def test_canonical_copies_weights_by_name():
    model = build_model(len(CLASS_NAMES))
    copy = canonical_copy(model)
    x = np.random.default_rng(1).random((3, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
