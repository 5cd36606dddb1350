"""The fused GELU kernels and the per-replica dropout, against numpy float64 formulas.

Derivatives, written out by hand:
    tanh GELU  g(x) = 0.5 x (1 + tanh u),  u = c (x + a x^3),  c = sqrt(2/pi),  a = 0.044715
               g'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) c (1 + 3 a x^2)
    exact GELU g(x) = x Phi(x),  g'(x) = Phi(x) + x phi(x)
"""

import math

import numpy as np
import pytest
import tensorflow as tf

import bert
import bert.layers

C, A = math.sqrt(2.0 / math.pi), 0.044715


def gelu_tanh_gradient(x):
    t = np.tanh(C * (x + A * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * C * (1.0 + 3.0 * A * x**2)


def gelu_exact_gradient(x):
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(C * (x + A * x**3)))


def gelu_exact(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


GELUS = {
    "gelu": (bert.gelu, gelu_tanh, gelu_tanh_gradient),
    "gelu_exact": (bert.gelu_exact, gelu_exact, gelu_exact_gradient),
}
# dtype: (absolute, relative tolerance). XLA's CPU tanh and erf are approximations good to about 1e-7
# relative, also in float64; the gradients cross zero (cancellation), hence the absolute part.
TOLERANCES = {tf.float64: (1e-7, 1e-6), tf.float32: (5e-6, 1e-5), tf.bfloat16: (1e-2, 1.6e-2)}


def value_and_gradient(function, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    return y, tape.gradient(y, x, output_gradients=upstream)


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32, tf.bfloat16], ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["gelu", "gelu_exact"])
def test_fused_gelu_value_and_gradient_match_the_formulas(name, dtype):
    kernel, formula, derivative = GELUS[name]
    rng = np.random.default_rng(0)
    x64 = np.concatenate([np.linspace(-6.0, 6.0, 97), rng.normal(scale=2.0, size=(7, 13)).ravel()])
    upstream64 = rng.normal(size=x64.shape)
    x, upstream = tf.constant(x64, dtype), tf.constant(upstream64, dtype)
    # The reference sees the inputs exactly as the kernel does (rounded to dtype).
    x64, upstream64 = x.numpy().astype(np.float64), upstream.numpy().astype(np.float64)

    y, dx = value_and_gradient(kernel, x, upstream)
    assert y.dtype == dtype and dx.dtype == dtype
    atol, rtol = TOLERANCES[dtype]
    np.testing.assert_allclose(y.numpy().astype(np.float64), formula(x64), atol=atol, rtol=rtol)
    expected = upstream64 * derivative(x64)
    np.testing.assert_allclose(dx.numpy().astype(np.float64), expected, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", ["gelu", "gelu_exact"])
def test_bfloat16_gelu_is_computed_in_float32_and_rounded_once(name):
    kernel, formula, _ = GELUS[name]
    x = tf.constant(np.linspace(-4.0, 4.0, 1001), tf.bfloat16)
    expected = tf.cast(tf.constant(formula(x.numpy().astype(np.float64)), tf.float32), tf.bfloat16)
    # Rounding the float32 result once: at most one bfloat16 step from the correctly rounded value.
    got, want = kernel(x).numpy().astype(np.float64), expected.numpy().astype(np.float64)
    step = np.abs(want) * 2.0**-7 + 1e-30
    assert np.all(np.abs(got - want) <= step)


def test_fused_gelu_inside_an_xla_step_and_in_a_graph_equals_eager():
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 16)), tf.float32)
    upstream = tf.ones_like(x)
    eager = value_and_gradient(bert.gelu, x, upstream)
    for jit_compile in (False, True):
        compiled = tf.function(lambda x: value_and_gradient(bert.gelu, x, upstream), jit_compile=jit_compile)
        for a, b in zip(compiled(x), eager, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_dropout_keeps_one_mask_for_forward_and_backward():
    rate = 0.25
    dropout = bert.layers.Dropout(rate, seed=3)
    x = tf.constant(np.random.default_rng(2).normal(size=(64, 50)) + 3.0, tf.float32)  # no zero inputs
    upstream = tf.constant(np.random.default_rng(3).normal(size=(64, 50)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dropout(x, training=True)
    dx = tape.gradient(y, x, output_gradients=upstream).numpy()
    kept = y.numpy() != 0.0
    assert 0.2 < 1.0 - kept.mean() < 0.3
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / (1.0 - rate), rtol=1e-6)
    np.testing.assert_allclose(dx[kept], upstream.numpy()[kept] / (1.0 - rate), rtol=1e-6)
    assert np.all(dx[~kept] == 0.0)


def test_dropout_draws_a_new_mask_every_call_and_repeats_for_the_same_seed():
    def masks(seed, calls):
        dropout = bert.layers.Dropout(0.5, seed=seed)
        return [dropout(tf.ones([32, 32]), training=True).numpy() != 0 for _ in range(calls)]

    first, second = masks(seed=7, calls=2)
    assert not np.array_equal(first, second)
    again = masks(seed=7, calls=2)
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)


def op_types_of_gelu_placed_on(device):
    @tf.function
    def placed(x):
        with tf.device(device):
            return bert.gelu(tf.identity(x))

    graph = placed.get_concrete_function(tf.TensorSpec([4], tf.float32)).graph
    return {op.type for op in graph.get_operations()}


def test_the_fused_kernel_is_a_cpu_trick_and_plain_ops_elsewhere():
    # Traced only: the graph records the requested device, no GPU is needed to build it.
    assert {"PartitionedCall", "StatefulPartitionedCall"} & op_types_of_gelu_placed_on("/device:CPU:0")
    on_gpu = op_types_of_gelu_placed_on("/device:GPU:0")
    assert not {"PartitionedCall", "StatefulPartitionedCall"} & on_gpu
    assert "Tanh" in on_gpu
