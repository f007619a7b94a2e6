"""Calibrated probabilities and a class-balanced decision from one network output.

t2 is trained with class weights, so that the rare classes (SN Ibc, Other) are not ignored: its
output's argmax is the class-balanced decision (``t2_class``), which is what macro-F1 rewards. The
same output, read as probabilities, overstates the rare classes, most for young alerts, where the
network knows little: as probabilities it would lose to a constant class prior. The model file's
contract may therefore carry a ``calibration``, fitted on validation alert views at training time
(:mod:`fink_t2.model.calibration`), which maps the output to calibrated probabilities (the ``t2``
map) without changing the decision:

    log p = log(output) / temperature + class_offsets + Σ_k channel_k · channel_offsets[k]

renormalised, where the channels are the alert's own ``age`` and ``log_ndethist`` inputs
(:data:`CALIBRATION_CHANNELS`, the last node of the sequence). A contract without ``calibration``
means the output is used as the probabilities as it is.

>>> import numpy as np
>>> raw = np.array([[0.5, 0.3, 0.2]])
>>> now = np.array([[0.0, 0.5]])
>>> params = {"temperature": 2.0, "class_offsets": [0.0, 0.0, 0.0],
...           "channel_offsets": {"age": [0.0, 0.0, 0.0], "log_ndethist": [0.0, 0.0, 0.0]}}
>>> p = calibrated_probabilities(raw, now, params)
>>> bool(np.isclose(p.sum(), 1.0)), int(p.argmax()), bool(p[0, 0] < raw[0, 0])
(True, 0, True)
>>> calibrated_probabilities(raw, now, None) is raw
True
"""

from __future__ import annotations

import numpy as np

#: channels of the alert's own epoch (the sequence's last node) that the calibration may read
CALIBRATION_CHANNELS = ("age", "log_ndethist")
#: smallest output probability taken into the logarithm
_FLOOR = 1e-12


def now_features(values: np.ndarray) -> np.ndarray:
    """The :data:`CALIBRATION_CHANNELS` of each alert's last node, (n, len(CALIBRATION_CHANNELS))."""
    from fink_t2.core.sequences import CHANNELS

    return values[:, -1, [CHANNELS.index(c) for c in CALIBRATION_CHANNELS]].astype(np.float64)


def log_calibrated(log_output: np.ndarray, now: np.ndarray, params: dict) -> np.ndarray:
    """Unnormalised calibrated log-probabilities from the log of the network output."""
    offsets = np.asarray(params["class_offsets"], dtype=np.float64)
    shift = np.asarray([params["channel_offsets"][c] for c in CALIBRATION_CHANNELS], dtype=np.float64)
    return log_output / float(params["temperature"]) + offsets + now @ shift


def calibrated_probabilities(output: np.ndarray, now: np.ndarray, params: dict | None) -> np.ndarray:
    """Calibrated probabilities (float32, rows sum to 1) of the network ``output``; ``output`` itself without params."""
    if not params:
        return output
    z = log_calibrated(np.log(np.clip(output.astype(np.float64), _FLOOR, 1.0)), now, params)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def check_calibration(params, n_classes: int, where="model") -> None:
    """Raise ValueError unless ``params`` is None or a calibration this code can apply to ``n_classes`` classes."""
    if params is None:
        return
    try:
        ok = float(params["temperature"]) > 0 and len(params["class_offsets"]) == n_classes
        ok = ok and all(len(params["channel_offsets"][c]) == n_classes for c in CALIBRATION_CHANNELS)
        values = [params["temperature"], *params["class_offsets"],
                  *(v for c in CALIBRATION_CHANNELS for v in params["channel_offsets"][c])]
        ok = ok and bool(np.all(np.isfinite(np.asarray(values, dtype=np.float64))))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        offsets = params.get("class_offsets") if isinstance(params, dict) else None
        found = f"{len(offsets)} class offsets" if isinstance(offsets, (list, tuple)) else f"{str(params)[:80]!r}"
        raise ValueError(f"{where}: its calibration ({found}) is not a finite calibration of {n_classes} classes")
