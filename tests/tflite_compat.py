"""A t2 model file an older TFLite runtime can load (the shipped network with per-tensor dense weights),
and the real alerts on which the tests compare two runtimes.

TensorFlow 2.21's converter quantizes the weights of a dense layer per output channel, which TFLite
records as ``FULLY_CONNECTED`` version 12; the tf.lite of TensorFlow 2.15 (Fink's science images) knows
versions up to 11 and refuses the file. The converter's switch
``_experimental_disable_per_channel_quantization_for_dense_layers`` gives per-tensor weights instead (version
9 on a small dense model converted both ways, the second loaded by TensorFlow 2.15). This does the same to an
already converted file, so that the tests can run the shipped network on both interpreters: each per-channel
int8 weight tensor of a ``FULLY_CONNECTED`` is dequantized and quantized again with one symmetric scale.
"""

from __future__ import annotations

import numpy as np

import pandas as pd

from fink_t2.contract import attach_contract, read_contract, strip_contract

#: the FULLY_CONNECTED version TensorFlow 2.21's converter writes for per-tensor dynamic-range weights
PER_TENSOR_FC_VERSION = 9


def _fully_connected_codes(model, schema) -> set[int]:
    code = schema.BuiltinOperator.FULLY_CONNECTED
    return {i for i, op in enumerate(model.operatorCodes) if max(op.builtinCode, op.deprecatedBuiltinCode) == code}


def fc_versions(path) -> list[int]:
    """The FULLY_CONNECTED op versions a model file asks of its runtime."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(strip_contract(path)))
    return sorted(model.operatorCodes[i].version for i in _fully_connected_codes(model, schema))


def per_tensor_variant(path, out) -> int:
    """Write to ``out`` the model at ``path`` with per-tensor FULLY_CONNECTED weights; number of tensors changed."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(strip_contract(path)))
    codes = _fully_connected_codes(model, schema)
    changed = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in codes or op.inputs[1] in changed:
                continue
            weights = subgraph.tensors[op.inputs[1]]
            quantization = weights.quantization
            if weights.type != schema.TensorType.INT8 or quantization is None or len(quantization.scale) < 2:
                continue
            buffer = model.buffers[weights.buffer]
            values = np.frombuffer(bytes(buffer.data), np.int8).reshape(weights.shape)
            axis = quantization.quantizedDimension
            scales = np.asarray(quantization.scale, np.float32).reshape([-1 if d == axis else 1 for d in range(values.ndim)])
            real = values.astype(np.float32) * scales
            scale = float(np.abs(real).max()) / 127.0 or 1.0
            requantized = np.clip(np.round(real / scale), -127, 127).astype(np.int8)
            buffer.data = np.frombuffer(requantized.tobytes(), np.uint8)
            quantization.scale, quantization.zeroPoint, quantization.quantizedDimension = [scale], [0], 0
            changed.add(op.inputs[1])
    for i in codes:
        model.operatorCodes[i].version = min(model.operatorCodes[i].version, PER_TENSOR_FC_VERSION)
    content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    with open(out, "wb") as stream:
        stream.write(attach_contract(content, read_contract(path)))
    return len(changed)


def real_alert_probabilities(model, n_objects: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, status) of ``model`` on real alerts, through the cuts and preprocessing of the module.

    The 124 alerts of the sample night (Fink's science stage; few pass the cuts) and the alert views of the
    first ``n_objects`` ZTF BTS objects at 20 days (most pass), as ``fink-t2 classify`` sees them.
    """
    from pathlib import Path

    from fink_t2.alerts import iter_alert_tables
    from fink_t2.classifier import classify_columns
    from fink_t2.classify import classify_lightcurves
    from fink_t2.samples import SAMPLE_NIGHT, SHARED_DATA

    alerts = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    night, night_status = classify_columns(alerts.cjd, alerts.cfid, alerts.cmagpsf, alerts.cisdiffpos, alerts.roid,
                                           alerts.cdsxmatch, alerts.jdstarthist, alerts.ndethist, model)
    bts = pd.read_csv(Path(SHARED_DATA) / "ztf_bts" / "lightcurves.csv.gz")
    bts = bts[bts["objectId"].isin(bts["objectId"].drop_duplicates().iloc[:n_objects])]
    young = bts[bts["mjd"] <= bts.groupby("objectId")["mjd"].transform("min") + 20]
    views = classify_lightcurves(young.reset_index(drop=True), model=model)
    proba = np.concatenate([night, views[list(model.class_names)].to_numpy(np.float32)])
    return proba, np.concatenate([night_status, views["t2_status"].to_numpy()]).astype(str)
