"""The building blocks of Google's BERT (google-research/bert modeling.py) as Keras 3 layers.

Every variable has Google's shape, and the layers are named so that a variable's Keras path ends with
Google's checkpoint name (e.g. `.../bert/encoder/layer_0/attention/self/query/kernel`).

Mixed precision: matmuls run in the layer's compute dtype; LayerNorm statistics, the attention softmax and
the embedding sum run in float32. Variables are always float32.
"""

import math

import keras
import tensorflow as tf

from bert.activations import ACTIVATIONS

LAYER_NORM_EPSILON = 1e-12  # tf.contrib.layers.layer_norm, as used by Google's BERT
ATTENTION_MASK_ADDER = -10000.0  # Google's additive mask for padded positions


def truncated_normal(config):
    """Google's `create_initializer`: a normal(0, initializer_range) truncated at two standard deviations."""
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def attention_bias(input_mask):
    """Google's additive attention mask: 0 where `input_mask` is 1, -10000 where it is 0. [B, 1, 1, S]."""
    keep = tf.cast(input_mask[:, None, None, :], tf.float32)
    return (1.0 - keep) * ATTENTION_MASK_ADDER


class Dropout(keras.layers.Dropout):
    """keras.layers.Dropout whose mask also depends on the replica under tf.distribute.

    Keras' seed-generator state is mirrored, so plain Keras dropout draws the SAME mask on every replica
    (noise correlated across the global batch, unlike one large batch on one device). Adding the replica's
    id to the seed gives each replica its own mask; on one device nothing changes but the seed.
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        seed = self.seed_generator.next()  # int64 [2]: (base, counter)
        seed += tf.stack([_replica_id(), tf.constant(0, tf.int64)])
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)  # XLA wants int32 seeds
        return dropout(inputs, self.rate, seed)


def dropout(x, rate, seed):
    """Inverted dropout: x / (1 - rate) where random uint32 bits >= rate * 2^32, else 0.

    P(drop) = rate within 2^-32. Comparing the raw Philox bits (stateless, int32 [2] `seed`) skips the
    conversion to floats and the multiply by a mask that tf.nn.experimental.stateless_dropout does:
    fewer passes over the largest tensors of a step (the [B, N, S, S] attention probabilities).
    """
    bits = tf.random.stateless_uniform(
        tf.shape(x), seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    threshold = tf.constant(min(round(rate * 2**32), 2**32 - 1), tf.uint32)
    return tf.where(bits >= threshold, x * tf.cast(1.0 / (1.0 - rate), x.dtype), tf.zeros_like(x))


def _replica_id():
    context = tf.distribute.get_replica_context()  # None in a cross-replica context
    return tf.cast(context.replica_id_in_sync_group if context else 0, tf.int64)


class Dense(keras.layers.Layer):
    """`activation(x @ kernel + bias)` on a 2-D input [rows, input_size]; kernel [input_size, units]."""

    def __init__(self, input_size, units, initializer, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.units = units
        self.initializer = initializer
        self.activation = activation or ACTIVATIONS["linear"]

    def build(self, input_shape=None):
        self.kernel = self.add_weight(
            name="kernel", shape=(self.input_size, self.units), initializer=self.initializer
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        # bias_add lets TF's graph optimiser fuse the bias into the matmul (oneDNN); GELU is a fused kernel.
        return self.activation(tf.nn.bias_add(tf.matmul(x, self.kernel), self.bias))  # [rows, units]


class LayerNorm(keras.layers.Layer):
    """Layer normalisation over the last axis, statistics in float32; output in the compute dtype."""

    def __init__(self, size, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.size = size

    def build(self, input_shape=None):
        self.gamma = self.add_weight(name="gamma", shape=(self.size,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(self.size,), initializer="zeros")

    def call(self, x):
        x = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        y = (x - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * self.gamma + self.beta
        return tf.cast(y, self.compute_dtype)


class Embeddings(keras.layers.Layer):
    """word + token-type + position embeddings, LayerNorm, dropout (`embedding_postprocessor`).

    The tables stay float32 and are gathered, summed and normalised in float32 (no per-step cast of the
    [vocab, hidden] table just to look up a few rows).
    """

    def __init__(self, config, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.config = config
        self.layer_norm = LayerNorm(config.hidden_size, name="LayerNorm", dtype=self.dtype_policy)
        self.dropout = Dropout(config.hidden_dropout_prob, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        config, initializer = self.config, truncated_normal(self.config)
        H = config.hidden_size
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(config.vocab_size, H), initializer=initializer
        )
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(config.type_vocab_size, H), initializer=initializer
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(config.max_position_embeddings, H), initializer=initializer
        )
        self.layer_norm.build()

    def call(self, input_ids, segment_ids, training=None):
        seq_length = tf.shape(input_ids)[1]
        x = tf.gather(self.word_embeddings, input_ids)  # [B, S, H]
        x += tf.gather(self.token_type_embeddings, segment_ids)  # [B, S, H]
        x += self.position_embeddings[None, :seq_length]  # [1, S, H]
        return self.dropout(self.layer_norm(x), training=training)


class TransformerLayer(keras.layers.Layer):
    """One post-LN transformer layer of Google's `transformer_model`.

    Input/output [B, S, H]; `input_mask` int32 [B, S] is 1 for tokens and 0 for padding.
    The dense layers work on the [B*S, H] matrix, as Google's code does.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        H, F = config.hidden_size, config.intermediate_size
        init, policy = truncated_normal(config), self.dtype_policy
        self.query = Dense(H, H, init, name="query", dtype=policy)
        self.key = Dense(H, H, init, name="key", dtype=policy)
        self.value = Dense(H, H, init, name="value", dtype=policy)
        self.attention_output = Dense(H, H, init, name="dense", dtype=policy)
        self.attention_layer_norm = LayerNorm(H, name="LayerNorm", dtype=policy)
        activation = ACTIVATIONS[config.hidden_act]
        self.intermediate = Dense(H, F, init, activation=activation, name="dense", dtype=policy)
        self.output_dense = Dense(F, H, init, name="dense", dtype=policy)
        self.output_layer_norm = LayerNorm(H, name="LayerNorm", dtype=policy)
        self.attention_dropout = Dropout(config.attention_probs_dropout_prob, dtype=policy)
        self.hidden_dropout = Dropout(config.hidden_dropout_prob, dtype=policy)

    def build(self, input_shape=None):
        with keras.name_scope("attention"):
            with keras.name_scope("self"):
                for dense in (self.query, self.key, self.value):
                    dense.build()
            with keras.name_scope("output"):
                self.attention_output.build()
                self.attention_layer_norm.build()
        with keras.name_scope("intermediate"):
            self.intermediate.build()
        with keras.name_scope("output"):
            self.output_dense.build()
            self.output_layer_norm.build()

    def call(self, x, input_mask, training=None):
        B, S = tf.shape(x)[0], tf.shape(x)[1]
        N, D, H = self.config.num_attention_heads, self.config.head_size, self.config.hidden_size
        x = tf.reshape(x, [-1, H])  # [B*S, H]

        q = tf.reshape(self.query(x), [B, S, N, D])
        k = tf.reshape(self.key(x), [B, S, N, D])
        v = tf.reshape(self.value(x), [B, S, N, D])
        scores = tf.einsum("bqnd,bknd->bnqk", q, k)  # [B, N, S, S]
        scores = tf.cast(scores, tf.float32) * (1.0 / math.sqrt(D)) + attention_bias(input_mask)
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_dropout(probs, training=training)
        context = tf.einsum("bnqk,bknd->bqnd", probs, v)  # [B, S, N, D]
        context = tf.reshape(context, [-1, H])  # [B*S, H]

        attention = self.hidden_dropout(self.attention_output(context), training=training)
        attention = self.attention_layer_norm(attention + x)  # [B*S, H]
        output = self.hidden_dropout(self.output_dense(self.intermediate(attention)), training=training)
        output = self.output_layer_norm(output + attention)  # [B*S, H]
        return tf.reshape(output, [B, S, H])
