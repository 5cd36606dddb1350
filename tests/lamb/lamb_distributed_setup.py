"""The small training run that every distribution test repeats: one model, one global batch per step.

Shared by test_lamb_distributed.py (single device and MirroredStrategy, in process) and lamb_multi_worker.py
(one MultiWorkerMirroredStrategy worker per process), so that all of them train exactly the same thing.
"""

import keras
import numpy as np
import tensorflow as tf

import lamb

GLOBAL_BATCH = 16
STEPS = 4
VOCAB = 20


def make_model():
    """An embedding (sparse gradients), a dense layer and a LayerNorm, named like BERT's."""
    keras.utils.set_random_seed(11)
    ids = keras.Input((3,), dtype="int32")
    embedded = keras.layers.Embedding(VOCAB, 4, name="word_embeddings")(ids)  # [B, 3, 4]
    hidden = keras.layers.Dense(8, activation="tanh", name="dense")(keras.layers.Flatten()(embedded))
    hidden = keras.layers.LayerNormalization(name="LayerNorm")(hidden)
    return keras.Model(ids, keras.layers.Dense(1, name="head")(hidden), name="tiny")


def make_optimizer():
    return lamb.LAMB(
        learning_rate=lamb.WarmupPolynomialDecay(0.05, total_steps=10, warmup_steps=1),
        weight_decay=0.01,
        exclude_from_weight_decay=["LayerNorm", "bias"],
        exclude_from_layer_adaptation=["LayerNorm"],
    )


def global_batches():
    rng = np.random.default_rng(12)
    ids = rng.integers(0, VOCAB, size=(STEPS, GLOBAL_BATCH, 3)).astype("int32")
    targets = rng.normal(size=(STEPS, GLOBAL_BATCH, 1)).astype("float32")
    return ids, targets


def train(strategy):
    """Trains STEPS steps under `strategy`, each replica on its slice of the global batch.

    Returns ({variable path: final value}, {variable path: last trust ratio}), read in cross-replica context.
    """
    with strategy.scope():
        model, optimizer = make_model(), make_optimizer()
        optimizer.build(model.trainable_variables)  # every slot exists before the distributed step

    def replica_step(ids, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum((model(ids) - targets) ** 2) / GLOBAL_BATCH  # mean over the GLOBAL batch
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    @tf.function
    def step(ids, targets):
        strategy.run(replica_step, args=(ids, targets))
        return optimizer.trust_ratios()

    all_ids, all_targets = global_batches()
    replicas = strategy.num_replicas_in_sync
    per_replica = GLOBAL_BATCH // replicas

    def replica_slice(batch):
        def value_fn(context):
            start = context.replica_id_in_sync_group * per_replica
            return tf.constant(batch[start : start + per_replica])

        return strategy.experimental_distribute_values_from_function(value_fn)

    for i in range(STEPS):
        ratios = step(replica_slice(all_ids[i]), replica_slice(all_targets[i]))
    weights = {v.path: v.numpy() for v in model.trainable_variables}
    return weights, {path: float(ratio) for path, ratio in ratios.items()}
