"""The Rubin model (``fink_t2/data/t2_lsst.tflite``, ugrizy, and its ONNX conversion ``t2_lsst.onnx``) on this
machine's GPU: the ``rubin`` section of scripts/gpu_check.py's JSON.

What it holds: each GPU route alone for the Rubin model, and the one ``auto`` chooses; agreement of each
usable backend (and of PyTorch on the CPU where torch is installed) with the CPU interpreter on real alerts
(the Rubin and ELAsTiCC sample alerts of ``../shared/data/lsst_alerts`` that pass the cuts, and the PLAsTiCC
last-detection alert views of the model's guard objects, where the shared data is there); alerts/s of the
model alone at each batch size on one CPU core and on each usable GPU backend (Rubin-shaped inputs, 64 × 22);
and the Rubin classify core (cuts, sequences, model) on the sample alerts replicated to ``PIPELINE_ALERTS``.
Nothing here needs a GPU: without one each GPU part says why it was not run.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_t2.alerts.rubin import iter_rubin_tables
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.core.spec import spec_from_contract
from fink_t2.paths import LSST_MODEL_PATH, shared_data_dir
from fink_t2.runtime.inference import T2Model
from fink_t2.runtime.model_ref import ModelRef

#: the real Rubin-format sample files (../shared/data/lsst_alerts): Rubin lsst.v10_0, Fink's Rubin output, ELAsTiCC
SAMPLES = ("rubin_sample_data_10_0.parquet", "part-2-918301.avro", "elasticc_sample_seed0.parquet")
#: the largest batch timed (a 64 × 22 input is 5.6 kB: 16,384 alerts are 92 MB)
MAX_BATCH = 16384
PIPELINE_ALERTS = 20_000


def sample_alerts(data_dir=None) -> pd.DataFrame | None:
    """The Rubin-format sample alerts as one table (None when the shared data is not on this machine)."""
    folder = shared_data_dir() / "lsst_alerts" if data_dir is None else data_dir / "lsst_alerts"
    tables = [pa.concat_tables(iter_rubin_tables(folder / name)).to_pandas() for name in SAMPLES
              if (folder / name).is_file()]
    return pd.concat(tables, ignore_index=True) if tables else None


def real_sequences(ref, alerts, data_dir=None) -> dict:
    """Model inputs of real alerts: the sample alerts that pass the cuts, and the PLAsTiCC guard alert views."""
    seen = []

    class Recorder:
        class_names, contract = ref.class_names, ref.contract

        def predict(self, x):
            seen.append(np.array(x))
            return np.zeros((len(x), len(self.class_names)), np.float32)

    out = {}
    if alerts is not None:
        classify_rubin_columns(*(alerts[c] for c in CLASSIFIER_INPUTS), Recorder())
        out["rubin_elasticc_samples"] = np.concatenate(seen)
    folder = shared_data_dir() if data_dir is None else data_dir
    if (folder / "plasticc").is_dir():
        from fink_t2.model.plasticc_guard import guard_inputs

        out["plasticc_guard_views"] = guard_inputs("rubin", spec_from_contract(ref.contract), data_dir=folder)[0]
    return out


def pipeline(models: dict, alerts: pd.DataFrame, n_alerts: int, spec) -> dict:
    """The Rubin classify core (cuts, sequences, model) on the sample alerts replicated to ``n_alerts``."""
    df = pd.concat([alerts] * int(np.ceil(n_alerts / len(alerts))), ignore_index=True)
    columns = [df[c] for c in CLASSIFIER_INPUTS]
    start = time.perf_counter()
    status = classify_rubin_columns(*columns, None, spec=spec).status
    cuts_s = time.perf_counter() - start
    result = {"alerts": int(len(df)), "cuts_and_sequences": {"seconds": round(cuts_s, 2),
                                                            "alerts_to_model": int((status == "ok").sum())}}
    for backend, model in models.items():
        classify_rubin_columns(*(c[:500] for c in columns), model)  # warm-up
        start = time.perf_counter()
        classify_rubin_columns(*columns, model)
        total = time.perf_counter() - start
        result[backend] = {"seconds": round(total, 2), "alerts_per_s": round(len(df) / total, 1)}
    return result


def rubin_report(check, batches, budget_s: float, data_dir=None) -> dict:
    """The ``rubin`` section; ``check``: the gpu_check module (its routes, agreement, model_alone, overtakes)."""
    ref = ModelRef.resolve(LSST_MODEL_PATH)
    report = {"model": ref.path, "model_sha256": ref.sha256,
              "input_shape": [ref.contract["sequence_length"], len(ref.contract["channels"])]}
    report["routes"], usable = check.routes(ref)
    one_core = T2Model(ref.path, contract=ref.contract, num_threads=1)
    alerts = sample_alerts(data_dir)
    data = real_sequences(ref, alerts, data_dir)
    report["real_alerts"] = {name: int(len(x)) for name, x in data.items()}
    comparisons = dict(usable)
    if "torch-cuda" not in usable:  # the same ONNX route on the CPU, where torch is installed
        try:
            from fink_t2.runtime.gpu_onnx import T2TorchModel

            comparisons["torch-cpu"] = T2TorchModel(ref, "cpu")
        except ImportError as err:
            report["torch_cpu"] = f"not installed ({err.name or err})"
    report["agreement"] = check.agreement(comparisons, data, one_core)
    cpu_key = "cpu-1-core"
    rates = check.model_alone({cpu_key: one_core, **usable}, [b for b in batches if b <= MAX_BATCH], budget_s,
                              contract=ref.contract)
    report["model_alone_alerts_per_s"] = rates
    report["gpu_overtakes_one_core_at_batch"] = check.overtakes(rates, cpu_key)
    if alerts is not None:
        report["pipeline"] = pipeline({cpu_key: one_core, **usable}, alerts, PIPELINE_ALERTS,
                                      spec_from_contract(ref.contract))
    return report
