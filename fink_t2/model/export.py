"""Keras t2 → TFLite FlatBuffer bytes (float, dynamic-range or full-int8), and stripping of the FlatBuffer.

Used by ``fink-t2 train`` (the dynamic-range model of every training run, cross-validation folds
included) and ``fink-t2 compress`` (every variant).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: what the dynamic-range variant is, as the metrics and docs name it
DYNAMIC_RANGE = "TFLite dynamic-range quantization (int8 weights, float activations)"


def _converter_from_keras(model):
    """TFLite converter of a tf-keras model."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def strip_flatbuffer(model_bytes: bytes) -> bytes:
    """The same TFLite model without what the interpreter does not need to run it.

    Drops tensor names, the converter's metadata (``min_runtime_version``, ``CONVERSION_METADATA``) and
    the shape signatures of inner tensors; the subgraph inputs/outputs keep theirs (LiteRT's
    ``CompiledModel`` needs them to resize the batch) and the signature def is kept (the GPU path
    reads it). Outputs are bit-identical (checked by :func:`compress`).
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    model.metadata = None
    model.metadataBuffer = None
    model.description = None
    for subgraph in model.subgraphs:
        keep = set(subgraph.inputs) | set(subgraph.outputs)
        for index, tensor in enumerate(subgraph.tensors):
            tensor.name = None
            if index not in keep:
                tensor.shapeSignature = None
    # tensors without constant data all share the empty buffer 0 instead of one empty buffer each
    def empty(buffer):
        return (buffer.data is None or len(buffer.data) == 0) and not getattr(buffer, "offset", 0)

    used = sorted({t.buffer for sg in model.subgraphs for t in sg.tensors if not empty(model.buffers[t.buffer])})
    remap = {old: new for new, old in enumerate([0, *[b for b in used if b != 0]])}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = remap.get(tensor.buffer, 0)
    model.buffers = [model.buffers[old] for old in sorted(remap, key=remap.get)]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_bytes(model_or_dir, mode: str, representative=None, per_channel=True, float_ops=("SOFTMAX",)) -> bytes:
    """TFLite FlatBuffer of a Keras model or SavedModel folder; mode float | dynamic | int8.

    ``dynamic``: int8 weights (per tensor for the dense layers, see below), float activations.
    ``int8``: full-integer quantization calibrated on ``representative``, except the ops in ``float_ops``
    (TFLite's selective quantization): the final softmax stays float so that the probabilities are not
    rounded to multiples of 1/256 and sum to 1.
    """
    import tensorflow as tf

    if isinstance(model_or_dir, (str, Path)):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model_or_dir))
    else:
        converter = _converter_from_keras(model_or_dir)
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "dynamic":
        # per-tensor dense weights: TFLite then asks for FULLY_CONNECTED version 9, which the tf.lite of
        # TensorFlow 2.15 (Fink's ZTF image until 2026, the runtime fallback) runs; per-channel ones need version 12
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if mode == "int8":
        sample = np.asarray(representative, dtype=np.float32)

        def gen():
            for i in range(len(sample)):
                yield [sample[i : i + 1]]

        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        if not per_channel:
            converter._experimental_disable_per_channel = True
        if float_ops:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=gen,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops)))
            return debugger.get_nondebug_quantized_model()
    return converter.convert()
