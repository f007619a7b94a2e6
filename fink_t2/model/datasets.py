"""Labelled light curves for t2: ZTF BTS (real alerts) and SNPCC (simulated, DES cadence).

Everything becomes one long table, one row per g/r detection::

    object_id, jd, fid (1 = g, 2 = r), mag, label (one of CLASS_NAMES), source ('bts' | 'snpcc')

Alerts carry partial light curves, so each object is expanded into several
*truncations* (the curve up to its k-th detection epoch, k >= 2), all turned
into tensors by ONE call to :func:`fink_t2.sequences.build_sequences`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.sequences import GRID_STEP_DAYS, SEQUENCE_LENGTH, build_sequences

CLASS_NAMES = ("SN Ia", "SN II", "SN Ibc", "Other")
SPLITS = ("train", "val", "test")
MJD_TO_JD = 2400000.5
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
    df = df.assign(source=source)[["object_id", "jd", "fid", "mag", "label", "source"]]
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


def load_bts(data_dir) -> pd.DataFrame:
    """ZTF Bright Transient Survey detections with their class (unknown types dropped)."""
    folder = Path(data_dir) / "ztf_bts"
    labels = pd.read_csv(folder / "labels.csv", usecols=["ZTFID", "type"])
    labels = labels.assign(label=labels["type"].map(type_to_class)).set_index("ZTFID")["label"]
    lc = pd.read_csv(folder / "lightcurves.csv.gz")
    lc = lc[lc["band"].isin(["g", "r"])]
    df = pd.DataFrame({
        "object_id": lc["objectId"].astype(str),
        "jd": lc["mjd"].to_numpy(np.float64) + MJD_TO_JD,
        "fid": np.where(lc["band"].to_numpy() == "g", 1, 2),
        "mag": lc["mag"].to_numpy(np.float64),
        "label": lc["objectId"].map(labels).to_numpy(),
    })
    return _finish(df, "bts")


def load_snpcc(data_dir, max_objects: int | None = None, seed: int = 42) -> pd.DataFrame:
    """SNPCC g/r points with flux/fluxerr >= 5 as AB mags; objects with >= 2 of them.

    ``max_objects`` keeps a seeded class-balanced subsample (same number per class where possible).
    """
    folder = Path(data_dir) / "snpcc_des"
    labels = pd.read_csv(folder / "labels.csv", usecols=["snid", "type"]).set_index("snid")["type"]
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
        "label": lc["snid"].map(labels).map(type_to_class).to_numpy(),
    })
    df = _finish(df, "snpcc")
    df = df[df.groupby("object_id")["jd"].transform("size") >= 2]
    return _sample_objects(df, max_objects, seed, balanced=True)


def load_table(data_dir="../shared/data", max_objects=None, snpcc_objects=5000, seed=42) -> pd.DataFrame:
    """BTS + SNPCC long table; ``max_objects`` caps each source (seeded), for quick runs.

    ``snpcc_objects=0`` leaves SNPCC out, ``None`` takes all of it.
    """
    bts = _sample_objects(load_bts(data_dir), max_objects, seed, balanced=False)
    n_snpcc = snpcc_objects if max_objects is None else min(max_objects, snpcc_objects if snpcc_objects is not None
                                                               else max_objects)
    if n_snpcc == 0:
        return bts
    return pd.concat([bts, load_snpcc(data_dir, n_snpcc, seed)], ignore_index=True)


def split_objects(objects: pd.DataFrame, fractions=(0.7, 0.15, 0.15), seed=42) -> pd.Series:
    """Object-level split stratified by (source, label); only BTS objects go to test.

    ``objects`` has columns object_id, label, source. SNPCC's test share goes to train.

    >>> objs = pd.DataFrame({"object_id": list("abcdefghij"), "label": ["SN Ia"] * 10,
    ...                      "source": ["bts"] * 5 + ["snpcc"] * 5})
    >>> s = split_objects(objs, (0.6, 0.2, 0.2))
    >>> s.iloc[:5].value_counts()[list(SPLITS)].tolist(), sorted(set(s.iloc[5:]))
    ([3, 1, 1], ['train', 'val'])
    """
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=objects["object_id"].to_numpy(), name="split")
    for (source, _), group in objects.groupby(["source", "label"], sort=True):
        ids = rng.permutation(group["object_id"].to_numpy())
        n_val = int(round(len(ids) * fractions[1]))
        n_test = int(round(len(ids) * fractions[2])) if source == "bts" else 0
        split[ids[:n_val]] = "val"
        split[ids[n_val:n_val + n_test]] = "test"
    return split


@dataclass
class Examples:
    """Model inputs with one row per (object, truncation)."""

    values: np.ndarray  # float32 (n, SEQUENCE_LENGTH, 2), from build_sequences
    label: np.ndarray  # int (n,), index into CLASS_NAMES
    object_id: np.ndarray
    source: np.ndarray
    full: np.ndarray  # bool: the whole light curve, not a truncation
    n_detections: np.ndarray

    def __len__(self):
        return len(self.label)

    def select(self, keep) -> "Examples":
        return Examples(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))


def make_examples(table: pd.DataFrame, max_truncations: int = 8, seed: int = 42) -> Examples:
    """Expand objects into truncated light curves, built by one ``build_sequences`` call.

    A truncation keeps the points with ``jd <= t_k``, ``t_k`` the k-th detection epoch
    (k >= 2) inside the 100-day window. Per object: the full curve plus up to
    ``max_truncations - 1`` seeded random earlier truncations. Objects with a single
    epoch are dropped.

    >>> t = pd.DataFrame({"object_id": ["a"] * 4 + ["b"], "jd": [1., 2., 2., 5., 1.],
    ...                   "fid": [1, 2, 1, 1, 2], "mag": [19., 19., 18., 18.5, 19.],
    ...                   "label": ["SN II"] * 5, "source": ["bts"] * 5})
    >>> ex = make_examples(t)
    >>> ex.n_detections.tolist(), ex.full.tolist(), ex.label.tolist()
    ([3, 4], [False, True], [1, 1])
    """
    df = table.sort_values(["object_id", "jd"], kind="stable").reset_index(drop=True)
    code = pd.factorize(df["object_id"], sort=True)[0]
    jd = df["jd"].to_numpy(np.float64)
    new_object = np.r_[True, code[1:] != code[:-1]]
    starts = np.flatnonzero(new_object)
    ends = np.r_[starts[1:], len(df)]
    first = starts[code]
    # candidate truncation = last row of an epoch, from the 2nd detection on, inside the window
    epoch_end = np.r_[(code[1:] != code[:-1]) | (jd[1:] != jd[:-1]), True]
    in_window = (jd - jd[first]) / GRID_STEP_DAYS < SEQUENCE_LENGTH - 0.5
    cand = np.flatnonzero(epoch_end & (np.arange(len(df)) > first) & in_window)
    cand_code = code[cand]
    is_full = np.r_[cand_code[1:] != cand_code[:-1], True] if len(cand) else np.zeros(0, bool)

    rng = np.random.default_rng(seed)
    key = np.where(is_full, -1.0, rng.random(len(cand)))
    order = np.lexsort((key, cand_code))
    rank = np.arange(len(order)) - np.searchsorted(cand_code[order], cand_code[order])
    chosen = np.sort(order[rank < max_truncations])
    cand, cand_code, is_full = cand[chosen], cand_code[chosen], is_full[chosen]

    start = starts[cand_code]
    length = np.where(is_full, ends[cand_code], cand + 1) - start
    offsets = np.r_[0, np.cumsum(length)]
    idx = np.repeat(start - offsets[:-1], length) + np.arange(offsets[-1])
    seq = build_sequences(jd[idx], df["fid"].to_numpy()[idx], df["mag"].to_numpy()[idx], offsets)
    class_index = {name: i for i, name in enumerate(CLASS_NAMES)}
    return Examples(
        values=seq.values,
        label=df["label"].map(class_index).to_numpy(np.int64)[start],
        object_id=df["object_id"].to_numpy()[start],
        source=df["source"].to_numpy()[start],
        full=is_full,
        n_detections=seq.n_detections,
    )


def build_datasets(data_dir="../shared/data", max_objects=None, snpcc_objects=5000, max_truncations=8,
                   fractions=(0.7, 0.15, 0.15), seed=42):
    """Load, split and expand: returns (objects table with a split column, {split: Examples})."""
    table = load_table(data_dir, max_objects, snpcc_objects, seed)
    objects = table.groupby("object_id", sort=True).agg(label=("label", "first"), source=("source", "first"),
                                                        n_points=("jd", "size")).reset_index()
    objects["split"] = split_objects(objects, fractions, seed).loc[objects["object_id"]].to_numpy()
    examples = make_examples(table, max_truncations, seed)
    split_of = objects.set_index("object_id")["split"]
    example_split = split_of.loc[examples.object_id].to_numpy()
    return objects, {s: examples.select(example_split == s) for s in SPLITS}
