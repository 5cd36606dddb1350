"""Losses and metrics follow Google's formulas and combine exactly across any split of the batch."""

import numpy as np
import pytest
import tensorflow as tf
from numpy_bert import pretraining_losses

import bert


def random_batch(seed, batch=8, predictions=5, vocab=11):
    rng = np.random.default_rng(seed)
    weights = (rng.random((batch, predictions)) < 0.7).astype(np.float32)
    weights[:, 0] = 1.0
    outputs = {
        "masked_lm_logits": rng.normal(size=(batch, predictions, vocab)).astype(np.float32) * 3,
        "next_sentence_logits": rng.normal(size=(batch, 2)).astype(np.float32),
    }
    features = {
        "masked_lm_ids": rng.integers(0, vocab, size=(batch, predictions)).astype(np.int32),
        "masked_lm_weights": weights,
        "next_sentence_labels": rng.integers(0, 2, size=(batch,)).astype(np.int32),
    }
    return outputs, features


def numpy_reference(outputs, features):
    return pretraining_losses(
        outputs["masked_lm_logits"],
        outputs["next_sentence_logits"],
        features["masked_lm_ids"],
        features["masked_lm_weights"],
        features["next_sentence_labels"],
    )


def test_losses_and_metrics_match_googles_formulas():
    outputs, features = random_batch(seed=0)
    mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy = numpy_reference(outputs, features)
    metrics = bert.pretraining_metrics(bert.pretraining_sums(outputs, features))
    np.testing.assert_allclose(metrics["masked_lm_loss"], mlm_loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["next_sentence_loss"], nsp_loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["masked_lm_accuracy"], mlm_accuracy, rtol=1e-6)
    np.testing.assert_allclose(metrics["next_sentence_accuracy"], nsp_accuracy, rtol=1e-6)
    np.testing.assert_allclose(metrics["loss"], mlm_loss + nsp_loss, rtol=1e-6)
    np.testing.assert_allclose(
        bert.pretraining_loss(bert.pretraining_sums(outputs, features)), mlm_loss + nsp_loss, rtol=1e-6
    )


def test_hand_worked_example():
    # Two predictions, one real (weight 1) one padding (weight 0); uniform logits over V=4 -> nll = log 4.
    outputs = {
        "masked_lm_logits": np.array([[[0.0, 0.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0]]], np.float32),
        "next_sentence_logits": np.array([[0.0, np.log(3.0)]], np.float32),  # p(random next) = 3/4
    }
    features = {
        "masked_lm_ids": np.array([[2, 0]], np.int32),
        "masked_lm_weights": np.array([[1.0, 0.0]], np.float32),
        "next_sentence_labels": np.array([[1]], np.int32),  # Google's [B, 1] layout is accepted too
    }
    sums = bert.pretraining_sums(outputs, features)
    np.testing.assert_allclose(sums["mlm_loss_sum"], np.log(4.0), rtol=1e-6)
    assert (
        float(sums["mlm_weight_sum"]) == 1.0 and float(sums["mlm_correct_sum"]) == 0.0
    )  # argmax tie -> 0 != 2
    np.testing.assert_allclose(sums["nsp_loss_sum"], -np.log(0.75), rtol=1e-6)
    assert float(sums["nsp_count"]) == 1.0 and float(sums["nsp_correct_sum"]) == 1.0
    np.testing.assert_allclose(
        bert.pretraining_loss(sums), np.log(4.0) / (1.0 + 1e-5) - np.log(0.75), rtol=1e-6
    )


@pytest.mark.parametrize("split", [[8], [4, 4], [1, 7], [3, 3, 2], [1] * 8])
def test_summing_sums_over_any_split_gives_the_whole_batch_loss(split):
    outputs, features = random_batch(seed=1)
    total = {key: tf.constant(0.0) for key in bert.SUM_KEYS}
    start = 0
    for size in split:
        part = slice(start, start + size)
        start += size
        sums = bert.pretraining_sums(
            {k: v[part] for k, v in outputs.items()}, {k: v[part] for k, v in features.items()}
        )
        total = bert.add_sums(total, sums)
    whole = bert.pretraining_metrics(bert.pretraining_sums(outputs, features))
    combined = bert.pretraining_metrics(total)
    for key in whole:
        np.testing.assert_allclose(combined[key], whole[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(combined["loss"], sum(numpy_reference(outputs, features)[:2]), rtol=1e-6)


def test_empty_batch_metrics_are_zero_not_nan():
    outputs, features = random_batch(seed=2)
    features["masked_lm_weights"] = np.zeros_like(features["masked_lm_weights"])
    metrics = bert.pretraining_metrics(bert.pretraining_sums(outputs, features))
    assert float(metrics["masked_lm_loss"]) == 0.0 and float(metrics["masked_lm_accuracy"]) == 0.0


def test_sums_are_float32_scalars_under_bfloat16_logits():
    outputs, features = random_batch(seed=3)
    outputs = {k: tf.cast(v, tf.bfloat16) for k, v in outputs.items()}
    sums = bert.pretraining_sums(outputs, features)
    assert set(sums) == set(bert.SUM_KEYS)
    assert all(v.dtype == tf.float32 and v.shape == () for v in sums.values())


def share_of_the_global_loss(sums, whole):
    """A part's loss term as the train step writes it: its numerators over the whole batch's denominators."""
    return bert.pretraining_loss(
        {**sums, "mlm_weight_sum": whole["mlm_weight_sum"], "nsp_count": whole["nsp_count"]}
    )


@pytest.mark.parametrize("split", [[8], [5, 3], [2, 2, 2, 2]])
def test_parts_over_the_global_denominators_add_up_to_the_whole_batch_loss(split):
    outputs, features = random_batch(seed=4)
    whole = bert.pretraining_sums(outputs, features)
    total, start = 0.0, 0
    for size in split:
        part = slice(start, start + size)
        start += size
        sums = bert.pretraining_sums(
            {k: v[part] for k, v in outputs.items()}, {k: v[part] for k, v in features.items()}
        )
        total += share_of_the_global_loss(sums, whole)
    np.testing.assert_allclose(total, bert.pretraining_loss(whole), rtol=1e-6)


def test_gradients_of_the_parts_add_up_to_the_whole_batch_gradient():
    outputs, features = random_batch(seed=5)
    logits = {k: tf.Variable(v) for k, v in outputs.items()}
    with tf.GradientTape() as tape:
        whole_sums = bert.pretraining_sums(logits, features)
        whole = bert.pretraining_loss(whole_sums)
    expected = tape.gradient(whole, list(logits.values()))
    denominators = {k: tf.stop_gradient(v) for k, v in whole_sums.items()}
    with tf.GradientTape() as tape:
        parts = []
        for part in (slice(0, 3), slice(3, 8)):
            sums = bert.pretraining_sums(
                {k: v[part] for k, v in logits.items()}, {k: v[part] for k, v in features.items()}
            )
            parts.append(share_of_the_global_loss(sums, denominators))
        total = tf.add_n(parts)
    for a, b in zip(tape.gradient(total, list(logits.values())), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
