"""Raw ZTF alerts filtered as Fink's science stage would: its quality cuts, and a stand-in for its cross-match.

A public nightly archive holds raw alerts: no ``cdsxmatch`` (Fink's CDS cross-match) and none of
Fink's quality cuts applied. Replayed as they are, every alert would pass t2's cross-match cut
(``"Unknown"`` is extragalactic-compatible) and variable stars and bogus subtractions would reach the
model. ``fink-t2 replay`` therefore gives every raw alert (a record without a ``cdsxmatch`` of its own)
the first of these statuses it earns (:data:`fink_t2.core.cuts.RAW_STATUSES`), before t2's own cuts:

1. ``bad_quality`` — Fink's quality cuts, as fink-broker's ZTF raw -> science job applies them
   (``bin/ztf/raw2science.py``: ``candidate.nbad == 0``, ``candidate.rb >= 0.55``, ``candidate.fid != 3``;
   a null fails, as it does in Spark's ``filter``). Fink drops such an alert before any science module;
   the replay keeps it with this status. (Fink's 2019 filter also cut ``|magdiff| > 0.1``; the current
   job does not, nor does it cut on ``fwhm`` or ``elong``, so neither does this one.)
2. The offline stand-in for the cross-match cut, from fields every ZTF alert carries:

   * ``bogus`` — deep-learning real-bogus ``drb`` below :data:`MIN_DRB` (null: not applied; older alerts
     have no ``drb``);
   * ``ps1_star`` — the nearest Pan-STARRS1 source is within :data:`PS1_MAX_DISTANCE_ARCSEC` and its
     star-galaxy score ``sgscore1`` is at least :data:`PS1_MIN_SGSCORE` (AMPEL's ``DecentFilter`` veto,
     1" and 0.8; 0.5 means "no information" in ZTF's PS1 match);
   * ``gaia_star`` — a Gaia source within :data:`GAIA_MAX_DISTANCE_ARCSEC` and not fainter than
     :data:`GAIA_MAX_MAG` (``neargaia``, ``maggaia``): a point source bright enough to be a star, also
     where PS1 saturates and its score says nothing;
   * ``negative_difference`` — the current detection is fainter than the reference (``isdiffpos`` ``f``, or ``0``
     in some re-encodings: :data:`fink_t2.core.sequences.NEGATIVE_DIFFERENCE`, the values the preprocessing
     drops): something present in the reference image faded, a variable, not a new transient.

How far the stand-in agrees with Fink's real ``cdsxmatch`` is measured on every science-stage parquet
of the sample data by ``scripts/raw_filter_agreement.py`` (``docs/raw_filter.md``). Alerts that carry
Fink's science-stage columns are left to t2's own cuts, which read their real ``cdsxmatch``.

>>> import numpy as np
>>> columns = {"nbad": [0, 1, 0, 0, 0], "rb": [0.9] * 5, "fid": [1, 1, 2, 1, 1], "drb": [0.99, 0.99, 0.99, 0.99, None],
...            "sgscore1": [0.02, 0.02, 0.99, 0.5, 0.1], "distpsnr1": [0.3, 0.3, 0.4, 0.2, -999.0],
...            "neargaia": [-999.0] * 5, "maggaia": [-999.0] * 5, "isdiffpos": ["t", "t", "t", "f", "t"]}
>>> raw_status(columns).tolist()
[None, 'bad_quality', 'ps1_star', 'negative_difference', None]
>>> raw_status(columns, science=np.array([False, True, False, False, False])).tolist()
[None, None, 'ps1_star', 'negative_difference', None]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from fink_t2.core.cuts import (
    STATUS_BAD_QUALITY,
    STATUS_BOGUS,
    STATUS_GAIA_STAR,
    STATUS_NEGATIVE_DIFFERENCE,
    STATUS_PS1_STAR,
)
from fink_t2.core.sequences import NEGATIVE_DIFFERENCE as NEGATIVE_ISDIFFPOS  # one definition: the preprocessing's

#: Fink's quality cuts (fink-broker ``bin/ztf/raw2science.py``): most bad pixels in a 5x5 box (``nbad``) ...
MAX_NBAD = 0
#: ... least real-bogus score ``rb`` ...
MIN_RB = 0.55
#: ... and the band dropped (3 = ZTF i)
EXCLUDED_FID = 3
#: least deep real-bogus score ``drb`` of a real detection (Duev et al. 2019 recommend 0.5)
MIN_DRB = 0.5
#: a PS1 source at most this far (arcsec) ...
PS1_MAX_DISTANCE_ARCSEC = 1.0
#: ... with at least this star-galaxy score is a star under the alert (AMPEL DecentFilter: 1", 0.8)
PS1_MIN_SGSCORE = 0.8
#: a Gaia source at most this far (arcsec) ...
GAIA_MAX_DISTANCE_ARCSEC = 1.0
#: ... and at most this G magnitude is a star under the alert
GAIA_MAX_MAG = 17.0
#: candidate fields the filter reads
FIELDS = ("nbad", "rb", "fid", "drb", "sgscore1", "distpsnr1", "neargaia", "maggaia", "isdiffpos")


def _numbers(values) -> np.ndarray:
    """Floats with NaN for null or non-numeric values (ZTF writes -999 for "no such source": kept, the rules exclude it)."""
    if hasattr(values, "to_numpy") and not isinstance(values, (pd.Series, np.ndarray)):  # a pyarrow array
        values = values.to_numpy(zero_copy_only=False)
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if values.dtype.kind in "fiub":  # already numbers (an Arrow column's nulls are NaN): nothing to parse
        return values.astype(np.float64)
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(np.float64)


def _strings(values) -> np.ndarray:
    if hasattr(values, "to_pylist"):
        values = values.to_pylist()
    return np.array([None if v is None else str(v).strip().lower() for v in values], dtype=object)


def rules(columns: Mapping) -> dict[str, np.ndarray]:
    """Each status → where its own rule fails (booleans), regardless of the others (``columns``: :data:`FIELDS`)."""
    n = {name: _numbers(columns[name]) for name in FIELDS if name != "isdiffpos"}
    with np.errstate(invalid="ignore"):  # NaN compares False: a null fails the quality cuts, passes the others
        quality = (n["nbad"] <= MAX_NBAD) & (n["rb"] >= MIN_RB) & (n["fid"] != EXCLUDED_FID) & ~np.isnan(n["fid"])
        ps1 = (n["distpsnr1"] >= 0) & (n["distpsnr1"] <= PS1_MAX_DISTANCE_ARCSEC) & (n["sgscore1"] >= PS1_MIN_SGSCORE)
        gaia = (n["neargaia"] >= 0) & (n["neargaia"] <= GAIA_MAX_DISTANCE_ARCSEC) & (n["maggaia"] > 0) \
            & (n["maggaia"] <= GAIA_MAX_MAG)
        bogus = n["drb"] < MIN_DRB
    negative = np.isin(_strings(columns["isdiffpos"]), NEGATIVE_ISDIFFPOS)
    return {STATUS_BAD_QUALITY: ~quality, STATUS_BOGUS: bogus, STATUS_PS1_STAR: ps1, STATUS_GAIA_STAR: gaia,
            STATUS_NEGATIVE_DIFFERENCE: negative}


def raw_status(columns: Mapping, science=None) -> np.ndarray:
    """The raw-alert status of each alert (object array; None: passes), the first rule it fails.

    ``columns``: the candidate fields :data:`FIELDS` (arrays, lists, pandas or pyarrow columns);
    ``science``: booleans, True for an alert that carries Fink's science-stage columns (left to t2's own cuts).
    """
    failed = rules(columns)
    n = len(failed[STATUS_BAD_QUALITY])
    status = np.full(n, None, dtype=object)
    for name, mask in reversed(failed.items()):  # the first rule listed wins
        status[mask] = name
    if science is not None:
        status[np.asarray(science, dtype=bool)] = None
    return status
