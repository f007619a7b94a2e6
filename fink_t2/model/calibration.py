"""Fit the calibration a t2 model file carries in its contract (applied by :mod:`fink_t2.core.calibration`).

Class weights buy rare-class recall (macro-F1: the argmax of the network's output is the class-balanced
decision ``t2_class``) at the price of an output that overstates the rare classes, worst for young alerts
where the network knows little: read as probabilities, it falls behind a constant class prior. The
calibration maps the output to probabilities without touching the decision:

* ``"temperature"``: one temperature;
* ``"age"``: a temperature plus class offsets linear in the alert's own ``age`` and ``log_ndethist``
  channels, which undoes the class weights where they mislead (young alerts) and keeps them where the
  network knows (older ones).

It is fitted on the validation views (the evaluation's distribution: at most ``views_per_bucket`` views
per object and age bucket), by minimising their log-loss, L2-regularised. The decision stays the argmax
of the raw output, so macro-F1 is the same whatever the calibration.
"""

from __future__ import annotations

import numpy as np

from fink_t2.core.calibration import CALIBRATION_CHANNELS, log_calibrated, now_features

MODES = ("none", "temperature", "age")
#: L2 penalty on the offsets (and the log-temperature)
PENALTY = 1e-3


def fit_calibration(output: np.ndarray, x: np.ndarray, y: np.ndarray, mode: str = "age") -> dict | None:
    """Calibration parameters (``fink_t2.core.calibration`` format) of the network ``output`` on inputs ``x``, labels ``y``.

    ``mode`` "none" (or no example): None, the output is used as the probabilities.
    """
    from scipy.optimize import minimize

    if mode not in MODES:
        raise ValueError(f"unknown calibration {mode!r}; known: {MODES}")
    if mode == "none" or len(y) == 0:
        return None
    n_classes = output.shape[1]
    log_output = np.log(np.clip(output.astype(np.float64), 1e-12, 1.0))
    now = now_features(x) if mode == "age" else np.zeros((len(y), len(CALIBRATION_CHANNELS)))
    n_free = 1 + (n_classes * (1 + len(CALIBRATION_CHANNELS)) if mode == "age" else 0)

    def params(theta) -> dict:
        offsets = np.zeros((1 + len(CALIBRATION_CHANNELS), n_classes))
        if mode == "age":
            offsets = theta[1:].reshape(1 + len(CALIBRATION_CHANNELS), n_classes)
        return {"mode": mode, "temperature": float(np.exp(theta[0])), "class_offsets": offsets[0].tolist(),
                "channel_offsets": {c: offsets[1 + k].tolist() for k, c in enumerate(CALIBRATION_CHANNELS)}}

    def loss(theta) -> float:
        z = log_calibrated(log_output, now, params(theta))
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(logp[np.arange(len(y)), y]) + PENALTY * np.sum(theta ** 2)

    start = np.zeros(n_free)
    theta = minimize(loss, start, method="L-BFGS-B").x
    fitted = params(theta)
    rounded = {k: (np.round(v, 6).tolist() if isinstance(v, list) else v) for k, v in fitted.items()}
    rounded["channel_offsets"] = {c: np.round(v, 6).tolist() for c, v in fitted["channel_offsets"].items()}
    rounded["validation_log_loss"] = {"before": float(loss(start)), "after": float(loss(theta))}
    return rounded
