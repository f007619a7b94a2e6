"""The model runtime where ai-edge-litert is not installed: TensorFlow's tf.lite, chosen by itself.

Each check runs in a child Python in which ``import ai_edge_litert`` raises ImportError, as on a machine
where it has no wheel. There the runner picks the tf.lite interpreter of the installed TensorFlow (CI runs
this in Fink's stack, TensorFlow 2.15, and in the newest one), refuses what the contract refuses, and gives
LiteRT's probabilities on real alerts. TensorFlow 2.15 cannot load a file with per-channel dense weights
(``FULLY_CONNECTED`` version 12, what TensorFlow 2.21's converter writes): the shipped network with
per-tensor dense weights (tests/tflite_compat.py) is what it runs, and for the shipped file itself the
refusal must be that one, and say what would run the file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fink_t2.contract import attach_contract, read_contract, strip_contract
from fink_t2.cuts import STATUS_OK
from fink_t2.inference import T2Model
from fink_t2.model_ref import DEFAULT_MODEL_PATH
from fink_t2.samples import REPO_ROOT
from tflite_compat import fc_versions, per_tensor_variant, real_alert_probabilities

#: largest |tf.lite − LiteRT| probability accepted (the same kernels; seen here: ~1e-5)
TOLERANCE = 1e-4

CHILD = """
import json, sys
sys.modules["ai_edge_litert"] = None  # import ai_edge_litert now raises ImportError, as where it has no wheel
if {block_tensorflow}:
    sys.modules["tensorflow"] = None
sys.path[:0] = [{repo!r}, {tests!r}]
import numpy as np
from fink_t2.inference import T2Model
try:
    model = T2Model({path!r})
except Exception as err:
    print(json.dumps({{"error": type(err).__name__, "message": str(err)}}))
    sys.exit(0)
from tflite_compat import real_alert_probabilities
proba, status = real_alert_probabilities(model)
np.savez({out!r}, proba=proba, status=status)
print(json.dumps({{"interpreter": model.interpreter_name}}))
"""

needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="TensorFlow is not installed (CI installs it in both of its test venvs)")


def without_litert(path, tmp_path, block_tensorflow: bool = False) -> dict:
    """Load ``path`` and classify the real alerts in a child Python without ai-edge-litert."""
    out = tmp_path / "child.npz"
    code = CHILD.format(block_tensorflow=block_tensorflow, repo=str(REPO_ROOT), tests=str(Path(__file__).parent),
                        path=str(path), out=str(out))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if out.is_file():
        with np.load(out) as arrays:
            result.update(proba=arrays["proba"], status=arrays["status"])
    return result


@pytest.fixture(scope="module")
def older_runtime_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compat") / "t2_per_tensor.tflite"
    assert per_tensor_variant(DEFAULT_MODEL_PATH, path) > 0
    assert max(fc_versions(path)) <= 9
    return path


def assert_same_as_litert(path, child: dict) -> None:
    litert = T2Model(str(path))
    assert litert.interpreter_name == "ai-edge-litert"
    proba, status = real_alert_probabilities(litert)
    assert child["interpreter"].startswith("tensorflow ") and child["interpreter"].endswith(" tf.lite")
    np.testing.assert_array_equal(child["status"], status)
    assert (status == STATUS_OK).sum() >= 100  # most BTS views at 20 days pass the cuts
    np.testing.assert_allclose(child["proba"], proba, atol=TOLERANCE, rtol=0)


@needs_tensorflow
@pytest.mark.slow
def test_without_litert_tflite_gives_litert_probabilities_on_real_alerts(older_runtime_model, tmp_path):
    assert_same_as_litert(older_runtime_model, without_litert(older_runtime_model, tmp_path))


@needs_tensorflow
@pytest.mark.slow
def test_shipped_model_without_litert(tmp_path):
    """The shipped file on the installed TensorFlow's tf.lite: LiteRT's probabilities, or the one known refusal."""
    child = without_litert(DEFAULT_MODEL_PATH, tmp_path)
    if "error" not in child:
        assert_same_as_litert(DEFAULT_MODEL_PATH, child)
        return
    assert child["error"] == "ModelContractError", child
    assert "tf.lite cannot load this model" in child["message"] and "install ai-edge-litert" in child["message"]
    assert "'FULLY_CONNECTED' version '12'" in child["message"] and 12 in fc_versions(DEFAULT_MODEL_PATH), child
    pytest.xfail(f"the shipped file has per-channel dense weights, which this TensorFlow cannot run: {child['message']}")


@needs_tensorflow
@pytest.mark.parametrize("change, message", [({"class_names": ["SN Ia", "SN II"]}, "outputs"),
                                             ({"preprocessing_version": "other"}, "preprocessing_version")])
def test_without_litert_the_contract_is_enforced(older_runtime_model, tmp_path, change, message):
    path = tmp_path / "changed.tflite"
    path.write_bytes(attach_contract(strip_contract(older_runtime_model), {**read_contract(older_runtime_model), **change}))
    child = without_litert(path, tmp_path)
    assert child["error"] == "ModelContractError" and message in child["message"], child


def test_without_any_runtime_the_error_names_both(tmp_path):
    child = without_litert(DEFAULT_MODEL_PATH, tmp_path, block_tensorflow=True)
    assert child["error"] == "ImportError", child
    assert "ai-edge-litert" in child["message"] and "TensorFlow" in child["message"]
