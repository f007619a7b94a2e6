"""The shipped Rubin model (fink_t2/data/t2_lsst.tflite): its contract says what a Rubin alert reader needs,
its file recomputes its guard metrics, it meets its size target."""

import json

import numpy as np
import pytest

from fink_t2.core.contract import read_contract
from fink_t2.core.spec import spec_from_contract
from fink_t2.model.plasticc import CLASS_NAMES
from fink_t2.model.plasticc_guard import guard_metrics
from fink_t2.model.plasticc_report_text import TARGETS
from fink_t2.paths import MODEL_DIR
from fink_t2.runtime.inference import T2Model

MODEL = MODEL_DIR / "t2_lsst.tflite"
METRICS = json.loads((MODEL_DIR / "t2_lsst_metrics.json").read_text())


def test_contract_tells_a_rubin_reader_everything():
    contract = read_contract(MODEL)
    spec = spec_from_contract(contract)
    assert contract["bands"] == ["u", "g", "r", "i", "z", "y"] and contract["flux_unit"] == "nJy"
    assert contract["zero_point"] == 31.4 and contract["window_days"] == 365.0
    assert contract["channels"] == list(spec.channels) and contract["class_names"] == list(CLASS_NAMES)
    assert contract["class_names"][:3] == ["SN Ia", "SN II", "SN Ibc"]
    assert {"time", "band", "flux", "detected", "t_now", "t_first"} <= set(contract["inputs"])
    assert set(contract["broad_classes"]) == set(CLASS_NAMES)
    assert METRICS["command"].startswith("fink-t2 train --dataset plasticc --setting rubin")


def test_file_recomputes_its_guard_metrics(shared_data):
    runner = T2Model(str(MODEL))
    spec = spec_from_contract(runner.contract)
    got = guard_metrics(runner, "rubin", spec, data_dir=shared_data)
    want = METRICS["guard"]
    assert got["alerts"] == want["alerts"] and got["decisions"] == want["decisions"]
    assert got["flat_log_loss"] == pytest.approx(want["flat_log_loss"], abs=1e-4)
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-9)
    np.testing.assert_allclose(got["mean_probabilities"], want["mean_probabilities"], atol=1e-5)


def test_size_target_and_metrics_agree():
    assert MODEL.stat().st_size == METRICS["model_size"]["tflite_bytes"] <= TARGETS["max_bytes"]
