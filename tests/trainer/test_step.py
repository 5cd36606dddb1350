"""The distributed train step: the gradient of Google's loss on the global batch, reduced once, clipped once.

Reference: one plain GradientTape over the whole global batch on one device, with Google's loss written out
here, `sum(w * nll) / (sum(w) + 1e-5) + mean(nsp_nll)`, then the clip by global norm and an SGD update done by
hand. SGD makes the update proportional to the gradient, so a gradient reduced twice (x replicas) or
clipped per replica shows up, unlike LAMB whose step barely depends on the gradient's scale.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bert
from trainer.inputs import DistributedInput
from trainer.keras_private import use_reduced_gradients
from trainer.step import TrainStep, split_micro_batches

VOCAB, SEQ, PREDICTIONS, GLOBAL_BATCH = 40, 12, 3, 8
CONFIG = bert.BertConfig(
    vocab_size=VOCAB,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    max_position_embeddings=SEQ,
)


def global_batch(seed=0):
    rng = np.random.default_rng(seed)
    n = GLOBAL_BATCH
    return {
        "input_ids": rng.integers(5, VOCAB, (n, SEQ)).astype(np.int32),
        "input_mask": (np.arange(SEQ)[None, :] < rng.integers(6, SEQ + 1, (n, 1))).astype(np.int32),
        "segment_ids": (np.arange(SEQ)[None, :] >= 4).astype(np.int32).repeat(n, axis=0),
        "masked_lm_positions": rng.integers(1, 6, (n, PREDICTIONS)).astype(np.int32),
        "masked_lm_ids": rng.integers(5, VOCAB, (n, PREDICTIONS)).astype(np.int32),
        # Uneven weights across replicas: the loss must divide by the GLOBAL weight sum.
        "masked_lm_weights": (rng.random((n, PREDICTIONS)) < np.linspace(0.2, 1.0, n)[:, None]).astype(
            np.float32
        ),
        "next_sentence_labels": rng.integers(0, 2, (n,)).astype(np.int32),
    }


def google_loss(model, batch):
    """Google's run_pretraining.py loss over one batch, written out independently of bert.losses."""
    outputs = model(batch, training=True)
    log_probs = tf.nn.log_softmax(outputs["masked_lm_logits"], axis=-1)
    one_hot = tf.one_hot(batch["masked_lm_ids"], VOCAB)
    per_example = -tf.reduce_sum(log_probs * one_hot, axis=-1)
    weights = batch["masked_lm_weights"]
    mlm = tf.reduce_sum(weights * per_example) / (tf.reduce_sum(weights) + 1e-5)
    nsp_log_probs = tf.nn.log_softmax(outputs["next_sentence_logits"], axis=-1)
    nsp = -tf.reduce_mean(
        tf.reduce_sum(nsp_log_probs * tf.one_hot(batch["next_sentence_labels"], 2), axis=-1)
    )
    return mlm + nsp


def reference_sgd_step(initial_weights, batch, learning_rate, clip):
    model = bert.BertPretrainingModel(CONFIG)
    model.set_weights(initial_weights)
    with tf.GradientTape() as tape:
        loss = google_loss(model, batch)
    grads = [
        tf.convert_to_tensor(g).numpy().astype(np.float64)
        for g in tape.gradient(loss, model.trainable_variables)
    ]
    norm = np.sqrt(sum(np.sum(g * g) for g in grads))
    scale = min(1.0, clip / norm) if clip else 1.0
    return [
        w.numpy() - learning_rate * scale * g for w, g in zip(model.trainable_variables, grads, strict=True)
    ]


def mirrored(num_devices):
    # ReductionToOneDevice: CPU collectives of strategies of different sizes in one process would share keys.
    devices = [f"/cpu:{i}" for i in range(num_devices)]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def train_one_step(strategy, micro_batch, batch, initial_weights, learning_rate, clip, loss_scale=None):
    """One TrainStep with SGD (in a LossScaleOptimizer starting at `loss_scale`, if given); returns the
    trained variables' values, the logged gradient norm, the model and the optimizer."""
    replicas = strategy.num_replicas_in_sync
    accumulation = GLOBAL_BATCH // (micro_batch * replicas)
    with strategy.scope():
        model = bert.BertPretrainingModel(CONFIG)
        model.set_weights(initial_weights)
        optimizer = keras.optimizers.SGD(learning_rate)
        if loss_scale is not None:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
        optimizer.build(model.trainable_variables)
    step = TrainStep(
        model,
        optimizer,
        global_batch_size=GLOBAL_BATCH,
        accumulation_steps=accumulation,
        clip_global_norm=clip,
    )
    inputs = DistributedInput(
        strategy,
        lambda context, size: tf.data.Dataset.from_tensors(batch).repeat(),
        micro_batch * accumulation,
    )

    @tf.function
    def run():
        out = strategy.run(lambda host_batch: step(inputs.replica_rows(host_batch)), args=(inputs.next(),))
        return strategy.experimental_local_results(out["gradient_norm"])[0]

    return [v.numpy() for v in model.trainable_variables], float(run()), model, optimizer


@pytest.fixture(scope="module")
def initial_weights():
    keras.utils.set_random_seed(3)
    return bert.BertPretrainingModel(CONFIG).get_weights()


# Global batch 8 = micro-batch x devices x accumulation steps; ids read "devices x accumulation".
@pytest.mark.parametrize(
    ("devices", "micro_batch", "clip"),
    [(1, 2, None), (2, 2, None), (4, 1, None), (2, 2, 0.05), (4, 2, 0.05)],
    ids=["1x4", "2x2", "4x2", "2x2-clipped", "4x1-clipped"],
)
def test_one_step_is_sgd_on_the_gradient_of_googles_loss_over_the_global_batch(
    initial_weights, devices, micro_batch, clip
):
    batch = global_batch()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0") if devices == 1 else mirrored(devices)
    _, _, model, _ = train_one_step(strategy, micro_batch, batch, initial_weights, 0.5, clip)
    expected = reference_sgd_step(initial_weights, batch, 0.5, clip)
    for variable, want in zip(model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=0, atol=2e-6, err_msg=variable.path)


def test_the_logged_gradient_norm_is_the_global_norm_before_clipping(initial_weights):
    batch = global_batch(1)
    model = bert.BertPretrainingModel(CONFIG)
    model.set_weights(initial_weights)
    with tf.GradientTape() as tape:
        loss = google_loss(model, batch)
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
    expected = tf.linalg.global_norm(grads).numpy()
    _, norm, _, _ = train_one_step(mirrored(2), 2, batch, initial_weights, 0.5, clip=1e-3)
    assert norm == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("devices", [1, 2], ids=["one-device", "mirrored-2"])
def test_with_loss_scaling_the_gradient_is_unscaled_before_the_clip(initial_weights, devices):
    # A power-of-two loss scale is exact in float32: the step is SGD on the clipped gradient of Google's
    # loss, as without scaling. Clipping the scaled gradient instead would make a step 1024 times smaller.
    batch = global_batch()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0") if devices == 1 else mirrored(devices)
    _, norm, model, optimizer = train_one_step(
        strategy, 2, batch, initial_weights, 0.5, 0.05, loss_scale=1024.0
    )
    expected = reference_sgd_step(initial_weights, batch, 0.5, 0.05)
    for variable, want in zip(model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=0, atol=2e-6, err_msg=variable.path)
    assert int(optimizer.iterations.numpy()) == 1
    assert float(optimizer.dynamic_scale.numpy()) == 1024.0  # no growth after one finite step


def test_a_non_finite_scaled_gradient_skips_the_update_and_halves_the_scale(initial_weights):
    # With the scale at 2^127 the scaled loss overflows float32: the gradient is not finite.
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    _, norm, model, optimizer = train_one_step(
        strategy, 2, global_batch(), initial_weights, 0.5, None, loss_scale=2.0**127
    )
    assert not np.isfinite(norm)
    for variable, before in zip(model.trainable_variables, initial_weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), before, err_msg=variable.path)
    assert int(optimizer.iterations.numpy()) == 0
    assert float(optimizer.dynamic_scale.numpy()) == 2.0**126


def test_micro_batches_are_consecutive_rows():
    features = {"x": tf.reshape(tf.range(12), [6, 2])}
    split = split_micro_batches(features, 3)["x"].numpy()
    assert split.shape == (3, 2, 2)
    np.testing.assert_array_equal(split[1], [[4, 5], [6, 7]])


def test_an_optimizer_that_clips_by_itself_is_refused():
    with pytest.raises(ValueError, match="clip in the train step"):
        use_reduced_gradients(keras.optimizers.SGD(0.1, global_clipnorm=1.0))
