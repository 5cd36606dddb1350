"""LAMB's configuration survives get_config / .keras files, and its slots survive checkpoints exactly."""

import copy

import keras
import numpy as np
import tensorflow as tf

import lamb

BERT_EXCLUSIONS = ["LayerNorm", "layer_norm", "bias"]


def configured_lamb():
    return lamb.LAMB(
        learning_rate=lamb.WarmupPolynomialDecay(0.01, total_steps=50, warmup_steps=2, power=0.5),
        beta_1=0.85,
        beta_2=0.99,
        epsilon=1e-5,
        weight_decay=0.01,
        exclude_from_weight_decay=BERT_EXCLUSIONS,
        exclude_from_layer_adaptation=["LayerNorm/(gamma|beta)$"],
        bias_correction=False,
        trust_ratio_bounds=(0.01, 10.0),
        global_clipnorm=1.0,
        name="pretraining_lamb",
    )


def test_get_config_keeps_every_argument_and_from_config_restores_it():
    config = configured_lamb().get_config()
    assert config["exclude_from_weight_decay"] == BERT_EXCLUSIONS
    assert config["exclude_from_layer_adaptation"] == ["LayerNorm/(gamma|beta)$"]
    assert config["trust_ratio_bounds"] == [0.01, 10.0]
    assert (config["beta_1"], config["beta_2"], config["epsilon"], config["weight_decay"]) == (
        0.85,
        0.99,
        1e-5,
        0.01,
    )
    assert config["bias_correction"] is False and config["global_clipnorm"] == 1.0
    assert config["learning_rate"]["class_name"] == "WarmupPolynomialDecay"

    restored = lamb.LAMB.from_config(copy.deepcopy(config))
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, lamb.WarmupPolynomialDecay)

    by_name = keras.optimizers.deserialize(keras.optimizers.serialize(configured_lamb()))
    assert isinstance(by_name, lamb.LAMB) and by_name.get_config() == config


def small_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="dense"),
            keras.layers.LayerNormalization(name="LayerNorm"),
            keras.layers.Dense(1, name="head"),
        ],
        name="small",
    )


def regression_data():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(24, 4)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) ** 2).astype("float32")


def test_keras_file_keeps_the_optimizer_configuration_and_state(tmp_path):
    x, y = regression_data()
    model = small_model()
    model.compile(optimizer=configured_lamb(), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "model.keras")

    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, lamb.LAMB)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.path)

    # Both continue alike: same exclusions, same schedule position, same moments.
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)


def train_steps(model, optimizer, x, y, steps):
    @tf.function(jit_compile=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(xb) - yb) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    for i in range(steps):
        batch = slice(8 * (i % 3), 8 * (i % 3) + 8)
        step(x[batch], y[batch])


def test_checkpoint_restore_continues_exactly(tmp_path):
    x, y = regression_data()
    model, optimizer = small_model(), configured_lamb()
    train_steps(model, optimizer, x, y, 5)
    prefix = tf.train.Checkpoint(model=model, optimizer=optimizer).save(tmp_path / "ckpt")
    train_steps(model, optimizer, x, y, 5)  # uninterrupted: 10 steps

    resumed_model, resumed_optimizer = small_model(), configured_lamb()
    resumed_optimizer.build(resumed_model.trainable_variables)
    tf.train.Checkpoint(model=resumed_model, optimizer=resumed_optimizer).restore(prefix).assert_consumed()
    assert int(resumed_optimizer.iterations.numpy()) == 5
    train_steps(resumed_model, resumed_optimizer, x, y, 5)

    for a, b in zip(model.trainable_variables, resumed_model.trainable_variables, strict=True):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
    for a, b in zip(optimizer.variables, resumed_optimizer.variables, strict=True):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)
