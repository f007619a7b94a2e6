"""``fink-t2 classify``: class probabilities for a table of light curves, without Spark.

Input: one row per measurement, in CSV (``.csv``, ``.csv.gz``, any compression pandas infers) or
parquet, with the columns of ``../shared/data/ztf_bts/lightcurves.csv.gz``::

    objectId, mjd, band (g / r; other bands are ignored), mag, magerr

(``magerr`` is not used by t2; a ``fid`` column with ZTF filter ids 1/2 may replace ``band``; a null
``mag`` is a non-detection and is dropped, as in the alert stream).

Output: one row per object (sorted by ``objectId``): ``objectId``, ``n_detections`` (g/r detections in
the model's 100-day window), one probability column per class of the model's contract, and ``class``
(the most probable one). Objects with fewer than ``MIN_EPOCHS`` distinct detection epochs in g/r get
every probability ``-1`` and an empty ``class`` — the same cut as the alert stream's
``too_few_detections``.

The whole table is turned into sequences by ONE call to :func:`fink_t2.sequences.build_sequences`
(objects grouped with numpy, no per-object loop) and classified in batches by the LiteRT model of
:func:`fink_t2.inference.load_model`.

>>> import pandas as pd
>>> lc = pd.DataFrame({"objectId": ["a", "a", "a", "b"], "mjd": [59000.1, 59001.2, 59003.0, 59000.0],
...                    "band": ["g", "r", "g", "r"], "mag": [19.0, 18.9, 18.5, 19.0], "magerr": 0.1})
>>> out = classify_lightcurves(lc)
>>> out.columns.tolist()
['objectId', 'n_detections', 'SN Ia', 'SN II', 'SN Ibc', 'Other', 'class']
>>> out["n_detections"].tolist(), float(out.loc[1, "SN Ia"]), out.loc[1, "class"]
([3, 1], -1.0, '')
>>> bool(abs(out.iloc[0, 2:6].sum() - 1) < 1e-3) and out.loc[0, "class"] != ""
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.sequences import BANDS, build_sequences

#: distinct g/r detection epochs an object needs to be classified (the stream's MIN_DETECTIONS cut)
MIN_EPOCHS = 2
MJD_TO_JD = 2400000.5
REQUIRED_COLUMNS = ("objectId", "mjd", "mag")
_BAND_TO_FID = {name: fid for name, fid in BANDS}


def read_lightcurves(path) -> pd.DataFrame:
    """Read a light-curve table (parquet, or CSV with any pandas-inferred compression)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".parquet" or path.is_dir():
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing or not ({"band", "fid"} & set(table.columns)):
        raise ValueError(f"{path}: needs columns objectId, mjd, band (or fid), mag; missing "
                         f"{missing or ['band']} in {list(table.columns)}")
    return table


def _fid(table: pd.DataFrame) -> np.ndarray:
    if "band" in table.columns:
        band = table["band"].astype(str).str.strip().to_numpy()
        fid = np.zeros(len(band), dtype=np.int64)
        for name, value in _BAND_TO_FID.items():
            fid[band == name] = value
        return fid
    return pd.to_numeric(table["fid"], errors="coerce").fillna(0).to_numpy(np.int64)


def classify_lightcurves(table: pd.DataFrame, model=None, model_path: str | None = None) -> pd.DataFrame:
    """One row per object: objectId, n_detections, a probability per class, class (see module doc)."""
    if model is None:
        from fink_t2.inference import load_model

        model = load_model(model_path)
    names = list(model.class_names)
    ids, code = np.unique(table["objectId"].astype(str).to_numpy(), return_inverse=True)
    order = np.argsort(code, kind="stable")
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(code, minlength=len(ids)), out=offsets[1:])
    jd = pd.to_numeric(table["mjd"], errors="coerce").to_numpy(np.float64)[order] + MJD_TO_JD
    mag = pd.to_numeric(table["mag"], errors="coerce").to_numpy(np.float64)[order]
    seq = build_sequences(jd, _fid(table)[order].astype(np.float64), mag, offsets)

    ok = seq.n_epochs >= MIN_EPOCHS
    proba = np.full((len(ids), len(names)), -1.0, dtype=np.float32)
    if ok.any():
        proba[ok] = model.predict(seq.values[ok])
    label = np.full(len(ids), "", dtype=object)
    label[ok] = np.asarray(names, dtype=object)[proba[ok].argmax(axis=1)]
    out = pd.DataFrame({"objectId": ids, "n_detections": seq.n_detections})
    for i, name in enumerate(names):
        out[name] = proba[:, i]
    out["class"] = label
    return out


def classify_file(path, output, model_path: str | None = None) -> dict:
    """Classify the light curves in ``path``, write ``output`` (CSV, or parquet if it ends in .parquet)."""
    out = classify_lightcurves(read_lightcurves(path), model_path=model_path)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        out.to_parquet(output, index=False)
    else:
        out.to_csv(output, index=False)
    classified = out["class"] != ""
    return {"output": str(output), "objects": int(len(out)), "classified": int(classified.sum()),
            "too_few_detections": int((~classified).sum()),
            "per_class": {k: int(v) for k, v in out.loc[classified, "class"].value_counts().items()}}
