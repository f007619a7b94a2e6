"""Labelled light curves for t2: ZTF BTS (real alerts) and SNPCC (simulated, DES cadence).

Everything becomes one long table, one row per g/r detection::

    object_id, jd, fid (1 = g, 2 = r), mag, magerr, label (one of CLASS_NAMES), source ('bts' | 'snpcc'),
    redshift (spectroscopic; NaN where unknown)

Alerts carry partial light curves: :mod:`fink_t2.model.views` cuts these tables into the views an
alert would carry. Objects are split for cross-validation by :func:`cv_folds`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.paths import shared_data_dir

#: the classes t2 is trained on, in the order of its output (written into every model file's contract)
CLASS_NAMES = ("SN Ia", "SN II", "SN Ibc", "Other")
MJD_TO_JD = 2400000.5
COLUMNS = ("object_id", "jd", "fid", "mag", "magerr", "label", "source", "redshift")
SNPCC_ZERO_POINT = 27.5
SNPCC_MIN_SNR = 5.0
_SUBTYPES = {
    "SN Ia": ("Ia", "Ia-91T", "Ia-pec", "Ia-91bg", "Iax", "Ia-CSM"),
    "SN II": ("II", "IIP", "IIL", "IIn", "IIb", "II-pec"),
    "SN Ibc": ("Ib", "Ic", "Ic-BL", "Ib/c", "Ibc", "Ibn", "Icn", "Ib-pec"),
    "Other": ("SLSN-I", "SLSN-II", "TDE", "nova", "LBV", "ILRT", "LRN", "Ca-rich", "other"),
}
_TYPE_TO_CLASS = {sub: cls for cls, subs in _SUBTYPES.items() for sub in subs}


def type_to_class(type_name) -> str | None:
    """Spectroscopic type (BTS or SNPCC spelling) → t2 class, None if unknown.

    >>> [type_to_class(t) for t in ("SN Ia-91T", "IIn", "SN Ic-BL", "TDE", "Ibc", "AGN")]
    ['SN Ia', 'SN II', 'SN Ibc', 'Other', 'SN Ibc', None]
    """
    name = str(type_name).strip()
    if name.startswith("SN "):
        name = name[3:]
    return _TYPE_TO_CLASS.get(name)


def _finish(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = df[df["label"].notna() & np.isfinite(df["mag"]) & np.isfinite(df["jd"])]
    df = df.assign(source=source)[list(COLUMNS)]
    return df.sort_values(["object_id", "jd"], kind="stable").reset_index(drop=True)


def _sample_objects(table: pd.DataFrame, n: int | None, seed: int, balanced: bool) -> pd.DataFrame:
    """Keep at most ``n`` objects (seeded); ``balanced`` caps each class at n / n_classes."""
    labels = table.groupby("object_id", sort=True)["label"].first()
    if n is None or n >= len(labels):
        return table
    rng = np.random.default_rng(seed)
    if balanced:
        cap = max(1, n // labels.nunique())
        keep = [rng.permutation(ids.to_numpy())[:cap] for _, ids in labels.index.to_series().groupby(labels.to_numpy())]
        keep = np.concatenate(keep)
    else:
        keep = rng.permutation(labels.index.to_numpy())[:n]
    return table[table["object_id"].isin(keep)].reset_index(drop=True)


def load_bts(data_dir=None) -> pd.DataFrame:
    """ZTF Bright Transient Survey detections with their class (unknown types dropped)."""
    folder = Path(data_dir or shared_data_dir()) / "ztf_bts"
    labels = pd.read_csv(folder / "labels.csv", usecols=["ZTFID", "type", "redshift"])
    redshift = pd.to_numeric(labels.set_index("ZTFID")["redshift"], errors="coerce")  # '-' where unknown
    labels = labels.assign(label=labels["type"].map(type_to_class)).set_index("ZTFID")["label"]
    lc = pd.read_csv(folder / "lightcurves.csv.gz")
    lc = lc[lc["band"].isin(["g", "r"])]
    df = pd.DataFrame({
        "object_id": lc["objectId"].astype(str),
        "jd": lc["mjd"].to_numpy(np.float64) + MJD_TO_JD,
        "fid": np.where(lc["band"].to_numpy() == "g", 1, 2),
        "mag": lc["mag"].to_numpy(np.float64),
        "magerr": lc["magerr"].to_numpy(np.float64),
        "label": lc["objectId"].map(labels).to_numpy(),
        "redshift": lc["objectId"].map(redshift).to_numpy(np.float64),
    })
    return _finish(df, "bts")


def load_snpcc(data_dir=None, max_objects: int | None = None, seed: int = 42) -> pd.DataFrame:
    """SNPCC g/r points with flux/fluxerr >= 5 as AB mags; objects with >= 2 of them.

    ``max_objects`` keeps a seeded class-balanced subsample (same number per class where possible).
    """
    folder = Path(data_dir or shared_data_dir()) / "snpcc_des"
    labels = pd.read_csv(folder / "labels.csv", usecols=["snid", "type", "redshift"]).set_index("snid")
    lc = pd.read_parquet(folder / "lightcurves.parquet")
    flux, err = lc["flux"].to_numpy(np.float64), lc["fluxerr"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = lc["band"].isin(["g", "r"]).to_numpy() & (err > 0) & (flux / err >= SNPCC_MIN_SNR)
    lc = lc[ok]
    df = pd.DataFrame({
        "object_id": "snpcc_" + lc["snid"].astype(str),
        "jd": lc["mjd"].to_numpy(np.float64) + MJD_TO_JD,
        "fid": np.where(lc["band"].to_numpy() == "g", 1, 2),
        "mag": SNPCC_ZERO_POINT - 2.5 * np.log10(lc["flux"].to_numpy(np.float64)),
        "magerr": 1.0857 * lc["fluxerr"].to_numpy(np.float64) / lc["flux"].to_numpy(np.float64),
        "label": lc["snid"].map(labels["type"]).map(type_to_class).to_numpy(),
        "redshift": lc["snid"].map(labels["redshift"]).to_numpy(np.float64),
    })
    df = _finish(df, "snpcc")
    df = df[df.groupby("object_id")["jd"].transform("size") >= 2]
    return _sample_objects(df, max_objects, seed, balanced=True)


def load_table(data_dir=None, max_objects=None, snpcc_objects=5000, seed=42) -> pd.DataFrame:
    """BTS + SNPCC long table; ``max_objects`` caps each source (seeded), for quick runs.

    ``snpcc_objects=0`` leaves SNPCC out, ``None`` takes all of it.
    """
    bts = _sample_objects(load_bts(data_dir), max_objects, seed, balanced=False)
    n_snpcc = snpcc_objects if max_objects is None else min(max_objects, snpcc_objects if snpcc_objects is not None
                                                               else max_objects)
    if n_snpcc == 0:
        return bts
    return pd.concat([bts, load_snpcc(data_dir, n_snpcc, seed)], ignore_index=True)


def object_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per object of a long table: object_id, label, source, n_points (sorted by object_id)."""
    return table.groupby("object_id", sort=True).agg(label=("label", "first"), source=("source", "first"),
                                                     n_points=("jd", "size")).reset_index()


def cv_folds(objects: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped (by object), stratified (by label) folds: [(train object ids, test object ids)] × ``n_folds``.

    >>> objs = pd.DataFrame({"object_id": list("abcdefghij"), "label": ["SN Ia"] * 6 + ["SN II"] * 4})
    >>> folds = cv_folds(objs, 2)
    >>> [sorted(test) for _, test in folds]
    [['a', 'b', 'd', 'g', 'j'], ['c', 'e', 'f', 'h', 'i']]
    """
    from sklearn.model_selection import StratifiedKFold

    ids = objects["object_id"].to_numpy()
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(ids[train], ids[test]) for train, test in splitter.split(ids, objects["label"].to_numpy())]


def validation_ids(objects: pd.DataFrame, fraction: float = 0.15, seed: int = 42) -> np.ndarray:
    """A seeded, label-stratified ``fraction`` of the objects, held out for early stopping.

    >>> objs = pd.DataFrame({"object_id": list("abcdefghij"), "label": ["SN Ia"] * 6 + ["SN II"] * 4})
    >>> len(validation_ids(objs, 0.2))
    2
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for _, group in objects.groupby("label", sort=True):
        ids = rng.permutation(group["object_id"].to_numpy())
        chosen.append(ids[: int(round(len(ids) * fraction))])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=object)
