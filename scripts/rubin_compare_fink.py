"""Fink's Rubin classifiers on a table of Rubin alerts, in a venv holding fink-science 8.x (run by rubin_compare.py).

    FINK_PY=/work/scratch/finkscience-venv/bin/python
    $FINK_PY scripts/rubin_compare_fink.py ALERTS.parquet SCORES.parquet TIMING.json

The venv (fink-science 8.x is not on PyPI; its snapshot and actsnfink's, which Early SN Ia imports, come from
their repositories)::

    python3.11 -m venv $V                       # V=/work/scratch/finkscience-venv
    echo $FINKVENV/lib/python3.11/site-packages > $V/lib/python3.11/site-packages/zz_finkvenv.pth
    echo $FINK_SCIENCE > $V/lib/python3.11/site-packages/fink_science_8_53.pth    # git archive of 8.53.0
    echo $ACTSNFINK > $V/lib/python3.11/site-packages/actsnfink.pth               # fink_sn_activelearning f424ab1
    $V/bin/pip install --no-deps pandas==1.5.3 scikit-learn==1.5.2 light-curve==0.10.4 iminuit==2.31.1 \
        tf-keras==2.19.0 actsnclass==1.2

where ``$FINKVENV`` is a venv with Fink's other Rubin pins (TensorFlow 2.19.0, SuperNNova 3.0.21, torch,
fink-utils, numpy 1.26.4). The snapshot lacks ``elasticc_rainbow_earlyIa_nometa.pkl`` (not stored): it is copied
from the fink-science 7.4.0 wheel, whose file has the same Git blob hash as 8.53.0's.

``ALERTS.parquet``: ``diaSourceId`` and the ``c*`` arrays Fink's Rubin stage builds with ``concat_col``
(``cmidpointMjdTai``, ``cpsfFlux``, ``cpsfFluxErr``, ``cband``: prvDiaSources then diaSource). Each module is
called as fink-broker's ``fink_broker/rubin/science.py`` calls it, through the function under its pandas UDF
(``.func``), on batches of ``--batch`` alerts, every thread pool pinned to one thread; the CPU and wall time of
each call are recorded. A module that cannot load or run is recorded with its error, never given numbers.

* SuperNNova ``snn_ia_elasticc(diaSourceId, cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr, model)`` with
  ``elasticc_binary_broad/SN_vs_other`` (production) and ``elasticc_ia`` (in fink-science, not in production);
* CATS ``predict_nn(cmidpointMjdTai, cpsfFlux, cpsfFluxErr, cband)``: five broad-class probabilities;
* Early SN Ia ``rfscore_rainbow_elasticc_nometa(cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr)``.

pandas: SuperNNova 3.0.21 one-hot encodes the bands with ``pd.get_dummies``, which gives bool columns under
pandas 2 (uint8 under pandas 1), and then fails in ``normalize_arr`` on the object array that follows ("loop of
ufunc does not support argument 0 of type float"). Fink's Rubin image as fink-docker last defined it pins
pandas 1.5.3 (``containerfs/rubin/deps/requirements.txt`` at c32012e, 2026-02-03, before fink-broker PR #1235,
with scikit-learn 1.5.2, light-curve 0.10.4, iminuit 2.31.1, TensorFlow 2.19.0), so the venv has those, and
SuperNNova 3.0.21 as Fink installs it. Since #1235 Fink's pandas is 2.3.3, under which 3.0.21 fails; CI's Fink
venv runs 3.0.51 there (docs/fink.md).

SuperNNova's model lists the y band as ``Y`` (its ``cli_args.json``), Rubin alerts write ``y``: in Fink's stage,
as here, a y-band point does not match the model's band names. The diagnostic module ``SNN_Y`` scores the same
alerts with ``y`` renamed ``Y``, to show what that costs; it is not what Fink runs.

CATS: fink-science 8.53 loads ``cats_small_nometa_serial_219_savedmodel`` (its TF 2.19 export of the CATS model);
that SavedModel's files are absent from the fink-science snapshot this machine has (Git LFS-sized blobs not
stored), while ``cats_small_nometa_serial.keras``, the same trained model as Keras 2 (fink-science 7.x loaded
it), is there. ``--cats-keras`` runs fink-science 8.53's own ``predict_nn`` with the layer it builds from the
SavedModel replaced by that Keras 2 model (read with tf_keras), whose output layer has the SavedModel's output
name (``dense_24``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

# bench_conditions.THREAD_VARIABLES, written out: importing bench_conditions imports pandas, so numpy's BLAS pool
# would start before this setting
THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                  "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
os.environ.update(THREADS)

import numpy as np
import pandas as pd

#: SuperNNova SN_vs_other with the y band named as its model names it (diagnostic, see the module doc)
SNN_Y = "SuperNNova SN_vs_other, y named Y (diagnostic)"
SNN_MODELS = {"SuperNNova SN_vs_other": "elasticc_binary_broad/SN_vs_other", "SuperNNova elasticc_ia": "elasticc_ia"}
CATS_CLASSES = ("SN-like", "Fast", "Long", "Periodic", "non-Periodic (AGN)")


def pin_libraries() -> dict:
    import tensorflow as tf
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return {"torch": torch.__version__, "tensorflow": tf.__version__, "torch_threads": torch.get_num_threads()}


def keras2_cats_layer(path: str):
    """A Keras 3 layer running the Keras 2 CATS model at ``path``, returning ``{"dense_24": probabilities}``
    as the SavedModel's ``serving_default`` endpoint does."""
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(path)

    class Keras2Cats(tf.keras.layers.Layer):
        def call(self, inputs):
            return {"dense_24": model(inputs, training=False)}

        def compute_output_spec(self, inputs):
            return {"dense_24": tf.keras.KerasTensor((inputs.shape[0], len(CATS_CLASSES)), dtype="float32")}

    return Keras2Cats()


def load_modules(cats_keras: bool) -> tuple[dict, dict]:
    """(name → call(batch) → scores, name → error of a module that could not load)."""
    modules, errors = {}, {}
    try:
        from fink_science.rubin.snn import processor as snn

        for name, model in SNN_MODELS.items():
            modules[name] = (lambda b, m=model: snn.snn_ia_elasticc.func(
                b["diaSourceId"], b["cmidpointMjdTai"], b["cband"], b["cpsfFlux"], b["cpsfFluxErr"],
                pd.Series([m] * len(b))).to_numpy(np.float64))
        modules[SNN_Y] = lambda b: modules["SuperNNova SN_vs_other"](
            b.assign(cband=[np.where(bands == "y", "Y", bands) for bands in b["cband"]]))
    except Exception:
        errors.update({name: traceback.format_exc(limit=3) for name in [*SNN_MODELS, SNN_Y]})
    try:
        if cats_keras:
            import fink_science
            import tensorflow as tf

            path = os.path.join(os.path.dirname(fink_science.__file__), "data", "models", "cats_models",
                                "cats_small_nometa_serial.keras")
            layer = keras2_cats_layer(path)
            tf.keras.layers.TFSMLayer = lambda *args, **kwargs: layer
        from fink_science.rubin.cats import processor as cats

        modules["CATS"] = (lambda b: np.array(cats.predict_nn.func(
            b["cmidpointMjdTai"], b["cpsfFlux"], b["cpsfFluxErr"], b["cband"]).tolist(), dtype=np.float64))
    except Exception:
        errors["CATS"] = traceback.format_exc(limit=3)
    try:
        from fink_science.rubin.random_forest_snia import processor as rf

        modules["Early SN Ia"] = (lambda b: rf.rfscore_rainbow_elasticc_nometa.func(
            b["cmidpointMjdTai"], b["cband"], b["cpsfFlux"], b["cpsfFluxErr"]).to_numpy(np.float64))
    except Exception:
        errors["Early SN Ia"] = traceback.format_exc(limit=3)
    return modules, errors


def columns(table: pd.DataFrame) -> pd.DataFrame:
    """Float arrays for the numbers (SuperNNova 3.0.21 under pandas 2 fails on object arrays), str for bands."""
    out = pd.DataFrame({"diaSourceId": table["diaSourceId"].astype(np.int64)})
    for name in ("cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr"):
        out[name] = [np.asarray(v, dtype=np.float64) for v in table[name]]
    out["cband"] = [np.asarray(v, dtype=str) for v in table["cband"]]
    return out


def run(alerts: pd.DataFrame, modules: dict, errors: dict, batch: int) -> tuple[dict, dict]:
    scores, timing = {}, {}
    for name, call in modules.items():
        parts, cpu, wall = [], 0.0, 0.0
        try:
            for start in range(0, len(alerts), batch):
                part = alerts.iloc[start:start + batch].reset_index(drop=True)
                c0, w0 = time.process_time(), time.perf_counter()
                parts.append(call(part))
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
        except Exception:
            errors[name] = traceback.format_exc(limit=4)
            continue
        scores[name] = np.concatenate(parts)
        timing[name] = {"alerts": len(alerts), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                        "alerts_per_cpu_s": round(len(alerts) / cpu, 1) if cpu else None,
                        "alerts_per_wall_s": round(len(alerts) / wall, 1) if wall else None}
        print(f"{name}: {len(alerts)} alerts in {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return scores, timing


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alerts")
    parser.add_argument("scores")
    parser.add_argument("timing")
    parser.add_argument("--batch", type=int, default=1000, help="alerts per call (about one Arrow batch)")
    parser.add_argument("--cats-keras", action="store_true", help="CATS from its Keras 2 file (see the doc)")
    args = parser.parse_args(argv)
    versions = pin_libraries()
    alerts = columns(pd.read_parquet(args.alerts))
    modules, errors = load_modules(args.cats_keras)
    scores, timing = run(alerts, modules, errors, args.batch)
    out = pd.DataFrame({"diaSourceId": alerts["diaSourceId"]})
    for name, values in scores.items():
        if values.ndim == 2:
            for k, cls in enumerate(CATS_CLASSES):
                out[f"{name}:{cls}"] = values[:, k]
        else:
            out[name] = values
    out.to_parquet(args.scores)
    from importlib.metadata import PackageNotFoundError, version

    import fink_science

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    versions.update({"fink_science": fink_science.__version__, "fink_science_path": os.path.dirname(fink_science.__file__),
                     "python": sys.version.split()[0], "pandas": pd.__version__, "numpy": np.__version__,
                     **{name: installed(name) for name in ("fink-utils", "supernnova", "scikit-learn", "light-curve",
                                                           "iminuit", "tf-keras", "actsnclass")}})
    with open(args.timing, "w") as stream:
        json.dump({"timing": timing, "errors": errors, "versions": versions, "threads": THREADS,
                   "batch": args.batch, "cats_from_keras2_file": args.cats_keras,
                   "load_average_after": [round(x, 2) for x in os.getloadavg()]}, stream, indent=1)


if __name__ == "__main__":
    main()
