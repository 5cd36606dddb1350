"""WarmupPolynomialDecay: hand-computed values, continuity, serialization and XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import lamb


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_linear_warmup_then_linear_decay_to_zero():
    schedule = lamb.WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10)
    # warmup: 1e-3 * s / 10; decay: 1e-3 * (1 - (s - 10) / 90)
    np.testing.assert_allclose(
        rates(schedule, [0, 1, 5, 9, 10, 11, 55, 99, 100, 101, 10_000]),
        [0.0, 1e-4, 5e-4, 9e-4, 1e-3, 1e-3 * 89 / 90, 5e-4, 1e-3 / 90, 0.0, 0.0, 0.0],
        rtol=1e-6,
        atol=1e-12,
    )


def test_square_root_decay_to_an_end_value_that_is_held():
    schedule = lamb.WarmupPolynomialDecay(
        1e-3, total_steps=110, warmup_steps=10, power=0.5, end_learning_rate=1e-4
    )
    # decay: (1e-3 - 1e-4) * sqrt(1 - (s - 10) / 100) + 1e-4
    np.testing.assert_allclose(
        rates(schedule, [10, 35, 60, 110, 111, 5_000]),
        [1e-3, 9e-4 * np.sqrt(0.75) + 1e-4, 9e-4 * np.sqrt(0.5) + 1e-4, 1e-4, 1e-4, 1e-4],
        rtol=1e-6,
    )


def test_continuous_at_the_end_of_warmup():
    for power in (0.5, 1.0, 2.0):
        schedule = lamb.WarmupPolynomialDecay(2e-3, total_steps=1000, warmup_steps=100, power=power)
        before, at, after = rates(schedule, [99.999, 100, 100.001])
        assert at == pytest.approx(2e-3, rel=1e-6)
        assert before == pytest.approx(at, rel=1e-4) and after == pytest.approx(at, rel=1e-4)


def test_no_warmup_starts_at_the_peak():
    schedule = lamb.WarmupPolynomialDecay(1e-3, total_steps=4)
    np.testing.assert_allclose(rates(schedule, [0, 1, 2, 3, 4]), [1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0], rtol=1e-6)


def test_warmup_over_the_whole_run():
    schedule = lamb.WarmupPolynomialDecay(1e-3, total_steps=4, warmup_steps=4, end_learning_rate=1e-5)
    np.testing.assert_allclose(rates(schedule, [0, 2, 3, 4, 9]), [0.0, 5e-4, 7.5e-4, 1e-5, 1e-5], rtol=1e-6)


def test_inside_jit_compile_with_a_tensor_step():
    schedule = lamb.WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10, power=0.5)
    compiled = tf.function(lambda step: schedule(step), jit_compile=True)
    for step in (0, 7, 10, 64, 100, 250):
        assert float(compiled(tf.constant(step, tf.int64))) == pytest.approx(float(schedule(step)), rel=1e-6)
    assert compiled(tf.constant(3, tf.int64)).dtype == tf.float32


def test_serialization_round_trip():
    schedule = lamb.WarmupPolynomialDecay(
        1e-3, total_steps=100, warmup_steps=10, power=0.5, end_learning_rate=1e-5, name="bert_lr"
    )
    config = schedule.get_config()
    assert config == {
        "peak_learning_rate": 1e-3,
        "total_steps": 100,
        "warmup_steps": 10,
        "power": 0.5,
        "end_learning_rate": 1e-5,
        "name": "bert_lr",
    }
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, lamb.WarmupPolynomialDecay)
    assert restored.get_config() == config
    assert rates(restored, [0, 5, 50, 100]) == rates(schedule, [0, 5, 50, 100])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(peak_learning_rate=-1.0, total_steps=10), "peak_learning_rate"),
        (dict(peak_learning_rate=1e-3, total_steps=0), "total_steps"),
        (dict(peak_learning_rate=1e-3, total_steps=10.5), "total_steps"),
        (dict(peak_learning_rate=1e-3, total_steps=10, warmup_steps=-1), "warmup_steps"),
        (dict(peak_learning_rate=1e-3, total_steps=10, warmup_steps=11), "warmup_steps"),
        (dict(peak_learning_rate=1e-3, total_steps=10, power=0.0), "power"),
        (dict(peak_learning_rate=1e-3, total_steps=10, end_learning_rate=-1e-5), "end_learning_rate"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lamb.WarmupPolynomialDecay(**kwargs)
