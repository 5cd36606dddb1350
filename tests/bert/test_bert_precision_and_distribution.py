"""Mixed precision policies and tf.distribute replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from bert_examples import make_features
from numpy_bert import random_weights

import bert
import bert.layers
from bert import BertConfig, BertPretrainingModel, google_variables


def load_weights(model, weights):
    for name, variable in google_variables(model).items():
        variable.assign(weights[name])
    return model


@pytest.mark.parametrize("policy, compute", [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)])
def test_mixed_precision_dtypes_and_closeness_to_float32(tiny_dict, policy, compute):
    weights = random_weights(tiny_dict, seed=1)
    features = make_features(tiny_dict, seed=2)
    reference = load_weights(BertPretrainingModel(BertConfig.from_dict(tiny_dict)), weights)(features)

    keras.mixed_precision.set_global_policy(policy)
    model = load_weights(BertPretrainingModel(BertConfig.from_dict(tiny_dict)), weights)
    assert {v.dtype for v in model.variables if v.trainable} == {"float32"}
    outputs = model(features)
    assert (
        outputs["masked_lm_logits"].dtype == tf.float32
        and outputs["next_sentence_logits"].dtype == tf.float32
    )
    encoded = model.encoder(features)
    assert encoded["sequence_output"].dtype == compute and encoded["pooled_output"].dtype == compute
    layer = model.encoder.transformer_layers[0]
    assert layer.query(tf.ones([2, 16])).dtype == compute  # matmuls in the compute dtype
    assert layer.output_layer_norm.gamma.dtype == "float32"
    tolerance = 0.1 if compute == tf.bfloat16 else 0.02
    for key in outputs:
        np.testing.assert_allclose(outputs[key], reference[key], atol=tolerance, err_msg=key)


def test_dtype_argument_works_without_a_global_policy(tiny_config):
    model = BertPretrainingModel(tiny_config, dtype="mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.encoder.transformer_layers[1].intermediate.compute_dtype == "bfloat16"
    assert model.masked_lm.transform.compute_dtype == "bfloat16"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_padding_is_masked_exactly_under_mixed_precision(tiny_dict, policy):
    features = make_features(tiny_dict, seed=3)
    model = BertPretrainingModel(BertConfig.from_dict(tiny_dict), dtype=policy)
    padding = features["input_mask"] == 0
    changed = dict(features, input_ids=np.where(padding, 5, features["input_ids"]).astype(np.int32))
    a = model.encoder(features)["sequence_output"].numpy().astype(np.float32)
    b = model.encoder(changed)["sequence_output"].numpy().astype(np.float32)
    np.testing.assert_array_equal(a[~padding], b[~padding])


def test_bfloat16_model_compiles_with_xla(tiny_dict):
    features = {k: tf.constant(v) for k, v in make_features(tiny_dict, seed=4).items()}
    model = BertPretrainingModel(BertConfig.from_dict(tiny_dict), dtype="mixed_bfloat16")
    eager = model(features)["masked_lm_logits"]
    compiled = tf.function(lambda f: model(f)["masked_lm_logits"], jit_compile=True)(features)
    assert compiled.dtype == tf.float32
    np.testing.assert_allclose(compiled, eager, atol=0.05)


def test_sums_from_replicas_add_up_to_the_whole_batch(tiny_dict):
    weights = random_weights(tiny_dict, seed=5)
    features = make_features(tiny_dict, batch=4, seed=6)
    single = load_weights(BertPretrainingModel(BertConfig.from_dict(tiny_dict)), weights)
    expected = bert.pretraining_metrics(bert.pretraining_sums(single(features), features))

    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = load_weights(BertPretrainingModel(BertConfig.from_dict(tiny_dict)), weights)
    dataset = tf.data.Dataset.from_tensors(features).unbatch().batch(4)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(batch, training):
        def replica_fn(features):
            with tf.GradientTape() as tape:
                sums = bert.pretraining_sums(model(features, training=training), features)
            tape.gradient(sums["mlm_loss_sum"], model.trainable_variables)
            return sums

        per_replica = strategy.run(replica_fn, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in per_replica.items()}

    combined = bert.pretraining_metrics(step(batch, False))
    for key in expected:
        np.testing.assert_allclose(combined[key], expected[key], rtol=1e-5, err_msg=key)
    assert np.isfinite(float(bert.pretraining_loss(step(batch, True))))  # dropout runs on every replica


def test_each_replica_draws_its_own_dropout_mask(tiny_config, tiny_dict):
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = BertPretrainingModel(tiny_config)
    features = make_features(tiny_dict, batch=1, seed=7)
    twice = {k: np.concatenate([v, v]) for k, v in features.items()}  # the same sequence on both replicas
    dataset = tf.data.Dataset.from_tensors(twice).unbatch().batch(2)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def forward(batch, training):
        return strategy.run(lambda f: model(f, training=training)["masked_lm_logits"], args=(batch,))

    first, second = strategy.experimental_local_results(forward(batch, True))
    assert not np.allclose(first, second)
    first, second = strategy.experimental_local_results(forward(batch, False))
    np.testing.assert_array_equal(first, second)


def test_dropout_rate_and_scaling():
    dropout = bert.layers.Dropout(0.1)
    x = dropout(tf.ones([1000, 100]), training=True).numpy()
    assert abs((x == 0).mean() - 0.1) < 0.005
    np.testing.assert_allclose(x[x != 0], 1 / 0.9, rtol=1e-6)
    np.testing.assert_array_equal(dropout(tf.ones([3, 3]), training=False), np.ones([3, 3]))
