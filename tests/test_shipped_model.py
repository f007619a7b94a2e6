"""The shipped model file still gives the numbers its metrics file records (swapping the file fails CI)."""

import json
from pathlib import Path

import numpy as np
import pytest

from fink_t2.core.contract import read_contract
from fink_t2.model.datasets import load_bts  # the evaluation needs the train extra, which CI installs
from fink_t2.model.evaluate import guard_metrics
from fink_t2.paths import SHARED_DATA
from fink_t2.runtime.inference import T2Model
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH

METRICS = json.loads((Path(DEFAULT_MODEL_PATH).parent / "t2_metrics.json").read_text())


def _close(recorded, again, path=""):
    """Every number of ``recorded`` equals the one recomputed (1e-6 relative), every key present."""
    if isinstance(recorded, dict):
        assert set(recorded) == set(again), path
        for key in recorded:
            _close(recorded[key], again[key], f"{path}/{key}")
    elif isinstance(recorded, list):
        assert len(recorded) == len(again), path
        for i, (a, b) in enumerate(zip(recorded, again)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(recorded, float):
        assert again == pytest.approx(recorded, rel=1e-6, abs=1e-9), path
    else:
        assert again == recorded, path


def test_metrics_describe_the_shipped_file():
    assert METRICS["model_size"]["tflite_bytes"] == Path(DEFAULT_MODEL_PATH).stat().st_size
    assert read_contract(DEFAULT_MODEL_PATH)["class_names"] == METRICS["data"]["class_names"]
    assert METRICS["command"].startswith("fink-t2 train")
    buckets = METRICS["cross_validation"]["buckets"]
    assert list(buckets) == ["0-3", "3-7", "7-15", "15-30", "30-60", "60-90"]
    assert METRICS["cross_validation"]["folds"] >= 5


def test_the_shipped_file_gives_its_recorded_guard_metrics():
    again = json.loads(json.dumps(guard_metrics(T2Model(DEFAULT_MODEL_PATH), load_bts(SHARED_DATA))))
    _close(METRICS["guard"], again)
    assert again["n_classified"] > 1000 and np.isclose(sum(again["mean_probability"]), 1.0, atol=1e-3)


def test_the_shipped_file_carries_the_calibration_its_training_fitted():
    """compress --ship must not drop the contract's calibration: without it the t2 map would be the raw output."""
    contract = read_contract(DEFAULT_MODEL_PATH)
    assert contract["calibration"] == METRICS["training"]["calibration"]
    assert contract["calibration"]["mode"] == METRICS["recipe"]["calibration"]
