"""Rubin alert views of PLAsTiCC light curves: what an alert would carry at each detection.

In PLAsTiCC every row is a forced measurement and ``detected`` marks the detections, as a Rubin alert
carries its detections (``prvDiaSources``) and forced photometry (``prvDiaForcedSources``) of the past
12 months. The view at a detection at ``t`` holds every measurement of the object in ``[t - 365 d, t]``
(the detection itself included, later ones of the same night not), with the age since the object's first
detection as an input, built by :func:`fink_t2.core.flux_sequences.build_flux_sequences`, as the stream will.

Training takes at most ``PER_BUCKET`` seeded views per object and alert-age bucket (young alerts are not
outnumbered by old ones); the evaluation scores the same sample of the held-out objects per age bucket,
the views at their 1st / 3rd / 5th / 10th detection, and the view at their last detection ("full").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.flux_sequences import build_flux_sequences
from fink_t2.core.spec import SequenceSpec
from fink_t2.model.plasticc import load_plasticc
from fink_t2.model.views import AGE_BUCKETS

#: alert-age buckets (days since the first detection): ZTF's, then a Rubin alert's longer memory
RUBIN_AGE_BUCKETS = (*AGE_BUCKETS, (90, 365), (365, 10000))
DETECTION_COUNTS = (1, 3, 5, 10)
PER_BUCKET = 1
CHUNK = 20000


def rubin_bucket_names() -> list[str]:
    return [f"{low}-{high}" if high < 10000 else f"{low}+" for low, high in RUBIN_AGE_BUCKETS]


def rubin_age_bucket(age) -> np.ndarray:
    """Index in ``RUBIN_AGE_BUCKETS`` of each age (days).

    >>> rubin_age_bucket([0.0, 2.9, 3.0, 100.0, 400.0]).tolist()
    [0, 0, 1, 6, 7]
    """
    edges = np.array([low for low, _ in RUBIN_AGE_BUCKETS], dtype=np.float64)
    return np.clip(np.searchsorted(edges, np.asarray(age, dtype=np.float64), side="right") - 1, 0, None)


def detection_table(lc: pd.DataFrame) -> pd.DataFrame:
    """One row per detection (= per alert): object_id, t_now, k (detections so far), first, age, bucket, last."""
    det = lc[lc["detected"]]
    group = det.groupby("object_id", sort=False)
    table = pd.DataFrame({"object_id": det["object_id"].to_numpy(), "t_now": det["mjd"].to_numpy(),
                          "k": group.cumcount().to_numpy() + 1, "first": group["mjd"].transform("min").to_numpy()})
    table["age"] = table["t_now"] - table["first"]
    table["bucket"] = rubin_age_bucket(table["age"])
    table["last"] = table["k"] == group["mjd"].transform("size").to_numpy()
    return table


def sample_alerts(table: pd.DataFrame, per_bucket: int = PER_BUCKET, seed: int = 42) -> np.ndarray:
    """Positions of at most ``per_bucket`` seeded random alerts per (object, age bucket)."""
    key = np.random.default_rng(seed).random(len(table))
    frame = pd.DataFrame({"o": table["object_id"].to_numpy(), "b": table["bucket"].to_numpy(), "key": key})
    rank = frame.sort_values("key").groupby(["o", "b"]).cumcount()
    return np.sort(rank.index[rank.to_numpy() < per_bucket].to_numpy())


def view_inputs(lc: pd.DataFrame, alerts: pd.DataFrame, spec: SequenceSpec) -> np.ndarray:
    """Model inputs of the alerts (object_id, t_now, first) from the light curves ``lc`` (sorted by object, mjd)."""
    ids = lc["object_id"].to_numpy()
    unique, code = np.unique(ids, return_inverse=True)
    mjd = lc["mjd"].to_numpy()
    origin = mjd.min() - spec.window_days - 1.0
    span = mjd.max() - origin + 1.0
    key = code * span + (mjd - origin)
    view_code = np.searchsorted(unique, alerts["object_id"].to_numpy())
    t_now = alerts["t_now"].to_numpy()
    out = np.empty((len(alerts), spec.sequence_length, len(spec.channels)), dtype=np.float32)
    for start in range(0, len(alerts), CHUNK):
        part = slice(start, start + CHUNK)
        lo = np.searchsorted(key, view_code[part] * span + (t_now[part] - spec.window_days - origin), side="left")
        hi = np.searchsorted(key, view_code[part] * span + (t_now[part] - origin), side="right")
        offsets = np.r_[0, np.cumsum(hi - lo)].astype(np.int64)
        rows = np.repeat(lo - offsets[:-1], hi - lo) + np.arange(offsets[-1])
        out[part] = build_flux_sequences(spec, mjd[rows], lc["band"].to_numpy()[rows], lc["flux"].to_numpy()[rows],
                                         lc["detected"].to_numpy()[rows], offsets=offsets, t_now=t_now[part],
                                         t_first=alerts["first"].to_numpy()[part]).values
    return out


def alert_data(spec: SequenceSpec, data_dir=None, seed: int = 42):
    """(objects, inputs(ids, part), spec) for :func:`fink_t2.model.plasticc_train.crossval` on alert views."""
    from fink_t2.model.plasticc_run import cached

    lc, objects = load_plasticc(data_dir)
    lc = lc[lc["band"].isin(spec.band_codes)].reset_index(drop=True)
    table = detection_table(lc)
    sampled = table.iloc[sample_alerts(table, PER_BUCKET, seed)]
    probes = table[table["k"].isin(DETECTION_COUNTS)]
    last = table[table["last"]]
    label = dict(zip(objects["object_id"], objects["y"]))
    key = f"alerts_{'' .join(spec.bands)}_{spec.representation}_{spec.sequence_length}_{spec.window_days:g}_{seed}"

    def make():
        return {name: view_inputs(lc, t, spec) for name, t in (("sampled", sampled), ("probes", probes), ("last", last))}
    arrays = cached(key, make)
    frames = {"sampled": sampled, "probes": probes, "last": last}

    def pick(name, ids):
        frame = frames[name]
        mask = frame["object_id"].isin(ids).to_numpy()
        y = frame["object_id"][mask].map(label).to_numpy(np.int64)
        return arrays[name][mask], y, frame[mask]

    def inputs(ids, part):
        x, y, _ = pick("sampled", ids)
        if part != "test":
            return x, y
        names = rubin_bucket_names()
        _, _, sampled_rows = pick("sampled", ids)
        xp, yp, probe_rows = pick("probes", ids)
        xl, yl, _ = pick("last", ids)
        buckets = np.array([names[b] for b in sampled_rows["bucket"]], dtype=object)
        return {"last_detection": (xl, yl, None), "alerts": (x, y, {"age_bucket": buckets}),
                "detections": (xp, yp, {"n_detections": probe_rows["k"].to_numpy()})}
    return objects, inputs, spec
