"""t2 beside Fink's Rubin classifiers on PLAsTiCC held-out objects packed as lsst.v10_0 alerts → docs/rubin.{json,png,md}.

    python scripts/rubin_compare.py --fink-python $FINK_PYTHON   # or with $FINK_PYTHON set
    python scripts/rubin_compare.py --page           # docs/rubin.md and .png again from docs/rubin.json

1. The views: every fold's held-out objects of the shipped Rubin model's cross-validation (the split, fold
   count, seed and recipe recorded in ``fink_t2/data/t2_lsst_metrics.json``; :mod:`fink_t2.model.rubin_views`),
   at most ``--objects`` of them per fold (class-stratified, seeded), each seen at the alerts its
   cross-validation scored (one seeded detection per alert-age bucket), packed as ``lsst.v10_0`` packets into a
   parquet file per fold and read back with :func:`fink_t2.alerts.rubin.read_rubin_table` (the ``c*`` columns
   Fink's Rubin stage builds).
2. t2: the shipped model was trained on every PLAsTiCC object, so its quality is judged by the fold models,
   each retrained here by the cross-validation's code with the recorded recipe (cached in
   ``build/rubin_compare``) and scoring only its own fold's held-out objects; the shipped model is also scored,
   marked as having seen these objects. Its speed is the shipped model's, through the pandas UDF Fink's Rubin
   stage calls (``t2_rubin_udf().func``), one thread, over every fold's alerts.
3. Fink's modules run in their own venv (``--fink-python``, default ``$FINK_PYTHON``; how to build it:
   ``scripts/rubin_compare_fink.py``), once over every fold's alerts (they saw none of them in training).
4. Figures per fold and pooled over the folds' alerts; targets judged per fold and pooled.
5. The 32 real Rubin alerts of ``lsst_alerts/`` go through every module.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_conditions import conditions, pin_threads, provenance, sha256

pin_threads(1)
os.environ.setdefault("FINK_T2_DEVICE", "cpu")

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rubin_compare_metrics as rm
from rubin_compare_real import fink_stored, stored_check

BUILD = ROOT / "build" / "rubin_compare"
METRICS = ROOT / "fink_t2" / "data" / "t2_lsst_metrics.json"
REAL_FILES = ("rubin_sample_data_10_0.parquet", "part-2-918301.avro")
T2_HELD_OUT, T2_SHIPPED = "t2", "t2 shipped (trained on these objects)"


def fold_model_path(metrics: dict, data_dir, fold: int) -> tuple[Path, dict]:
    """``fold``'s model file (trained once, then reused) and its training record."""
    path, record = BUILD / f"t2_lsst_fold{fold}.tflite", BUILD / f"t2_lsst_fold{fold}.json"
    if not path.is_file() or json.loads(record.read_text()).get("metrics_created") != metrics["created"]:
        from fink_t2.model.rubin_views import fold_model

        start = time.time()
        content, _, info = fold_model(metrics, data_dir, fold=fold)
        BUILD.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        record.write_text(json.dumps({"training": info, "seconds": round(time.time() - start, 1),
                                      "metrics_created": metrics["created"]}, indent=1))
    return path, json.loads(record.read_text())


def plasticc_views(data_dir, seed: int):
    """(light curves, objects, the cross-validation's alert views of every object): loaded once for all folds."""
    from fink_t2.model.plasticc import load_plasticc
    from fink_t2.model.plasticc_alerts import PER_BUCKET, detection_table, sample_alerts

    lc, objects = load_plasticc(data_dir)
    table = detection_table(lc)
    return lc, objects, table.iloc[sample_alerts(table, PER_BUCKET, seed)]


def heldout_alerts(metrics: dict, n_objects: int | None, data, fold: int):
    """(alert table of ``fold``'s packed views, their labels/buckets, description, the CV's own inputs)."""
    from fink_t2.alerts.rubin import read_rubin_table
    from fink_t2.model.plasticc_alerts import rubin_bucket_names
    from fink_t2.model.rubin_views import alert_records, heldout_ids, sample_ids

    seed, n_folds = metrics["recipe"]["seed"], metrics["cross_validation"]["n_folds"]
    lc, objects, views = data
    _, test = heldout_ids(objects, n_folds, seed, fold=fold)
    picked = sample_ids(objects, test, n_objects, seed)
    views = views[views["object_id"].isin(picked)].reset_index(drop=True)
    path = BUILD / f"heldout_views_fold{fold}_lsst_v10_0.parquet"
    BUILD.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(alert_records(lc, views)), path)
    alerts = read_rubin_table(path)
    if alerts.column("ingest_error").null_count != alerts.num_rows or alerts.num_rows != len(views):
        raise RuntimeError(f"{path}: the packed views did not read back whole")
    names = rubin_bucket_names()
    label = objects.set_index("object_id")["label"]
    info = pd.DataFrame({"fold": fold, "object_id": views["object_id"], "label": views["object_id"].map(label).to_numpy(),
                         "bucket": [names[b] for b in views["bucket"]], "age": views["age"], "k": views["k"]})
    from fink_t2.model.plasticc_alerts import view_inputs
    from fink_t2.model.plasticc_run import spec_of

    cv_inputs = view_inputs(lc, views, spec_of(metrics["setting"], metrics["view"]))  # the cross-validation's own
    described = {"fold": fold, "heldout_objects": int(len(test)),
                 "objects": int(len(picked)), "alerts": int(len(views)), "file": str(path.relative_to(ROOT)),
                 "classes": info.drop_duplicates("object_id")["label"].value_counts().sort_index().to_dict()}
    return alerts, info, described, cv_inputs


def packing_check(model_path, cv_inputs: np.ndarray, result: dict) -> dict:
    """How far t2's probabilities on the packed alerts (built from the packets by the Rubin module) are from its
    probabilities on the cross-validation's own views of the same alerts, over the alerts t2 classifies."""
    from fink_t2.runtime.inference import T2Model

    ok = result["status"] == "ok"
    direct = T2Model(str(model_path)).predict(cv_inputs[ok])
    return {"alerts_compared": int(ok.sum()),
            "max_abs_probability_difference": float(np.abs(direct - result["proba"][ok]).max()) if ok.any() else None}


def t2_columns(alerts: pa.Table) -> list[pd.Series]:
    from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS

    return [alerts.column(name).to_pandas() for name in CLASSIFIER_INPUTS]


def classify_t2(alerts: pa.Table, model_path) -> dict:
    from fink_t2.core.rubin_classifier import classify_rubin_columns
    from fink_t2.runtime.inference import T2Model

    model = T2Model(str(model_path))
    result = classify_rubin_columns(*t2_columns(alerts), model)
    return {"status": np.asarray(result.status, dtype=object), "proba": np.asarray(result.proba, dtype=np.float64),
            "decision": list(result.label), "class_names": list(model.class_names)}


def time_t2(alerts: pa.Table, status: np.ndarray, repeats: int, batch: int) -> dict:
    """alerts/s of the Rubin UDF's function (shipped model), on every view and on those passing the cuts only."""
    from fink_t2.rubin_processor import t2_rubin_udf

    func = t2_rubin_udf().func
    out = {}
    for name, rows in (("t2 realistic", np.arange(alerts.num_rows)), ("t2 every alert classified", np.flatnonzero(status == "ok"))):
        table = alerts.take(pa.array(rows))
        columns = t2_columns(table)
        func(*[c.iloc[:10].reset_index(drop=True) for c in columns])  # model loaded once per worker, before timing
        walls, cpus = [], []
        for _ in range(repeats):
            wall = cpu = 0.0
            for start in range(0, len(rows), batch):
                part = [c.iloc[start:start + batch].reset_index(drop=True) for c in columns]
                c0, w0 = time.process_time(), time.perf_counter()
                func(*part)
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
            walls.append(wall)
            cpus.append(cpu)
        wall, cpu = float(np.median(walls)), float(np.median(cpus))
        out[name] = {"alerts": int(len(rows)), "repeats": repeats, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                     "alerts_per_wall_s": round(len(rows) / wall, 1), "alerts_per_cpu_s": round(len(rows) / cpu, 1),
                     "classified_fraction": float(np.mean(status[rows] == "ok"))}
    return out


def run_fink(fink_python: str, alerts: pa.Table, tag: str, batch: int) -> tuple[dict, dict]:
    """Fink's modules on ``alerts`` in their venv: (name → scores, timing record)."""
    path, scores, timing = (BUILD / f"{tag}_{x}" for x in ("alerts.parquet", "fink_scores.parquet", "fink_timing.json"))
    pq.write_table(alerts.select(["diaSourceId", "cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband"]), path)
    env = {**os.environ, "PYTHONPATH": ""}
    command = [fink_python, str(ROOT / "scripts" / "rubin_compare_fink.py"), str(path), str(scores), str(timing),
               "--batch", str(batch), "--cats-keras"]
    subprocess.run(command, check=True, env=env, cwd=BUILD)
    frame = pd.read_parquet(scores)
    out = {c: frame[c].to_numpy(np.float64) for c in frame.columns if c != "diaSourceId" and ":" not in c}
    cats = [c for c in frame.columns if c.startswith("CATS:")]
    if cats:
        out["CATS"] = frame[cats].to_numpy(np.float64)
    return out, json.loads(timing.read_text())


def real_alerts(data_dir, fink_python: str, batch: int) -> tuple[list[dict], dict]:
    from fink_t2.alerts.rubin import read_rubin_table
    from fink_t2.model.plasticc import CLASS_NAMES
    from fink_t2.paths import LSST_MODEL_PATH, shared_data_dir

    folder = (Path(data_dir) if data_dir else shared_data_dir()) / "lsst_alerts"
    alerts = pa.concat_tables([read_rubin_table(folder / name) for name in REAL_FILES])
    t2 = classify_t2(alerts, LSST_MODEL_PATH)
    fink, timing = run_fink(fink_python, alerts, "real", batch)
    outputs = rm.module_outputs({T2_SHIPPED: t2}, fink, list(CLASS_NAMES),
                                rm.log_flux_ratio(alerts.column("cpsfFlux").to_pylist()))
    stored = fink_stored(folder / REAL_FILES[1])
    rows = []
    for i in range(alerts.num_rows):
        row = {"file": Path(alerts.column("source_file")[i].as_py() or "").name,
               "diaSourceId": alerts.column("diaSourceId")[i].as_py(), "band": alerts.column("band")[i].as_py(),
               "detections": len(alerts.column("cmidpointMjdTai")[i].as_py() or []),
               "forced": len(alerts.column("fmidpointMjdTai")[i].as_py() or []),
               "t2_status": t2["status"][i], "t2_decision": t2["decision"][i],
               "t2_p_sn": None if t2["status"][i] != "ok" else float(outputs[T2_SHIPPED]["sn"][i])}
        for name, values in fink.items():
            row[name] = [round(float(v), 4) for v in values[i]] if values.ndim == 2 else round(float(values[i]), 4)
        row["fink_stored"] = stored.get(row["diaSourceId"])
        rows.append(row)
    return rows, {"errors": timing["errors"]}


def heldout_folds(metrics: dict, n_objects: int | None, data_dir):
    """Every fold: its model (trained once, cached), its held-out alerts and t2's results on them (the fold's
    model and the shipped one). Returns (per-fold records, every fold's alerts, their info, pooled t2 results)."""
    from fink_t2.paths import LSST_MODEL_PATH

    data = plasticc_views(data_dir, metrics["recipe"]["seed"])
    folds, parts = [], []
    for fold in range(metrics["cross_validation"]["n_folds"]):
        path, record = fold_model_path(metrics, data_dir, fold)
        alerts, info, views, cv_inputs = heldout_alerts(metrics, n_objects, data, fold)
        t2 = {T2_HELD_OUT: classify_t2(alerts, path), T2_SHIPPED: classify_t2(alerts, LSST_MODEL_PATH)}
        views["packing_check"] = packing_check(path, cv_inputs, t2[T2_HELD_OUT])
        folds.append({"fold": fold, "views": views,
                      "model": {"file": str(path.relative_to(ROOT)), "sha256": sha256(path), **record}})
        parts.append((alerts, info, t2))
    pooled = {name: rm.concat_results([t2[name] for _, _, t2 in parts]) for name in (T2_HELD_OUT, T2_SHIPPED)}
    return (folds, pa.concat_tables([a for a, _, _ in parts]), pd.concat([i for _, i, _ in parts], ignore_index=True),
            pooled)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="shared data (default: $FINK_T2_DATA, else ../shared/data)")
    parser.add_argument("--objects", type=int, default=None, help="held-out objects to pack per fold (default: all)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder of rubin.json, rubin.png, rubin.md")
    parser.add_argument("--fink-python", default=os.environ.get("FINK_PYTHON"),
                        help="python of a venv with fink-science 8.x (default: $FINK_PYTHON)")
    parser.add_argument("--batch", type=int, default=1000, help="alerts per module call")
    parser.add_argument("--repeats", type=int, default=3, help="timings of t2 (median)")
    parser.add_argument("--page", action="store_true", help="only render rubin.md and rubin.png from rubin.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    import rubin_compare_page as page

    if args.page:
        return page.write(json.loads((out / "rubin.json").read_text()), out)
    if not args.fink_python:
        raise SystemExit("rubin_compare.py: no Fink venv: pass --fink-python or set $FINK_PYTHON to the python of a "
                         "venv with fink-science 8.x (how to build it: the docstring of scripts/rubin_compare_fink.py)")
    from fink_t2.model.plasticc_alerts import rubin_bucket_names
    from fink_t2.paths import LSST_MODEL_PATH

    start = time.time()
    before = conditions()
    metrics = json.loads(METRICS.read_text())
    folds, alerts, info, t2 = heldout_folds(metrics, args.objects, args.data_dir)
    throughput = time_t2(alerts, t2[T2_SHIPPED]["status"], args.repeats, args.batch)
    fink, fink_run = run_fink(args.fink_python, alerts, "heldout", args.batch)
    throughput.update(fink_run["timing"])
    outputs = rm.module_outputs(t2, fink, t2[T2_HELD_OUT]["class_names"],
                                rm.log_flux_ratio(alerts.column("cpsfFlux").to_pylist()))
    names = [b for b in rubin_bucket_names() if (info["bucket"] == b).any()]
    labels, buckets_of, fold_of = info["label"].to_numpy(), info["bucket"].to_numpy(), info["fold"].to_numpy()
    for entry in folds:
        m = fold_of == entry["fold"]
        entry["buckets"] = rm.bucket_scores(labels[m], buckets_of[m], names, rm.subset(outputs, m))
        entry["targets"] = rm.targets(entry["buckets"], throughput, T2_HELD_OUT)
    buckets = rm.bucket_scores(labels, buckets_of, names, outputs)
    real, real_run = real_alerts(args.data_dir, args.fink_python, args.batch)
    result = {
        "command": shlex.join(["python", "scripts/rubin_compare.py", *(argv if argv is not None else sys.argv[1:])]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": None,
        "provenance": provenance(LSST_MODEL_PATH) | {"fold_model_sha256": [f["model"]["sha256"] for f in folds],
                                                     "metrics_created": metrics["created"]},
        "fold_models_trained_by": "fink_t2.model.rubin_views.fold_model (the cross-validation's fit, temperature and "
                                  "dynamic-range TFLite export, with the recipe of t2_lsst_metrics.json)",
        "views": rm.pooled_views(folds, metrics["cross_validation"]["n_folds"], metrics["recipe"]["seed"]),
        "sn_classes": list(rm.SN_CLASSES), "ia_classes": list(rm.IA_CLASSES),
        "thresholds": rm.THRESHOLDS, "modules": list(outputs), "module_errors": fink_run["errors"],
        "fink": {"versions": fink_run["versions"], "threads": fink_run["threads"], "batch": fink_run["batch"],
                 "cats_from_keras2_file": fink_run["cats_from_keras2_file"]},
        "buckets": buckets, "throughput": throughput, "folds": folds,
        "targets": rm.targets(buckets, throughput, T2_HELD_OUT), "targets_per_fold": rm.fold_tally(folds),
        "real_alerts": real, "real_alert_errors": real_run["errors"], "real_alerts_check": stored_check(real),
        "conditions_before": before, "conditions_after": conditions(),
    }
    result["seconds"] = round(time.time() - start, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rubin.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    page.write(result, out)
    print(f"wrote {out / 'rubin.json'} in {result['seconds']} s")
    return result


if __name__ == "__main__":
    main()
