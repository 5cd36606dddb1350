"""optimizer.name: LAMB or AdamW with the same hyperparameters and the same weight-decay exclusions.

The excluded variables are written out here by hand (LayerNorm gamma/beta and every bias: Google's
exclusions on BERT) and AdamW's update is checked against a numpy float64 transcription of Keras' AdamW.
"""

import keras
import numpy as np
import pytest

import bert
from trainer.config import OptimizerConfig
from trainer.optimizers import (
    describe_exclusions,
    excluded_from_weight_decay,
    layer_adaptation_exclusions,
    make_optimizer,
    weight_decay_exclusions,
)

CONFIG = bert.BertConfig(
    vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
)


def expected_without_decay(path):
    """Google's exclusions on BERT by hand: LayerNorm's gamma and beta, and the biases."""
    return path.rsplit("/", 1)[-1] in ("gamma", "beta", "bias", "output_bias")


def adamw_config(**values):
    return OptimizerConfig(
        **{"name": "adamw", "beta_1": 0.8, "beta_2": 0.9, "epsilon": 1e-3, "weight_decay": 0.1, **values}
    )


@pytest.fixture(scope="module")
def variables():
    keras.utils.set_random_seed(0)
    return bert.BertPretrainingModel(CONFIG).trainable_variables


def test_the_default_exclusions_select_layernorm_and_bias_by_path(variables):
    patterns = weight_decay_exclusions(OptimizerConfig())
    excluded = {v.path for v in variables if excluded_from_weight_decay(v, patterns)}
    assert excluded == {v.path for v in variables if expected_without_decay(v.path)}
    assert "bert/encoder/layer_0/attention/output/LayerNorm/gamma" in excluded
    assert "cls/predictions/output_bias" in excluded
    assert "bert/encoder/layer_0/attention/self/query/kernel" not in excluded


def test_lamb_and_adamw_decay_the_same_variables(variables):
    lamb_optimizer = make_optimizer(OptimizerConfig(weight_decay=0.1), 0.01)
    lamb_decayed = {v.path for v in variables if lamb_optimizer.applies_weight_decay(v)}

    # AdamW with zero gradients moves a variable only by its weight decay: w <- w - lr * wd * w.
    initial = [v.numpy().copy() for v in variables]
    adamw = make_optimizer(adamw_config(), 0.5, variables)
    try:
        adamw.apply([np.zeros(v.shape, np.float32) for v in variables], variables)
        adamw_decayed = set()
        for variable, before in zip(variables, initial, strict=True):
            after = variable.numpy()
            if not np.array_equal(after, before):
                np.testing.assert_allclose(after, before * (1 - 0.5 * 0.1), rtol=1e-6, err_msg=variable.path)
                adamw_decayed.add(variable.path)
    finally:
        for variable, before in zip(variables, initial, strict=True):
            variable.assign(before)
    expected = {v.path for v in variables if not expected_without_decay(v.path)}
    assert adamw_decayed == lamb_decayed == expected


def reference_adamw(w, grads_per_step, lr, beta_1, beta_2, epsilon, weight_decay):
    """Keras' AdamW in float64: decoupled decay, then the Adam step with epsilon added to sqrt(v)."""
    w = w.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads_per_step, start=1):
        w = w - lr * weight_decay * w
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
    return w


def test_adamw_takes_its_hyperparameters_from_the_config(variables):
    rng = np.random.default_rng(1)
    initial = [v.numpy().copy() for v in variables]
    grads = [[rng.normal(size=v.shape).astype(np.float32) * 1e-2 for v in variables] for _ in range(2)]
    adamw = make_optimizer(adamw_config(), 0.05, variables)
    try:
        for step_grads in grads:
            adamw.apply(step_grads, variables)
        for i, variable in enumerate(variables):
            decay = 0.0 if expected_without_decay(variable.path) else 0.1
            want = reference_adamw(initial[i], [g[i] for g in grads], 0.05, 0.8, 0.9, 1e-3, decay)
            np.testing.assert_allclose(variable.numpy(), want, rtol=2e-5, atol=1e-7, err_msg=variable.path)
    finally:
        for variable, before in zip(variables, initial, strict=True):
            variable.assign(before)


def test_adamw_needs_the_variables_to_select_its_exclusions():
    with pytest.raises(ValueError, match="AdamW needs the model's variables"):
        make_optimizer(adamw_config(), 0.01)


def test_null_exclusions_are_the_models_list_and_the_log_says_so():
    default = OptimizerConfig()
    assert default.exclude_from_weight_decay is None and default.exclude_from_layer_adaptation is None
    assert weight_decay_exclusions(default) == ["LayerNorm", "layer_norm", "bias"]
    assert layer_adaptation_exclusions(default) == ["LayerNorm", "layer_norm", "bias"]
    assert describe_exclusions(default) == (
        "exclude_from_weight_decay [LayerNorm, layer_norm, bias] (the model's list: "
        "optimizer.exclude_from_weight_decay is null); exclude_from_layer_adaptation [LayerNorm, "
        "layer_norm, bias] (the model's list: optimizer.exclude_from_layer_adaptation is null)"
    )


def test_a_written_exclusion_list_replaces_the_models(variables):
    config = OptimizerConfig(exclude_from_weight_decay=["bias"], exclude_from_layer_adaptation=[])
    optimizer = make_optimizer(config, 1e-3, variables)
    decayed = [v.path for v in variables if optimizer.applies_weight_decay(v)]
    assert all(optimizer.applies_layer_adaptation(v) for v in variables)
    assert "bert/encoder/layer_0/attention/output/LayerNorm/gamma" in decayed
    assert not any(path.endswith("bias") for path in decayed)
    assert describe_exclusions(config) == "exclude_from_weight_decay [bias]; exclude_from_layer_adaptation []"
