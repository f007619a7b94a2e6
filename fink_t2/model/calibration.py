"""Post-hoc calibration of t2's probabilities, folded into its last layer (no extra op, same size and speed).

Class weights buy rare-class recall (macro-F1) at the price of probabilities that overstate the rare
classes, worst for young alerts where the network knows little: their log-loss falls behind a constant
class prior. :func:`calibrate` fits, on the validation views (the evaluation's distribution), either one
temperature (keeps every argmax, hence the macro-F1) or a temperature plus class offsets linear in the
alert's age and ``ndethist`` channels, and writes it into the weights of the final Dense layer.
"""

from __future__ import annotations

import numpy as np

#: channels of the alert's own epoch (the model's ``now`` features) that the "age" calibration may use
CALIBRATION_CHANNELS = ("age", "log_ndethist")


def calibrate(model, x_val: np.ndarray, y_val: np.ndarray, mode: str = "temperature") -> dict:
    """Fit a calibration of the softmax on validation views and fold it into the ``probabilities`` layer.

    The network ends in ``softmax(W h + b)`` where ``h`` includes the alert's own-epoch channels; the
    calibrated output ``softmax((W h + b) / T + c + D now[age, ndethist])`` is again one Dense layer
    (``W / T`` plus ``D`` on those inputs, ``b / T + c``), so the exported model is unchanged in size and
    speed. Fitted by minimising the unweighted log-loss of the validation views (the evaluation's
    distribution: at most ``views_per_bucket`` views per object and age bucket), L2-regularised.
    """
    from scipy.optimize import minimize

    from fink_t2.sequences import CHANNELS

    if mode == "none" or len(y_val) == 0:
        return {"mode": "none"}
    if mode not in ("temperature", "age"):
        raise ValueError(f"unknown calibration {mode!r}")
    layer = model.get_layer("probabilities")
    kernel, bias = layer.get_weights()
    n_classes = kernel.shape[1]
    logits = np.log(np.clip(model.predict(x_val, batch_size=1024, verbose=0).astype(np.float64), 1e-12, 1))
    chan = [CHANNELS.index(c) for c in CALIBRATION_CHANNELS]
    extra = x_val[:, -1, chan].astype(np.float64) if mode == "age" else np.zeros((len(y_val), 0))
    n_extra = extra.shape[1]

    def unpack(theta):
        t = np.exp(theta[0])
        c = theta[1:1 + n_classes]
        d = theta[1 + n_classes:].reshape(n_extra, n_classes)
        return t, c, d

    def loss(theta):
        t, c, d = unpack(theta)
        z = logits / t + (c + extra @ d if mode == "age" else 0.0)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -np.mean(logp[np.arange(len(y_val)), y_val]) + 1e-3 * np.sum(theta[1:] ** 2)

    theta0 = np.zeros(1 + (n_classes + n_extra * n_classes if mode == "age" else 0))
    before = loss(theta0)
    theta = minimize(loss, theta0, method="L-BFGS-B").x
    t, c, d = unpack(theta)
    kernel = kernel / t
    bias = bias / t
    if mode == "age":
        # the concatenated ``now`` features are the last len(CHANNELS) inputs of the layer
        first_now = kernel.shape[0] - len(CHANNELS)
        for j, ch in enumerate(chan):
            kernel[first_now + ch] += d[j]
        bias = bias + c
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return {"mode": mode, "temperature": float(t), "class_offsets": c.round(6).tolist(),
            "channel_offsets": {CALIBRATION_CHANNELS[j]: d[j].round(6).tolist() for j in range(n_extra)},
            "val_log_loss_before": float(before), "val_log_loss_after": float(loss(theta))}
