"""Google's pretraining losses and metrics, built from per-batch sums.

A distributed step sums the per-replica (and per-micro-batch) sums, then divides once: the global masked-LM
loss is then sum(weights * nll) / (sum(weights) + 1e-5) over the whole global batch, exactly Google's
formula, whatever the split.
"""

import tensorflow as tf

SUM_KEYS = (
    "mlm_loss_sum",
    "mlm_weight_sum",
    "mlm_correct_sum",
    "nsp_loss_sum",
    "nsp_count",
    "nsp_correct_sum",
)


def pretraining_sums(outputs, features):
    """Per-batch float32 scalar sums of the masked-LM and next-sentence losses and hits.

    `outputs`: the model's `masked_lm_logits` [B, P, V] and `next_sentence_logits` [B, 2].
    `features`: `masked_lm_ids` int [B, P], `masked_lm_weights` float [B, P] (0 on padding predictions),
    `next_sentence_labels` int [B] or [B, 1] (1 = random next sentence).
    """
    mlm_logits = tf.cast(outputs["masked_lm_logits"], tf.float32)
    mlm_ids = tf.cast(features["masked_lm_ids"], tf.int32)
    mlm_weights = tf.cast(features["masked_lm_weights"], tf.float32)
    mlm_nll, mlm_correct = _nll_and_correct(mlm_logits, mlm_ids)  # [B, P] each

    nsp_logits = tf.cast(outputs["next_sentence_logits"], tf.float32)
    nsp_labels = tf.reshape(tf.cast(features["next_sentence_labels"], tf.int32), [-1])
    nsp_nll, nsp_correct = _nll_and_correct(nsp_logits, nsp_labels)  # [B] each

    return {
        "mlm_loss_sum": tf.reduce_sum(mlm_weights * mlm_nll),
        "mlm_weight_sum": tf.reduce_sum(mlm_weights),
        "mlm_correct_sum": tf.reduce_sum(mlm_weights * mlm_correct),
        "nsp_loss_sum": tf.reduce_sum(nsp_nll),
        "nsp_count": tf.cast(tf.size(nsp_labels), tf.float32),
        "nsp_correct_sum": tf.reduce_sum(nsp_correct),
    }


def _nll_and_correct(logits, labels):
    """Softmax cross-entropy and argmax hits (float 0/1) over the last axis."""
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
    return nll, correct


def pretraining_loss(sums):
    """Google's total loss: masked-LM loss + next-sentence loss, from (combined) sums."""
    return masked_lm_loss(sums) + next_sentence_loss(sums)


def masked_lm_loss(sums):
    """sum(weights * nll) / (sum(weights) + 1e-5), as in Google's `get_masked_lm_output`."""
    return sums["mlm_loss_sum"] / (sums["mlm_weight_sum"] + 1e-5)


def next_sentence_loss(sums):
    """Mean next-sentence negative log-likelihood."""
    return sums["nsp_loss_sum"] / sums["nsp_count"]


def pretraining_metrics(sums):
    """The four numbers Google's pretraining evaluation reports, plus the total loss (float32 scalars).

    Accuracies of an empty batch (zero weight or zero sequences) are 0, never NaN.
    """
    return {
        "loss": pretraining_loss(sums),
        "masked_lm_loss": masked_lm_loss(sums),
        "masked_lm_accuracy": tf.math.divide_no_nan(sums["mlm_correct_sum"], sums["mlm_weight_sum"]),
        "next_sentence_loss": next_sentence_loss(sums),
        "next_sentence_accuracy": tf.math.divide_no_nan(sums["nsp_correct_sum"], sums["nsp_count"]),
    }


def add_sums(a, b):
    """Adds two dicts of sums key by key (for micro-batch accumulation)."""
    return {key: a[key] + b[key] for key in SUM_KEYS}
