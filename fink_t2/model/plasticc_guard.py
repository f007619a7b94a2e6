"""Guard metrics of a shipped PLAsTiCC model: what its file computes on a small fixed subset, recorded in its
metrics file at training and recomputed by ``tests/test_lsst_model.py`` (no TensorFlow needed).

The subset is the first ``GUARD_OBJECTS`` objects by object_id, which the shipped model was trained on: the
guard checks that the file still computes what it did, it is not a quality figure (quality: the CV).
"""

from __future__ import annotations

import numpy as np

from fink_t2.model.plasticc import CLASS_NAMES, flat_log_loss, full_curve_inputs, load_plasticc
from fink_t2.model.plasticc_alerts import detection_table, view_inputs

GUARD_OBJECTS = 200


def guard_inputs(setting: str, spec, anchor: str = "last", data_dir=None):
    """(inputs, labels): the last-detection alert views (``rubin``) or the full curves of the guard objects."""
    lc, objects = load_plasticc(data_dir)
    objects = objects.iloc[:GUARD_OBJECTS].reset_index(drop=True)
    lc = lc[lc["object_id"].isin(objects["object_id"]) & lc["band"].isin(spec.band_codes)].reset_index(drop=True)
    if setting != "rubin":
        return full_curve_inputs(lc, objects, spec, anchor)
    last = detection_table(lc)
    last = last[last["last"]]
    y = last["object_id"].map(dict(zip(objects["object_id"], objects["y"]))).to_numpy(np.int64)
    return view_inputs(lc, last, spec), y


def guard_metrics(runner, setting: str, spec, anchor: str = "last", data_dir=None) -> dict:
    """Flat log-loss, accuracy, mean probabilities and decisions per class of ``runner`` on the guard subset."""
    x, y = guard_inputs(setting, spec, anchor, data_dir)
    proba = runner.predict(x)
    pred = proba.argmax(axis=1)
    return {"objects": GUARD_OBJECTS, "alerts": int(len(y)), "flat_log_loss": flat_log_loss(y, proba, len(CLASS_NAMES)),
            "accuracy": float(np.mean(pred == y)), "mean_probabilities": proba.mean(axis=0).round(6).tolist(),
            "decisions": np.bincount(pred, minlength=len(CLASS_NAMES)).tolist()}
