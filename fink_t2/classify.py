"""``fink-t2 classify``: class probabilities for a table of light curves, without Spark.

Input: one row per measurement, in CSV (``.csv``, ``.csv.gz``, any compression pandas infers) or
parquet, with the columns of ``../shared/data/ztf_bts/lightcurves.csv.gz``::

    objectId, mjd, band (g / r; other bands are ignored), mag, magerr

(``magerr`` is not used by t2; a ``fid`` column with ZTF filter ids 1/2 may replace ``band``; a null
``mag`` is a non-detection). Each ``objectId`` is classified as the alert the stream would see at its
latest row: the detections of the 30 days before it, through the same cuts and preprocessing
(:func:`fink_t2.core.classifier.classify_alerts`). Optional columns carry what an alert's header knows
(the value on the object's latest row is used):

* ``isdiffpos`` (``t``/``f``): a negative-difference detection is dropped, as in the stream;
* ``jdstarthist`` (JD of the first detection) and ``ndethist``; without them the object's first row
  stands in for the first detection and its number of detections for ``ndethist``;
* ``roid`` and ``cdsxmatch``; without them no asteroid or cross-match cut applies.

So a table of alert views (one ``objectId`` per alert, its 30-day history with the header columns)
is classified exactly as the stream classifies those alerts.

Output: one row per object (sorted by ``objectId``): ``objectId``, ``n_detections`` (g/r detections
in the alert's window), one probability column per class of the model's contract, ``class`` (the
class-balanced decision, as the stream's ``t2_class``) and ``t2_status``. A rejected object (``t2_status`` not ``ok``: e.g. fewer than
2 detection epochs in its window, or older than 90 days) gets every probability −1 and an empty ``class``.

>>> import pandas as pd
>>> lc = pd.DataFrame({"objectId": ["a", "a", "a", "b"], "mjd": [59000.1, 59001.2, 59003.0, 59000.0],
...                    "band": ["g", "r", "g", "r"], "mag": [19.0, 18.9, 18.5, 19.0], "magerr": 0.1})
>>> out = classify_lightcurves(lc)
>>> out.columns.tolist()
['objectId', 'n_detections', 'SN Ia', 'SN II', 'SN Ibc', 'Other', 'class', 't2_status']
>>> out["n_detections"].tolist(), float(out.loc[1, "SN Ia"]), out.loc[1, "class"], out.loc[1, "t2_status"]
([3, 1], -1.0, '', 'too_few_detections')
>>> bool(abs(out.iloc[0, 2:6].sum() - 1) < 1e-3) and out.loc[0, "class"] != ""
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.core.classifier import classify_alerts
from fink_t2.core.contract import FLUX_FORMAT
from fink_t2.core.cuts import CDSXMATCH_UNKNOWN, STATUS_OK
from fink_t2.core.sequences import BANDS

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


def _numbers(table: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)


def classify_lightcurves(table: pd.DataFrame, model=None, model_ref=None) -> pd.DataFrame:
    """One row per object: objectId, n_detections, a probability per class, class, t2_status (see module doc)."""
    if model is None:
        from fink_t2.runtime.inference import load_model
        from fink_t2.runtime.model_ref import ModelRef

        model = load_model(model_ref or ModelRef.resolve())
    names = list(model.class_names)
    jd = _numbers(table, "mjd") + MJD_TO_JD
    ids, code = np.unique(table["objectId"].astype(str).to_numpy(), return_inverse=True)
    order = np.lexsort((jd, code))  # by object, then time: an object's last row is its alert
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(code, minlength=len(ids)), out=offsets[1:])
    sorted_table = table.iloc[order]
    jd, fid, mag = jd[order], _fid(table)[order].astype(np.float64), _numbers(table, "mag")[order]
    first, last = offsets[:-1], offsets[1:] - 1
    isdiffpos = sorted_table["isdiffpos"].to_numpy(dtype=object) if "isdiffpos" in table.columns else None
    header = {name: (sorted_table[name].to_numpy(dtype=object)[last] if name in table.columns else None)
              for name in ("jdstarthist", "ndethist", "roid", "cdsxmatch")}
    jdstarthist = _numbers(sorted_table, "jdstarthist")[last] if header["jdstarthist"] is not None else jd[first]
    detected = np.isfinite(mag).astype(np.int64)
    ndethist = (_numbers(sorted_table, "ndethist")[last] if header["ndethist"] is not None
                else np.add.reduceat(detected, first) if len(first) else np.zeros(0))
    roid = header["roid"] if header["roid"] is not None else np.zeros(len(ids))
    xmatch = header["cdsxmatch"] if header["cdsxmatch"] is not None else np.full(len(ids), CDSXMATCH_UNKNOWN, dtype=object)
    result = classify_alerts(jd, fid, mag, isdiffpos, offsets, jd[last], jdstarthist, ndethist, roid, xmatch, model,
                             count_rejected=True)  # n_detections of every object, rejected or not
    out = pd.DataFrame({"objectId": ids, "n_detections": result.n_detections})
    for i, name in enumerate(names):
        out[name] = result.proba[:, i]
    out["class"] = np.where(result.status == STATUS_OK, result.label, "")
    out["t2_status"] = result.status
    return out


def classify_file(path, output, model_ref=None, device="auto") -> dict:
    """Classify the light curves in ``path``, write ``output`` (CSV, or parquet if it ends in .parquet).

    ``device``: auto (a usable GPU when one is visible, else the CPU), cpu, or gpu (ValueError without one).
    """
    from fink_t2.runtime import gpu
    from fink_t2.runtime.model_ref import ModelRef

    model_ref = model_ref or ModelRef.resolve()
    model = gpu.choose_model(model_ref, device)  # the one runner choice, for ZTF and band-generic (Rubin) models
    if model_ref.contract.get("format") == FLUX_FORMAT:  # a band-generic flux model (Rubin): fink_t2.flux_table
        from fink_t2.flux_table import classify_flux_file

        return {**classify_flux_file(path, output, model), "device": device,
                "gpu_fallback": gpu.fallback_reason(model_ref, model)}
    table = read_lightcurves(path)
    out = classify_lightcurves(table, model=model)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        out.to_parquet(output, index=False)
    else:
        out.to_csv(output, index=False)
    classified = out["t2_status"] == STATUS_OK
    return {"output": str(output), "objects": int(len(out)), "classified": int(classified.sum()),
            "rejected_by_cuts": {k: int(v) for k, v in out.loc[~classified, "t2_status"].value_counts().items()},
            "per_class": {k: int(v) for k, v in out.loc[classified, "class"].value_counts().items()},
            "device": device, "backend": model.backend, "gpu_fallback": gpu.fallback_reason(model_ref, model)}
