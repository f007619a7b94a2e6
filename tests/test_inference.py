"""The one TFLite runner: the model file's contract, batching, one load per process, the model reference."""

import numpy as np
import pytest

from fink_t2.core.contract import ModelContractError, attach_contract, read_contract, strip_contract
from fink_t2.core.sequences import CHANNELS, PREPROCESSING_VERSION, SEQUENCE_LENGTH
from fink_t2.runtime.inference import MAX_CHUNK, T2Model, load_model, loaded_models
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH, ModelRef


def test_shipped_model_carries_its_contract():
    contract = read_contract(DEFAULT_MODEL_PATH)
    assert contract["preprocessing_version"] == PREPROCESSING_VERSION
    assert contract["channels"] == list(CHANNELS) and contract["sequence_length"] == SEQUENCE_LENGTH
    assert len(contract["class_names"]) == len(load_model(ModelRef.resolve()).class_names)


def test_load_model_is_cached_per_file():
    ref = ModelRef.resolve()
    first = load_model(ref)
    loads = len(loaded_models())
    assert load_model(ModelRef.resolve(DEFAULT_MODEL_PATH)) is first
    assert len(loaded_models()) == loads
    assert sum(entry["key"] == (ref.sha256, "cpu") for entry in loaded_models()) == 1


def test_batched_predictions_match_one_by_one_across_chunks():
    model = load_model(ModelRef.resolve())
    x = np.random.default_rng(0).uniform(0, 1, size=(MAX_CHUNK + 7, *model.input_shape)).astype(np.float32)
    batched = model.predict(x)
    assert batched.shape == (len(x), len(model.class_names))
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-3)
    singles = np.concatenate([model.predict(x[i : i + 1]) for i in (0, MAX_CHUNK, MAX_CHUNK + 6)])
    np.testing.assert_allclose(singles, batched[[0, MAX_CHUNK, MAX_CHUNK + 6]], atol=1e-4)
    np.testing.assert_allclose(model.predict(x, chunk_size=len(x)), batched, atol=1e-4)
    assert model.predict(np.zeros((0, *model.input_shape), np.float32)).shape == (0, len(model.class_names))


def test_runner_from_bytes_is_the_runner_from_the_file():
    contract = read_contract(DEFAULT_MODEL_PATH)
    from_file = T2Model(DEFAULT_MODEL_PATH)
    from_bytes = T2Model(content=strip_contract(DEFAULT_MODEL_PATH), contract=contract)
    x = np.random.default_rng(1).uniform(0, 1, size=(9, *from_file.input_shape)).astype(np.float32)
    np.testing.assert_array_equal(from_file.predict(x), from_bytes.predict(x))
    with pytest.raises(ValueError, match="not both"):
        T2Model(DEFAULT_MODEL_PATH, content=b"x", contract=contract)


def test_a_file_without_contract_is_refused(tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(strip_contract(DEFAULT_MODEL_PATH))
    with pytest.raises(ModelContractError, match="not a fink-t2 model"):
        T2Model(str(bare))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelContractError):
        T2Model(str(junk))
    with pytest.raises(ModelContractError):
        ModelRef.resolve(junk)
    with pytest.raises(FileNotFoundError):
        ModelRef.resolve(tmp_path / "missing.tflite")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"preprocessing_version": "t2-grid-1d-peak-v1"}, "preprocessing_version"),
        ({"bands": ["r", "g"]}, "bands"),
        ({"channels": ["flux_g", "flux_r"]}, "channels"),
        ({"format": 1}, "format"),
        ({"class_names": ["SN Ia", "SN Ia", "x", "y"]}, "class_names"),
        ({"class_names": ["SN Ia", "SN II"], "calibration": None}, "outputs"),
        ({"class_names": ["SN Ia", "SN II"]}, "calibration"),  # a calibration of 4 classes for 2 names
    ],
)
def test_a_mismatched_contract_is_refused(tmp_path, change, message):
    contract = {**read_contract(DEFAULT_MODEL_PATH), **change}
    path = tmp_path / "model.tflite"
    path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), contract))
    with pytest.raises(ModelContractError, match=message):
        T2Model(str(path))
    with pytest.raises(ModelContractError, match=message):
        ModelRef.resolve(path) if message != "outputs" else T2Model(str(path), contract=ModelRef.resolve(path).contract)


def test_a_changed_file_is_refused_by_the_reference(tmp_path):
    """The workers run the file the driver checked: same name, other bytes, refused."""
    path = tmp_path / "t2.tflite"
    path.write_bytes(open(DEFAULT_MODEL_PATH, "rb").read())
    ref = ModelRef.resolve(path)
    assert ref.verified_path() == str(path)
    contract = read_contract(path)
    path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), {**contract, "created": "another"}))
    with pytest.raises(ModelContractError, match="sha256"):
        ref.verified_path()
