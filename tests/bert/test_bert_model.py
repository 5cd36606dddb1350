"""The Keras model is Google's BERT: names, shapes and outputs against an independent numpy transcription."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from bert_examples import make_features
from numpy_bert import ACTIVATIONS as NUMPY_ACTIVATIONS
from numpy_bert import bert_model, pretraining_logits, random_weights

import bert
from bert import BertConfig, BertEncoder, BertPretrainingModel, google_variables


def model_with_weights(config_dict, weights, **kwargs):
    model = BertPretrainingModel(BertConfig.from_dict(config_dict), **kwargs)
    for name, variable in google_variables(model).items():
        variable.assign(weights[name])
    return model


def test_output_shapes_and_dtypes(tiny_config, tiny_dict):
    features = make_features(tiny_dict, batch=3, seq=10, predictions=4)
    model = BertPretrainingModel(tiny_config)
    outputs = model(features)
    assert set(outputs) == {"masked_lm_logits", "next_sentence_logits"}
    assert outputs["masked_lm_logits"].shape == (3, 4, 57)
    assert outputs["next_sentence_logits"].shape == (3, 2)
    encoded = model.encoder(features)
    assert encoded["sequence_output"].shape == (3, 10, 16)
    assert encoded["pooled_output"].shape == (3, 16)
    assert {t.dtype for t in [*outputs.values(), *encoded.values()]} == {tf.float32}


def test_variable_paths_are_googles_names(tiny_config):
    model = BertPretrainingModel(tiny_config)
    names = google_variables(model)
    assert all(variable.path == name for name, variable in names.items())
    assert sorted(v.path for v in model.trainable_variables) == sorted(
        names
    )  # each variable once (tied table)
    assert model.masked_lm.embeddings.word_embeddings is names["bert/embeddings/word_embeddings"]


def test_weight_decay_exclusions_select_exactly_layer_norm_and_bias(tiny_config):
    model = BertPretrainingModel(tiny_config)
    excluded = {
        v.path
        for v in model.trainable_variables
        if any(re.search(p, v.path) for p in bert.WEIGHT_DECAY_EXCLUSIONS)
    }
    expected = {
        v.path
        for v in model.trainable_variables
        if v.path.split("/")[-1] in {"gamma", "beta", "bias", "output_bias"}
    }
    assert excluded == expected
    # 2 layers * (6 biases + 4 LayerNorm) + embeddings LN 2 + pooler 1 + transform 1 + 2 LN + 2 output biases
    assert len(excluded) == 2 * 10 + 2 + 1 + 1 + 2 + 2


def test_initialisation_is_googles(tiny_config):
    model = BertPretrainingModel(
        BertConfig.from_dict(dict(tiny_config.to_dict(), hidden_size=64, vocab_size=500))
    )
    for name, variable in google_variables(model).items():
        value = variable.numpy()
        if name.endswith(("bias", "beta")):
            assert np.all(value == 0.0), name
        elif name.endswith("gamma"):
            assert np.all(value == 1.0), name
        else:  # truncated normal(0, 0.02): nothing beyond two standard deviations
            assert np.abs(value).max() <= 0.04, name
            assert 0.012 < value.std() < 0.02, name  # a normal truncated at 2 sigma has std 0.88 sigma


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_exact", "relu"])
def test_outputs_match_numpy_float64_transcription(tiny_dict, hidden_act):
    config = dict(tiny_dict, hidden_act=hidden_act)
    weights = random_weights(config, seed=3)
    features = make_features(config, seed=4)
    model = model_with_weights(config, weights)
    outputs = model(features)
    mlm, nsp = pretraining_logits(weights, config, features)
    np.testing.assert_allclose(outputs["masked_lm_logits"], mlm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["next_sentence_logits"], nsp, rtol=1e-4, atol=1e-4)
    encoded = model.encoder(features)
    sequence, pooled = bert_model(
        weights, config, features["input_ids"], features["input_mask"], features["segment_ids"]
    )
    np.testing.assert_allclose(encoded["sequence_output"], sequence, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(encoded["pooled_output"], pooled, rtol=1e-4, atol=1e-4)


def test_pinned_outputs(tiny_dict):
    """Fixed weights and inputs give these numbers (computed once with numpy_bert in float64)."""
    weights = random_weights(tiny_dict, seed=11)
    features = make_features(tiny_dict, batch=2, seq=6, predictions=2, seed=12)
    outputs = model_with_weights(tiny_dict, weights)(features)
    pinned_mlm = [-0.06674468, -0.35292555, 0.26632487, 0.31444324, -0.48871328]
    pinned_nsp = [[0.34835138, -0.60257964], [0.38380265, -0.63382396]]
    mlm, nsp = pretraining_logits(weights, tiny_dict, features)
    np.testing.assert_allclose(mlm[0, 0, :5], pinned_mlm, atol=1e-8)
    np.testing.assert_allclose(nsp, pinned_nsp, atol=1e-8)
    np.testing.assert_allclose(outputs["masked_lm_logits"][0, 0, :5], pinned_mlm, atol=1e-5)
    np.testing.assert_allclose(outputs["next_sentence_logits"], pinned_nsp, atol=1e-5)


@pytest.mark.parametrize("name", ["gelu", "gelu_exact", "relu", "tanh", "linear"])
def test_activations_match_numpy(name):
    x = np.linspace(-6.0, 6.0, 241)
    np.testing.assert_allclose(
        bert.ACTIVATIONS[name](tf.constant(x)), NUMPY_ACTIVATIONS[name](x), rtol=1e-6, atol=1e-12
    )


def test_gelu_is_the_tanh_approximation_not_the_erf_form():
    x = tf.constant([1.0, -2.0], tf.float64)
    assert abs(float(bert.gelu(x)[0]) - 0.8411919906082768) < 1e-8
    assert abs(float(bert.gelu_exact(x)[0]) - 0.8413447460685429) < 1e-8


def test_padding_tokens_do_not_change_the_real_tokens_outputs(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=5)
    model = BertPretrainingModel(tiny_config)
    changed = dict(features)
    padding = features["input_mask"] == 0
    assert padding.any()
    changed["input_ids"] = np.where(padding, 7, features["input_ids"]).astype(np.int32)
    changed["segment_ids"] = np.where(padding, 1, features["segment_ids"]).astype(np.int32)
    a = model.encoder(features)["sequence_output"].numpy()
    b = model.encoder(changed)["sequence_output"].numpy()
    np.testing.assert_allclose(a[~padding], b[~padding], atol=1e-6)


def test_masked_lm_logits_depend_only_on_the_gathered_positions(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=6)
    model = BertPretrainingModel(tiny_config)
    full = model(features)["masked_lm_logits"].numpy()
    for i in range(full.shape[1]):
        single = dict(features, masked_lm_positions=features["masked_lm_positions"][:, i : i + 1])
        np.testing.assert_allclose(model(single)["masked_lm_logits"][:, 0], full[:, i], atol=1e-6)


def test_dropout_only_when_training(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=7)
    model = BertPretrainingModel(tiny_config)
    inference = model(features)["masked_lm_logits"].numpy()
    np.testing.assert_array_equal(model(features, training=False)["masked_lm_logits"], inference)
    first = model(features, training=True)["masked_lm_logits"].numpy()
    second = model(features, training=True)["masked_lm_logits"].numpy()
    assert not np.allclose(first, inference) and not np.allclose(first, second)
    no_dropout = dict(tiny_dict, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertPretrainingModel(BertConfig.from_dict(no_dropout))
    np.testing.assert_allclose(
        model(features, training=True)["masked_lm_logits"], model(features)["masked_lm_logits"]
    )


def test_missing_mask_and_segments_default_like_googles(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=8)
    model = BertEncoder(tiny_config)
    full = dict(
        features,
        input_mask=np.ones_like(features["input_mask"]),
        segment_ids=np.zeros_like(features["input_ids"]),
    )
    expected = model(full)["sequence_output"]
    np.testing.assert_allclose(
        model({"input_ids": features["input_ids"]})["sequence_output"], expected, atol=1e-6
    )


def test_too_long_sequence_is_refused(tiny_config):
    ids = np.zeros((1, 13), np.int32)
    with pytest.raises(ValueError, match="sequence length 13 exceeds max_position_embeddings \\(12\\)"):
        BertEncoder(tiny_config)({"input_ids": ids})


def test_xla_compiled_forward_and_gradient_match_eager(tiny_dict):
    weights = random_weights(tiny_dict, seed=9)
    features = {k: tf.constant(v) for k, v in make_features(tiny_dict, seed=10).items()}
    model = model_with_weights(tiny_dict, weights)

    def loss_and_grads(features):
        with tf.GradientTape() as tape:
            outputs = model(features, training=False)
            loss = bert.pretraining_loss(bert.pretraining_sums(outputs, features))
        return loss, tape.gradient(loss, model.trainable_variables)

    eager_loss, eager_grads = loss_and_grads(features)
    xla_loss, xla_grads = tf.function(loss_and_grads, jit_compile=True)(features)
    np.testing.assert_allclose(xla_loss, eager_loss, rtol=1e-5)
    for variable, a, b in zip(model.trainable_variables, xla_grads, eager_grads, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(a), tf.convert_to_tensor(b), atol=1e-5, err_msg=variable.path
        )

    train_step = tf.function(lambda f: model(f, training=True)["masked_lm_logits"], jit_compile=True)
    assert not np.allclose(train_step(features), train_step(features))  # dropout draws fresh masks per call


def test_gradient_reaches_every_variable(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=13)
    model = BertPretrainingModel(tiny_config)
    with tf.GradientTape() as tape:
        loss = bert.pretraining_loss(bert.pretraining_sums(model(features, training=True), features))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    embeddings_grad = tf.convert_to_tensor(grads[0])
    assert model.trainable_variables[0].path == "bert/embeddings/word_embeddings"
    assert np.count_nonzero(np.abs(embeddings_grad).sum(axis=1)) > len(
        np.unique(features["input_ids"])
    )  # tied decoder


def test_keras_config_round_trip(tiny_config):
    model = BertPretrainingModel(tiny_config, name="m")
    clone = BertPretrainingModel.from_config(model.get_config())
    assert clone.config == tiny_config and clone.name == "m"
    assert keras.ops.shape(clone.masked_lm.output_bias) == (57,)


def test_int64_features_as_parsed_from_tfrecords_are_accepted(tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=14)
    model = BertPretrainingModel(tiny_config)
    as_int64 = {k: v.astype(np.int64) if v.dtype == np.int32 else v for k, v in features.items()}
    np.testing.assert_array_equal(model(as_int64)["masked_lm_logits"], model(features)["masked_lm_logits"])
