"""Redshift and noise augmentation of BTS light curves (after Boone 2019, avocado), for training only.

Each BTS object with a spectroscopic redshift ``z`` is redrawn as if it were farther away, at
``z' > z`` (distance modulus ``dimming`` magnitudes larger, drawn uniformly in [0, ``MAX_DIMMING``]):

1. a 2-D Gaussian process over (time, wavelength) is fitted to its g/r flux (Matérn-3/2; the time
   scale and amplitude by maximum likelihood, the wavelength scale fixed at ``WAVELENGTH_SCALE``);
   fits are cached per object under ``build/augment/`` (they do not depend on the recipe);
2. cadence: the observation times and bands of another, randomly chosen, BTS object (its pattern
   relative to its first point), placed at a random offset around the transient;
3. time dilation ``(1 + z') / (1 + z)`` around the first detection, and the wavelength shift: a ZTF
   band at ``λ`` sees rest-frame ``λ / (1 + z')``, i.e. the original observed ``λ (1 + z) / (1 + z')``;
4. distance dimming: flux × ``(d_L(z) / d_L(z'))² (1 + z') / (1 + z)`` (Planck18 cosmology);
5. ZTF-like noise and detection: the flux error of a point of that magnitude is drawn from the BTS
   photometry itself (the ``magerr`` of a real point within 0.25 mag), Gaussian noise is added, and
   a point is kept only if its S/N ≥ 5 and it is brighter than a per-epoch limiting magnitude
   ``~ N(LIMIT_MAG, LIMIT_SCATTER)``.

The GP is only queried inside the (dilated) span the object was observed in: before its first
detection the GP would invent a precursor from its smoothness, so the augmented object can never be
seen earlier than the real one (BTS light curves carry no upper limits to constrain the rise).
Only the objects of the table given are used (:func:`fink_t2.model.train.fit` passes its training
objects), so a held-out object never leaks into training.

>>> round(float(dimming_redshift(0.05, 0.0)), 6), round(float(dimming_redshift(0.05, 5 * np.log10(2))), 3)
(0.05, 0.097)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.core.sequences import ZERO_POINT_UJY, mag_to_flux_ujy

#: ZTF g and r effective wavelengths (Å)
WAVELENGTH = {1: 4804.79, 2: 6436.92}
WAVELENGTH_SCALE = 6000.0
MAX_DIMMING = 1.5
LIMIT_MAG, LIMIT_SCATTER = 20.5, 0.3
MIN_SNR = 5.0
CACHE = Path("build/augment/gp_fits.json")
#: ``source`` of the augmented rows (their views train like BTS ones; never scored)
AUGMENTED_SOURCE = "bts_augmented"
_Z_GRID = np.linspace(1e-4, 1.5, 3000)


def _luminosity_distance(z):
    from astropy.cosmology import Planck18

    return Planck18.luminosity_distance(z).value


_DL_GRID = None


def dimming_redshift(z, dimming):
    """Redshift ``z'`` whose luminosity distance is ``10 ** (dimming / 5)`` times that of ``z``."""
    global _DL_GRID
    if _DL_GRID is None:
        _DL_GRID = _luminosity_distance(_Z_GRID)
    target = np.interp(z, _Z_GRID, _DL_GRID) * 10 ** (np.asarray(dimming) / 5)
    return np.interp(target, _DL_GRID, _Z_GRID)


def _kernel(amplitude=1.0, time_scale=20.0, fixed=False):
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    bounds = "fixed" if fixed else (1e-3, 1e2)
    return ConstantKernel(amplitude, bounds) * Matern(
        length_scale=[time_scale, WAVELENGTH_SCALE], nu=1.5,
        length_scale_bounds="fixed" if fixed else [(0.5, 200.0), (WAVELENGTH_SCALE, WAVELENGTH_SCALE + 1e-6)])


def _design(jd, fid, mag, magerr):
    flux = mag_to_flux_ujy(mag)
    peak = flux.max()
    y = flux / peak
    err = np.where(np.isfinite(magerr) & (magerr > 0), magerr, 0.1)
    x = np.column_stack([jd - jd.min(), np.vectorize(WAVELENGTH.get)(fid.astype(int))])
    return x, y, (y * err * np.log(10) / 2.5) ** 2 + 1e-4, peak


def fit_gp(jd, fid, mag, magerr) -> dict:
    """Maximum-likelihood amplitude and time scale of one object's 2-D GP (normalised flux)."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    x, y, alpha, _ = _design(jd, fid, mag, magerr)
    gp = GaussianProcessRegressor(_kernel(), alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(x, y)
    p = gp.kernel_.get_params()
    return {"amplitude": float(p["k1__constant_value"]), "time_scale": float(np.ravel(p["k2__length_scale"])[0])}


def gp_fits(table: pd.DataFrame, cache: Path | None = CACHE) -> dict:
    """{object_id: GP hyper-parameters} for the objects of ``table``, read from / added to ``cache``."""
    known = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    todo = [o for o in table["object_id"].unique() if o not in known]
    for oid, g in table[table["object_id"].isin(todo)].groupby("object_id", sort=False):
        if len(g) >= 3:
            known[oid] = fit_gp(*(g[c].to_numpy(np.float64) for c in ("jd", "fid", "mag", "magerr")))
    if todo and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return known


def _error_model(table: pd.DataFrame):
    """(sorted magnitudes, their magerr) of the real photometry: noise is drawn from neighbours in magnitude."""
    order = np.argsort(table["mag"].to_numpy())
    return table["mag"].to_numpy()[order], table["magerr"].to_numpy()[order]


def _draw_magerr(mag, mags, errs, rng):
    lo = np.searchsorted(mags, mag - 0.25)
    hi = np.maximum(np.searchsorted(mags, mag + 0.25), lo + 1)
    pick = np.minimum(lo + (rng.random(len(mag)) * (hi - lo)).astype(int), len(mags) - 1)
    return errs[pick]


def redraw(obj: pd.DataFrame, params: dict, template: pd.DataFrame, dimming: float, rng, errors) -> pd.DataFrame:
    """One augmented light curve of ``obj`` (one object, with ``redshift``) on ``template``'s cadence."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    jd, fid, mag, magerr = (obj[c].to_numpy(np.float64) for c in ("jd", "fid", "mag", "magerr"))
    z = float(obj["redshift"].iloc[0])
    z_new = float(dimming_redshift(z, dimming))
    stretch = (1 + z_new) / (1 + z)
    x, y, alpha, peak = _design(jd, fid, mag, magerr)
    gp = GaussianProcessRegressor(_kernel(params["amplitude"], params["time_scale"], fixed=True), alpha=alpha,
                                  optimizer=None)
    gp.fit(x, y)
    t_new = template["jd"].to_numpy() - template["jd"].min()
    band = template["fid"].to_numpy()
    span = (jd.max() - jd.min()) * stretch
    t_new = t_new + rng.uniform(-0.3 * max(t_new.max(), 1.0), 0.3 * span)  # template placed around the transient
    inside = (t_new >= 0) & (t_new <= span)
    t_new, band = t_new[inside], band[inside]
    if len(t_new) < 2:
        return obj.iloc[:0]
    t_orig = t_new / stretch
    lam_orig = np.vectorize(WAVELENGTH.get)(band.astype(int)) / stretch
    dl = _luminosity_distance(np.array([z, z_new]))
    flux = gp.predict(np.column_stack([t_orig, lam_orig])) * peak * (dl[0] / dl[1]) ** 2 * stretch
    with np.errstate(invalid="ignore", divide="ignore"):
        true_mag = np.where(flux > 0, ZERO_POINT_UJY - 2.5 * np.log10(np.maximum(flux, 1e-9)), 99.0)
    err_mag = _draw_magerr(true_mag, *errors, rng)
    sigma = np.abs(flux) * err_mag / 1.0857
    noisy = flux + rng.normal(0, 1, len(flux)) * sigma
    limit = rng.normal(LIMIT_MAG, LIMIT_SCATTER, len(flux))
    with np.errstate(invalid="ignore", divide="ignore"):
        new_mag = ZERO_POINT_UJY - 2.5 * np.log10(np.where(noisy > 0, noisy, np.nan))
        keep = (noisy > MIN_SNR * sigma) & (new_mag <= limit) & (true_mag < 90)
    out = pd.DataFrame({"jd": jd.min() + t_new[keep], "fid": band[keep].astype(int), "mag": new_mag[keep],
                        "magerr": err_mag[keep]})
    return out.assign(label=obj["label"].iloc[0], redshift=z_new)


def copies_per_class(labels: pd.Series, copies: int, max_copies: int = 0) -> dict:
    """Copies of each object per class: ``copies``, or towards balance (largest class / class size - 1),
    at least ``copies`` and at most ``max_copies``, when ``max_copies`` > ``copies``.

    >>> copies_per_class(pd.Series(["a"] * 100 + ["b"] * 20 + ["c"] * 2), 1, 8)
    {'a': 1, 'b': 4, 'c': 8}
    """
    counts = labels.value_counts()
    if max_copies <= copies:
        return {c: copies for c in sorted(counts.index)}
    return {c: int(np.clip(round(counts.max() / n) - 1, copies, max_copies)) for c, n in sorted(counts.items())}


def augment(table: pd.DataFrame, copies: int, seed: int = 42, cache: Path | None = CACHE,
            max_copies: int = 0) -> pd.DataFrame:
    """Redshifted, re-observed versions of each BTS object of ``table`` with a redshift (long table):
    ``copies`` each, or per class as :func:`copies_per_class` says when ``max_copies`` > ``copies``."""
    bts = table[(table["source"] == "bts") & (table["redshift"] > 0)]
    if max(copies, max_copies) <= 0 or bts.empty:
        return table.iloc[:0]
    rng = np.random.default_rng(seed)
    fits = gp_fits(bts, cache)
    errors = _error_model(bts)
    groups = {oid: g for oid, g in bts.groupby("object_id", sort=True)}
    ids = np.array(sorted(o for o in groups if o in fits))
    n_copies = copies_per_class(bts.groupby("object_id")["label"].first(), copies, max_copies)
    parts = []
    for k in range(max(n_copies.values())):
        for oid in ids:
            if k >= n_copies[groups[oid]["label"].iloc[0]]:
                continue
            new = redraw(groups[oid], fits[oid], groups[ids[rng.integers(len(ids))]], rng.uniform(0, MAX_DIMMING), rng,
                         errors)
            if new["jd"].nunique() >= 2:
                parts.append(new.assign(object_id=f"{oid}~aug{k}"))
    out = pd.concat(parts, ignore_index=True).assign(source=AUGMENTED_SOURCE)
    return out.sort_values(["object_id", "jd"], kind="stable").reset_index(drop=True)[list(table.columns)]
