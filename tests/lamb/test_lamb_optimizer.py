"""lamb.LAMB follows the paper's update step by step, in every execution mode and with Keras' own options."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from numpy_lamb import NumpyLamb, lamb_step, warmup_polynomial_decay

import lamb

BERT_EXCLUSIONS = ["LayerNorm", "layer_norm", "bias"]
STEPS = 25


def variable_at(path, value, dtype="float32"):
    """A keras.Variable whose `.path` is `path` (created inside nested name scopes)."""
    *scopes, name = path.split("/")
    if not scopes:
        return keras.Variable(value, name=name, dtype=dtype)
    with keras.name_scope(scopes[0]):
        return variable_at("/".join(scopes[1:] + [name]), value, dtype)


def initial_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "encoder/layer_0/attention/output/dense/kernel": rng.normal(size=(6, 5)),
        "encoder/layer_0/attention/output/dense/bias": np.zeros(5),  # zero-initialised: ‖w‖ = 0 at first
        "encoder/layer_0/attention/output/LayerNorm/gamma": np.ones(5),
        "encoder/layer_0/attention/output/LayerNorm/beta": np.zeros(5),
        "embeddings/word_embeddings": 0.02 * rng.normal(size=(7, 5)),
        "encoder/unused/kernel": np.zeros((3, 2)),  # zero weight and zero gradient forever: u = 0, w = 0
    }


def gradient_sequence(weights, steps, seed=1):
    rng = np.random.default_rng(seed)
    sequence = []
    for _ in range(steps):
        grads = {path: rng.normal(scale=0.1, size=value.shape) for path, value in weights.items()}
        grads["encoder/unused/kernel"] = np.zeros((3, 2))
        sequence.append(grads)
    return sequence


SETTINGS = {
    "paper_defaults": dict(learning_rate=0.01),
    "bert_recipe_no_bias_correction_clipped": dict(
        learning_rate=("schedule", dict(peak=0.02, total_steps=20, warmup_steps=5, power=1.0, end=0.0)),
        weight_decay=0.01,
        exclude_from_weight_decay=BERT_EXCLUSIONS,
        exclude_from_layer_adaptation=BERT_EXCLUSIONS,
        bias_correction=False,
        global_clipnorm=1.0,
    ),
    "bounds_decay_everywhere": dict(
        learning_rate=0.05,
        weight_decay=0.1,
        exclude_from_layer_adaptation=["^embeddings/"],
        trust_ratio_bounds=(0.5, 3.0),
        epsilon=1e-3,
        beta_1=0.8,
        beta_2=0.99,
    ),
    "sqrt_decay_schedule_bias_correction": dict(
        learning_rate=("schedule", dict(peak=0.01, total_steps=18, warmup_steps=3, power=0.5, end=1e-3)),
        weight_decay=0.01,
        exclude_from_weight_decay=["gamma$", "beta$", "/bias$"],
    ),
}


def build_pair(setting):
    """The optimizer under test and the numpy reference, configured alike."""
    kwargs = dict(setting)
    lr = kwargs.pop("learning_rate")
    if isinstance(lr, tuple):
        s = lr[1]
        schedule = lamb.WarmupPolynomialDecay(
            s["peak"], s["total_steps"], s["warmup_steps"], power=s["power"], end_learning_rate=s["end"]
        )
        learning_rate = lambda step: warmup_polynomial_decay(step, **s)
    else:
        schedule = lr
        learning_rate = lambda step: lr
    optimizer = lamb.LAMB(learning_rate=schedule, **kwargs)
    reference_kwargs = {k: v for k, v in kwargs.items() if k != "global_clipnorm"}
    reference = NumpyLamb(
        initial_weights(), global_clipnorm=kwargs.get("global_clipnorm"), **reference_kwargs
    )
    return optimizer, reference, learning_rate


@pytest.mark.parametrize("mode", ["eager", "tf_function", "jit_compile"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_matches_the_numpy_reference_step_by_step(setting, mode):
    optimizer, reference, learning_rate = build_pair(SETTINGS[setting])
    variables = {path: variable_at(path, value) for path, value in initial_weights().items()}
    paths = list(variables)
    optimizer.build(list(variables.values()))

    def apply(grads):
        optimizer.apply_gradients(zip(grads, [variables[p] for p in paths], strict=True))

    if mode != "eager":
        apply = tf.function(apply, jit_compile=mode == "jit_compile")

    for step, grads in enumerate(gradient_sequence(initial_weights(), STEPS)):
        apply([tf.constant(grads[p], tf.float32) for p in paths])
        reference.step(grads, learning_rate(step))
        ratios = optimizer.trust_ratios()
        for path in paths:
            np.testing.assert_allclose(
                variables[path].numpy(),
                reference.weights[path],
                rtol=2e-5,
                atol=1e-6,
                err_msg=f"{path} @ {step}",
            )
            np.testing.assert_allclose(ratios[path].numpy(), reference.ratios[path], rtol=2e-5, err_msg=path)
    assert int(optimizer.iterations.numpy()) == STEPS
    assert np.all(variables["encoder/unused/kernel"].numpy() == 0.0)


def test_weight_decay_is_applied_once_inside_the_trust_ratio():
    # With g = 0 the moments stay 0, so r = 0 and u = λ·w exactly.
    lr, decay = 0.1, 0.5
    w0 = np.array([3.0, -4.0], np.float32)
    adapted, plain = variable_at("adapted/kernel", w0), variable_at("plain/kernel", w0)
    optimizer = lamb.LAMB(lr, weight_decay=decay, exclude_from_layer_adaptation=["plain"])
    optimizer.apply_gradients([(tf.zeros(2), adapted), (tf.zeros(2), plain)])
    # adapted: ratio = ‖w‖ / ‖λ·w‖ = 1/λ, so w ← w − η·(1/λ)·λ·w = (1 − η)·w
    np.testing.assert_allclose(adapted.numpy(), (1 - lr) * w0, rtol=1e-6)
    np.testing.assert_allclose(optimizer.trust_ratios()["adapted/kernel"].numpy(), 1 / decay, rtol=1e-6)
    # excluded from adaptation: ratio = 1, so w ← w − η·λ·w (AdamW's decoupled decay, applied once)
    np.testing.assert_allclose(plain.numpy(), (1 - lr * decay) * w0, rtol=1e-6)
    assert optimizer.trust_ratios()["plain/kernel"].numpy() == 1.0


def test_keras_exclude_from_weight_decay_method_is_honoured():
    kernel, bias = variable_at("dense/kernel", np.ones(2)), variable_at("dense/bias", np.ones(2))
    optimizer = lamb.LAMB(0.1, weight_decay=0.5, exclude_from_layer_adaptation=[".*"])
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.apply_gradients([(tf.zeros(2), kernel), (tf.zeros(2), bias)])
    np.testing.assert_allclose(kernel.numpy(), [0.95, 0.95], rtol=1e-6)
    np.testing.assert_allclose(bias.numpy(), [1.0, 1.0])


def nested_model():
    """Keras layers two models deep, named like Google's BERT."""
    block = keras.Sequential(
        [keras.layers.Dense(3, name="dense"), keras.layers.LayerNormalization(name="LayerNorm")],
        name="attention_output",
    )
    encoder = keras.Sequential([block], name="encoder")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="head")(encoder(inputs))
    return keras.Model(inputs, outputs, name="pretraining")


def test_exclusions_match_full_paths_of_real_keras_layers():
    model = nested_model()
    optimizer = lamb.LAMB(
        weight_decay=0.01,
        exclude_from_weight_decay=BERT_EXCLUSIONS,
        exclude_from_layer_adaptation=["^encoder/.*/LayerNorm/"],
    )
    paths = [v.path for v in model.trainable_variables]
    assert paths == [
        "encoder/attention_output/dense/kernel",
        "encoder/attention_output/dense/bias",
        "encoder/attention_output/LayerNorm/gamma",
        "encoder/attention_output/LayerNorm/beta",
        "head/kernel",
        "head/bias",
    ]
    decayed = [v.path for v in model.trainable_variables if optimizer.applies_weight_decay(v)]
    adapted = [v.path for v in model.trainable_variables if optimizer.applies_layer_adaptation(v)]
    assert decayed == ["encoder/attention_output/dense/kernel", "head/kernel"]
    assert (
        adapted
        == ["encoder/attention_output/dense/kernel", "encoder/attention_output/dense/bias"] + paths[4:]
    )
    # Patterns see the whole path: "^LayerNorm" does not match "encoder/attention_output/LayerNorm/gamma".
    gamma = model.trainable_variables[2]
    assert lamb.LAMB(exclude_from_layer_adaptation=["^LayerNorm"]).applies_layer_adaptation(gamma)


def test_no_exclusion_lists_decay_and_adapt_every_variable():
    model = nested_model()
    for exclusions in (None, []):
        optimizer = lamb.LAMB(
            weight_decay=0.01, exclude_from_weight_decay=exclusions, exclude_from_layer_adaptation=exclusions
        )
        assert all(optimizer.applies_weight_decay(v) for v in model.trainable_variables)
        assert all(optimizer.applies_layer_adaptation(v) for v in model.trainable_variables)
    assert not any(lamb.LAMB(weight_decay=0.0).applies_weight_decay(v) for v in model.trainable_variables)


def test_sparse_gradients_give_the_dense_result():
    rng = np.random.default_rng(3)
    table = rng.normal(size=(6, 4)).astype("float32")
    sparse_var, dense_var = variable_at("sparse/embeddings", table), variable_at("dense/embeddings", table)
    sparse_opt, dense_opt = lamb.LAMB(0.01, weight_decay=0.01), lamb.LAMB(0.01, weight_decay=0.01)

    @tf.function(jit_compile=True)
    def apply(indices, values):
        sparse = tf.IndexedSlices(values, indices, dense_shape=tf.constant([6, 4]))
        sparse_opt.apply_gradients([(sparse, sparse_var)])
        dense_opt.apply_gradients([(tf.math.unsorted_segment_sum(values, indices, 6), dense_var)])

    for _ in range(5):
        indices = tf.constant(rng.integers(0, 6, size=8), tf.int32)  # repeated rows are summed
        apply(indices, tf.constant(rng.normal(size=(8, 4)), tf.float32))
    np.testing.assert_allclose(sparse_var.numpy(), dense_var.numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(sparse_var.numpy(), table)


def test_embedding_layer_gradients_are_sparse_and_trained_like_the_reference():
    embedding = keras.layers.Embedding(10, 3, name="word_embeddings")
    embedding.build((None,))
    table = embedding.embeddings.numpy().astype(np.float64)
    optimizer = lamb.LAMB(0.01)
    ids = tf.constant([1, 4, 4, 7])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(embedding(ids) ** 2)
    (grad,) = tape.gradient(loss, embedding.trainable_variables)
    assert isinstance(grad, tf.IndexedSlices)
    optimizer.apply_gradients([(grad, embedding.embeddings)])
    dense_grad = np.zeros_like(table)
    np.add.at(dense_grad, [1, 4, 4, 7], 2 * table[[1, 4, 4, 7]])
    expected, *_ = lamb_step(
        table,
        0,
        0,
        dense_grad,
        1,
        0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.0,
        bias_correction=True,
        bounds=None,
    )
    np.testing.assert_allclose(embedding.embeddings.numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_gradients_and_variables_keep_float32_moments(dtype):
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(8, 3))
    variable = variable_at("low/kernel", w0, dtype=dtype)
    optimizer = lamb.LAMB(0.01, weight_decay=0.01)
    optimizer.build([variable])
    assert [v.dtype for v in optimizer.variables[2:]] == ["float32"] * 3  # m, v, trust ratio
    grads = [tf.cast(rng.normal(scale=1e-3, size=(8, 3)), dtype) for _ in range(3)]
    reference = NumpyLamb({"w": variable.numpy().astype(np.float64)}, weight_decay=0.01)
    for g in grads:
        w_before = variable.numpy().astype(np.float64)
        optimizer.apply_gradients([(g, variable)])
        reference.weights["w"] = w_before  # the variable is rounded to its dtype after each step
        reference.step({"w": g.numpy().astype(np.float64)}, 0.01)
        np.testing.assert_allclose(
            variable.numpy().astype(np.float64),
            reference.weights["w"],
            rtol=1e-2 if dtype == "bfloat16" else 2e-3,
        )
    m_slot = optimizer._momentums[0]
    # The first moment of tiny gradients (~1e-4) keeps float32 precision, not the gradient dtype's.
    np.testing.assert_allclose(m_slot.numpy(), reference.m["w"], rtol=1e-5, atol=1e-10)


def test_gradient_accumulation_averages_then_updates_like_the_reference():
    accumulation = 3
    weights = {"dense/kernel": np.random.default_rng(5).normal(size=(4, 2))}
    variable = variable_at("dense/kernel", weights["dense/kernel"])
    schedule = dict(peak=0.02, total_steps=12, warmup_steps=3, power=1.0, end=0.0)
    optimizer = lamb.LAMB(
        lamb.WarmupPolynomialDecay(0.02, total_steps=12, warmup_steps=3),
        weight_decay=0.01,
        gradient_accumulation_steps=accumulation,
    )
    reference = NumpyLamb(weights, weight_decay=0.01)
    apply = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]), jit_compile=True)
    rng = np.random.default_rng(6)
    for update in range(4):
        micro = [rng.normal(size=(4, 2)) for _ in range(accumulation)]
        for g in micro:
            apply(tf.constant(g, tf.float32))
        # Keras evaluates the schedule at the micro-step count: the last micro-step of this update.
        lr = warmup_polynomial_decay(accumulation * update + accumulation - 1, **schedule)
        reference.step({"dense/kernel": np.mean(micro, axis=0)}, lr)
        np.testing.assert_allclose(variable.numpy(), reference.weights["dense/kernel"], rtol=1e-5, atol=1e-6)
    assert int(optimizer.iterations.numpy()) == 4


def linear_regression_data(seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype("float32")
    return x, y


def repeated_batches(x, y, batch_size, count):
    """`count` shuffled batches in one epoch (Keras' per-epoch overhead is larger than a step's)."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat()
    return dataset.batch(batch_size, drop_remainder=True).take(count)


def test_model_fit_with_jit_follows_the_reference():
    x, y = linear_regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="dense")], name="regression")
    kernel0, bias0 = (v.numpy().astype(np.float64) for v in model.trainable_variables)
    optimizer = lamb.LAMB(0.05, weight_decay=0.01, exclude_from_weight_decay=["bias"])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=True)
    model.fit(x, y, batch_size=32, epochs=20, shuffle=False, verbose=0)

    reference = NumpyLamb({"k": kernel0, "b": bias0}, weight_decay=0.01, exclude_from_weight_decay=["^b$"])
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for _ in range(20):
        residual = x64 @ reference.weights["k"] + reference.weights["b"] - y64  # [B, 1]
        reference.step({"k": 2 * x64.T @ residual / len(x), "b": 2 * residual.mean(axis=0)}, 0.05)
    kernel, bias = (v.numpy() for v in model.trainable_variables)
    np.testing.assert_allclose(kernel, reference.weights["k"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bias, reference.weights["b"], rtol=1e-4, atol=1e-5)


def test_drop_in_for_adamw_converges_on_a_small_problem():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)], name="mlp"
    )
    schedule = lamb.WarmupPolynomialDecay(0.02, total_steps=400, warmup_steps=20)
    model.compile(optimizer=lamb.LAMB(schedule, weight_decay=1e-4), loss="mse", jit_compile=True)
    initial = model.evaluate(x, y, verbose=0)
    model.fit(repeated_batches(x, y, batch_size=64, count=400), epochs=1, shuffle=False, verbose=0)
    final = model.evaluate(x, y, verbose=0)
    assert final < 0.05 * initial, (initial, final)


def test_loss_scale_optimizer_unscales_and_skips_non_finite_steps():
    w0 = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    scaled_var, plain_var = variable_at("scaled/kernel", w0), variable_at("plain/kernel", w0)
    scaled = keras.optimizers.LossScaleOptimizer(lamb.LAMB(0.01, weight_decay=0.01), initial_scale=2.0**10)
    plain = lamb.LAMB(0.01, weight_decay=0.01)
    g = np.array([[0.1, -0.2], [0.3, 0.05]], np.float32)
    for _ in range(3):
        scaled.apply_gradients([(tf.constant(g * 2.0**10), scaled_var)])
        plain.apply_gradients([(tf.constant(g), plain_var)])
    np.testing.assert_allclose(scaled_var.numpy(), plain_var.numpy(), rtol=1e-6)
    before = scaled_var.numpy()
    scaled.apply_gradients([(tf.constant([[np.inf, 0.0], [0.0, 0.0]], tf.float32), scaled_var)])
    np.testing.assert_array_equal(scaled_var.numpy(), before)
    assert scaled.dynamic_scale.numpy() == 2.0**9
    assert int(scaled.inner_optimizer.iterations.numpy()) == 3


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_with_fit(policy):
    x, y = linear_regression_data()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(2)
        model = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)],
            name="mixed",
        )
        model.compile(optimizer=lamb.LAMB(0.02), loss="mse", jit_compile=True)
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        initial = model.evaluate(x, y, verbose=0)
        model.fit(repeated_batches(x, y, batch_size=16, count=60), epochs=1, shuffle=False, verbose=0)
        final = model.evaluate(x, y, verbose=0)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert all(v.dtype == "float32" for v in inner._momentums + inner._velocities)
    assert final < 0.2 * initial, (initial, final)
    assert all(np.isfinite(r.numpy()) for r in inner.trust_ratios().values())


def test_ema_and_clipping_options_pass_through():
    variable = variable_at("dense/kernel", np.ones((2, 2)))
    optimizer = lamb.LAMB(0.1, use_ema=True, ema_momentum=0.5, clipnorm=1.0)
    for _ in range(3):
        optimizer.apply_gradients([(tf.fill([2, 2], 10.0), variable)])
    average = optimizer._model_variables_moving_average[0].numpy()
    assert not np.allclose(average, variable.numpy())
    optimizer.finalize_variable_values([variable])
    np.testing.assert_allclose(variable.numpy(), average)


def test_trust_ratios_before_and_after_building():
    optimizer = lamb.LAMB()
    assert optimizer.trust_ratios() == {}
    variable = variable_at("dense/kernel", np.ones((2, 2)))
    optimizer.build([variable])
    assert optimizer.trust_ratios()["dense/kernel"].numpy() == 0.0
    assert optimizer.trust_ratios()["dense/kernel"].dtype == tf.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta_1=1.0), "beta_1"),
        (dict(beta_2=-0.1), "beta_2"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(bias_correction="yes"), "bias_correction"),
        (dict(trust_ratio_bounds=(2.0, 1.0)), "trust_ratio_bounds"),
        (dict(trust_ratio_bounds=1.0), "trust_ratio_bounds"),
        (dict(exclude_from_weight_decay="bias"), "exclude_from_weight_decay"),
        (dict(exclude_from_layer_adaptation=["(unclosed"]), "exclude_from_layer_adaptation"),
        (dict(exclude_from_layer_adaptation=[3]), "exclude_from_layer_adaptation"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lamb.LAMB(**kwargs)


@pytest.mark.parametrize("on_cpu", [True, False])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)])
def test_squared_norms_of_both_device_paths(shape, on_cpu):
    # The CPU path (interleaved rows of w and u, x² · 1) and the accelerator path (reductions) run here alike.
    from lamb.optimizer import _squared_norms

    rng = np.random.default_rng(10)
    w, u = rng.normal(size=shape), rng.normal(size=shape)
    compiled = tf.function(lambda a, b: _squared_norms(a, b, on_cpu), jit_compile=True)
    w_squared_norm, u_squared_norm = compiled(tf.constant(w, tf.float32), tf.constant(u, tf.float32))
    assert float(w_squared_norm) == pytest.approx(np.sum(w * w), rel=1e-6)
    assert float(u_squared_norm) == pytest.approx(np.sum(u * u), rel=1e-6)
