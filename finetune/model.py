"""The fine-tuning models: the BERT encoder with Google's task heads.

Classification (`run_classifier.py`): dropout on the pooled [CLS] output, then
logits = pooled @ output_weights^T + output_bias, output_weights [num_labels, H].
Span extraction (`run_squad.py`, `cls/squad/...`): logits = sequence_output @ output_weights^T + output_bias
with output_weights [2, H]: the start and end logits of every position.
The heads compute in float32 (logits, softmax and loss stay float32 under mixed precision).
"""

import keras
import tensorflow as tf

from bert.layers import Dropout, truncated_normal


class OutputLayer(keras.layers.Layer):
    """x @ output_weights^T + output_bias in float32; output_weights [units, H] as Google stores them."""

    def __init__(self, config, units, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.config = config
        self.units = units

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(
            name="output_weights",
            shape=(self.units, self.config.hidden_size),
            initializer=truncated_normal(self.config),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return tf.matmul(tf.cast(x, tf.float32), self.output_weights, transpose_b=True) + self.output_bias


class ClassifierModel(keras.Model):
    """features (input_ids, input_mask, segment_ids [B, S]) -> float32 logits [B, num_labels]."""

    def __init__(self, encoder, num_labels, name="classifier", **kwargs):
        super().__init__(name=name, dtype=encoder.dtype_policy, **kwargs)
        self.encoder = encoder
        config = encoder.config
        self.dropout = Dropout(config.hidden_dropout_prob, dtype=self.dtype_policy)
        self.output_layer = OutputLayer(config, num_labels, name="output", dtype=self.dtype_policy)
        self.output_layer.build()
        self.built = True

    def call(self, features, training=None):
        pooled = self.encoder(features, training=training)["pooled_output"]  # [B, H]
        return self.output_layer(self.dropout(pooled, training=training))  # [B, num_labels]


class SpanModel(keras.Model):
    """features -> {"start_logits", "end_logits"}: float32 [B, S] each."""

    def __init__(self, encoder, name="squad", **kwargs):
        super().__init__(name=name, dtype=encoder.dtype_policy, **kwargs)
        self.encoder = encoder
        self.output_layer = OutputLayer(encoder.config, 2, name="output", dtype=self.dtype_policy)
        self.output_layer.build()
        self.built = True

    def call(self, features, training=None):
        sequence = self.encoder(features, training=training)["sequence_output"]  # [B, S, H]
        logits = self.output_layer(sequence)  # [B, S, 2]
        return {"start_logits": logits[:, :, 0], "end_logits": logits[:, :, 1]}
