"""Cross-validation of a training recipe: grouped, stratified K folds over all BTS objects.

Each fold's model is fitted by :func:`fink_t2.model.fitting.fit` and scored as its dynamic-range TFLite file by
the shipping runner (:class:`fink_t2.runtime.inference.T2Model`) through the stream's cuts, on its held-out
objects' alert views, per alert-age bucket (:mod:`fink_t2.model.evaluate`); mean ± std over folds. The only
evaluation used to choose a recipe (``fink-t2 train --cv K``, ``scripts/recipe_search.py``,
``scripts/quality_report.py --rerun``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.core.contract import make_contract
from fink_t2.model.datasets import CLASS_NAMES, cv_folds, object_table
from fink_t2.model.evaluate import bucket_metrics, class_prior, score_views, summarize_folds
from fink_t2.model.fitting import dynamic_tflite, fit, split_train_val, view_inputs
from fink_t2.model.views import Views, alert_views, sample_views
from fink_t2.runtime.inference import T2Model


def crossval(table: pd.DataFrame, recipe, n_folds: int = 5, progress: bool = True, save_dir=None) -> dict:
    """K-fold cross-validation of ``recipe`` on ``table``, scored on the BTS objects' alert views.

    ``save_dir``: also write each fold's held-out predictions (and its validation views' predictions)
    as ``fold<k>.npz`` there, for post-hoc studies of calibration.
    """
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
            _save_fold(Path(save_dir) / f"fold{k}.npz", runner, views, scores, val, recipe)
        if progress:
            line = " ".join(f"{b}:{r.get('macro_f1', float('nan')):.2f}/{r.get('log_loss', float('nan')):.2f}"
                            f"({r.get('prior_log_loss', float('nan')):.2f})" for b, r in result.items())
            print(f"fold {k + 1}/{n_folds} (epochs {info['epochs_run']}) macro-F1/log-loss(prior): {line}", flush=True)
    return {"folds": n_folds, "seed": recipe.seed, "recipe": dataclasses.asdict(recipe),
            "objects": int(len(objects)), "scored_by": "dynamic-range TFLite of each fold (its calibration in its contract) via "
            "fink_t2.runtime.inference.T2Model; macro-F1 and accuracy of the decision (t2_class), log-loss of the calibrated "
            "probabilities",
            "weighting": "objects weigh the same within a bucket", "buckets": summarize_folds(folds)}


def _save_fold(path, runner, views: Views, scores, val, recipe) -> None:
    """The fold's raw network outputs (before calibration) on its test views (from their classification) and on
    its validation views."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x_val, y_val = view_inputs(sample_views(alert_views(val[val["source"] == "bts"]), recipe.views_per_bucket,
                                            recipe.seed))
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    np.savez_compressed(path, proba=scores.output, status=scores.status.astype(str), bucket=views.bucket(),
                        age=views.age, y=np.array([index[c] for c in views.label]),
                        object_id=views.object_id.astype(str), now=scores.last_node,
                        val_proba=runner.predict(x_val, chunk_size=256), val_y=y_val, val_now=x_val[:, -1, :])
