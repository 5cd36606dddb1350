"""Google's BERT encoder and pretraining heads (google-research/bert modeling.py, run_pretraining.py)."""

import keras
import tensorflow as tf

from bert.activations import ACTIVATIONS
from bert.config import BertConfig
from bert.layers import Dense, Embeddings, LayerNorm, TransformerLayer, truncated_normal

# Google's `exclude_from_weight_decay` regexes (re.search on a variable's name or Keras `path`): they select
# exactly the LayerNorm gamma/beta and bias variables (cls/predictions/output_bias included) of these models.
WEIGHT_DECAY_EXCLUSIONS = ("LayerNorm", "layer_norm", "bias")


class BertEncoder(keras.layers.Layer):
    """`BertModel`: embeddings, `num_hidden_layers` transformer layers, pooler (dense + tanh on [CLS]).

    Call with a dict holding int32 `input_ids` [B, S] and optionally `input_mask` (default all ones) and
    `segment_ids` (default all zeros); other keys are ignored. Returns a dict with `sequence_output`
    [B, S, H] and `pooled_output` [B, H], both in the compute dtype.
    Variables are created on construction; their paths are `<name>/embeddings/...`,
    `<name>/encoder/layer_<i>/...`, `<name>/pooler/dense/...` (Google's names for the default name "bert").
    """

    def __init__(self, config, name="bert", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        policy = self.dtype_policy
        self.embeddings = Embeddings(config, name="embeddings", dtype=policy)
        self.transformer_layers = [
            TransformerLayer(config, name=f"layer_{i}", dtype=policy) for i in range(config.num_hidden_layers)
        ]
        # tf.train.Checkpoint does not follow layers held in a Keras-tracked list: name each one as well.
        for i, layer in enumerate(self.transformer_layers):
            setattr(self, f"layer_{i}", layer)
        H = config.hidden_size
        self.pooler = Dense(H, H, truncated_normal(config), ACTIVATIONS["tanh"], name="dense", dtype=policy)
        self.build()

    def build(self, input_shape=None):
        self.embeddings.build()
        with keras.name_scope("encoder"):
            for layer in self.transformer_layers:
                layer.build()
        with keras.name_scope("pooler"):
            self.pooler.build()

    def call(self, features, training=None):
        input_ids = features["input_ids"]
        _check_sequence_length(input_ids, self.config.max_position_embeddings)
        input_mask = features.get("input_mask", tf.ones_like(input_ids))
        segment_ids = features.get("segment_ids", tf.zeros_like(input_ids))

        x = self.embeddings(input_ids, segment_ids, training=training)  # [B, S, H]
        for layer in self.transformer_layers:
            x = layer(x, input_mask, training=training)
        pooled = self.pooler(x[:, 0, :])  # [B, H]
        return {"sequence_output": x, "pooled_output": pooled}

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(BertConfig.from_dict(config["config"]), name=config["name"])


class MaskedLMHead(keras.layers.Layer):
    """`cls/predictions`: gather the masked positions, dense + activation + LayerNorm, tied decoder + bias.

    Only the P masked positions of each sequence are transformed and decoded ([B*P, H] @ [H, V]), never all S.
    """

    def __init__(self, config, embeddings, name="predictions", **kwargs):
        super().__init__(autocast=False, name=name, **kwargs)  # casts explicitly: the bias stays float32
        self.config = config
        self.embeddings = embeddings  # holds the tied word-embedding table
        H = config.hidden_size
        activation = ACTIVATIONS[config.hidden_act]
        policy = self.dtype_policy
        self.transform = Dense(H, H, truncated_normal(config), activation, name="dense", dtype=policy)
        self.layer_norm = LayerNorm(H, name="LayerNorm", dtype=policy)

    def build(self, input_shape=None):
        with keras.name_scope("transform"):
            self.transform.build()
            self.layer_norm.build()
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.config.vocab_size,), initializer="zeros"
        )

    def call(self, sequence_output, positions):
        B, S, H = tf.shape(sequence_output)[0], tf.shape(sequence_output)[1], self.config.hidden_size
        positions = tf.cast(positions, tf.int32)
        P = tf.shape(positions)[1]
        flat_positions = tf.reshape(positions + tf.range(B)[:, None] * S, [-1])  # [B*P]
        x = tf.gather(tf.reshape(sequence_output, [-1, H]), flat_positions)  # [B*P, H]
        x = self.layer_norm(self.transform(x))
        table = tf.cast(self.embeddings.word_embeddings, self.compute_dtype)  # [V, H]
        logits = tf.matmul(x, table, transpose_b=True)  # [B*P, V]
        logits = tf.cast(logits, tf.float32) + self.output_bias
        return tf.reshape(logits, [B, P, self.config.vocab_size])


class NextSentenceHead(keras.layers.Layer):
    """`cls/seq_relationship`: logits = pooled @ output_weights^T + output_bias, in float32.

    `output_weights` is stored as Google stores it, [2, H].
    """

    def __init__(self, config, name="seq_relationship", **kwargs):
        super().__init__(autocast=False, name=name, **kwargs)
        self.config = config

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(
            name="output_weights",
            shape=(2, self.config.hidden_size),
            initializer=truncated_normal(self.config),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")

    def call(self, pooled_output):
        pooled_output = tf.cast(pooled_output, tf.float32)
        return tf.matmul(pooled_output, self.output_weights, transpose_b=True) + self.output_bias  # [B, 2]


class BertPretrainingModel(keras.Model):
    """BERT with the masked-LM and next-sentence heads of Google's `run_pretraining.py`.

    Call with a dict of Google's feature names: int32 `input_ids`, `input_mask`, `segment_ids` [B, S] and
    `masked_lm_positions` [B, P]; other keys are ignored. Returns float32 `masked_lm_logits` [B, P, V] and
    `next_sentence_logits` [B, 2]. The encoder alone is `model.encoder`. All variables exist right after
    construction (no call needed before loading a checkpoint), and each variable's `path` is its Google
    checkpoint name (`bert/encoder/layer_0/attention/self/query/kernel`, `cls/predictions/output_bias`, ...)
    when the model is created outside any other layer.
    """

    def __init__(self, config, name="bert_pretraining", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        policy = self.dtype_policy
        self.encoder = BertEncoder(config, name="bert", dtype=policy)
        self.masked_lm = MaskedLMHead(config, self.encoder.embeddings, name="predictions", dtype=policy)
        self.next_sentence = NextSentenceHead(config, name="seq_relationship", dtype=policy)
        # Built here, outside the model's own name scope, so that variable paths are Google's names.
        with keras.name_scope("cls"):
            self.masked_lm.build()
            self.next_sentence.build()
        self.built = True

    def call(self, features, training=None):
        encoded = self.encoder(features, training=training)
        return {
            "masked_lm_logits": self.masked_lm(encoded["sequence_output"], features["masked_lm_positions"]),
            "next_sentence_logits": self.next_sentence(encoded["pooled_output"]),
        }

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(BertConfig.from_dict(config["config"]), name=config["name"])


def _check_sequence_length(input_ids, max_position_embeddings):
    seq_length = input_ids.shape[1]
    if seq_length is not None and seq_length > max_position_embeddings:
        raise ValueError(
            f"sequence length {seq_length} exceeds max_position_embeddings ({max_position_embeddings})"
        )
