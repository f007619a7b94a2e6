"""The t2 network (Allam, Peloton & McEwen 2023, arXiv:2303.08951), in tf-keras.

``(batch, 31, 7)`` (an alert's 30-day view: g/r flux, observed masks, age, ``ndethist``,
brightness; see :mod:`fink_t2.core.sequences`) → Conv1D(32, kernel 1) embedding + sinusoidal
positional encoding → one transformer encoder block (4-head self-attention, feed-forward 128,
dropout 0.1, post-LayerNorm) → global average pooling, concatenated with the channels of the
alert's own epoch (the last node: what the alert header knows) → softmax. ~13k parameters.

>>> model = build_model(4)
>>> model.count_params()
13120
>>> model.input_shape, model.output_shape
((None, 31, 7), (None, 4))
>>> build_model(14, input_shape=(100, 10)).output_shape
(None, 14)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from fink_t2.core.sequences import CHANNELS, SEQUENCE_LENGTH


@keras.utils.register_keras_serializable(package="fink_t2")
class PositionalEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal encoding of Vaswani et al. (2017) to ``(batch, time, d)``."""

    def build(self, input_shape):
        length, depth = int(input_shape[-2]), int(input_shape[-1])
        position = np.arange(length)[:, None]
        rate = 1.0 / 10000.0 ** (2 * (np.arange(depth) // 2) / depth)
        angle = position * rate[None, :]
        table = np.where(np.arange(depth) % 2 == 0, np.sin(angle), np.cos(angle))
        self.encoding = tf.constant(table[None], dtype=self.compute_dtype)
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.encoding

    def get_config(self):
        return super().get_config()


def build_model(n_classes: int = 4, embed_dim: int = 32, num_heads: int = 4, key_dim: int = 8,
                ff_dim: int = 128, dropout: float = 0.1, input_shape: tuple | None = None) -> keras.Model:
    """Uncompiled t2 model: input ``input_shape`` (default the ZTF view's ``(SEQUENCE_LENGTH, len(CHANNELS))``;
    a band-generic spec's ``(sequence_length, len(channels))``), output class probabilities."""
    length, n_channels = input_shape or (SEQUENCE_LENGTH, len(CHANNELS))
    inputs = keras.Input(shape=(length, n_channels), name="light_curve")
    x = keras.layers.Conv1D(embed_dim, kernel_size=1, name="embedding")(inputs)
    x = PositionalEncoding(name="positional_encoding")(x)
    attention = keras.layers.MultiHeadAttention(num_heads, key_dim, dropout=dropout, name="attention")(x, x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_1")(x + keras.layers.Dropout(dropout)(attention))
    ff = keras.layers.Dense(ff_dim, activation="relu", name="feed_forward_1")(x)
    ff = keras.layers.Dense(embed_dim, name="feed_forward_2")(ff)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_2")(x + keras.layers.Dropout(dropout)(ff))
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    now = keras.layers.Flatten(name="now")(keras.layers.Cropping1D((length - 1, 0), name="last_node")(inputs))
    x = keras.layers.Concatenate(name="pool_and_now")([x, now])
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="t2")
