"""Judge t2 as the stream sees it: alert views, by alert age, against the class prior.

Every number about the model's quality comes from here:

* :func:`score_views` runs a model on alert views through the shipping core
  (:func:`fink_t2.core.classifier.classify_alerts`: the stream's cuts and preprocessing);
* :func:`bucket_metrics` reports, per alert-age bucket (``views.AGE_BUCKETS``), accuracy,
  macro-F1, per-class F1, log-loss and the log-loss of a constant class prior, every object
  weighing the same within a bucket (each of its views ``1 / its views in the bucket``);
* :func:`crossval`: grouped, stratified K-fold cross-validation over all objects, each fold's model
  trained by :func:`fink_t2.model.train.fit` and scored as its dynamic-range TFLite file by the
  shipping runner (:class:`fink_t2.runtime.inference.T2Model`); mean ± std over folds;
* :func:`guard_metrics`: the numbers ``t2_metrics.json`` records for the shipped file on a fixed set
  of real BTS light curves, which the tests recompute from the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, log_loss

from fink_t2.core.classifier import classify_alerts
from fink_t2.core.cuts import STATUS_OK
from fink_t2.model.datasets import CLASS_NAMES, cv_folds, object_table
from fink_t2.model.views import Views, alert_views, bucket_names

#: the guard set: every GUARD_EVERY-th BTS object (sorted by id)
GUARD_EVERY = 8
METRICS = ("accuracy", "macro_f1", "log_loss", "prior_log_loss")


def score_views(model, views: Views):
    """The :class:`fink_t2.core.classifier.Classification` of every view (probabilities, status, decision),
    through the stream's cuts, preprocessing and calibration."""
    n = len(views)
    return classify_alerts(views.jd, views.fid, views.mag, None, views.offsets, views.jd_now, views.jdstarthist,
                           views.ndethist, np.zeros(n), np.full(n, "Unknown", dtype=object), model)


def class_prior(labels) -> np.ndarray:
    """Class frequencies of ``labels`` (class names), in ``CLASS_NAMES`` order."""
    counts = pd.Series(labels).value_counts().reindex(CLASS_NAMES, fill_value=0).to_numpy(np.float64)
    return counts / counts.sum()


def classification_metrics(y: np.ndarray, proba: np.ndarray, weight: np.ndarray, prior: np.ndarray,
                           pred: np.ndarray | None = None) -> dict:
    """Weighted accuracy, macro-F1 and per-class F1 of the decisions ``pred`` (class indices; default: the
    argmax of ``proba``), log-loss of the probabilities ``proba``, and the log-loss of the constant ``prior``."""
    labels = list(range(len(CLASS_NAMES)))
    proba = np.clip(proba.astype(np.float64), 1e-7, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1) if pred is None else np.asarray(pred)
    per_class = f1_score(y, pred, labels=labels, average=None, sample_weight=weight, zero_division=0)
    present = np.isin(labels, y)
    constant = np.tile(np.clip(prior, 1e-7, 1.0), (len(y), 1))
    return {
        "accuracy": float(np.average(pred == y, weights=weight)),
        "macro_f1": float(np.mean(per_class[present])),
        "log_loss": float(log_loss(y, proba, labels=labels, sample_weight=weight)),
        "prior_log_loss": float(log_loss(y, constant / constant.sum(axis=1, keepdims=True), labels=labels,
                                         sample_weight=weight)),
        "f1": {name: float(per_class[i]) for i, name in enumerate(CLASS_NAMES) if present[i]},
    }


def bucket_metrics(views: Views, scores, prior: np.ndarray) -> dict:
    """Metrics per alert-age bucket over the views the cuts let through (objects weighted equally).

    ``scores``: the views' :class:`fink_t2.core.classifier.Classification` (decisions from its ``label``).
    """
    proba, status = scores
    bucket = views.bucket()
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    y = np.array([index[name] for name in views.label], dtype=np.int64)
    pred = np.array([index.get(name, -1) for name in scores.label], dtype=np.int64)
    out = {}
    for b, name in enumerate(bucket_names()):
        in_bucket = bucket == b
        ok = in_bucket & (status == STATUS_OK)
        if not ok.any():
            out[name] = {"n_views": 0, "n_objects": 0, "classified_share": 0.0}
            continue
        objects = pd.Series(views.object_id[ok])
        weight = 1.0 / objects.map(objects.value_counts()).to_numpy(np.float64)
        out[name] = {"n_views": int(ok.sum()), "n_objects": int(objects.nunique()),
                     "classified_share": float(ok.sum() / in_bucket.sum()),
                     **classification_metrics(y[ok], proba[ok], weight, prior, pred[ok])}
    return out


def summarize_folds(folds: list[dict]) -> dict:
    """Per bucket and metric: mean, std and the fold values."""
    out = {}
    for name in bucket_names():
        rows = [f[name] for f in folds if f[name]["n_views"]]
        entry = {"n_views": int(sum(r["n_views"] for r in rows)), "n_objects": int(sum(r["n_objects"] for r in rows))}
        for metric in (*METRICS, "classified_share"):
            values = [r[metric] for r in rows]
            entry[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}
        entry["f1"] = {c: {"mean": float(np.mean(v)), "std": float(np.std(v))} for c in CLASS_NAMES
                       if (v := [r["f1"][c] for r in rows if c in r["f1"]])}
        out[name] = entry
    return out


def crossval(table: pd.DataFrame, recipe, n_folds: int = 5, progress: bool = True, save_dir=None) -> dict:
    """K-fold cross-validation of ``recipe`` on ``table``, scored on the BTS objects' alert views.

    ``save_dir``: also write each fold's held-out predictions (and its validation views' predictions)
    as ``fold<k>.npz`` there, for post-hoc studies of calibration.
    """
    import dataclasses
    from pathlib import Path

    from fink_t2.core.contract import make_contract
    from fink_t2.model.train import dynamic_tflite, fit, split_train_val
    from fink_t2.runtime.inference import T2Model

    objects = object_table(table[table["source"] == "bts"])
    extra = table[table["source"] != "bts"]  # other sources only ever train
    folds = []
    for k, (train_ids, test_ids) in enumerate(cv_folds(objects, n_folds, recipe.seed)):
        train = pd.concat([table[table["object_id"].isin(train_ids)], extra])
        train, val = split_train_val(train, recipe)
        model, info = fit(train, val[val["source"] == "bts"], recipe, progress=False)
        runner = T2Model(content=dynamic_tflite(model),
                         contract=make_contract(CLASS_NAMES, calibration=info["calibration"]))
        views = alert_views(table[table["object_id"].isin(test_ids)])
        prior = class_prior(objects.set_index("object_id").loc[train_ids, "label"])
        scores = score_views(runner, views)
        result = bucket_metrics(views, scores, prior)
        folds.append(result)
        if save_dir is not None:
            _save_fold(Path(save_dir) / f"fold{k}.npz", runner, views, scores.status, val, recipe)
        if progress:
            line = " ".join(f"{b}:{r.get('macro_f1', float('nan')):.2f}/{r.get('log_loss', float('nan')):.2f}"
                            f"({r.get('prior_log_loss', float('nan')):.2f})" for b, r in result.items())
            print(f"fold {k + 1}/{n_folds} (epochs {info['epochs_run']}) macro-F1/log-loss(prior): {line}", flush=True)
    return {"folds": n_folds, "seed": recipe.seed, "recipe": dataclasses.asdict(recipe),
            "objects": int(len(objects)), "scored_by": "dynamic-range TFLite of each fold (its calibration in its contract) via "
            "fink_t2.runtime.inference.T2Model; macro-F1 and accuracy of the decision (t2_class), log-loss of the calibrated "
            "probabilities",
            "weighting": "objects weigh the same within a bucket", "buckets": summarize_folds(folds)}


def _save_fold(path, runner, views: Views, status, val, recipe) -> None:
    """The fold's raw network outputs (before calibration) on its test and validation views."""
    from fink_t2.core.sequences import build_sequences
    from fink_t2.model.train import view_inputs
    from fink_t2.model.views import sample_views

    path.parent.mkdir(parents=True, exist_ok=True)
    seq = build_sequences(views.jd, views.fid, views.mag, None, views.jd_now, views.jdstarthist, views.ndethist,
                          offsets=views.offsets)
    x_val, y_val = view_inputs(sample_views(alert_views(val[val["source"] == "bts"]), recipe.views_per_bucket,
                                            recipe.seed))
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    ok = status == STATUS_OK
    proba = np.full((len(views), len(CLASS_NAMES)), -1.0, np.float32)
    proba[ok] = runner.predict(seq.values[ok], chunk_size=256)
    np.savez_compressed(path, proba=proba, status=status.astype(str), bucket=views.bucket(), age=views.age,
                        y=np.array([index[c] for c in views.label]), object_id=views.object_id.astype(str),
                        now=seq.values[:, -1, :], val_proba=runner.predict(x_val, chunk_size=256), val_y=y_val,
                        val_now=x_val[:, -1, :])


def guard_views(bts_table: pd.DataFrame) -> Views:
    """Alert views of every ``GUARD_EVERY``-th BTS object, by sorted id: a fixed set of real light curves."""
    ids = np.sort(bts_table["object_id"].unique())[::GUARD_EVERY]
    return alert_views(bts_table[bts_table["object_id"].isin(ids)])


def guard_metrics(model, bts_table: pd.DataFrame) -> dict:
    """What the shipped file gives on :func:`guard_views` (objects it may have trained on: a check, not a score)."""
    views = guard_views(bts_table)
    scores = score_views(model, views)
    proba, status = scores
    ok = status == STATUS_OK
    prior = class_prior(object_table(bts_table)["label"])
    return {"objects": f"every {GUARD_EVERY}th BTS object sorted by objectId, all alert views",
            "n_views": int(len(views)), "n_classified": int(ok.sum()),
            "mean_probability": [float(v) for v in proba[ok].mean(axis=0)],
            "buckets": bucket_metrics(views, scores, prior)}
