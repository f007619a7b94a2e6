"""LiteRT runner: the model file's contract, batching, one load per process."""

import json

import numpy as np
import pytest

from fink_t2 import inference
from fink_t2.contract import ModelContractError, attach_contract, read_contract, strip_contract
from fink_t2.inference import DEFAULT_MODEL_PATH, MAX_CHUNK, T2Model, load_model
from fink_t2.sequences import PREPROCESSING_VERSION


def test_shipped_model_carries_its_contract():
    contract = read_contract(DEFAULT_MODEL_PATH)
    assert contract["preprocessing_version"] == PREPROCESSING_VERSION
    assert contract["bands"] == ["g", "r"] and contract["sequence_length"] == 100
    assert len(contract["class_names"]) == len(load_model().class_names)


def test_load_model_is_cached_per_path():
    before = inference.LOAD_COUNT["n"]
    first = load_model()
    assert load_model(DEFAULT_MODEL_PATH) is first
    assert inference.LOAD_COUNT["n"] - before <= 1


def test_batched_predictions_match_one_by_one_across_chunks():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(MAX_CHUNK + 7, 100, 2)).astype(np.float32)
    model = load_model()
    batched = model.predict(x)
    assert batched.shape == (len(x), len(model.class_names))
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-3)
    singles = np.concatenate([model.predict(x[i : i + 1]) for i in (0, MAX_CHUNK, MAX_CHUNK + 6)])
    np.testing.assert_allclose(singles, batched[[0, MAX_CHUNK, MAX_CHUNK + 6]], atol=1e-4)
    assert model.predict(np.zeros((0, 100, 2), np.float32)).shape == (0, len(model.class_names))


def test_a_file_without_contract_is_refused(tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(strip_contract(DEFAULT_MODEL_PATH))
    with pytest.raises(ModelContractError, match="not a fink-t2 model"):
        T2Model(str(bare))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelContractError):
        T2Model(str(junk))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"preprocessing_version": "t2-gp-v0"}, "preprocessing_version"),
        ({"bands": ["r", "g"]}, "bands"),
        ({"class_names": ["SN Ia", "SN Ia", "x", "y"]}, "class_names"),
        ({"class_names": ["SN Ia", "SN II"]}, "outputs"),
    ],
)
def test_a_mismatched_contract_is_refused(tmp_path, change, message):
    contract = {**read_contract(DEFAULT_MODEL_PATH), **change}
    path = tmp_path / "model.tflite"
    path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), contract))
    with pytest.raises(ModelContractError, match=message):
        T2Model(str(path))
    assert json.loads(json.dumps(contract))  # the contract itself is plain JSON
