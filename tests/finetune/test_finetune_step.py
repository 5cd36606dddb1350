"""One fine-tuning step (trainer/step.py with a task's loss definition, finetune/tasks.py) is SGD on the
gradient of the task's mean loss over the WHOLE global batch, however the batch is split into replicas and
micro-batches.

Reference: one plain GradientTape over the whole batch on one device, with the losses written out here
(cross-entropy from a log-softmax, averaged over the batch), then an SGD update done by hand in float64.
SGD makes the update proportional to the gradient, so a loss divided by the local instead of the global
batch, or a gradient reduced twice, shows up.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from finetune_setup import TINY_BERT

import bert
from finetune.model import ClassifierModel, SpanModel
from finetune.tasks import ClassificationLoss, SpanLoss
from trainer.inputs import DistributedInput
from trainer.loop import LoopTotals, make_device_loop
from trainer.step import TrainStep

SEQ, LABELS, GLOBAL_BATCH, LEARNING_RATE = 8, 3, 8, 0.5
# The tests' tiny BERT without dropout: one step is then a function of the batch alone, on any split.
CONFIG = bert.BertConfig.from_dict(
    {**TINY_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
)
VOCAB = CONFIG.vocab_size


def global_batch():
    rng = np.random.default_rng(0)
    n = GLOBAL_BATCH
    return {
        "input_ids": rng.integers(5, VOCAB, (n, SEQ)).astype(np.int32),
        "input_mask": (np.arange(SEQ)[None, :] < rng.integers(4, SEQ + 1, (n, 1))).astype(np.int32),
        "segment_ids": (np.arange(SEQ)[None, :] >= 3).astype(np.int32).repeat(n, axis=0),
        "label_ids": rng.integers(0, LABELS, (n,)).astype(np.int32),
        "start_positions": rng.integers(0, SEQ, (n,)).astype(np.int32),
        "end_positions": rng.integers(0, SEQ, (n,)).astype(np.int32),
    }


def cross_entropy(logits, labels):
    """-log softmax(logits)[label] per example."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_sum(log_probs * tf.one_hot(labels, logits.shape[-1]), axis=-1)


def mean_classification_loss(logits, batch):
    return tf.reduce_mean(cross_entropy(logits, batch["label_ids"]))


def mean_span_loss(outputs, batch):
    start = cross_entropy(outputs["start_logits"], batch["start_positions"])
    end = cross_entropy(outputs["end_logits"], batch["end_positions"])
    return tf.reduce_mean((start + end) / 2.0)


TASKS = {
    "classification": (
        lambda encoder: ClassifierModel(encoder, LABELS),
        ClassificationLoss(),
        mean_classification_loss,
    ),
    "squad": (SpanModel, SpanLoss(), mean_span_loss),
}


def make_model(task, weights=None):
    model = TASKS[task][0](bert.BertPretrainingModel(CONFIG).encoder)
    if weights is not None:
        model.set_weights(weights)
    return model


def reference_sgd_step(task, weights, batch):
    """(the loss, the weights after one SGD step on the whole batch, in float64)."""
    model = make_model(task, weights)
    with tf.GradientTape() as tape:
        loss = TASKS[task][2](model(batch, training=True), batch)
    grads = tape.gradient(loss, model.trainable_variables)
    updated = [
        v.numpy().astype(np.float64) - (0.0 if g is None else LEARNING_RATE * tf.convert_to_tensor(g).numpy())
        for v, g in zip(model.trainable_variables, grads, strict=True)
    ]
    return float(loss), updated


def strategy_of(devices):
    if devices == 1:
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    cpus = [f"/cpu:{i}" for i in range(devices)]
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def one_step(task, strategy, micro_batch, weights, batch):
    """(the loss from the device loop's totals, the model) after one SGD step on `batch`, split as asked."""
    accumulation = GLOBAL_BATCH // (micro_batch * strategy.num_replicas_in_sync)
    loss = TASKS[task][1]
    with strategy.scope():
        model = make_model(task, weights)
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
        optimizer.build(model.trainable_variables)
        counter = tf.Variable(0, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        totals = LoopTotals(loss.sum_keys)  # the task's sums, not pretraining's
    train_step = TrainStep(
        model,
        optimizer,
        global_batch_size=GLOBAL_BATCH,
        accumulation_steps=accumulation,
        clip_global_norm=None,
        loss=loss,
    )
    same_batch = DistributedInput(
        strategy,
        lambda context, size: tf.data.Dataset.from_tensors(batch).repeat(),
        micro_batch * accumulation,
    )
    out = make_device_loop(strategy, train_step, same_batch, counter, totals)(tf.constant(1))
    assert int(out["applied"]) == 1 and float(out["sums"]["example_count"]) == GLOBAL_BATCH
    return float(loss.loss(out["sums"])), model


# Global batch 8 = micro-batch x devices x accumulation steps; ids read "devices x accumulation".
@pytest.mark.parametrize(
    ("task", "devices", "micro_batch"),
    [("classification", 1, 2), ("classification", 4, 2), ("squad", 2, 2)],
    ids=["classification-1x4", "classification-4x1", "squad-2x2"],
)
def test_one_step_is_sgd_on_the_gradient_of_the_tasks_mean_loss_over_the_global_batch(
    task, devices, micro_batch
):
    keras.utils.set_random_seed(1)
    weights = make_model(task).get_weights()
    batch = global_batch()
    expected_loss, expected = reference_sgd_step(task, weights, batch)
    loss, model = one_step(task, strategy_of(devices), micro_batch, weights, batch)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    for variable, want in zip(model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=0, atol=2e-6, err_msg=variable.path)
    if task == "squad":  # the span head reads no pooled output: a zero gradient, the pooler left as it was
        assert sum("pooler" in v.path for v in model.trainable_variables) == 2  # compared above
