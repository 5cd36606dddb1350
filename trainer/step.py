"""One optimizer step per replica: gradients accumulated over micro-batches, one all-reduce, one LAMB update.

The loss of a step is Google's pretraining loss over the WHOLE global batch G (all replicas, all
micro-batches):

    loss = sum_G(w * nll_mlm) / (sum_G(w) + 1e-5)  +  sum_G(nll_nsp) / |G|

Both denominators are known before any forward pass: |G| is the configured global batch and sum_G(w) is one
scalar all-reduce of the replicas' masked_lm_weights. Each micro-batch b then contributes

    loss_b = sum_b(w * nll_mlm) / (sum_G(w) + 1e-5)  +  sum_b(nll_nsp) / |G|

and sum over b of loss_b is exactly the loss above, so the summed gradients are exactly its gradient whatever
the number of replicas or accumulation steps. Per replica the micro-batch gradients are summed locally (a
tf.while_loop), then ONE all-reduce (SUM) of the gradient list gives the global gradient, identical on every
replica; the global-norm clipping is applied to that, and ONE LAMB update follows.

The step's loss and accuracy sums ride along in that all-reduce, so every replica returns the sums of the
whole global batch (the device loop keeps its totals without any other reduction: trainer/loop.py).

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


class TrainStep:
    """The replica function of one optimizer step (call it inside `strategy.run`).

    Returns {"sums": the loss and accuracy sums of the global batch, a float32 vector in the order of
    bert.SUM_KEYS, "gradient_norm": the global norm of the global gradient before clipping (unscaled),
    "applied": 1.0 when the optimizer updated the weights, 0.0 when a LossScaleOptimizer skipped the step
    (always 1.0 without loss scaling)}; all three are the same on every replica.

    `jit_compile`: the whole step as one XLA program (see the module docstring).
    """

    def __init__(
        self, model, optimizer, *, global_batch_size, accumulation_steps, clip_global_norm, jit_compile=False
    ):
        self.model = model
        self.optimizer = use_reduced_gradients(optimizer)
        self.loss_scaling = is_loss_scaling(optimizer)
        self.global_batch_size = global_batch_size
        self.accumulation_steps = accumulation_steps
        self.clip_global_norm = clip_global_norm
        self.step = tf.function(self._step, jit_compile=True) if jit_compile else self._step

    def __call__(self, features):
        return self.step(features)

    def _step(self, features):
        replica = tf.distribute.get_replica_context()
        # The denominators of the loss over the global batch (see the module docstring).
        local_weight_sum = tf.reduce_sum(features["masked_lm_weights"])
        mlm_weight_sum = replica.all_reduce(tf.distribute.ReduceOp.SUM, local_weight_sum)
        nsp_count = tf.constant(float(self.global_batch_size))
        # S, the loss scale (1 without loss scaling): read once, the same for every micro-batch.
        scale = tf.identity(self.optimizer.dynamic_scale) if self.loss_scaling else tf.constant(1.0)

        micro_batches = split_micro_batches(features, self.accumulation_steps)
        grads, sums = self._accumulate(micro_batches, mlm_weight_sum, nsp_count, scale)

        sums = tf.stack([sums[name] for name in bert.SUM_KEYS])  # [len(SUM_KEYS)]
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
        return {"sums": sums, "gradient_norm": gradient_norm, "applied": applied}

    def _accumulate(self, micro_batches, mlm_weight_sum, nsp_count, scale):
        """Sums over this replica's micro-batches: the gradients of their loss terms (times the loss scale)
        and the metric sums."""
        variables = self.model.trainable_variables

        def micro_step(index, grads, sums):
            batch = {name: t[index] for name, t in micro_batches.items()}  # [M, ...]
            with tf.GradientTape() as tape:
                outputs = self.model(batch, training=True)
                batch_sums = bert.pretraining_sums(outputs, batch)
                loss = bert.pretraining_loss(
                    {**batch_sums, "mlm_weight_sum": mlm_weight_sum, "nsp_count": nsp_count}
                )
                if self.loss_scaling:
                    loss = loss * scale
            batch_grads = tape.gradient(loss, variables)
            grads = [total + dense(g, v) for total, g, v in zip(grads, batch_grads, variables, strict=True)]
            return index + 1, grads, bert.add_sums(sums, batch_sums)

        zero_grads = [tf.zeros(v.shape, v.dtype) for v in variables]
        zero_sums = {name: tf.constant(0.0) for name in bert.SUM_KEYS}
        _, grads, sums = tf.while_loop(
            lambda index, *_: index < self.accumulation_steps,
            micro_step,
            (tf.constant(0), zero_grads, zero_sums),
            parallel_iterations=1,  # one micro-batch in memory at a time
        )
        return grads, sums


def dense(gradient, variable):
    """`gradient` as a dense tensor with the variable's static shape.

    Embedding lookups give tf.IndexedSlices whose dense form has an unknown first dimension; summed in the
    accumulation loop, such tensors make Grappler's arithmetic optimizer use a temporary variable that
    collides between loop iterations (AlreadyExistsError). With the static shape it emits a plain AddN.
    """
    return tf.ensure_shape(tf.convert_to_tensor(gradient), variable.shape)
