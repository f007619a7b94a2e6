"""PLAsTiCC held-out objects as ``lsst.v10_0`` alert packets, and the fold model that never saw them.

The shipped Rubin model (``fink_t2/data/t2_lsst.tflite``) is trained on every PLAsTiCC object (its
``--ship`` step), so no PLAsTiCC object is held out from it. What its cross-validation held out is each fold's
test objects: ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)`` over the objects sorted by
``object_id`` (:func:`fink_t2.model.plasticc_train.crossval`), with the fold count and recipe recorded in
``t2_lsst_metrics.json``. :func:`heldout_ids` gives one fold's test objects and :func:`fold_model` retrains
that fold's model with the recorded recipe (the same code path as the cross-validation: fit, temperature,
dynamic-range TFLite with its contract), so t2 is scored on objects it never saw.

Alerts are the cross-validation's own views (:func:`fink_t2.model.plasticc_alerts.sample_alerts`: one
seeded detection per object and alert-age bucket), packed as Rubin packets by :func:`alert_records`:
the alert's detection is ``diaSource``, earlier detections of the past 365 days are ``prvDiaSources``, the
other (undetected) measurements of those 365 days are ``prvDiaForcedSources``, fluxes in nJy, ``band`` u..y,
and ``diaObject`` carries the first detection and the detection count. Each PLAsTiCC measurement appears
once, as in the views t2 was trained on (a real Rubin packet also repeats detected epochs in its forced
photometry).

>>> import pandas as pd
>>> lc = pd.DataFrame({"object_id": [5, 5, 5], "mjd": [60000.0, 60001.0, 60002.0], "band": [1, 2, 1],
...                    "flux": [10.0, 900.0, 1200.0], "flux_err": [8.0, 20.0, 25.0], "detected": [False, True, True]})
>>> alerts = pd.DataFrame({"object_id": [5], "t_now": [60002.0], "first": [60001.0], "k": [2]})
>>> record = alert_records(lc, alerts)[0]
>>> record["diaSource"]["band"], [s["band"] for s in record["prvDiaSources"]], len(record["prvDiaForcedSources"])
('g', ['r'], 1)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.spec import LSST_BANDS

#: days of history a Rubin packet carries (``prvDiaSources``, ``prvDiaForcedSources``)
HISTORY_DAYS = 365.0


def heldout_ids(objects: pd.DataFrame, n_folds: int, seed: int, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training ids, held-out ids) of ``fold`` in the split of :func:`fink_t2.model.plasticc_train.crossval`."""
    from fink_t2.model.plasticc_train import fold_splits

    return fold_splits(objects, n_folds, seed)[fold]


def sample_ids(objects: pd.DataFrame, ids: np.ndarray, n: int | None, seed: int = 42) -> np.ndarray:
    """At most ``n`` of ``ids``, a seeded class-stratified sample (every class kept in its share), sorted."""
    if n is None or n >= len(ids):
        return np.sort(ids)
    from fink_t2.model.plasticc import split_objects

    label = objects.set_index("object_id").loc[ids, "y"].to_numpy()
    return np.sort(split_objects(ids, label, n / len(ids), seed)[1])


def _source(object_id, source_id, mjd, band, flux, err) -> dict:
    return {"diaSourceId": int(source_id), "diaObjectId": int(object_id), "midpointMjdTai": float(mjd),
            "band": LSST_BANDS[int(band)], "psfFlux": float(flux), "psfFluxErr": float(err)}


def alert_records(lc: pd.DataFrame, alerts: pd.DataFrame) -> list[dict]:
    """One ``lsst.v10_0``-layout packet per row of ``alerts`` (object_id, t_now, first, k) from ``lc``
    (sorted by object and time; nJy): see the module doc. ``diaSourceId`` is the measurement's row in ``lc``."""
    ids, mjd = lc["object_id"].to_numpy(), lc["mjd"].to_numpy()
    band, flux, err = lc["band"].to_numpy(), lc["flux"].to_numpy(), lc["flux_err"].to_numpy()
    detected = lc["detected"].to_numpy()
    start = np.searchsorted(ids, alerts["object_id"].to_numpy(), side="left")
    end = np.searchsorted(ids, alerts["object_id"].to_numpy(), side="right")
    records = []
    for a, b, obj, now, first, k in zip(start, end, alerts["object_id"], alerts["t_now"], alerts["first"], alerts["k"]):
        rows = np.arange(a, b)
        rows = rows[(mjd[rows] <= now) & (mjd[rows] >= now - HISTORY_DAYS)]
        current = rows[detected[rows] & (mjd[rows] == now)][-1]
        past = rows[rows != current]
        entry = lambda r, o=obj: _source(o, r, mjd[r], band[r], flux[r], err[r])
        records.append({
            "diaSourceId": int(current), "lsst_schema_version": "lsst.v10_0", "ssSource": None,
            "diaSource": {**entry(current), "ssObjectId": None},
            "prvDiaSources": [entry(r) for r in past[detected[past]]],
            "prvDiaForcedSources": [{key: entry(r)[key] for key in ("midpointMjdTai", "band", "psfFlux", "psfFluxErr")}
                                    for r in past[~detected[past]]],
            "diaObject": {"diaObjectId": int(obj), "firstDiaSourceMjdTai": float(first), "nDiaSources": int(k)}})
    return records


def fold_model(metrics: dict, data_dir=None, fold: int = 0, progress: bool = False):
    """(TFLite bytes with contract, contract, training info) of ``fold``'s model of the cross-validation that
    ``metrics`` (a ``t2_lsst_metrics.json``) records: its view, recipe, fold count and seed, trained by the
    code that trained the cross-validation's folds."""
    from fink_t2.model.plasticc import CLASS_NAMES
    from fink_t2.model.plasticc_alerts import alert_data
    from fink_t2.model.plasticc_run import spec_of
    from fink_t2.model.plasticc_train import PlasticcRecipe, train_fold

    recipe = PlasticcRecipe(**metrics["recipe"])
    objects, inputs, spec = alert_data(spec_of(metrics["setting"], metrics["view"]), data_dir, recipe.seed)
    train, _ = heldout_ids(objects, metrics["cross_validation"]["n_folds"], recipe.seed, fold)
    content, contract, info, _ = train_fold(objects, train, inputs, spec, CLASS_NAMES, recipe, progress=progress)
    return content, contract, info
