"""Preprocessing study: a 2-D GP (the paper's) vs production ``build_sequences`` on the alert's 30-day window.

    python scripts/preprocessing_study.py           # 100k replicated alerts; CV on 600 BTS objects (3 folds)
    python scripts/preprocessing_study.py --quick   # 20k alerts; 200 objects, 2 folds, 4 epochs → build/quick_docs/

Reference (Allam, Peloton & McEwen 2023): per alert, a Gaussian process with an anisotropic Matérn-3/2
kernel over (time, wavelength) — ZTF g 4804.79 Å, r 6436.92 Å — fitted (hyper-parameters by
maximum likelihood, scikit-learn's GaussianProcessRegressor) on the g/r detections with their errors.
Here it is fitted on what an alert carries (the detections of the 30 days before its epoch) and
evaluated on the same 31 daily nodes, peak-scaled: it replaces the two flux channels of
``build_sequences`` (nearest-node binning + linear interpolation); the other channels (observed masks,
age, ``ndethist``, brightness) are the production ones, so only the interpolation differs.

Production (``fink_t2.core.sequences.build_sequences``): one vectorised numpy pass for the whole batch.

1. Speed of the preprocessing alone, in one process (BLAS threads 1, CPU time): real ZTF alerts
   of ``fink_t2.paths.SAMPLE_NIGHT`` replicated to a large batch, and BTS alert views.
2. Quality: grouped, stratified K-fold cross-validation (``fink_t2.model.datasets.cv_folds``) on a
   seeded subsample of BTS objects, the same t2 network and training views (the recipe's
   ``views_per_bucket`` per object and age bucket) under each preprocessing, same seed, epochs and
   class weights; float model scored on the held-out objects' sampled alert views per age bucket
   (``fink_t2.model.evaluate.bucket_metrics``: objects weighted equally, log-loss vs the prior).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fink_t2.alerts import iter_alert_tables
from fink_t2.core.sequences import (
    GRID_STEP_DAYS,
    SEQUENCE_LENGTH,
    VALID_MAG_RANGE,
    WINDOW_DAYS,
    build_sequences,
    mag_to_flux_ujy,
)
from fink_t2.model.datasets import CLASS_NAMES, cv_folds, load_bts, object_table
from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA

WAVELENGTH = {1: 4804.79, 2: 6436.92}  # Å, ZTF g and r


def gp_flux(jd, fid, mag, magerr, jd_now) -> np.ndarray:
    """The paper's 2-D GP on an alert's 30-day window: (31, 2) peak-scaled g/r flux on the production nodes."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    jd, fid, mag, magerr = (np.asarray(a, dtype=np.float64) for a in (jd, fid, mag, magerr))
    with np.errstate(invalid="ignore"):
        ok = np.isin(fid, (1, 2)) & np.isfinite(jd) & np.isfinite(mag) & (mag >= VALID_MAG_RANGE[0]) \
            & (mag <= VALID_MAG_RANGE[1]) & (jd <= jd_now) & (jd >= jd_now - WINDOW_DAYS - 0.5)
    out = np.zeros((SEQUENCE_LENGTH, 2), np.float32)
    if ok.sum() < 2:
        return out
    jd, fid, mag = jd[ok], fid[ok], mag[ok]
    err = np.where(np.isfinite(magerr[ok]) & (magerr[ok] > 0), magerr[ok], 0.1)
    flux = mag_to_flux_ujy(mag)
    y = flux / flux.max()
    y_err = y * err * np.log(10) / 2.5
    x = np.column_stack([jd - jd_now, np.vectorize(WAVELENGTH.get)(fid.astype(int))])
    kernel = ConstantKernel(1.0, (1e-3, 1e2)) * Matern(length_scale=[20.0, 6000.0],
                                                       length_scale_bounds=[(1.0, 1e3), (1e2, 1e5)], nu=1.5)
    gp = GaussianProcessRegressor(kernel, alpha=y_err ** 2 + 1e-6, normalize_y=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(x, y)
    nodes = -WINDOW_DAYS + GRID_STEP_DAYS * np.arange(SEQUENCE_LENGTH)
    query = np.concatenate([np.column_stack([nodes, np.full(SEQUENCE_LENGTH, WAVELENGTH[f])]) for f in (1, 2)])
    pred = gp.predict(query).reshape(2, SEQUENCE_LENGTH).T
    scale = np.abs(pred).max()
    return (pred / scale if scale > 0 else pred).astype(np.float32)


def sample_alerts(n_target: int):
    """Real alerts of the sample night replicated to ``n_target``: ragged c* columns and header fields."""
    df = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    n_real = len(df)
    df = pd.concat([df] * int(np.ceil(n_target / n_real)), ignore_index=True).iloc[:n_target]
    return df, n_real


def bts_with_errors(data_dir) -> pd.DataFrame:
    """BTS detections (``load_bts``) with their ``magerr`` (same rows, same order)."""
    bts = load_bts(data_dir)
    lc = pd.read_csv(Path(data_dir) / "ztf_bts" / "lightcurves.csv.gz")
    lc = lc[lc["band"].isin(["g", "r"])]
    key = lambda o, mjd, band: pd.MultiIndex.from_arrays([o, np.round(mjd, 6), band])
    err = pd.Series(lc["magerr"].to_numpy(), index=key(lc["objectId"].astype(str), lc["mjd"].to_numpy() - 0, lc["band"]))
    err = err[~err.index.duplicated()]
    band = np.where(bts["fid"].to_numpy() == 1, "g", "r")
    mjd = bts["jd"].to_numpy() - 2400000.5
    return bts.assign(magerr=err.reindex(key(bts["object_id"], mjd, band)).to_numpy())


def views_with_errors(table: pd.DataFrame):
    """(alert views, the same views' ``magerr`` as their ``mag``): one alert_views call each."""
    from fink_t2.model.views import alert_views

    return alert_views(table), alert_views(table.assign(mag=table["magerr"]))


def view_tensors(views, errors, kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(inputs, kept mask, seconds): production channels, flux channels from the GP when ``kind`` is 'gp'."""
    start = time.process_time()
    seq = build_sequences(views.jd, views.fid, views.mag, None, views.jd_now, views.jdstarthist, views.ndethist,
                          offsets=views.offsets)
    x = seq.values.copy()
    if kind == "gp":
        o = views.offsets
        for i in range(len(views)):
            s = slice(o[i], o[i + 1])
            x[i, :, :2] = gp_flux(views.jd[s], views.fid[s], views.mag[s], errors.mag[s], views.jd_now[i])
    return x, seq.n_epochs >= 2, time.process_time() - start


def time_it(fn, min_seconds=1.0):
    """CPU seconds of this (single-threaded) process per call: alerts/s/core even on a busy machine."""
    fn()
    start, n = time.process_time(), 0
    while time.process_time() - start < min_seconds or n == 0:
        fn()
        n += 1
    return (time.process_time() - start) / n


def speed(n_alerts: int, n_gp: int, bts: pd.DataFrame) -> dict:
    from fink_t2.model.views import sample_views

    df, n_real = sample_alerts(n_alerts)
    cols = (df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos)
    prod_s = time_it(lambda: build_sequences(*cols, jdstarthist=df.jdstarthist, ndethist=df.ndethist))
    start = time.process_time()
    for i in range(min(n_gp, n_alerts)):
        gp_flux(df.cjd[i], df.cfid[i], df.cmagpsf[i], df.csigmapsf[i], df.cjd[i][-1])
    gp_s = (time.process_time() - start) / min(n_gp, n_alerts)
    views, errors = views_with_errors(bts)
    pick = sample_views(views, 1, seed=0)
    pick_err = sample_views(errors, 1, seed=0)
    bts_s = time_it(lambda: view_tensors(pick, pick_err, "production"))
    sub = np.random.default_rng(0).choice(len(pick), min(n_gp, len(pick)), replace=False)
    gp_bts_s = view_tensors(pick.select(sub), pick_err.select(sub), "gp")[2] / len(sub)
    return {
        "sample_night_alerts": {"real_alerts": n_real, "replicated_to": n_alerts,
                                "mean_points_per_alert": float(np.mean([len(c) for c in df.cjd])),
                                "production_alerts_per_s_per_core": n_alerts / prod_s,
                                "gp_alerts_per_s_per_core": 1.0 / gp_s, "gp_alerts_timed": min(n_gp, n_alerts)},
        "bts_alert_views": {"views": int(len(pick)), "mean_points_per_view": float(np.mean(np.diff(pick.offsets))),
                            "production_alerts_per_s_per_core": len(pick) / bts_s,
                            "gp_alerts_per_s_per_core": 1.0 / gp_bts_s, "gp_alerts_timed": int(len(sub))},
    }


def quality(bts: pd.DataFrame, n_objects: int, n_folds: int, epochs: int, seed: int) -> dict:
    """Per age bucket, mean over folds of macro-F1 and log-loss (and the prior's) for each preprocessing."""
    from fink_t2.core.classifier import Classification
    from fink_t2.model.architecture import build_model, keras
    from fink_t2.model.evaluate import bucket_metrics, class_prior
    from fink_t2.model.train import Recipe, class_weights, set_seeds
    from fink_t2.model.views import sample_views

    recipe = Recipe()
    objects = object_table(bts)
    keep = np.random.default_rng(seed).permutation(objects["object_id"].to_numpy())[:n_objects]
    objects = objects[objects["object_id"].isin(keep)]
    index = {c: i for i, c in enumerate(CLASS_NAMES)}
    folds = {"production": [], "gp": []}
    seconds = {"production": 0.0, "gp": 0.0}
    for train_ids, test_ids in cv_folds(objects, n_folds, seed):
        parts = {}
        for part, ids in (("train", train_ids), ("test", test_ids)):
            views, errors = views_with_errors(bts[bts["object_id"].isin(ids)])
            parts[part] = (sample_views(views, recipe.views_per_bucket, seed),
                           sample_views(errors, recipe.views_per_bucket, seed))
        prior = class_prior(objects.set_index("object_id").loc[train_ids, "label"])
        for kind in folds:
            (tv, te), (xv, xe) = parts["train"], parts["test"]
            x, ok, s1 = view_tensors(tv, te, kind)
            x_test, ok_test, s2 = view_tensors(xv, xe, kind)
            seconds[kind] += s1 + s2
            y = np.array([index[c] for c in tv.label])[ok]
            set_seeds(seed)
            w = class_weights(y, power=recipe.class_weight_power)
            model = build_model(len(CLASS_NAMES))
            model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss="sparse_categorical_crossentropy")
            model.fit(x[ok], y, sample_weight=w[y], epochs=epochs, batch_size=recipe.batch_size, verbose=0)
            proba = np.full((len(xv), len(CLASS_NAMES)), -1.0, np.float32)
            proba[ok_test] = model.predict(x_test[ok_test], batch_size=1024, verbose=0)
            label = np.where(ok_test, np.array(CLASS_NAMES, dtype=object)[proba.argmax(axis=1)], None)
            scores = Classification.from_predictions(proba, np.where(ok_test, "ok", "too_few_detections"), label)
            folds[kind].append(bucket_metrics(xv, scores, prior))
    out = {"objects": int(len(objects)), "folds": n_folds, "epochs": epochs, "seed": seed,
           "preprocessing_cpu_seconds": seconds}
    for kind, results in folds.items():
        out[kind] = {b: {m: float(np.mean([r[b][m] for r in results if r[b].get("n_views")]))
                         for m in ("macro_f1", "log_loss", "prior_log_loss")} for b in results[0]}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=SHARED_DATA)
    parser.add_argument("--out-dir", default=None, help="default docs (build/quick_docs with --quick)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir or ("build/quick_docs" if args.quick else "docs"))
    out_dir.mkdir(parents=True, exist_ok=True)
    bts = bts_with_errors(args.data_dir)
    result = {"speed": speed(20_000 if args.quick else 100_000, 50 if args.quick else 300, bts)}
    print(json.dumps(result["speed"], indent=1), file=sys.stderr)
    result["quality"] = quality(bts, *((200, 2, 4) if args.quick else (600, 3, 15)), args.seed)
    result["command"] = "python scripts/preprocessing_study.py" + (" --quick" if args.quick else "")
    result["created"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (out_dir / "preprocessing.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "preprocessing.md").write_text(markdown(result))
    print(f"wrote {out_dir / 'preprocessing.md'}")
    return result


def markdown(result: dict) -> str:
    s, q = result["speed"], result["quality"]
    night, lcs = s["sample_night_alerts"], s["bts_alert_views"]
    ratio = lambda r: r["production_alerts_per_s_per_core"] / r["gp_alerts_per_s_per_core"]
    buckets = list(q["production"])
    lines = [
        "# Preprocessing: a 2-D GP vs production `build_sequences` on the alert's 30-day window", "",
        f"Reproduce: `{result['command']}` ({result['created']}). Method: see the script's docstring.", "",
        "## Speed (preprocessing alone, one process, BLAS threads 1, alerts per CPU-second)", "",
        "| input | production alerts/s/core | 2-D GP alerts/s/core | speed-up |", "|---|---:|---:|---:|",
        f"| {night['real_alerts']} real alerts of {Path(SAMPLE_NIGHT).name} replicated to {night['replicated_to']:,} "
        f"({night['mean_points_per_alert']:.1f} points/alert) | {night['production_alerts_per_s_per_core']:,.0f} "
        f"| {night['gp_alerts_per_s_per_core']:,.1f} | {ratio(night):,.0f}× |",
        f"| {lcs['views']:,} BTS alert views ({lcs['mean_points_per_view']:.1f} points) "
        f"| {lcs['production_alerts_per_s_per_core']:,.0f} | {lcs['gp_alerts_per_s_per_core']:,.1f} | {ratio(lcs):,.0f}× |",
        "", f"GP timed on {night['gp_alerts_timed']} / {lcs['gp_alerts_timed']} alerts (one fit each); production on "
        "the whole batch in one call.", "",
        "## Classifier quality with each preprocessing (cross-validation on alert views)", "",
        f"{q['folds']}-fold grouped, stratified CV on {q['objects']} BTS objects, {q['epochs']} epochs, seed {q['seed']}; "
        "mean over folds of the float model on the held-out objects' sampled alert views.", "",
        "| preprocessing | " + " | ".join(f"{b} d" for b in buckets) + " |", "|---|" + "---:|" * len(buckets),
        *[f"| {kind} macro-F1 | " + " | ".join(f"{q[kind][b]['macro_f1']:.3f}" for b in buckets) + " |"
          for kind in ("production", "gp")],
        *[f"| {kind} log-loss | " + " | ".join(f"{q[kind][b]['log_loss']:.3f}" for b in buckets) + " |"
          for kind in ("production", "gp")],
        "| prior log-loss | " + " | ".join(f"{q['production'][b]['prior_log_loss']:.3f}" for b in buckets) + " |", "",
        f"Preprocessing CPU time for these views: production {q['preprocessing_cpu_seconds']['production']:.1f} s, "
        f"GP {q['preprocessing_cpu_seconds']['gp']:.1f} s.", "",
        "## Reading", "",
        "GP − production macro-F1 per bucket: " + ", ".join(
            f"{b} d {q['gp'][b]['macro_f1'] - q['production'][b]['macro_f1']:+.3f}" for b in buckets) + ". On this "
        "small subsample with a fixed, short training the GP's smooth interpolation is the better input; the "
        "production recipe (all objects, early stopping, augmentation, calibration: docs/quality.md) is not "
        "comparable to either row. Serving it is another matter: at "
        f"{min(night['gp_alerts_per_s_per_core'], lcs['gp_alerts_per_s_per_core']):,.0f} alerts/s/core the GP is "
        "far below the module's 5,000 alerts/s/core target, so production keeps `build_sequences`; a cheaper "
        "smoother of the same window (e.g. a fixed-kernel GP whose weights are precomputed per node pattern) is "
        "the lead this study leaves.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
