"""Which Rubin alerts t2 classifies: the cuts, their thresholds and the status vocabulary, in one place.

The Rubin counterpart of :mod:`fink_t2.core.cuts` (ZTF). :mod:`fink_t2.core.rubin_classifier` decides through
:func:`header_status` and :func:`cut_status` only, so the pandas UDF Fink's Rubin stage calls
(:mod:`fink_t2.rubin_processor`) and every other caller agree on the same alert.

Cuts, in the order they are checked; an alert that fails several gets the status of the first:

1. ``solar_system_object`` (header): Rubin associated the source with a known solar-system object
   (``diaSource.ssObjectId`` or ``ssSource.ssObjectId`` names one: not null, not 0). Fink's own
   ``pred.is_sso`` is ``ssSource`` not null; both are read because a Spark-written Avro file carries an
   all-null ``ssSource`` struct for an ordinary alert.
2. ``too_old``: more than ``MAX_AGE_DAYS`` from the object's first detection to this alert (the earlier of
   ``diaObject.firstDiaSourceMjdTai`` and the oldest detection of the alert's history; an alert without a
   usable detection has age 0 and fails the next cut); an unknown age fails.
3. ``too_few_detections``: fewer than ``MIN_DETECTIONS`` detections (``diaSource`` + ``prvDiaSources``
   with a finite time, flux and positive error, in a band of the model) in the model's window.

``malformed_history`` (the ``c*`` or forced-photometry arrays of one alert differ in length) overrides them.
A rejected alert gets ``REJECTED`` (−1) for every class, as on ZTF.

Why these thresholds: the PLAsTiCC cross-validation of the shipped Rubin model (``fink_t2/data/t2_lsst_metrics.json``,
``cross_validation.summary``: held-out objects' alert views, scored by the object's number of detections so
far, 1, 3, 5 or 10, and by alert age; ``docs/fink.md``, "Rubin cuts", quotes the figures and
``tests/test_rubin_cuts.py`` checks both choices against that file and the data):

- ``MIN_DETECTIONS`` is the fewest scored detection count at which the model's log-loss is below the class
  prior's by more than twice its fold-to-fold standard deviation (and stays so at every larger count). At a
  single detection its gain over the prior is within that noise: its probabilities are little more than the
  class frequencies. It beats the issue's reference (GP features + LightGBM) at no detection count, so the
  reference cannot choose the cut.
- ``MAX_AGE_DAYS``: the model beats the prior by the same margin in every age bucket, the oldest (over a year)
  included, so no age inside what the cross-validation scored is cut; ``MAX_AGE_DAYS`` is that range, the
  3-year span of the PLAsTiCC simulation (its oldest alert view is 1092.8 days after the object's first
  detection). Older alerts would be classified beyond anything measured.

>>> cut_status([3, 1, 5, 4], [10.0, 2.0, 1100.0, 30.0], [False, False, False, True]).tolist()
['ok', 'too_few_detections', 'too_old', 'solar_system_object']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.cuts import REJECTED, STATUS_FEW_DETECTIONS, STATUS_MALFORMED, STATUS_OK, STATUS_TOO_OLD

__all__ = ["MAX_AGE_DAYS", "MIN_DETECTIONS", "REJECTED", "STATUSES", "STATUS_SSO", "cut_status", "header_status",
           "is_solar_system"]

#: fewest detections (diaSource + prvDiaSources) in the model's window
MIN_DETECTIONS = 3
#: largest alert age (days from the object's first detection) classified
MAX_AGE_DAYS = 1095.0

#: the source is a known solar-system object (``ssObjectId``)
STATUS_SSO = "solar_system_object"
#: every status of the Rubin module, in the order the cuts are checked (``malformed_history`` last: it overrides)
STATUSES = (STATUS_OK, STATUS_SSO, STATUS_TOO_OLD, STATUS_FEW_DETECTIONS, STATUS_MALFORMED)


def _numbers(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object).reshape(-1)), errors="coerce").to_numpy(np.float64)


def is_solar_system(*ss_object_ids) -> np.ndarray:
    """True where any of the ``ssObjectId`` columns names an object (not null, not NaN, not 0).

    >>> is_solar_system([None, 0, 21163621402181400, "x"], [0.0, None, None, 7]).tolist()
    [False, False, True, True]
    """
    flags = [np.nan_to_num(_numbers(ids), nan=0.0) != 0 for ids in ss_object_ids]
    return np.logical_or.reduce(flags)


def header_status(*ss_object_ids) -> np.ndarray:
    """Status from the cut that needs no light curve (a known solar-system object): cheap, run first."""
    sso = is_solar_system(*ss_object_ids)
    return cut_status(np.full(len(sso), MIN_DETECTIONS), np.zeros(len(sso)), sso)


def cut_status(n_detections, age_days, sso) -> np.ndarray:
    """Status of each alert: ``ok`` or the first cut it fails (see the module doc)."""
    n_detections = np.asarray(n_detections)
    status = np.full(len(n_detections), STATUS_OK, dtype=object)
    age = _numbers(age_days)
    checks = [  # later checks overwrite earlier ones: listed from last to first
        (n_detections < MIN_DETECTIONS, STATUS_FEW_DETECTIONS),
        (~(age <= MAX_AGE_DAYS), STATUS_TOO_OLD),  # NaN age fails too
        (np.asarray(sso, dtype=bool), STATUS_SSO),
    ]
    for failed, name in checks:
        status[failed] = name
    return status
