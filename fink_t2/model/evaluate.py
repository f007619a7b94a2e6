"""Judge t2 as the stream sees it: alert views, by alert age, against the class prior.

Every number about the model's quality comes from here:

* :func:`score_views` runs a model on alert views through the shipping core
  (:func:`fink_t2.core.classifier.classify_alerts`: the stream's cuts and preprocessing);
* :func:`bucket_metrics` reports, per alert-age bucket (``views.AGE_BUCKETS``), accuracy,
  macro-F1, per-class F1, log-loss and the log-loss of a constant class prior, every object
  weighing the same within a bucket (each of its views ``1 / its views in the bucket``);
* :func:`summarize_folds`: mean ± std over the folds of the cross-validation (:mod:`fink_t2.model.crossval`,
  which scores each fold here);
* :func:`guard_metrics`: the numbers ``t2_metrics.json`` records for the shipped file on a fixed set
  of real BTS light curves, which the tests recompute from the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, log_loss

from fink_t2.core.classifier import classify_alerts
from fink_t2.core.cuts import CDSXMATCH_UNKNOWN, STATUS_OK
from fink_t2.model.datasets import CLASS_NAMES, object_table
from fink_t2.model.views import Views, alert_views, bucket_names

#: the guard set: every GUARD_EVERY-th BTS object (sorted by id)
GUARD_EVERY = 8
METRICS = ("accuracy", "macro_f1", "log_loss", "prior_log_loss")


def score_views(model, views: Views):
    """The :class:`fink_t2.core.classifier.Classification` of every view (status, raw output, probabilities,
    decision), through the stream's cuts, preprocessing and calibration."""
    n = len(views)
    return classify_alerts(views.jd, views.fid, views.mag, None, views.offsets, views.jd_now, views.jdstarthist,
                           views.ndethist, np.zeros(n), np.full(n, CDSXMATCH_UNKNOWN, dtype=object), model)


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
