"""Alert views of labelled light curves: what a ZTF alert would carry at each detection epoch.

For an object with detection epochs ``t_1 < t_2 < …``, the view at ``t_k`` (k ≥ 2, alert age
``t_k - t_1`` ≤ ``MAX_AGE_DAYS``) holds:

* the g/r detections of the last ``WINDOW_DAYS`` (``t_k - 30 d ≤ jd ≤ t_k``): an alert's history;
* the header fields a real alert has: ``jd_now = t_k``, ``jdstarthist = t_1`` (first detection,
  possibly older than the window) and ``ndethist`` (detections up to ``t_k``).

Training samples these views (:func:`sample_views`) and the evaluation scores all of them per age
bucket, both through the same :func:`fink_t2.core.sequences.build_sequences` and cuts as the stream.

>>> import pandas as pd
>>> t = pd.DataFrame({"object_id": ["a"] * 5, "jd": [0.0, 1.0, 1.0, 40.0, 45.0], "fid": [1, 1, 2, 2, 1],
...                   "mag": [19.0, 18.5, 18.6, 18.0, 18.9], "label": ["SN II"] * 5, "source": ["bts"] * 5})
>>> v = alert_views(t)
>>> v.age.tolist(), v.ndethist.tolist(), np.diff(v.offsets).tolist()  # the view at 45 d forgot days 0-1
([1.0, 40.0, 45.0], [3.0, 4.0, 5.0], [3, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from fink_t2.core.cuts import MAX_AGE_DAYS
from fink_t2.core.sequences import WINDOW_DAYS

#: alert-age buckets (days since first detection) of the evaluation, ``[low, high)``
AGE_BUCKETS = ((0, 3), (3, 7), (7, 15), (15, 30), (30, 60), (60, 90))


def bucket_names() -> list[str]:
    """``['0-3', '3-7', …]``, in the order of ``AGE_BUCKETS``."""
    return [f"{low}-{high}" for low, high in AGE_BUCKETS]


def age_bucket(age) -> np.ndarray:
    """Index into ``AGE_BUCKETS`` of each age (days); -1 outside them.

    >>> age_bucket([0.5, 3.0, 89.9, 90.0, 120]).tolist()
    [0, 1, 5, 5, -1]
    """
    age = np.asarray(age, dtype=np.float64)
    edges = np.array([low for low, _ in AGE_BUCKETS] + [AGE_BUCKETS[-1][1]], dtype=np.float64)
    index = np.searchsorted(edges, age, side="right") - 1
    index[age == edges[-1]] = len(AGE_BUCKETS) - 1  # the age cut keeps age <= 90: last bucket is closed
    index[(age < edges[0]) | (age > edges[-1]) | ~np.isfinite(age)] = -1
    return index


@dataclass
class Views:
    """Alert views: flat detections with row boundaries, plus one header and label per view."""

    jd: np.ndarray
    fid: np.ndarray
    mag: np.ndarray
    offsets: np.ndarray  # (n+1,)
    jd_now: np.ndarray
    jdstarthist: np.ndarray
    ndethist: np.ndarray
    age: np.ndarray
    label: np.ndarray  # class name per view
    object_id: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.jd_now)

    def select(self, index) -> "Views":
        """The views at ``index`` (positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        lengths = np.diff(self.offsets)[index]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        points = np.repeat(self.offsets[index] - offsets[:-1], lengths) + np.arange(offsets[-1])
        flat = {f: getattr(self, f)[points] for f in ("jd", "fid", "mag")}
        rows = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name not in (*flat, "offsets")}
        return Views(offsets=offsets, **flat, **rows)

    def bucket(self) -> np.ndarray:
        return age_bucket(self.age)


def alert_views(table: pd.DataFrame, max_age_days: float = MAX_AGE_DAYS, window_days: float = WINDOW_DAYS) -> Views:
    """Every alert view of every object in ``table`` (object_id, jd, fid, mag, label, source; detections)."""
    df = table.sort_values(["object_id", "jd"], kind="stable").reset_index(drop=True)
    jd = df["jd"].to_numpy(np.float64)
    code = pd.factorize(df["object_id"], sort=True)[0]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    # a view ends at the last point of each epoch (distinct jd), from the object's 2nd epoch on
    epoch_end = np.r_[(code[1:] != code[:-1]) | (jd[1:] != jd[:-1]), True]
    first = jd[starts][code]
    view_end = np.flatnonzero(epoch_end & (jd > first) & (jd - first <= max_age_days))
    obj = code[view_end]
    t = jd[view_end]
    # first point of each view's window: searched inside its own object (keys made monotonic by object)
    key = code * 1e7 + (jd - first)
    lo = np.searchsorted(key, obj * 1e7 + (t - first[view_end]) - window_days, side="left")
    lo = np.maximum(lo, starts[obj])
    hi = view_end + 1
    lengths = hi - lo
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    points = np.repeat(lo - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Views(
        jd=jd[points], fid=df["fid"].to_numpy(np.float64)[points], mag=df["mag"].to_numpy(np.float64)[points],
        offsets=offsets, jd_now=t, jdstarthist=first[view_end], ndethist=(view_end - starts[obj] + 1).astype(np.float64),
        age=t - first[view_end], label=df["label"].to_numpy()[view_end], object_id=df["object_id"].to_numpy()[view_end],
        source=df["source"].to_numpy()[view_end],
    )


def sample_views(views: Views, per_bucket: int, seed: int = 42) -> Views:
    """At most ``per_bucket`` seeded random views per (object, age bucket): young alerts are not outnumbered."""
    rng = np.random.default_rng(seed)
    bucket = views.bucket()
    frame = pd.DataFrame({"object": views.object_id, "bucket": bucket, "key": rng.random(len(views))})
    frame = frame[bucket >= 0]
    rank = frame.sort_values("key").groupby(["object", "bucket"]).cumcount()
    keep = np.sort(rank.index[rank.to_numpy() < per_bucket].to_numpy())
    return views.select(keep)
