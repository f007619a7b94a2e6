"""An alert's light curve → the t2 input tensor ``(batch, 31, 7)``: the ONE preprocessing.

Training (``fink_t2.model.views``), evaluation, ``fink-t2 classify`` and the science module
(``fink_t2.core.classifier``) all call :func:`build_sequences`, so the model never sees a transform at
inference that it did not see at training (a bug of the first Fink t2 module).

What the model sees is what a ZTF alert carries: the detections of the last ``WINDOW_DAYS`` (30)
days before the alert's own epoch ``jd_now``, plus the header fields ``jdstarthist`` (first
detection, possibly older than the window) and ``ndethist`` (number of past detections).

The scheme, vectorised over the whole batch (no Python loop per alert):

1. keep detections only: finite ``jd`` and ``magpsf``, band ``fid`` 1 (g) or 2 (r), magnitude
   within ``VALID_MAG_RANGE``, **positive difference** (``isdiffpos`` not ``'f'``/``'0'``), inside
   ``[jd_now - 30 d, jd_now]``. Upper limits (null ``magpsf``), i-band points and
   negative-difference detections are dropped on purpose (see ``NEGATIVE_DIFFERENCE``).
2. magnitudes → flux in µJy (AB zero point 23.9 mag).
3. time axis, oldest first (the first Fink module had it reversed): node ``k`` of
   ``SEQUENCE_LENGTH`` sits ``WINDOW_DAYS - k`` days before ``jd_now``; the alert's own epoch is
   the last node. Input order does not matter.
4. per band, each detection goes to its nearest node (several in one node are averaged), then
   values are linearly interpolated between observed nodes; 0 before a band's first and after its
   last detection.
5. scaling: flux is divided by the peak flux of the window over g and r, so the shape and the g−r
   colour are kept; the brightness itself is a channel of its own.

Channels (``CHANNELS``; channel 0 is always g and 1 always r, never taken from the order in which
bands appear):

``flux_g``, ``flux_r``
    peak-scaled flux of step 4–5;
``observed_g``, ``observed_r``
    1 where the node holds a real detection (an interpolated or empty node is 0), so a 0 flux
    "no data" is never confused with a measured value;
``age``
    days since the first detection at that node, ``(age(jd_now) - (WINDOW_DAYS - k)) / 30``,
    clipped to [-1, 3]: negative before the first detection;
``log_ndethist``
    ``log10(1 + ndethist) / 2``, the same at every node;
``log_peak_flux``
    ``log10(peak flux / µJy) - 1.5`` (0 near magnitude 20), the same at every node.

Examples
--------
Two g detections and one r detection (one non-detection, one i point, one negative difference):

>>> import numpy as np
>>> jd = [np.array([2459000.5, 2459001.5, 2459002.5, 2459003.5, 2459001.5, 2459002.5])]
>>> fid = [np.array([1, 1, 2, 2, 3, 1])]
>>> mag = [np.array([19.0, 18.0, 18.5, np.nan, 17.0, 18.2])]
>>> isdiffpos = [np.array(["t", "t", "t", None, "t", "f"], dtype=object)]
>>> seq = build_sequences(jd, fid, mag, isdiffpos)
>>> seq.values.shape
(1, 31, 7)
>>> seq.n_detections.tolist(), seq.n_epochs.tolist()
([3], [3])
>>> [round(float(v), 3) for v in seq.values[0, -3:, 0]]  # jd_now is the last point (an upper limit)
[1.0, 0.0, 0.0]
>>> seq.values[0, -4:, 2].tolist(), seq.values[0, -4:, 3].tolist()  # observed g / observed r
([1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: version of this transform, written into every model file and checked at load
PREPROCESSING_VERSION = "t2-alert30-v1"
#: (the ZTF layout below; flux input in any band set, e.g. Rubin's: :mod:`fink_t2.core.flux_sequences`)
#: history a ZTF alert packet carries, days before the alert's epoch
WINDOW_DAYS = 30.0
GRID_STEP_DAYS = 1.0
SEQUENCE_LENGTH = int(WINDOW_DAYS / GRID_STEP_DAYS) + 1
#: photometric bands of the tensor: (name, ZTF fid)
BANDS = (("g", 1), ("r", 2))
CHANNELS = ("flux_g", "flux_r", "observed_g", "observed_r", "age", "log_ndethist", "log_peak_flux")
#: magnitudes outside this range are treated as invalid measurements
VALID_MAG_RANGE = (5.0, 30.0)
#: AB zero point giving fluxes in microjansky
ZERO_POINT_UJY = 23.9
#: ``isdiffpos`` values of a negative difference (science fainter than reference): dropped. The model is
#: trained on positive transient photometry (BTS), where a negative point never occurs; Fink's SN modules
#: likewise keep positive differences only. Such a detection is neither flux nor an epoch for the cuts.
NEGATIVE_DIFFERENCE = ("f", "0")
AGE_SCALE_DAYS = 30.0
AGE_CLIP = (-1.0, 3.0)


@dataclass
class Sequences:
    """Output of :func:`build_sequences` for a batch of ``n`` alerts.

    Attributes
    ----------
    values: float32 array (n, SEQUENCE_LENGTH, len(CHANNELS)), the model input
    n_detections: int array (n,), g/r positive detections in the window
    n_epochs: int array (n,), distinct ``jd`` among those detections (the cuts count these)
    n_negative: int array (n,), g/r negative-difference detections in the window, dropped
    age_days: float array (n,), ``jd_now`` minus the first detection (``jdstarthist``, or an earlier
        detection of the history): the age the cuts and the age channel use
    """

    values: np.ndarray
    n_detections: np.ndarray
    n_epochs: np.ndarray
    n_negative: np.ndarray
    age_days: np.ndarray


def mag_to_flux_ujy(mag):
    """AB magnitude → flux in µJy.

    >>> float(mag_to_flux_ujy(23.9))
    1.0
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - ZERO_POINT_UJY))


def flatten_ragged(arrays: Sequence, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """List of per-alert arrays → (flat values, offsets of length n+1).

    ``None`` entries (null history) count as empty; with a float ``dtype`` ``None`` values become NaN.

    >>> v, o = flatten_ragged([[1, 2], None, [3]])
    >>> v.tolist(), o.tolist()
    ([1.0, 2.0, 3.0], [0, 2, 2, 3])
    """
    lengths = np.fromiter((0 if a is None else len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    parts = [np.asarray(a, dtype=dtype) for a in arrays if a is not None and len(a)]
    if not parts:
        return np.empty(0, dtype=dtype), offsets
    return np.concatenate(parts), offsets


def negative_difference(isdiffpos) -> np.ndarray:
    """Flat ``isdiffpos`` values → True where the detection is a negative difference.

    >>> negative_difference(np.array(["t", "f", None, "1", "0"], dtype=object)).tolist()
    [False, True, False, False, True]
    """
    return np.isin(np.asarray(isdiffpos, dtype=object), NEGATIVE_DIFFERENCE)


def _flat(values, offsets, dtype=np.float64):
    if offsets is None:
        return flatten_ragged(values, dtype)
    return np.asarray(values, dtype=dtype), np.asarray(offsets, dtype=np.int64)


def _per_alert(values, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} alerts")
    return values


def build_sequences(jd, fid, magpsf, isdiffpos=None, jd_now=None, jdstarthist=None, ndethist=None,
                    offsets=None) -> Sequences:
    """Build the t2 input for a batch of alerts.

    Parameters
    ----------
    jd, fid, magpsf, isdiffpos:
        Either ragged (one array per alert: the ``cjd``, ``cfid``, ``cmagpsf``, ``cisdiffpos``
        columns, history then current) or flat arrays with ``offsets``. ``magpsf`` may hold
        NaN/None for upper limits. Times in days (JD). ``isdiffpos`` None: every detection positive.
    jd_now: (n,) epoch of each alert; default (or NaN): its latest point.
    jdstarthist: (n,) JD of each alert's first detection; default (or not finite, or after
        ``jd_now``): its first detection in the window. A positive detection earlier than
        ``jdstarthist`` (anywhere in the history) moves the first detection back to it.
    ndethist: (n,) number of past detections; default (or not finite): detections in the window.
    offsets: optional int array (n+1,), row boundaries of flat inputs.
    """
    jd, off = _flat(jd, offsets)
    fid, off_fid = _flat(fid, offsets)
    mag, off_mag = _flat(magpsf, offsets)
    same = np.array_equal(off, off_fid) and np.array_equal(off, off_mag) and len(jd) == len(fid) == len(mag) == off[-1]
    if isdiffpos is None:
        negative = np.zeros(len(jd), dtype=bool)
    else:
        sign, off_sign = _flat(isdiffpos, offsets, dtype=object)
        same = same and np.array_equal(off, off_sign) and len(sign) == len(jd)
        negative = negative_difference(sign) if same else None
    if not same:
        raise ValueError("jd, fid, magpsf (and isdiffpos) must have the same length for every alert")
    n = len(off) - 1
    row = np.repeat(np.arange(n), np.diff(off))

    now = _per_alert(jd_now, n, "jd_now")
    latest = np.full(n, -np.inf)
    finite_jd = np.isfinite(jd)
    np.maximum.at(latest, row[finite_jd], jd[finite_jd])
    now = np.where(np.isfinite(now), now, latest)

    channel = np.full(len(fid), -1)
    for c, (_, band_fid) in enumerate(BANDS):
        channel[fid == band_fid] = c
    with np.errstate(invalid="ignore", over="ignore"):
        start = now[row] - WINDOW_DAYS
        node_float = np.rint((jd - start) / GRID_STEP_DAYS)
        ok = (channel >= 0) & finite_jd & np.isfinite(mag) & (mag >= VALID_MAG_RANGE[0]) & (mag <= VALID_MAG_RANGE[1])
        ok &= (node_float >= 0) & (node_float < SEQUENCE_LENGTH) & (jd <= now[row])
    n_negative = np.bincount(row[ok & negative], minlength=n)
    ok &= ~negative
    # the earliest positive detection anywhere in the history (also before the window): the first detection
    # is no later than that, whatever jdstarthist says
    with np.errstate(invalid="ignore"):
        anywhere = (channel >= 0) & finite_jd & np.isfinite(mag) & (mag >= VALID_MAG_RANGE[0]) \
            & (mag <= VALID_MAG_RANGE[1]) & ~negative & (jd <= now[row])
    earliest = np.full(n, np.inf)
    np.minimum.at(earliest, row[anywhere], jd[anywhere])
    row, channel, jd, node = row[ok], channel[ok], jd[ok], node_float[ok].astype(np.int64)
    flux = mag_to_flux_ujy(mag[ok])

    order = np.lexsort((jd, row))
    row_sorted, jd_sorted = row[order], jd[order]
    new_epoch = np.ones(len(order), dtype=bool)
    new_epoch[1:] = (row_sorted[1:] != row_sorted[:-1]) | (jd_sorted[1:] != jd_sorted[:-1])
    n_epochs = np.bincount(row_sorted[new_epoch], minlength=n)
    n_detections = np.bincount(row, minlength=n)
    first_seen = np.full(n, np.inf)
    np.minimum.at(first_seen, row, jd)

    cell = (row * SEQUENCE_LENGTH + node) * 2 + channel
    size = n * SEQUENCE_LENGTH * 2
    counts = np.bincount(cell, minlength=size)
    sums = np.bincount(cell, weights=flux, minlength=size)
    observed = (counts > 0).reshape(n, SEQUENCE_LENGTH, 2)
    binned = np.divide(sums, counts, out=np.zeros(size), where=counts > 0).reshape(n, SEQUENCE_LENGTH, 2)
    flux_nodes = interpolate_between_observed(binned, observed)
    peak = binned.max(axis=(1, 2))
    scale = np.divide(1.0, peak, out=np.zeros(n), where=peak > 0)

    start_hist = _per_alert(jdstarthist, n, "jdstarthist")
    start_hist = np.where(np.isfinite(start_hist) & (start_hist <= now), start_hist, first_seen)
    start_hist = np.fmin(start_hist, earliest)
    with np.errstate(invalid="ignore"):
        age = np.where(np.isfinite(start_hist), now - start_hist, 0.0)
    ndet = _per_alert(ndethist, n, "ndethist")
    ndet = np.where(np.isfinite(ndet) & (ndet >= 0), ndet, n_detections)
    before_now = WINDOW_DAYS - GRID_STEP_DAYS * np.arange(SEQUENCE_LENGTH)
    with np.errstate(divide="ignore"):
        log_peak = np.where(peak > 0, np.log10(np.where(peak > 0, peak, 1.0)) - 1.5, 0.0)

    values = np.empty((n, SEQUENCE_LENGTH, len(CHANNELS)), dtype=np.float32)
    values[..., :2] = flux_nodes * scale[:, None, None]
    values[..., 2:4] = observed
    values[..., 4] = np.clip((age[:, None] - before_now[None, :]) / AGE_SCALE_DAYS, *AGE_CLIP)
    values[..., 5] = (np.log10(1.0 + ndet) / 2.0)[:, None]
    values[..., 6] = log_peak[:, None]
    return Sequences(values=values, n_detections=n_detections, n_epochs=n_epochs, n_negative=n_negative,
                     age_days=age)


def interpolate_between_observed(binned: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 1 of ``(n, nodes, bands)`` between observed nodes; 0 outside.

    Previous/next observed node found with running max/min (int16 node indices), values gathered from
    the flat array (cheaper than ``take_along_axis``). Shared by :mod:`fink_t2.core.flux_sequences`.
    """
    n, length, n_bands = binned.shape
    small = np.int8 if length < 127 else np.int16
    steps = np.arange(length, dtype=small)[None, :, None]
    prev = np.where(observed, steps, small(-1))
    np.maximum.accumulate(prev, axis=1, out=prev)
    nxt = np.minimum.accumulate(np.where(observed, steps, small(length))[:, ::-1], axis=1)[:, ::-1]
    inside = (prev >= 0) & (nxt < length)
    p = np.maximum(prev, 0).astype(np.int64)
    q = np.minimum(nxt, length - 1).astype(np.int64)
    base = (np.arange(n, dtype=np.int64) * (n_bands * length))[:, None, None] + np.arange(n_bands)[None, None, :]
    flat = binned.reshape(-1)
    vp, vq = flat[base + n_bands * p], flat[base + n_bands * q]
    span = (q - p).astype(binned.dtype)
    weight = (steps - p).astype(binned.dtype)
    np.divide(weight, span, out=weight, where=span > 0)
    weight[span == 0] = 0
    values = vp + weight * (vq - vp)
    values[~inside] = 0
    return values
