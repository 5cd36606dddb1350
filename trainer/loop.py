"""The device loop: one tf.function call runs `num_steps` optimizer steps, each under `strategy.run`.

    device_loop(num_steps):                        one call, traced once whatever num_steps is
        inputs.fill_lookahead()                    a fresh run's first call: the first step's rows
        for i in tf.range(num_steps):
            batch = inputs.next()                  per host: one read of its tf.data iterator
            strategy.run(replica_step, batch, i)   everything else, on every replica
        return LoopTotals.read()                   a few scalars read from the first replica

Each replica trains on the rows already on its device (the input's look-ahead, trainer/inputs.py) and, in
the same step, stores its rows of `batch`, the next step's: the iterator read and the copy to the device
overlap the step's compute instead of coming before it.

Inside the replica function a step trains (trainer/step.py), adds 1 to the step counter when the update
was applied, and adds its numbers to the loop totals: the loss/accuracy sums, the gradient norm, the applied
updates, and the first step whose loss or gradient norm was not finite. The step's sums come out of the
step's one gradient all-reduce (they ride along with the gradients), so every replica holds the same
global totals: nothing is reduced across replicas per step or per call, and the controller reads the first
replica's copy. On the host, per step, only the input read and the loop counter run; their number does not
grow with the replicas (each replica cuts its rows out of its host's batch itself: trainer/inputs.py).

MirroredStrategy on CPUs synchronises replicas with `merge_call`, which TensorFlow does not allow inside
control flow of the replica function: that is why the steps loop sits around `strategy.run`, as in orbit's
`create_loop_fn`, not inside it.
"""

import tensorflow as tf

import bert

ONLY_FIRST = tf.VariableAggregation.ONLY_FIRST_REPLICA


class LoopTotals:
    """Per-replica running totals of one loop call (SyncOnRead variables: written locally, without any
    synchronisation, read in the cross-replica context from the first replica). Create in the strategy
    scope, with the names of the sums the step returns (its loss definition's `sum_keys`: trainer/step.py).
    They are reset by the first step of each call, so they are never checkpointed."""

    def __init__(self, sum_keys=bert.SUM_KEYS):
        def total(shape, dtype, name):
            return tf.Variable(
                tf.zeros(shape, dtype),
                trainable=False,
                name=name,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=ONLY_FIRST,
            )

        self.sum_keys = tuple(sum_keys)
        self.sums = total([len(self.sum_keys)], tf.float32, "loop_sums")  # applied steps only
        self.gradient_norm_sum = total([], tf.float32, "loop_gradient_norm_sum")
        self.applied = total([], tf.int64, "loop_applied")
        self.first_non_finite = total([], tf.int64, "loop_first_non_finite")  # 0: none

    def add(self, first_step, step, out):
        """Adds one step's results (in the replica context); `first_step` restarts the totals."""
        applied = out["applied"] > 0.0
        bad = applied & ~(tf.math.is_finite(out["loss"]) & tf.math.is_finite(out["gradient_norm"]))

        def accumulate(total, value):
            total.assign(tf.where(first_step, tf.zeros_like(value), total.read_value()) + value)

        accumulate(self.sums, tf.where(applied, out["sums"], 0.0))
        accumulate(self.gradient_norm_sum, tf.where(applied, out["gradient_norm"], 0.0))
        accumulate(self.applied, tf.cast(applied, tf.int64))
        first = tf.where(first_step, tf.constant(0, tf.int64), self.first_non_finite.read_value())
        self.first_non_finite.assign(tf.where((first == 0) & bad, step, first))

    def read(self):
        """{"sums": {sum_keys: float}, "gradient_norm_sum", "applied", "first_non_finite"} (cross-replica)."""
        return {
            "sums": dict(zip(self.sum_keys, tf.unstack(self.sums.read_value()), strict=True)),
            "gradient_norm_sum": self.gradient_norm_sum.read_value(),
            "applied": self.applied.read_value(),
            "first_non_finite": self.first_non_finite.read_value(),
        }


def make_device_loop(strategy, train_step, inputs, step, totals):
    """device_loop(num_steps) -> the totals of its steps (LoopTotals.read()).

    `train_step` is the replica function of one optimizer step (trainer.step.TrainStep), `inputs` a
    trainer.inputs.DistributedInput, `step` the checkpointed counter of applied updates (it always equals
    the optimizer's iteration count), `totals` a LoopTotals made in the strategy's scope.
    """

    def replica_step(host_batch, first_step):
        with tf.name_scope(REPLICA_SCOPE):
            # This step's rows come out of the look-ahead, and host_batch's rows go in. Automatic control
            # dependencies order that write after the look-ahead's read only: what the step runs later
            # (the training, the step counter, the totals) writes other variables, so the write waits
            # for none of it (tests/trainer/test_loop.py checks this in the traced graph).
            out = train_step(inputs.step_rows(host_batch))
            step.assign_add(tf.cast(out["applied"] > 0.0, tf.int64))
            totals.add(first_step, step.read_value(), out)

    @tf.function
    def device_loop(num_steps):
        inputs.fill_lookahead()  # only when it holds no rows yet (a resumed run restored them)
        for i in tf.range(num_steps):
            strategy.run(replica_step, args=(inputs.next(), i == 0))
        return totals.read()

    device_loop.train_step = train_step
    return device_loop


REPLICA_SCOPE = "replica_step"  # the name scope of everything the replica function builds
