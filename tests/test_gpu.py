"""GPU backends without a GPU: the device choice (auto/cpu/gpu), its errors and summaries, the ONNX
conversion's checks, and the ONNX routes (ONNX Runtime, PyTorch) against the TFLite interpreter on
real alerts, run on the CPU. What needs a real GPU is scripts/gpu_check.sh (docs/gpu.md)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gpu_routes import InputRecorder, ort_cpu, torch_cpu

from fink_t2.alerts import iter_alert_tables
from fink_t2.cli import main
from fink_t2.core.calibration import calibrated_probabilities, now_features
from fink_t2.core.classifier import classify_columns
from fink_t2.core.contract import ModelContractError, attach_contract, read_contract, strip_contract
from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA
from fink_t2.runtime import gpu
from fink_t2.runtime.gpu_onnx import onnx_file_for, onnx_path_for, probe_batch
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH, ModelRef

BTS = Path(SHARED_DATA) / "ztf_bts" / "lightcurves.csv.gz"


@pytest.fixture(scope="module")
def real_inputs():
    """Model inputs of real alerts: the sample night's alerts that pass the cuts, and BTS alert views."""
    from fink_t2.core.sequences import build_sequences
    from fink_t2.model.views import alert_views

    recorder = InputRecorder(ModelRef.resolve().class_names, {})  # no calibration: only the inputs are recorded
    df = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    classify_columns(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch, df.jdstarthist,
                     df.ndethist, recorder)
    table = pd.read_csv(BTS)
    table = table[table["objectId"].isin(table["objectId"].drop_duplicates().iloc[:300])]
    table = table[np.isfinite(table["mag"]) & table["band"].isin(["g", "r"])]
    table = table.assign(object_id=table["objectId"], jd=table["mjd"] + 2400000.5,
                         fid=table["band"].map({"g": 1, "r": 2}), label="", source="bts")
    v = alert_views(table)
    s = build_sequences(v.jd, v.fid, v.mag, None, v.jd_now, v.jdstarthist, v.ndethist, offsets=v.offsets)
    return np.concatenate([recorder.inputs(), s.values[s.n_epochs >= 2]])


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ())
    monkeypatch.delenv(gpu.DEVICE_ENV, raising=False)


def own_model(tmp_path, tag="test") -> ModelRef:
    """The shipped model under another checksum (a contract field changed), so that no cache has seen it."""
    path = tmp_path / "t2.tflite"
    path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), {**read_contract(DEFAULT_MODEL_PATH),
                                                                          "created": f"{tmp_path} {tag}"}))
    return ModelRef.resolve(path)


# --------------------------------------------------------------------------- the choice


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    for mask, expected in (("", ()), ("-1", ()), ("0,1", ("0", "1")), ("GPU-8f3a", ("0",)), ("1,-1,2", ("0",))):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
        assert gpu.visible_gpus() == expected, mask


def test_unknown_device_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="auto, cpu, gpu"):
        gpu.check_device("cuda")
    monkeypatch.setenv(gpu.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="'tpu'"):
        gpu.check_device(None)


def test_cpu_never_touches_the_gpu(monkeypatch, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("the GPU was tried under --device cpu")

    ref = own_model(tmp_path)
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ("0",))
    monkeypatch.setattr(gpu, "try_gpu_model", forbidden)
    monkeypatch.setattr(gpu, "task_gpu_addresses", lambda: ("0",))  # even when Spark assigned one
    monkeypatch.setenv(gpu.DEVICE_ENV, "cpu")
    assert gpu.choose_model(ref, "cpu").backend == "cpu"
    assert gpu.model_for_task(ref).backend == "cpu"


def test_auto_without_a_gpu_runs_the_cpu_and_gpu_fails_in_one_line(no_gpu, monkeypatch, tmp_path):
    ref = own_model(tmp_path)
    monkeypatch.setattr(gpu, "try_gpu_model", lambda *a, **k: pytest.fail("no GPU is visible: nothing to try"))
    model = gpu.choose_model(ref, "auto")
    assert model.backend == "cpu" and gpu.fallback_reason(ref, model) is None
    with pytest.raises(ValueError, match=r"^--device gpu: no GPU visible") as err:
        gpu.choose_model(ref, "gpu")
    assert "\n" not in str(err.value)
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ("0",))
    monkeypatch.setattr(gpu, "try_gpu_model", lambda ref, address: (None, "torch-cuda: CUDA is not available"))
    with pytest.raises(ValueError, match=r"--device gpu: GPU 0 is not usable \(torch-cuda: CUDA is not available\)"):
        gpu.choose_model(ref, "gpu")
    fallback = gpu.choose_model(ref, "auto")  # a visible GPU that is not usable: the CPU, and why
    assert fallback.backend == "cpu" and gpu.fallback_reason(ref, fallback) == "torch-cuda: CUDA is not available"


def test_routes_are_tried_in_order_and_self_checked():
    ref = ModelRef.resolve()
    cpu = load_model(ref)

    class Wrong:
        backend, class_names = "wrong-gpu", cpu.class_names

        def predict(self, x):
            return cpu.predict(x) + 0.01

    def broken():
        raise RuntimeError("no adapter")

    good = ort_cpu(ref)
    model, reason = gpu.try_gpu_model(ref, routes=[("a", broken), ("b", Wrong), ("c", lambda: good)])
    assert model is good and reason is None
    model, reason = gpu.try_gpu_model(ref, routes=[("a", broken), ("b", Wrong)])
    assert model is None
    assert reason == "a: RuntimeError: no adapter; b: probabilities differ from the CPU interpreter by 0.01"


def test_auto_classify_takes_a_usable_gpu_backend_and_says_so(monkeypatch, tmp_path, capsys):
    """`fink-t2 classify` with a (stand-in) GPU route: ONNX Runtime on the CPU plays the GPU's part."""
    ref = ModelRef.resolve()
    monkeypatch.setattr(gpu, "visible_gpus", lambda: ("0",))
    monkeypatch.setattr(gpu, "gpu_routes", lambda ref, address="0": [("onnxruntime-cuda", lambda: ort_cpu(ref))])
    lightcurves = tmp_path / "lc.csv"
    pd.read_csv(BTS).groupby("objectId").head(6).iloc[:3000].to_csv(lightcurves, index=False)
    assert main(["classify", str(lightcurves), "--output", str(tmp_path / "gpu.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == "onnxruntime-cpu" and summary["device"] == "auto" and summary["gpu_fallback"] is None
    assert main(["classify", str(lightcurves), "--output", str(tmp_path / "cpu.csv"), "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "cpu"
    on_gpu, on_cpu = pd.read_csv(tmp_path / "gpu.csv"), pd.read_csv(tmp_path / "cpu.csv")
    assert (on_gpu["t2_status"] == on_cpu["t2_status"]).all() and (on_gpu["t2_status"] == "ok").sum() > 50
    names = list(ref.class_names)
    assert np.abs(on_gpu[names].to_numpy() - on_cpu[names].to_numpy()).max() <= 1e-3


def test_classify_device_gpu_without_a_gpu_exits_2_with_one_line(no_gpu, tmp_path, capsys):
    lightcurves = tmp_path / "lc.csv"
    pd.read_csv(BTS).iloc[:50].to_csv(lightcurves, index=False)
    assert main(["classify", str(lightcurves), "--output", str(tmp_path / "o.csv"), "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fink-t2 classify: error: --device gpu: no GPU visible") and "\n" not in err
    assert not (tmp_path / "o.csv").exists()


def test_workers_record_their_backend_once(no_gpu, monkeypatch, tmp_path):
    ref = own_model(tmp_path)
    folder = tmp_path / "records"
    monkeypatch.setenv(gpu.BACKEND_DIR_ENV, str(folder))
    for _ in range(3):
        gpu.model_for_task(ref)
    assert len(list(folder.glob("*.json"))) == 1
    assert gpu.worker_backends(str(folder)) == {"backends": {"cpu": 1}, "gpu_fallback": []}
    assert gpu.worker_backends(str(folder), since=2e9) == {"backends": {}, "gpu_fallback": []}


# --------------------------------------------------------------------------- the ONNX conversion and its runtimes


def test_shipped_onnx_is_the_current_conversion_of_the_shipped_model():
    pytest.importorskip("onnx")
    ref = ModelRef.resolve()
    assert onnx_file_for(ref) == onnx_path_for(DEFAULT_MODEL_PATH)


def test_a_stale_or_missing_conversion_is_refused(tmp_path):
    pytest.importorskip("onnx")
    ref = own_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="fink-t2 export-onnx"):
        onnx_file_for(ref)
    shutil.copyfile(onnx_path_for(DEFAULT_MODEL_PATH), onnx_path_for(ref.path))  # converted from another file
    with pytest.raises(ModelContractError, match="stale conversion"):
        onnx_file_for(ref)
    model, reason = gpu.try_gpu_model(ref, routes=[("onnxruntime-cuda", lambda: ort_cpu(ref))])
    assert model is None and "stale conversion" in reason


@pytest.mark.parametrize("make", [ort_cpu, torch_cpu], ids=["onnxruntime", "torch"])
def test_onnx_routes_agree_with_the_interpreter_on_real_alerts(make, real_inputs):
    ref = ModelRef.resolve()
    model = make(ref)
    expected, got = load_model(ref).predict(real_inputs), model.predict(real_inputs)
    assert len(real_inputs) > 1000
    # the probabilities the stream writes (the t2 map: the contract's calibration of the output) within 1e-3
    now, calibration = now_features(real_inputs), ref.contract.get("calibration")
    served = np.abs(calibrated_probabilities(got, now, calibration)
                    - calibrated_probabilities(expected, now, calibration)).max(axis=1)
    assert served.max() <= 1e-3, (served.max(), (served > 1e-3).sum())
    # the raw output: a value on a quantization step's edge may round the other way (docs/gpu.md); TFLite's own
    # reference and XNNPACK kernels differ by up to 2.2e-3 on the same views
    raw = np.abs(got - expected).max(axis=1)
    assert raw.max() <= 2e-3 and (raw > 1e-3).mean() <= 1e-3, (raw.max(), (raw > 1e-3).sum())
    # per-row quantization, as TFLite's: an alert's probabilities do not depend on the rest of its batch
    single = np.concatenate([model.predict(real_inputs[i : i + 1]) for i in range(40)])
    np.testing.assert_allclose(single, model.predict(real_inputs)[:40], atol=1e-6)
    assert np.abs(model.predict(probe_batch()) - load_model(ref).predict(probe_batch())).max() <= gpu.GPU_TOLERANCE


def test_per_row_rewrite_quantizes_each_row_as_tflite_and_leaves_biases_alone():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from fink_t2.model.onnx_export import per_row_dynamic_quantization

    rng = np.random.default_rng(3)
    w = rng.normal(size=(8, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xd"]),
             helper.make_node("MatMul", ["xd", "w"], ["y0"]),
             helper.make_node("DynamicQuantizeLinear", ["bias"], ["bq", "bs", "bz"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"]),
             helper.make_node("Add", ["y0", "bd"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert per_row_dynamic_quantization(model) == (1, 1)
    onnx.checker.check_model(model)
    assert not any(n.op_type.endswith("QuantizeLinear") for n in model.graph.node)
    x = rng.normal(size=(5, 8)).astype(np.float32) * np.array([[0.01], [1], [100], [0], [3]], np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    y = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # TFLite / XNNPACK: per row, range widened to hold 0, 255 levels, nudged zero point, int8
    lo, hi = np.minimum(x.min(1, keepdims=True), 0), np.maximum(x.max(1, keepdims=True), 0)
    mult = np.where(hi > lo, 255 / np.where(hi > lo, hi - lo, 1), 1).astype(np.float32)
    zp = np.where(-128 + lo * mult + 127 + hi * mult > 0, -128 - lo * mult, 127 - hi * mult)
    zp = np.rint(np.clip(zp, -128, 127))
    q = np.clip(np.rint(x * mult + zp), -128, 127)
    np.testing.assert_allclose(y, ((q - zp) / mult) @ w + bias, rtol=1e-5, atol=1e-5)
    assert np.allclose(y[3], bias)  # an all-zero row stays zero


def test_torch_graph_refuses_operators_it_does_not_know():
    pytest.importorskip("torch")
    from onnx import TensorProto, helper

    from fink_t2.runtime.onnx_torch import TorchGraph

    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="not supported by fink_t2.runtime.onnx_torch: Erf"):
        TorchGraph(helper.make_model(graph))


@pytest.mark.slow
def test_export_onnx_rebuilds_an_equivalent_file(tmp_path):
    pytest.importorskip("tf2onnx")
    from fink_t2.model.onnx_export import export_onnx

    result = export_onnx(DEFAULT_MODEL_PATH, str(tmp_path / "t2.onnx"))
    assert result["source_sha256"] == ModelRef.resolve().sha256
    assert result["max_abs_difference_vs_interpreter"] <= 1e-3 and "per-row" in result["converter"]
    shipped = ort_cpu(ModelRef.resolve()).predict(probe_batch())
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(result["onnx"], options, providers=["CPUExecutionProvider"])
    rebuilt = session.run(None, {session.get_inputs()[0].name: probe_batch()})[0]
    np.testing.assert_allclose(rebuilt, shipped, atol=1e-6)


# --------------------------------------------------------------------------- the replay


def test_replay_device_gpu_without_a_gpu_fails_before_spark_starts(no_gpu, tmp_path, capsys):
    output = tmp_path / "out"
    assert main(["replay", SAMPLE_NIGHT, "--output", str(output), "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fink-t2 replay: error: --device gpu: no GPU visible") and "\n" not in err


@pytest.mark.slow
def test_replay_summary_says_which_backend_the_workers_ran(spark, tmp_path):
    from fink_t2.stream.replay import replay

    summary = replay(SAMPLE_NIGHT, str(tmp_path / "out"), device="cpu")  # the same on any machine
    assert summary["device"] == "cpu" and summary["backends"] and set(summary["backends"]) == {"cpu"}
    assert summary["gpu_fallback"] == [] and summary["alerts_in_output"] == 124
    written = json.loads((tmp_path / "out" / "_fink_t2_summary.json").read_text())
    assert written["backends"] == summary["backends"]
