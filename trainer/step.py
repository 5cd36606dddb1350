"""One optimizer step per replica: gradients accumulated over micro-batches, one all-reduce, one update.

The loss of a step is defined over the WHOLE global batch G (all replicas, all micro-batches) by a loss
definition (below). Pretraining's is Google's

    loss = sum_G(w * nll_mlm) / (sum_G(w) + 1e-5)  +  sum_G(nll_nsp) / |G|

and fine-tuning's the mean of the task's cross-entropy over G (finetune/tasks.py). The denominators are
known before any forward pass: |G| is the configured global batch and sum_G(w) is one scalar all-reduce
of the replicas' masked_lm_weights. Each micro-batch b then contributes its term

    loss_b = sum_b(w * nll_mlm) / (sum_G(w) + 1e-5)  +  sum_b(nll_nsp) / |G|

and sum over b of loss_b is exactly the loss above, so the summed gradients are exactly its gradient whatever
the number of replicas or accumulation steps. Per replica the micro-batch gradients are summed locally (a
tf.while_loop), then ONE all-reduce (SUM) of the gradient list gives the global gradient, identical on every
replica; the global-norm clipping is applied to that, and ONE optimizer update follows. A variable the loss
does not depend on (the pooler, for SQuAD) gets a zero gradient.

The step's metric sums ride along in that all-reduce, so every replica returns the sums of the whole global
batch (the device loop keeps its totals without any other reduction: trainer/loop.py).

A loss definition gives the step

    sum_keys                                   the names of the float32 sums a micro-batch adds up
    denominators(features, global_batch_size)  {name: scalar} over the global batch, before the forward pass
                                               (called in the replica context: it may all-reduce)
    term(outputs, batch, denominators)         (the micro-batch's term of the loss, its sums {sum_keys})
    loss(sums)                                 the loss from the sums of whole global batches
    metrics(sums)                              the logged numbers ("loss" among them) from such sums
    progress                                   (label, metric name) pairs the progress line shows

Keras' optimizer.apply() in a replica context would all-reduce the gradients once more (and apply its own
`global_clipnorm` per replica, BEFORE reducing: keras/src/optimizers/base_optimizer.py `_clip_gradients`
runs ahead of the reduction). So the optimizer is built without Keras clipping and its all-reduce is turned
off (trainer/keras_private.py).

With `jit_compile` the whole replica step (the denominators' all-reduce, forward and backward of every
micro-batch, the accumulation loop, the gradient all-reduce, the clip and the optimizer update) is one XLA
program, as a TPU runs it.

Dynamic loss scaling (mixed_float16: the optimizer is a keras.optimizers.LossScaleOptimizer): every
micro-batch's loss term is multiplied by the current scale S before its gradient is taken, so small float16
gradients do not flush to zero. After the all-reduce the global gradient is divided by S (exactly: S is a
power of two), its global norm is taken and it is clipped, as without scaling. The LossScaleOptimizer then
gets the clipped gradient times S back (it divides by S itself): when any value is not finite it skips the
update and halves S, otherwise it updates and, after `dynamic_growth_steps` finite steps, doubles S.
"""

import keras
import tensorflow as tf

import bert
from trainer.keras_private import use_reduced_gradients


def split_micro_batches(features, accumulation_steps):
    """The replica's batch for one optimizer step [A * M, ...] as A micro-batches: [A, M, ...]."""
    return {
        name: tf.reshape(t, [accumulation_steps, t.shape[0] // accumulation_steps, *t.shape[1:]])
        for name, t in features.items()
    }


def is_loss_scaling(optimizer):
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


class PretrainingLoss:
    """Google's pretraining loss (bert/losses.py) as the step's loss definition (see the module docstring)."""

    sum_keys = bert.SUM_KEYS
    progress = (("loss", "loss"), ("mlm_acc", "masked_lm_accuracy"), ("nsp_acc", "next_sentence_accuracy"))

    def denominators(self, features, global_batch_size):
        """The global masked-LM weight sum (one scalar all-reduce) and the global batch size."""
        local_weight_sum = tf.reduce_sum(features["masked_lm_weights"])
        replica = tf.distribute.get_replica_context()
        return {
            "mlm_weight_sum": replica.all_reduce(tf.distribute.ReduceOp.SUM, local_weight_sum),
            "nsp_count": tf.constant(float(global_batch_size)),
        }

    def term(self, outputs, batch, denominators):
        sums = bert.pretraining_sums(outputs, batch)
        return bert.pretraining_loss({**sums, **denominators}), sums

    def loss(self, sums):
        return bert.pretraining_loss(sums)

    def metrics(self, sums):
        return bert.pretraining_metrics(sums)


PRETRAINING_LOSS = PretrainingLoss()


class TrainStep:
    """The replica function of one optimizer step (call it inside `strategy.run`).

    Returns {"sums": the sums of the global batch, a float32 vector in the order of `loss.sum_keys`,
    "loss": the loss of the global batch, "gradient_norm": the global norm of the global gradient before
    clipping (unscaled), "applied": 1.0 when the optimizer updated the weights, 0.0 when a
    LossScaleOptimizer skipped the step (always 1.0 without loss scaling)}; all are the same on every
    replica.

    `loss`: the loss definition (see the module docstring); `jit_compile`: the whole step as one XLA program.
    """

    def __init__(
        self,
        model,
        optimizer,
        *,
        global_batch_size,
        accumulation_steps,
        clip_global_norm,
        loss=PRETRAINING_LOSS,
        jit_compile=False,
    ):
        self.model = model
        self.optimizer = use_reduced_gradients(optimizer)
        self.loss_scaling = is_loss_scaling(optimizer)
        self.global_batch_size = global_batch_size
        self.accumulation_steps = accumulation_steps
        self.clip_global_norm = clip_global_norm
        self.loss = loss
        self.step = tf.function(self._step, jit_compile=True) if jit_compile else self._step

    def __call__(self, features):
        return self.step(features)

    def _step(self, features):
        replica = tf.distribute.get_replica_context()
        # The denominators of the loss over the global batch (see the module docstring).
        denominators = self.loss.denominators(features, self.global_batch_size)
        # S, the loss scale (1 without loss scaling): read once, the same for every micro-batch.
        scale = tf.identity(self.optimizer.dynamic_scale) if self.loss_scaling else tf.constant(1.0)

        micro_batches = split_micro_batches(features, self.accumulation_steps)
        grads, sums = self._accumulate(micro_batches, denominators, scale)

        sums = tf.stack([sums[name] for name in self.loss.sum_keys])  # [len(sum_keys)]
        # The one all-reduce of the step: the gradients, and the sums with them.
        *grads, sums = replica.all_reduce(tf.distribute.ReduceOp.SUM, [*grads, sums])
        if self.loss_scaling:
            grads = [g / scale for g in grads]  # unscaled before the norm and the clip
        gradient_norm = tf.linalg.global_norm(grads)
        if self.clip_global_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_global_norm, use_norm=gradient_norm)
        if self.loss_scaling:
            grads = [g * scale for g in grads]  # the LossScaleOptimizer divides by S itself
            applied = tf.cast(self.optimizer.check_finite(grads), tf.float32)  # its own skip decision
        else:
            applied = tf.constant(1.0)
        self.optimizer.apply(grads, self.model.trainable_variables)
        loss = self.loss.loss(dict(zip(self.loss.sum_keys, tf.unstack(sums), strict=True)))
        return {"sums": sums, "loss": loss, "gradient_norm": gradient_norm, "applied": applied}

    def _accumulate(self, micro_batches, denominators, scale):
        """Sums over this replica's micro-batches: the gradients of their loss terms (times the loss scale)
        and the metric sums."""
        variables = self.model.trainable_variables

        def micro_step(index, grads, sums):
            batch = {name: t[index] for name, t in micro_batches.items()}  # [M, ...]
            with tf.GradientTape() as tape:
                outputs = self.model(batch, training=True)
                loss, batch_sums = self.loss.term(outputs, batch, denominators)
                if self.loss_scaling:
                    loss = loss * scale
            batch_grads = tape.gradient(loss, variables)
            grads = [total + dense(g, v) for total, g, v in zip(grads, batch_grads, variables, strict=True)]
            sums = {name: sums[name] + batch_sums[name] for name in self.loss.sum_keys}
            return index + 1, grads, sums

        zero_grads = [tf.zeros(v.shape, v.dtype) for v in variables]
        zero_sums = {name: tf.constant(0.0) for name in self.loss.sum_keys}
        _, grads, sums = tf.while_loop(
            lambda index, *_: index < self.accumulation_steps,
            micro_step,
            (tf.constant(0), zero_grads, zero_sums),
            parallel_iterations=1,  # one micro-batch in memory at a time
        )
        return grads, sums


def dense(gradient, variable):
    """`gradient` as a dense tensor with the variable's static shape; zeros when it is None (a variable the
    loss does not use, such as the pooler for SQuAD).

    Embedding lookups give tf.IndexedSlices whose dense form has an unknown first dimension; summed in the
    accumulation loop, such tensors make Grappler's arithmetic optimizer use a temporary variable that
    collides between loop iterations (AlreadyExistsError). With the static shape it emits a plain AddN.
    """
    if gradient is None:
        return tf.zeros(variable.shape, variable.dtype)
    return tf.ensure_shape(tf.convert_to_tensor(gradient), variable.shape)
