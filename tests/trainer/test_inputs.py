"""The input's look-ahead: the steps train on the dataset's batches in order, the next step's rows wait on
the replicas' devices, and they are saved with the iterators, so a restored input goes on with the batch an
uninterrupted run would train on next.

The dataset is built by hand: row r of host batch b holds the number 100 * b + r, so the rows a replica
trained on name their batch and their place in it. A stand-in for the train step records them.
"""

import shutil

import numpy as np
import pytest
import tensorflow as tf
from test_loop import strategy_of

import bert
from trainer.checkpoints import Checkpoints
from trainer.errors import UserError
from trainer.inputs import DistributedInput
from trainer.loop import LoopTotals, make_device_loop

REPLICA_BATCH = 2  # rows per replica and step
MAX_STEPS = 4  # steps a Recorder can record


def numbered_batches(context, host_batch_size):
    """Host batch b: {"input_ids": [[100 * b + r] for r in range(host_batch_size)]}."""
    rows = tf.range(host_batch_size, dtype=tf.int64)
    return tf.data.Dataset.range(1000).map(lambda b: {"input_ids": tf.reshape(100 * b + rows, [-1, 1])})


def dataset_batches(host_batch_size, count):
    """The dataset's own first `count` batches of input_ids, [count, host_batch_size]."""
    batches = numbered_batches(None, host_batch_size).take(count).as_numpy_iterator()
    return np.stack([batch["input_ids"][:, 0] for batch in batches])


class Recorder:
    """Stands in for trainer.step.TrainStep: records the rows each replica trained on, by step."""

    def __init__(self, strategy, step):
        self.strategy, self.step = strategy, step
        with strategy.scope():
            self.seen = tf.Variable(
                tf.fill([MAX_STEPS, REPLICA_BATCH], tf.constant(-1, tf.int64)),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.NONE,
            )

    def __call__(self, rows):
        index = self.step.read_value()  # steps done before this one
        self.seen.assign(tf.tensor_scatter_nd_update(self.seen, [[index]], [rows["input_ids"][:, 0]]))
        ones = tf.ones([len(bert.SUM_KEYS)])
        return {"sums": ones, "loss": tf.constant(1.0), "gradient_norm": tf.constant(1.0), "applied": 1.0}

    def rows_seen(self):
        """[replica, step, row] of the numbers each replica trained on (-1: no step yet)."""
        return np.stack([v.numpy() for v in self.strategy.experimental_local_results(self.seen)])


def loop_of(strategy, lookahead=True):
    """(device loop, its DistributedInput, its Recorder) over the numbered batches."""
    inputs = DistributedInput(strategy, numbered_batches, REPLICA_BATCH, lookahead)
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        totals = LoopTotals()
    recorder = Recorder(strategy, step)
    return make_device_loop(strategy, recorder, inputs, step, totals), inputs, recorder


def replica_slices(batches, replicas):
    """[replica, batch, row]: replica k's rows [k * R, (k + 1) * R) of each host batch."""
    return np.stack([batches[:, k * REPLICA_BATCH : (k + 1) * REPLICA_BATCH] for k in range(replicas)])


@pytest.mark.parametrize("devices", [1, 4])
def test_a_fresh_input_fills_the_look_ahead_once_and_the_steps_train_on_the_first_batches_in_order(devices):
    strategy = strategy_of(devices)
    device_loop, inputs, recorder = loop_of(strategy)
    assert not inputs.lookahead.filled.numpy()
    device_loop(tf.constant(3))
    device_loop(tf.constant(1))  # the look-ahead is filled by the first call only
    assert inputs.lookahead.filled.numpy()
    batches = dataset_batches(devices * REPLICA_BATCH, MAX_STEPS + 1)
    np.testing.assert_array_equal(recorder.rows_seen(), replica_slices(batches[:MAX_STEPS], devices))
    # What the replicas hold now: their rows of the batch after the last step, on their own devices.
    held = strategy.experimental_local_results(inputs.lookahead.rows["input_ids"])
    assert [v.device for v in held] == list(strategy.extended.worker_devices)
    np.testing.assert_array_equal(
        np.stack([v.numpy()[:, 0] for v in held]), replica_slices(batches[MAX_STEPS:], devices)[:, 0]
    )


def test_an_input_restored_into_a_fresh_loop_trains_on_the_batches_an_uninterrupted_run_would(tmp_path):
    strategy = strategy_of(4)
    device_loop, inputs, recorder = loop_of(strategy)
    device_loop(tf.constant(2))
    path = inputs.checkpoint.save(str(tmp_path / "data"))
    device_loop(tf.constant(2))  # uninterrupted: steps 3 and 4
    fresh_loop, fresh_inputs, fresh_recorder = loop_of(strategy)
    fresh_inputs.restore(path)
    fresh_loop(tf.constant(2))  # its first two steps
    uninterrupted = recorder.rows_seen()[:, 2:]
    np.testing.assert_array_equal(fresh_recorder.rows_seen()[:, :2], uninterrupted)
    np.testing.assert_array_equal(uninterrupted, replica_slices(dataset_batches(8, 4)[2:], 4))
    # The rows are saved per replica: one replica cannot take over the position of four.
    with pytest.raises(ValueError, match=r"^it holds the input position of another set-up \(number of"):
        DistributedInput(strategy_of(1), numbered_batches, 4 * REPLICA_BATCH).restore(path)


def test_an_input_position_saved_without_the_look_ahead_is_refused_in_one_line(tmp_path):
    strategy = strategy_of(1)
    step = tf.Variable(3, dtype=tf.int64)

    def checkpoints(inputs):
        model = tf.Module()
        model.weight = tf.Variable(1.0)
        return Checkpoints(
            str(tmp_path), strategy, model=model, optimizer=tf.Module(), step=step, inputs=inputs, keep=2
        )

    checkpoints(DistributedInput(strategy, numbered_batches, REPLICA_BATCH, lookahead=False)).save()
    resumed = checkpoints(DistributedInput(strategy, numbered_batches, REPLICA_BATCH))
    data_dir = tmp_path / "data" / "chief"
    with pytest.raises(UserError) as error:
        resumed.restore_latest()
    assert str(error.value) == (
        f"{data_dir}/data-3: it was saved without the look-ahead rows (by an earlier version of the "
        "trainer), so the input cannot resume exactly from it; "
        f"delete {data_dir} to restart the input from the beginning"
    )
    shutil.rmtree(data_dir)  # as the line says: the next run resumes, its input from the first batch
    assert checkpoints(DistributedInput(strategy, numbered_batches, REPLICA_BATCH)).restore_latest() == 3
