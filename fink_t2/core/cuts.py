"""Which alerts t2 classifies: Fink's cuts, their thresholds and the status vocabulary, in one place.

The science module, ``fink-t2 classify``, the replay and the evaluation scripts all decide through
:func:`fink_t2.core.classifier.classify_alerts`, so the stream and the command line can never disagree on the
same light curve. It runs each cut once: the header cuts (:func:`header_status`, 1-3) on every alert, then the
light-curve cuts (:func:`light_curve_status`, 3-4) on the alerts that pass them, from the sequence built for
the model (:func:`cut_status` is the two in one call).

Cuts, in the order they are checked; an alert that fails several gets the status of the first:

1. ``asteroid``: a known solar-system object (``roid == ASTEROID_ROID``);
2. ``galactic_xmatch``: a cross-match (``cdsxmatch``) not compatible with an extragalactic host
   (``fink_utils.xmatch.simbad.return_list_of_eg_host``);
3. ``too_old``: more than ``MAX_AGE_DAYS`` since the first detection (``jd_now - jdstarthist``;
   an unknown age fails too; then again from the light curve: a detection older than ``jdstarthist`` counts);
4. ``too_few_detections``: fewer than ``MIN_EPOCHS`` distinct epochs of positive g/r detections in
   the alert's 30-day window (what the model would see).

A rejected alert gets ``REJECTED`` (−1) for every class: this module's documented value for "not
classified" (Fink's modules differ: SuperNNova writes 0), with ``t2_status`` saying why.

>>> cut_status([2, 1, 3, 5, 4], [0, 0, 3, 0, 0], ["Unknown", "galaxy", "SN", "Star", "Unknown"],
...            [10.0, 10.0, 10.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 10.0, 10.0, 95.0]).tolist()
['ok', 'too_few_detections', 'asteroid', 'galactic_xmatch', 'too_old']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fink_utils.xmatch.simbad import return_list_of_eg_host

#: Fink ``roid`` value of a known solar-system object
ASTEROID_ROID = 3
#: ``cdsxmatch`` of "no counterpart" (Fink's value; also what a raw alert gets: no cross-match run)
CDSXMATCH_UNKNOWN = "Unknown"
#: ``cdsxmatch`` values compatible with an extragalactic transient (``Unknown``: no counterpart)
EXTRAGALACTIC_XMATCH = frozenset(return_list_of_eg_host())
#: largest alert age (``jd_now - jdstarthist``, days) classified
MAX_AGE_DAYS = 90.0
#: fewest distinct epochs of positive g/r detections in the alert's window
MIN_EPOCHS = 2
#: value of every class for an alert rejected by the cuts
REJECTED = -1.0

STATUS_OK = "ok"
STATUS_ASTEROID = "asteroid"
STATUS_GALACTIC = "galactic_xmatch"
STATUS_TOO_OLD = "too_old"
STATUS_FEW_DETECTIONS = "too_few_detections"
#: ``cjd``, ``cfid``, ``cmagpsf`` (and ``cisdiffpos``) of the alert differ in length: not a Fink light curve
STATUS_MALFORMED = "malformed_history"
#: a replayed input file that could not be decoded (one row stands for it)
STATUS_UNREADABLE = "unreadable_file"

# Raw alerts (no Fink science-stage columns) replayed by ``fink-t2 replay`` first go through the raw -> science
# step of Fink as :mod:`fink_t2.core.raw_filter` rebuilds it offline (its thresholds live there); the t2 UDF itself
# never sees these statuses. In the replay they come before t2's own cuts, in this order:
#: Fink's quality cuts failed (``nbad``, real-bogus ``rb``, i band): Fink drops such an alert before its science stage
STATUS_BAD_QUALITY = "bad_quality"
#: the deep real-bogus score ``drb`` says bogus (stand-in for the cross-match cut)
STATUS_BOGUS = "bogus"
#: a Pan-STARRS1 point source under the alert (``sgscore1``, ``distpsnr1``): a variable star
STATUS_PS1_STAR = "ps1_star"
#: a Gaia source under the alert (``neargaia``, ``maggaia``): a variable star
STATUS_GAIA_STAR = "gaia_star"
#: the current detection is a negative difference (``isdiffpos`` f): something in the reference faded
STATUS_NEGATIVE_DIFFERENCE = "negative_difference"
#: the raw-alert statuses, in the order they are checked
RAW_STATUSES = (STATUS_BAD_QUALITY, STATUS_BOGUS, STATUS_PS1_STAR, STATUS_GAIA_STAR, STATUS_NEGATIVE_DIFFERENCE)
#: every status of the science module, in the order the cuts are checked
STATUSES = (STATUS_OK, STATUS_ASTEROID, STATUS_GALACTIC, STATUS_TOO_OLD, STATUS_FEW_DETECTIONS,
            STATUS_MALFORMED, STATUS_UNREADABLE)


def age_days(jd_now, jdstarthist) -> np.ndarray:
    """Days since the first detection; NaN where either date is missing or not a number."""
    now = pd.to_numeric(pd.Series(np.asarray(jd_now, dtype=object)), errors="coerce").to_numpy(np.float64)
    start = pd.to_numeric(pd.Series(np.asarray(jdstarthist, dtype=object)), errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf
        return now - start


def _first_failed(checks, n: int) -> np.ndarray:
    """``ok``, or the name of the first of ``checks`` (pairs: failed booleans, status) each alert fails."""
    status = np.full(n, STATUS_OK, dtype=object)
    for failed, name in reversed(checks):  # the first check listed wins
        status[np.asarray(failed, dtype=bool)] = name
    return status


def header_status(roid, cdsxmatch, jd_now, jdstarthist) -> np.ndarray:
    """Status from the cuts that need no light curve (asteroid, cross-match, age from ``jdstarthist``): run first."""
    age = age_days(jd_now, jdstarthist)
    roid = pd.to_numeric(pd.Series(np.asarray(roid, dtype=object)), errors="coerce").fillna(0).to_numpy()
    return _first_failed([
        (roid == ASTEROID_ROID, STATUS_ASTEROID),
        (~pd.Series(np.asarray(cdsxmatch, dtype=object)).isin(EXTRAGALACTIC_XMATCH).to_numpy(), STATUS_GALACTIC),
        (~(age <= MAX_AGE_DAYS), STATUS_TOO_OLD),  # NaN age fails too
    ], len(age))


def light_curve_status(n_epochs, age) -> np.ndarray:
    """Status from the alert's light curve (:class:`fink_t2.core.sequences.Sequences`: ``n_epochs``, ``age_days``):
    too old once a detection older than ``jdstarthist`` counts, or too few detection epochs."""
    age = np.asarray(age, dtype=np.float64)
    return _first_failed([(~(age <= MAX_AGE_DAYS), STATUS_TOO_OLD),
                          (np.asarray(n_epochs) < MIN_EPOCHS, STATUS_FEW_DETECTIONS)], len(age))


def cut_status(n_epochs, roid, cdsxmatch, jd_now, jdstarthist, age=None) -> np.ndarray:
    """Status of each alert: ``ok`` or the first cut it fails (see the module doc), header then light curve.

    ``age``: days since the first detection the light curve proves (default: from ``jdstarthist``).
    """
    status = header_status(roid, cdsxmatch, jd_now, jdstarthist)
    ok = status == STATUS_OK
    age = age_days(jd_now, jdstarthist) if age is None else np.asarray(age, dtype=np.float64)
    status[ok] = light_curve_status(np.asarray(n_epochs)[ok], age[ok])
    return status
