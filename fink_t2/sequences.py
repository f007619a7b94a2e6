"""Light curves → the t2 input tensor ``(batch, 100, 2)``: the ONE preprocessing.

Training (``fink_t2.model.datasets``) and serving (``fink_t2.processor``) both call
:func:`build_sequences`, so the model never sees a transform at inference that
it did not see at training (a bug of the first Fink t2 module).

The scheme, vectorised over the whole batch (no Python loop per alert):

1. keep detections only: finite ``jd`` and ``magpsf``, band ``fid`` 1 (g) or
   2 (r), magnitude within ``VALID_MAG_RANGE``. Upper limits (null
   ``magpsf``) and i-band points (``fid`` 3) are dropped on purpose: before the
   first detection the flux is 0 in the tensor, which is what an upper limit says.
2. magnitudes → flux in µJy (AB zero point 23.9 mag).
3. time axis: days since the alert's first detection (oldest first — the
   first Fink module had it reversed); 100 nodes of ``GRID_STEP_DAYS``.
   Points later than the window are dropped. Input order does not matter.
4. per band, each detection goes to its nearest node (several detections in
   one node are averaged), then values are linearly interpolated between
   observed nodes. Nodes before a band's first or after its last detection
   are 0 and masked out.
5. scaling: every value is divided by the alert's peak flux over g and r, so
   the shape and the g−r colour are kept and brightness (distance) is not.

Channel 0 is always g and channel 1 always r (``BANDS``), never taken from
the order in which the bands appear.

Examples
--------
Two g detections and one r detection (one non-detection, one i point):

>>> import numpy as np
>>> jd = [np.array([2459000.5, 2459001.5, 2459002.5, 2459003.5, 2459001.5])]
>>> fid = [np.array([1, 1, 2, 2, 3])]
>>> mag = [np.array([19.0, 18.0, 18.5, np.nan, 17.0])]
>>> seq = build_sequences(jd, fid, mag)
>>> seq.values.shape
(1, 100, 2)
>>> seq.n_detections.tolist()
[3]
>>> [round(float(v), 3) for v in seq.values[0, :3, 0]]  # g peaks at day 1
[0.398, 1.0, 0.0]
>>> seq.mask[0, :3].tolist()  # r seen only at day 2
[[True, False], [True, False], [False, True]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: version of this transform, written into every model file and checked at load
PREPROCESSING_VERSION = "t2-grid-1d-peak-v1"
SEQUENCE_LENGTH = 100
GRID_STEP_DAYS = 1.0
#: channel order of the tensor: (name, ZTF fid)
BANDS = (("g", 1), ("r", 2))
#: magnitudes outside this range are treated as invalid measurements
VALID_MAG_RANGE = (5.0, 30.0)
#: AB zero point giving fluxes in microjansky
ZERO_POINT_UJY = 23.9


@dataclass
class Sequences:
    """Output of :func:`build_sequences` for a batch of ``n`` alerts.

    Attributes
    ----------
    values: float32 array (n, SEQUENCE_LENGTH, 2), peak-scaled g and r flux
    mask: bool array (n, SEQUENCE_LENGTH, 2), True where a value is observed or interpolated
    n_detections: int array (n,), g/r detections used (in the window)
    n_epochs: int array (n,), distinct ``jd`` of the valid g/r detections, in the window
        or beyond it (a duplicated detection counts once; training keeps objects with 2 epochs or more)
    n_beyond_window: int array (n,), valid g/r detections dropped because they are
        more than the window after the first detection
    """

    values: np.ndarray
    mask: np.ndarray
    n_detections: np.ndarray
    n_epochs: np.ndarray | None = None
    n_beyond_window: np.ndarray | None = None


def mag_to_flux_ujy(mag):
    """AB magnitude → flux in µJy.

    >>> float(mag_to_flux_ujy(23.9))
    1.0
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - ZERO_POINT_UJY))


def flatten_ragged(arrays: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """List of per-alert arrays → (flat float64 values, offsets of length n+1).

    ``None`` entries (null history) count as empty; ``None`` values become NaN.

    >>> v, o = flatten_ragged([[1, 2], None, [3]])
    >>> v.tolist(), o.tolist()
    ([1.0, 2.0, 3.0], [0, 2, 2, 3])
    """
    lengths = np.fromiter((0 if a is None else len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    parts = [np.asarray(a, dtype=np.float64) if a is not None and len(a) else np.empty(0) for a in arrays]
    if not parts or offsets[-1] == 0:
        return np.empty(0), offsets
    flat = np.concatenate([p if p.dtype == np.float64 else p.astype(np.float64) for p in parts])
    return flat, offsets


def _as_flat(values, offsets):
    if offsets is None:
        return flatten_ragged(values)
    return np.asarray(values, dtype=np.float64), np.asarray(offsets, dtype=np.int64)


def build_sequences(jd, fid, magpsf, offsets=None) -> Sequences:
    """Build the t2 input for a batch of light curves.

    Parameters
    ----------
    jd, fid, magpsf:
        Either ragged (one array per alert: the ``cjd``, ``cfid``, ``cmagpsf``
        columns, history then current) or flat arrays with ``offsets``.
        ``magpsf`` may hold NaN/None for upper limits. Times in days.
    offsets: optional int array (n+1,), row boundaries of flat inputs.
    """
    jd, off = _as_flat(jd, offsets)
    fid, off_fid = _as_flat(fid, offsets)
    mag, off_mag = _as_flat(magpsf, offsets)
    if not (np.array_equal(off, off_fid) and np.array_equal(off, off_mag) and len(jd) == len(fid) == len(mag) == off[-1]):
        raise ValueError("jd, fid and magpsf must have the same length for every alert")
    n = len(off) - 1
    row = np.repeat(np.arange(n), np.diff(off))
    channel = np.full(len(fid), -1)
    for c, (_, band_fid) in enumerate(BANDS):
        channel[fid == band_fid] = c
    with np.errstate(invalid="ignore"):
        ok = (channel >= 0) & np.isfinite(jd) & np.isfinite(mag)
        ok &= (mag >= VALID_MAG_RANGE[0]) & (mag <= VALID_MAG_RANGE[1])
    row, channel, jd, flux = row[ok], channel[ok], jd[ok], mag_to_flux_ujy(mag[ok])

    order = np.lexsort((jd, row))
    row_sorted, jd_sorted = row[order], jd[order]
    new_epoch = np.ones(len(order), dtype=bool)
    new_epoch[1:] = (row_sorted[1:] != row_sorted[:-1]) | (jd_sorted[1:] != jd_sorted[:-1])
    n_epochs = np.bincount(row_sorted[new_epoch], minlength=n)

    t0 = np.full(n, np.inf)
    np.minimum.at(t0, row, jd)
    # compared as floats before the cast: an absurd jd (1e300) must not overflow into a valid node
    with np.errstate(over="ignore"):
        offset = np.rint((jd - t0[row]) / GRID_STEP_DAYS)
    inside = offset < SEQUENCE_LENGTH
    n_beyond_window = np.bincount(row[~inside], minlength=n)
    row, channel, flux = row[inside], channel[inside], flux[inside]
    node = offset[inside].astype(np.int64)

    cell = (row * SEQUENCE_LENGTH + node) * 2 + channel
    size = n * SEQUENCE_LENGTH * 2
    counts = np.bincount(cell, minlength=size)
    sums = np.bincount(cell, weights=flux, minlength=size)
    observed = (counts > 0).reshape(n, SEQUENCE_LENGTH, 2)
    binned = np.divide(sums, counts, out=np.zeros(size), where=counts > 0).reshape(n, SEQUENCE_LENGTH, 2)

    values, mask = _interpolate_between_observed(binned, observed)
    peak = binned.max(axis=(1, 2))
    scale = np.divide(1.0, peak, out=np.zeros(n), where=peak > 0)
    values = (values * scale[:, None, None]).astype(np.float32)
    n_detections = np.bincount(row, minlength=n)
    return Sequences(values=values, mask=mask, n_detections=n_detections, n_epochs=n_epochs,
                     n_beyond_window=n_beyond_window)


def _interpolate_between_observed(binned: np.ndarray, observed: np.ndarray):
    """Linear interpolation along axis 1 between observed nodes; 0 outside.

    Previous/next observed node found with running max/min (int8: nodes < 128),
    values gathered from the flat array (cheaper than ``take_along_axis``).
    """
    n = binned.shape[0]
    steps = np.arange(SEQUENCE_LENGTH, dtype=np.int8)[None, :, None]
    prev = np.where(observed, steps, np.int8(-1))
    np.maximum.accumulate(prev, axis=1, out=prev)
    nxt = np.minimum.accumulate(np.where(observed, steps, np.int8(SEQUENCE_LENGTH))[:, ::-1], axis=1)[:, ::-1]
    mask = (prev >= 0) & (nxt < SEQUENCE_LENGTH)
    p = np.maximum(prev, 0).astype(np.int64)
    q = np.minimum(nxt, SEQUENCE_LENGTH - 1).astype(np.int64)
    base = (np.arange(n, dtype=np.int64) * (2 * SEQUENCE_LENGTH))[:, None, None] + np.arange(2)[None, None, :]
    flat = binned.reshape(-1)
    vp, vq = flat[base + 2 * p], flat[base + 2 * q]
    span = (q - p).astype(binned.dtype)
    weight = (steps - p).astype(binned.dtype)
    np.divide(weight, span, out=weight, where=span > 0)
    weight[span == 0] = 0
    values = vp + weight * (vq - vp)
    values[~mask] = 0
    return values, mask
