"""The Rubin model's GPU routes without a GPU: its self-check probes with its own (ugrizy) input, its shipped
ONNX conversion (fink_t2/data/t2_lsst.onnx) is current and, on ONNX Runtime's CPU provider and on PyTorch on
the CPU, gives the TFLite interpreter's probabilities on real alerts; the Rubin paths take a usable GPU route
through the one runner choice (fink_t2.runtime.gpu). What needs a real GPU is scripts/gpu_check.sh."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from gpu_routes import InputRecorder, ort_cpu, torch_cpu

from fink_t2.alerts.rubin import iter_rubin_tables
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.cli import main
from fink_t2.core.calibration import calibrated_probabilities
from fink_t2.core.rubin_classifier import calibration_features, classify_rubin_columns
from fink_t2.core.spec import LSST_BANDS, spec_from_contract
from fink_t2.model.plasticc import load_plasticc
from fink_t2.model.plasticc_guard import guard_inputs, guard_metrics
from fink_t2.paths import LSST_MODEL_PATH, MODEL_DIR
from fink_t2.runtime import gpu
from fink_t2.runtime.gpu_onnx import onnx_file_for, onnx_path_for, probe_batch
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef

SAMPLES = ("rubin_sample_data_10_0.parquet", "part-2-918301.avro", "elasticc_sample_seed0.parquet")
METRICS = json.loads((MODEL_DIR / "t2_lsst_metrics.json").read_text())


@pytest.fixture(scope="module")
def ref():
    return ModelRef.resolve(LSST_MODEL_PATH)


@pytest.fixture(scope="module")
def rubin_tables(shared_data):
    return [pa.concat_tables(iter_rubin_tables(shared_data / "lsst_alerts" / name)).to_pandas() for name in SAMPLES]


def classify(table, model):
    return classify_rubin_columns(*(table[c] for c in CLASSIFIER_INPUTS), model)


@pytest.fixture(scope="module")
def real_inputs(ref, rubin_tables, shared_data):
    """Model inputs of real alerts: the Rubin and ELAsTiCC sample alerts that pass the cuts, and the PLAsTiCC
    last-detection alert views of the model's guard objects."""
    recorder = InputRecorder(ref.class_names, ref.contract)
    for table in rubin_tables:
        classify(table, recorder)
    views, _ = guard_inputs("rubin", spec_from_contract(ref.contract), data_dir=shared_data)
    return np.concatenate([recorder.inputs(), views])


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


def test_a_rubin_route_passes_the_self_check(ref):
    model, reason = gpu.try_gpu_model(ref, routes=[("onnxruntime-cuda", lambda: ort_cpu(ref))])
    assert reason is None and model.backend == "onnxruntime-cpu"


# --------------------------------------------------------------------------- the shipped conversion


def test_shipped_rubin_onnx_is_the_current_conversion_of_the_shipped_rubin_model(ref):
    pytest.importorskip("onnx")
    assert onnx_file_for(ref) == onnx_path_for(LSST_MODEL_PATH)


@pytest.mark.parametrize("make", [ort_cpu, torch_cpu], ids=["onnxruntime", "torch"])
def test_rubin_onnx_routes_agree_with_the_interpreter_on_real_alerts(make, ref, real_inputs):
    model = make(ref)
    expected, got = load_model(ref).predict(real_inputs), model.predict(real_inputs)
    assert len(real_inputs) > 100
    # the probabilities the stream writes (the contract's calibration of the output, when it has one)
    now, calibration = calibration_features(real_inputs, spec_from_contract(ref.contract)), ref.contract.get("calibration")
    served = np.abs(calibrated_probabilities(got, now, calibration) - calibrated_probabilities(expected, now, calibration))
    assert served.max() <= gpu.GPU_TOLERANCE, served.max()
    assert np.abs(got - expected).max() <= gpu.GPU_TOLERANCE
    # per-row quantization, as TFLite's: an alert's probabilities do not depend on the rest of its batch
    single = np.concatenate([model.predict(real_inputs[i : i + 1]) for i in range(40)])
    np.testing.assert_allclose(single, got[:40], atol=1e-6)
    probe = probe_batch(contract=ref.contract)
    assert np.abs(model.predict(probe) - load_model(ref).predict(probe)).max() <= gpu.GPU_TOLERANCE


def test_rubin_onnx_gives_the_recorded_guard_decisions(ref, shared_data):
    """The conversion recomputes what the model's metrics file records of the TFLite file."""
    got = guard_metrics(ort_cpu(ref), "rubin", spec_from_contract(ref.contract), data_dir=shared_data)
    want = METRICS["guard"]
    assert got["alerts"] == want["alerts"] and got["decisions"] == want["decisions"]
    assert got["flat_log_loss"] == pytest.approx(want["flat_log_loss"], abs=1e-3)
    np.testing.assert_allclose(got["mean_probabilities"], want["mean_probabilities"], atol=1e-4)


@pytest.mark.slow
def test_export_onnx_rebuilds_the_shipped_rubin_conversion(ref, tmp_path):
    """The shipped t2_lsst.onnx is what `fink-t2 export-onnx --model fink_t2/data/t2_lsst.tflite` makes."""
    pytest.importorskip("tf2onnx")
    import onnxruntime

    from fink_t2.model.onnx_export import export_onnx

    result = export_onnx(LSST_MODEL_PATH, str(tmp_path / "t2_lsst.onnx"))
    assert result["source_sha256"] == ref.sha256
    assert result["max_abs_difference_vs_interpreter"] <= 1e-3 and "per-row" in result["converter"]
    probe = probe_batch(contract=ref.contract)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(result["onnx"], options, providers=["CPUExecutionProvider"])
    rebuilt = session.run(None, {session.get_inputs()[0].name: probe})[0]
    np.testing.assert_allclose(rebuilt, ort_cpu(ref).predict(probe), atol=1e-6)


# --------------------------------------------------------------------------- the Rubin paths take the route


def test_rubin_tasks_take_a_usable_gpu_route_and_cpu_never_does(ref, rubin_tables, monkeypatch):
    """model_for_task (the Rubin UDF's and the Rubin replay stage's choice) under $FINK_T2_DEVICE, with ONNX
    Runtime on the CPU playing the GPU's part."""
    monkeypatch.setattr(gpu, "task_gpu_addresses", lambda: ("0",))  # as if Spark assigned GPU 0
    monkeypatch.setattr(gpu, "gpu_routes", lambda ref, address="0": [("onnxruntime-cuda", lambda: ort_cpu(ref))])
    monkeypatch.setenv(gpu.DEVICE_ENV, "cpu")
    assert gpu.model_for_task(ref).backend == "cpu"
    monkeypatch.setenv(gpu.DEVICE_ENV, "auto")
    model = gpu.model_for_task(ref)
    assert model.backend == "onnxruntime-cpu" and gpu.fallback_reason(ref, model) is None
    on_gpu, on_cpu = classify(rubin_tables[2], model), classify(rubin_tables[2], load_model(ref))
    assert (on_gpu.status == on_cpu.status).all() and (on_gpu.status == "ok").sum() > 10
    assert np.abs(on_gpu.proba - on_cpu.proba).max() <= gpu.GPU_TOLERANCE


def test_classify_with_the_rubin_model_honours_the_device(ref, shared_data, monkeypatch, tmp_path, capsys):
    lc, objects = load_plasticc(shared_data)
    lc = lc[lc["object_id"].isin(objects.groupby("label").head(3)["object_id"])]
    flux = tmp_path / "flux.csv"
    pd.DataFrame({"objectId": lc["object_id"], "mjd": lc["mjd"], "band": [LSST_BANDS[b] for b in lc["band"]],
                  "flux": lc["flux"], "flux_err": lc["flux_err"], "detected": lc["detected"].astype(int)}
                 ).to_csv(flux, index=False)
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ())
    assert main(["classify", str(flux), "--model", LSST_MODEL_PATH, "--output", str(tmp_path / "o.csv"),
                 "--device", "gpu"]) == 2
    assert capsys.readouterr().err.strip().startswith("fink-t2 classify: error: --device gpu: no GPU visible")
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ("0",))
    monkeypatch.setattr(gpu, "gpu_routes", lambda ref, address="0": [("onnxruntime-cuda", lambda: ort_cpu(ref))])
    assert main(["classify", str(flux), "--model", LSST_MODEL_PATH, "--output", str(tmp_path / "g.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == "onnxruntime-cpu" and summary["device"] == "auto" and summary["gpu_fallback"] is None
    assert main(["classify", str(flux), "--model", LSST_MODEL_PATH, "--output", str(tmp_path / "c.csv"),
                 "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "cpu"
    on_gpu, on_cpu = pd.read_csv(tmp_path / "g.csv"), pd.read_csv(tmp_path / "c.csv")
    names = list(ref.class_names)
    assert (on_gpu["t2_status"] == on_cpu["t2_status"]).all() and (on_gpu["t2_status"] == "ok").sum() > 10
    assert np.abs(on_gpu[names].to_numpy() - on_cpu[names].to_numpy()).max() <= gpu.GPU_TOLERANCE
