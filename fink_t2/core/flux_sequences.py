"""Flux measurements in any band set → the input tensor of a band-generic t2 model (contract format 3).

The same function builds the view of a full light curve (training and scoring on PLAsTiCC) and of an
alert (a Rubin alert: detections and forced photometry of the previous ``window_days``): an alert view
is the light curve cut at ``t_now``; a full curve is the view at its chosen end.

What is kept, per alert: every finite measurement of a band of the spec with ``t_now - window_days <=
time <= t_now``, detected or not (forced photometry is a measurement: negative fluxes included).

Layouts (``spec.representation``):

``grid``
    ``sequence_length`` nodes evenly spaced over the window, the last at ``t_now``; each measurement
    goes to its nearest node (several are averaged), values interpolated between measured nodes per band.
``epochs``
    one node per measured night (``floor(time)``), the latest ``sequence_length`` nights up to
    ``t_now``, oldest first and right-aligned (empty nodes first); the night's time is channel ``time``.

Channels (``spec.channels``): per band the flux divided by the alert's peak detected flux (clipped to
±``FLUX_CLIP``), ``measured_*`` (1 where the node holds a measurement) and ``detected_*`` (a detection);
``time`` ((node time - t_now) / window, in [-1, 0]); ``age`` (days since the first detection at that
node / ``AGE_SCALE_DAYS``, clipped to ``AGE_CLIP``); ``log_ndet`` (log10(1 + detections up to t_now) / 2);
``log_peak_flux`` (log10(peak / µJy) - 1.5); then the spec's ``extra_channels`` (per-alert scalars).

>>> from fink_t2.core.spec import SequenceSpec
>>> spec = SequenceSpec(bands=("g", "r"), band_codes=(1, 2), window_days=10.0, sequence_length=4)
>>> seq = build_flux_sequences(spec, [[0.1, 0.2, 3.1, 5.0]], [["g", "r", "g", "r"]], [[100.0, 50.0, 200.0, -5.0]],
...                            detected=[[1, 1, 1, 0]])
>>> seq.values[0, :, 0].round(2).tolist(), seq.values[0, :, 5].tolist()  # flux g / detected r, epochs
([0.0, 0.5, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0])
>>> seq.n_detections.tolist(), seq.age_days.tolist()
([3], [4.9])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.sequences import Sequences, flatten_ragged, interpolate_between_observed
from fink_t2.core.spec import SequenceSpec

FLUX_CLIP = 10.0
AGE_SCALE_DAYS = 100.0
AGE_CLIP = (-4.0, 4.0)


def band_index(spec: SequenceSpec, band) -> np.ndarray:
    """Band names or codes → channel index in ``spec.bands``; -1 for any other band.

    >>> band_index(SequenceSpec(), np.array(["y", "u", "x"], dtype=object)).tolist()
    [5, 0, -1]
    >>> band_index(SequenceSpec(), np.array([2, 7])).tolist()
    [2, -1]
    """
    band = np.asarray(band)
    lookup = {**{name: i for i, name in enumerate(spec.bands)}, **{code: i for i, code in enumerate(spec.band_codes)}}
    if band.dtype.kind in "OUS":
        return pd.Series(band, dtype=object).map(lookup).fillna(-1).to_numpy(np.int64)
    out = np.full(band.shape, -1, dtype=np.int64)
    for i, code in enumerate(spec.band_codes):
        if isinstance(code, (int, float)):
            out[band == code] = i
    return out


def _flat(values, offsets, dtype=np.float64):
    if offsets is None:
        return flatten_ragged(values, dtype)
    return np.asarray(values, dtype=dtype), np.asarray(offsets, dtype=np.int64)


def _per_alert(values, n, default):
    if values is None:
        return default
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) != n:
        raise ValueError(f"{len(values)} per-alert values for {n} alerts")
    return np.where(np.isfinite(values), values, default)


def build_flux_sequences(spec: SequenceSpec, time, band, flux, detected=None, offsets=None, t_now=None,
                         t_first=None, extra: dict | None = None) -> Sequences:
    """The model input ``(n, spec.sequence_length, len(spec.channels))`` of a batch of alerts.

    ``time`` (days, MJD), ``band`` (names or codes), ``flux`` (``spec.flux_unit``), ``detected`` (bool-like;
    default: every row a detection): ragged (one array per alert) or flat with ``offsets`` (n+1,).
    ``t_now`` (n,): the alert's epoch (default: its latest time). ``t_first`` (n,): its first detection, if
    older than the data given. ``extra``: ``{channel: (n,) values}`` for the spec's extra channels.
    """
    time, off = _flat(time, offsets)
    flux, off_flux = _flat(flux, offsets)
    band, off_band = _flat(band, offsets, dtype=object) if offsets is None else (np.asarray(band), off)
    det, off_det = (np.ones(len(time)), off) if detected is None else _flat(detected, offsets)
    if not (len(time) == len(flux) == len(band) == len(det) == off[-1]
            and all(np.array_equal(off, o) for o in (off_flux, off_band, off_det))):
        raise ValueError("time, band, flux (and detected) must have the same length for every alert")
    n, length, nb = len(off) - 1, spec.sequence_length, len(spec.bands)
    row = np.repeat(np.arange(n), np.diff(off))
    channel = band_index(spec, band)
    finite = np.isfinite(time) & np.isfinite(flux) & (channel >= 0)
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, row[finite], time[finite])
    now = _per_alert(t_now, n, latest)
    now = np.where(np.isfinite(now), now, 0.0)  # an alert without a measurement: an empty sequence
    det = np.nan_to_num(det) > 0
    with np.errstate(invalid="ignore"):
        ok = finite & (time <= now[row]) & (time >= now[row] - spec.window_days)
    detection = ok & det
    first = np.full(n, np.inf)
    np.minimum.at(first, row[detection], time[detection])
    first = np.fmin(_per_alert(t_first, n, first), first)
    n_det = np.bincount(row[detection], minlength=n)
    n_epochs = pd.DataFrame({"r": row[detection], "t": time[detection]}).drop_duplicates().groupby("r").size() \
        .reindex(range(n), fill_value=0).to_numpy()

    row, channel, time, flux, det = row[ok], channel[ok], time[ok], flux[ok], det[ok]
    if spec.representation == "grid":
        step = spec.window_days / (length - 1)
        node = np.clip(np.rint((time - (now[row] - spec.window_days)) / step), 0, length - 1).astype(np.int64)
        node_time = (np.arange(length) * step - spec.window_days)[None, :] + now[:, None]
    else:
        night = np.floor(time)
        pairs = pd.DataFrame({"row": row, "night": night}).drop_duplicates().sort_values(["row", "night"])
        rank = pairs.groupby("row").cumcount(ascending=False).to_numpy()
        pairs["node"] = length - 1 - rank
        node = pd.DataFrame({"row": row, "night": night}).merge(pairs, how="left", on=["row", "night"])["node"].to_numpy()
        node_time = now[:, None] - spec.window_days + np.zeros((1, length))
        keep_pair = pairs["node"].to_numpy() >= 0
        node_time[pairs["row"].to_numpy()[keep_pair], pairs["node"].to_numpy()[keep_pair]] = \
            pairs["night"].to_numpy()[keep_pair] + 0.5
        keep = node >= 0
        row, channel, flux, det, node = row[keep], channel[keep], flux[keep], det[keep], node[keep]

    cell = (row * length + node) * nb + channel
    size = n * length * nb
    counts = np.bincount(cell, minlength=size)
    binned = np.divide(np.bincount(cell, weights=flux, minlength=size), counts, out=np.zeros(size),
                       where=counts > 0).reshape(n, length, nb)
    measured = (counts > 0).reshape(n, length, nb)
    detected_nodes = (np.bincount(cell[det], minlength=size) > 0).reshape(n, length, nb)
    peak = np.zeros(n)
    np.maximum.at(peak, row[det], np.abs(flux[det]))  # a variable star fades below its reference: |flux|
    if spec.representation == "grid":
        binned = interpolate_between_observed(binned, measured)
    scale = np.divide(1.0, peak, out=np.zeros(n), where=peak > 0)

    values = np.zeros((n, length, len(spec.channels)), dtype=np.float32)
    values[..., :nb] = np.clip(binned * scale[:, None, None], -FLUX_CLIP, FLUX_CLIP)
    values[..., nb:2 * nb] = measured
    values[..., 2 * nb:3 * nb] = detected_nodes
    values[..., 3 * nb] = np.clip((node_time - now[:, None]) / spec.window_days, -1.0, 0.0)
    start = np.where(np.isfinite(first), first, now)
    values[..., 3 * nb + 1] = np.clip((node_time - start[:, None]) / AGE_SCALE_DAYS, *AGE_CLIP)
    values[..., 3 * nb + 2] = (np.log10(1.0 + n_det) / 2.0)[:, None]
    with np.errstate(divide="ignore"):
        values[..., 3 * nb + 3] = np.where(peak > 0, np.log10(np.where(peak > 0, spec.to_ujy(peak), 1.0)) - 1.5, 0.0)[:, None]
    for i, name in enumerate(spec.extra_channels):
        if extra is None or name not in extra:
            raise ValueError(f"the model needs the per-alert input {name!r}")
        values[..., 3 * nb + 4 + i] = _per_alert(extra[name], n, np.zeros(n))[:, None]
    age = np.where(np.isfinite(first), now - first, 0.0)
    return Sequences(values=values, n_detections=n_det, n_epochs=n_epochs, n_negative=np.zeros(n, dtype=np.int64),
                     age_days=age)
