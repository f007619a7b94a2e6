"""The model runtime where ai-edge-litert is not installed: TensorFlow's tf.lite, chosen by itself.

Each check runs in a child Python in which ``import ai_edge_litert`` raises ImportError, as on a machine
where it has no wheel. There the runner picks the tf.lite interpreter of the installed TensorFlow (CI runs
this in Fink's stack, TensorFlow 2.19.0, and in the newest one), refuses what the contract refuses, and gives
LiteRT's probabilities on real alerts. TensorFlow 2.15 cannot load a file with per-channel dense weights
(``FULLY_CONNECTED`` version 12, what TensorFlow 2.21's converter writes by default): the shipped file has
per-tensor ones (fink_t2/model/export.py).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tflite_compat import PER_TENSOR_FC_VERSION, fc_versions, real_alert_probabilities

from fink_t2.core.contract import attach_contract, read_contract, strip_contract
from fink_t2.core.cuts import STATUS_OK
from fink_t2.paths import REPO_ROOT
from fink_t2.runtime.inference import T2Model
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH

#: largest |tf.lite − LiteRT| probability accepted: the two runtimes run the dynamic-range dense layers with
#: different kernels (seen here on real alerts: 1.5e-4 at most with TensorFlow 2.15, less with 2.21)
TOLERANCE = 1e-3

CHILD = """
import json, sys
sys.modules["ai_edge_litert"] = None  # import ai_edge_litert now raises ImportError, as where it has no wheel
if {block_tensorflow}:
    sys.modules["tensorflow"] = None
sys.path[:0] = [{repo!r}, {tests!r}]
import numpy as np
from fink_t2.runtime.inference import T2Model
from tflite_compat import real_alert_probabilities
results = {{}}
for name, path in {paths!r}.items():
    try:
        model = T2Model(path)
    except Exception as err:
        results[name] = {{"error": type(err).__name__, "message": str(err)}}
        continue
    proba, status = real_alert_probabilities(model)
    np.savez({out!r} + "/" + name + ".npz", proba=proba, status=status)
    results[name] = {{"interpreter": model.interpreter_name, "arrays": {out!r} + "/" + name + ".npz"}}
print(json.dumps(results))
"""

needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="TensorFlow is not installed (CI installs it in both of its test venvs)")


def without_litert(paths: dict, out: Path, block_tensorflow: bool = False) -> dict:
    """Load each model of ``paths`` (name → file) and classify the real alerts, in one child Python without
    ai-edge-litert; name → its interpreter and results, or the error that refused it."""
    code = CHILD.format(block_tensorflow=block_tensorflow, repo=str(REPO_ROOT), tests=str(Path(__file__).parent),
                        paths={name: str(path) for name, path in paths.items()}, out=str(out))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout.strip().splitlines()[-1])
    for result in results.values():
        if "arrays" in result:
            with np.load(result.pop("arrays")) as arrays:
                result.update(proba=arrays["proba"], status=arrays["status"])
    return results


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """The shipped file, and variants of it with contracts it does not meet."""
    folder = tmp_path_factory.mktemp("compat")
    paths = {"shipped": Path(DEFAULT_MODEL_PATH)}
    for name, change in CONTRACT_CHANGES.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), {**read_contract(DEFAULT_MODEL_PATH), **change}))
    return paths


#: contracts the variant does not meet → what the refusal must name
CONTRACT_CHANGES = {"two_classes": {"class_names": ["SN Ia", "SN II"], "calibration": None}, "other_preprocessing": {"preprocessing_version": "other"}}
REFUSAL = {"two_classes": "outputs", "other_preprocessing": "preprocessing_version"}


@pytest.fixture(scope="module")
def child(models, tmp_path_factory) -> dict:
    return without_litert(models, tmp_path_factory.mktemp("child"))


def assert_same_as_litert(path, child: dict) -> None:
    litert = T2Model(str(path))
    assert litert.interpreter_name == "ai-edge-litert"
    proba, status = real_alert_probabilities(litert)
    assert child["interpreter"].startswith("tensorflow ") and child["interpreter"].endswith(" tf.lite")
    np.testing.assert_array_equal(child["status"], status)
    assert (status == STATUS_OK).sum() >= 100  # most BTS views at 20 days pass the cuts
    np.testing.assert_allclose(child["proba"], proba, atol=TOLERANCE, rtol=0)
    ok = status == STATUS_OK
    assert (child["proba"][ok].argmax(axis=1) == proba[ok].argmax(axis=1)).all()  # the same class for every alert


@needs_tensorflow
@pytest.mark.slow
def test_shipped_model_without_litert(child):
    """The shipped file on the installed TensorFlow's tf.lite (2.19.0 in Fink's stack): LiteRT's probabilities.

    It asks for FULLY_CONNECTED version 9 (per-tensor dense weights, fink_t2/model/export.py), not the version
    12 of per-channel weights that tf.lite 2.15 refuses.
    """
    assert max(fc_versions(DEFAULT_MODEL_PATH)) == PER_TENSOR_FC_VERSION
    shipped = child["shipped"]
    assert "error" not in shipped, shipped
    assert_same_as_litert(DEFAULT_MODEL_PATH, shipped)


@needs_tensorflow
@pytest.mark.parametrize("name", sorted(CONTRACT_CHANGES))
def test_without_litert_the_contract_is_enforced(child, name):
    assert child[name]["error"] == "ModelContractError" and REFUSAL[name] in child[name]["message"], child[name]


def test_without_any_runtime_the_error_names_both(tmp_path):
    refused = without_litert({"shipped": DEFAULT_MODEL_PATH}, tmp_path, block_tensorflow=True)["shipped"]
    assert refused["error"] == "ImportError", refused
    assert "ai-edge-litert" in refused["message"] and "TensorFlow" in refused["message"]
