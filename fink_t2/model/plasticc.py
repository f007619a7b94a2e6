"""The PLAsTiCC training set (``../shared/data/plasticc``, or ``$FINK_T2_DATA/plasticc``) as t2 inputs.

Fluxes are converted from FLUXCAL (zero point 27.5) to nJy (zero point 31.4), the unit of Rubin alerts;
``passband`` 0..5 is the band u, g, r, i, z, y. Classes keep PLAsTiCC's names, except codes 90, 42 and 62,
spelled ``SN Ia``, ``SN II`` and ``SN Ibc`` as fink-t2's ZTF model spells them.

>>> round(FLUXCAL_TO_NJY, 4)
36.3078
>>> CLASS_NAMES[:4]
('SN Ia', 'SN II', 'SN Ibc', 'SNIa-91bg')
>>> round(flat_log_loss(np.array([0, 0, 1]), np.array([[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]])), 4)
0.4904
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.core.flux_sequences import build_flux_sequences
from fink_t2.core.spec import SequenceSpec
from fink_t2.paths import shared_data_dir

FLUXCAL_TO_NJY = 10.0 ** (0.4 * (31.4 - 27.5))
#: PLAsTiCC class code → name (Kessler et al. 2019), in the order of the model's outputs
CLASSES = {90: "SN Ia", 42: "SN II", 62: "SN Ibc", 67: "SNIa-91bg", 52: "SNIax", 95: "SLSN-I", 15: "TDE",
           64: "KN", 88: "AGN", 6: "mu-Lens-Single", 16: "EB", 53: "Mira", 65: "M-dwarf", 92: "RRL"}
CLASS_NAMES = tuple(CLASSES.values())
#: the broad classes of Fink's Rubin science stage, for users who need those
BROAD_CLASSES = {"SN Ia": "SN-like", "SN II": "SN-like", "SN Ibc": "SN-like", "SNIa-91bg": "SN-like",
                 "SNIax": "SN-like", "SLSN-I": "long", "TDE": "long", "KN": "fast", "AGN": "non-periodic",
                 "mu-Lens-Single": "long", "EB": "periodic", "Mira": "periodic", "M-dwarf": "fast", "RRL": "periodic"}
#: host-galaxy photometric redshift inputs (the "+ photo-z" setting)
PHOTOZ_CHANNELS = ("hostgal_photoz", "hostgal_photoz_err")


def plasticc_dir(data_dir=None) -> Path:
    return Path(data_dir) / "plasticc" if data_dir else shared_data_dir() / "plasticc"


def load_plasticc(data_dir=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(light curves, objects). Light curves: object_id, mjd, band (0..5), flux and flux_err (nJy), detected
    (bool), sorted by object and time. Objects: object_id, target, label, y (class index), ddf, photo-z."""
    folder = plasticc_dir(data_dir)
    if not (folder / "lightcurves.parquet").is_file():
        raise FileNotFoundError(f"{folder}: no PLAsTiCC training set here (lightcurves.parquet, metadata.csv); "
                                f"set $FINK_T2_DATA or --data-dir")
    lc = pd.read_parquet(folder / "lightcurves.parquet")
    lc = pd.DataFrame({"object_id": lc["object_id"].to_numpy(), "mjd": lc["mjd"].to_numpy(np.float64),
                       "band": lc["passband"].to_numpy(np.int64),
                       "flux": lc["flux"].to_numpy(np.float64) * FLUXCAL_TO_NJY,
                       "flux_err": lc["flux_err"].to_numpy(np.float64) * FLUXCAL_TO_NJY,
                       "detected": lc["detected_bool"].to_numpy() > 0})
    lc = lc.sort_values(["object_id", "mjd"], kind="stable").reset_index(drop=True)
    meta = pd.read_csv(folder / "metadata.csv")
    unknown = sorted(set(meta["target"]) - set(CLASSES))
    if unknown:
        raise ValueError(f"{folder}: unknown PLAsTiCC class codes {unknown}")
    objects = pd.DataFrame({"object_id": meta["object_id"], "target": meta["target"],
                            "label": meta["target"].map(CLASSES),
                            "y": meta["target"].map({c: i for i, c in enumerate(CLASSES)}).astype(np.int64),
                            "ddf": meta["ddf_bool"].astype(bool),
                            "hostgal_photoz": meta["hostgal_photoz"], "hostgal_photoz_err": meta["hostgal_photoz_err"]})
    return lc, objects.sort_values("object_id").reset_index(drop=True)


def offsets_of(lc: pd.DataFrame, object_ids) -> np.ndarray:
    """Row boundaries (n+1,) of ``object_ids`` (sorted as in ``lc``) in ``lc``."""
    codes = lc["object_id"].to_numpy()
    start = np.searchsorted(codes, np.asarray(object_ids), side="left")
    end = np.searchsorted(codes, np.asarray(object_ids), side="right")
    if not np.array_equal(start[1:], end[:-1]) or start[0] != 0 or end[-1] != len(lc):
        raise ValueError("light curves must hold exactly these objects, sorted")
    return np.r_[start, end[-1]].astype(np.int64)


def full_curve_end(lc: pd.DataFrame, offsets: np.ndarray, anchor: str, after_peak_days: float = 100.0) -> np.ndarray:
    """Per object, the epoch its full-curve view ends at: its last measurement ("last"), or ``after_peak_days``
    after its brightest detection (|flux|), if it has measurements that late ("peak")."""
    n = len(offsets) - 1
    row = np.repeat(np.arange(n), np.diff(offsets))
    mjd = lc["mjd"].to_numpy()
    last = np.full(n, -np.inf)
    np.maximum.at(last, row, mjd)
    if anchor == "last":
        return last
    strength = np.where(lc["detected"].to_numpy(), np.abs(lc["flux"].to_numpy()), -1.0)
    order = np.lexsort((strength, row))
    best = order[np.r_[row[order][1:] != row[order][:-1], True]]
    return np.minimum(last, mjd[best] + after_peak_days)


def full_curve_inputs(lc: pd.DataFrame, objects: pd.DataFrame, spec: SequenceSpec, anchor: str = "last"):
    """(model inputs, class indices) of every object's full light curve in ``spec``'s bands."""
    keep = lc[lc["band"].isin(spec.band_codes)]
    offsets = offsets_of(keep, objects["object_id"])
    now = full_curve_end(keep, offsets, anchor)
    extra = {c: objects[c].to_numpy(np.float64) for c in spec.extra_channels}
    seq = build_flux_sequences(spec, keep["mjd"].to_numpy(), keep["band"].to_numpy(), keep["flux"].to_numpy(),
                               keep["detected"].to_numpy(), offsets=offsets, t_now=now, extra=extra)
    return seq.values, objects["y"].to_numpy(np.int64)


def flat_log_loss(y: np.ndarray, proba: np.ndarray, n_classes: int | None = None) -> float:
    """PLAsTiCC's flat-weighted log-loss: the mean over the classes present of each class's mean -log p."""
    n_classes = n_classes or proba.shape[1]
    p = np.clip(proba.astype(np.float64), 1e-15, 1.0)
    p /= p.sum(axis=1, keepdims=True)
    per_object = -np.log(p[np.arange(len(y)), y])
    return float(np.mean([per_object[y == c].mean() for c in range(n_classes) if np.any(y == c)]))


def resampled_curves(lc: pd.DataFrame, copies: int, seed: int = 42) -> pd.DataFrame:
    """``copies`` re-observed copies of every light curve (training augmentation): each keeps a random
    50-100 % of its measurements, and each flux is redrawn within its error (detections re-flagged at
    5 sigma once redrawn, the PLAsTiCC threshold). ``object_id`` is kept; a ``copy`` column numbers them."""
    rng = np.random.default_rng(seed)
    parts = []
    ids = lc["object_id"].to_numpy()
    unique, code = np.unique(ids, return_inverse=True)
    for c in range(copies):
        keep_rate = rng.uniform(0.5, 1.0, len(unique))[code]
        part = lc[rng.random(len(lc)) < keep_rate].copy()
        part["flux"] = part["flux"] + rng.normal(0.0, 1.0, len(part)) * part["flux_err"]
        part["detected"] = np.abs(part["flux"]) > 5.0 * part["flux_err"]
        part["copy"] = c
        parts.append(part)
    return pd.concat(parts, ignore_index=True).sort_values(["copy", "object_id", "mjd"], kind="stable")


def split_objects(ids: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """(kept ids, held-out ids): a seeded, label-stratified ``fraction`` held out."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        group = rng.permutation(ids[labels == label])
        held.append(group[: max(1, int(round(len(group) * fraction)))])
    held = np.concatenate(held)
    return ids[~np.isin(ids, held)], held
