"""The optimizer of a run: LAMB or AdamW (`optimizer.name`), wrapped for dynamic loss scaling in float16.

Both take the same config keys and select the variables without weight decay the same way: a regex of
`optimizer.exclude_from_weight_decay` (null: the model's own list, `bert.WEIGHT_DECAY_EXCLUSIONS`, which
`exclude_from_layer_adaptation` also defaults to) found (re.search) in the variable's full path, e.g.
"bert/encoder/layer_0/output/LayerNorm/gamma". LAMB matches paths itself. Keras' AdamW matches its
`exclude_from_weight_decay(var_names=...)` against the variable's short name only ("gamma"), where
"LayerNorm" never matches; so the variables are selected here, by path, and handed to AdamW as
`exclude_from_weight_decay(var_list=...)`.

The two updates, per variable w with Adam moments m, v at update t (η the learning rate, λ the decay):

    LAMB    w ← w − η·ρ·(m̂ / (√v̂ + ε) + λ·w)           ρ = ‖w‖ / ‖·‖, the trust ratio (1 when excluded)
    AdamW   w ← w − η·λ·w − η·m̂ / (√v̂ + ε / √(1 − β2^t))   (Keras adds ε to √v, before bias correction)

so AdamW is LAMB without the trust ratio, up to where ε enters.

Under mixed_float16 the optimizer is wrapped in `keras.optimizers.LossScaleOptimizer` (dynamic loss
scaling); the train step scales the loss with it and skips the update when the gradients are not finite.
"""

import math
import re

import keras
from absl import logging

import bert
import lamb

LOSS_SCALED_PRECISION = "mixed_float16"


def weight_decay_exclusions(optimizer_config):
    """optimizer.exclude_from_weight_decay, or the model's own list when it is null."""
    patterns = optimizer_config.exclude_from_weight_decay
    return list(bert.WEIGHT_DECAY_EXCLUSIONS) if patterns is None else patterns


def layer_adaptation_exclusions(optimizer_config):
    """optimizer.exclude_from_layer_adaptation, or the model's own list when it is null."""
    patterns = optimizer_config.exclude_from_layer_adaptation
    return list(bert.WEIGHT_DECAY_EXCLUSIONS) if patterns is None else patterns


def excluded_from_weight_decay(variable, patterns):
    """True when one of the regexes `patterns` is found in the variable's path (LAMB's rule)."""
    return any(re.search(pattern, variable.path) for pattern in patterns)


def make_optimizer(
    optimizer_config,
    learning_rate,
    variables=None,
    *,
    mixed_precision="float32",
    initial_loss_scale=2.0**15,
    loss_scale_growth_steps=2000,
):
    """The optimizer of `optimizer_config` (optimizer.name) with `learning_rate` (a float or a schedule).

    With `variables` it is built on them (call it inside the strategy scope); AdamW needs them to select its
    weight-decay exclusions. Under mixed_float16 it is wrapped in a LossScaleOptimizer (initial scale and
    growth interval from the arguments).
    """
    if optimizer_config.name == "lamb":
        optimizer = lamb.LAMB(
            learning_rate=learning_rate,
            beta_1=optimizer_config.beta_1,
            beta_2=optimizer_config.beta_2,
            epsilon=optimizer_config.epsilon,
            weight_decay=optimizer_config.weight_decay,
            exclude_from_weight_decay=weight_decay_exclusions(optimizer_config),
            exclude_from_layer_adaptation=layer_adaptation_exclusions(optimizer_config),
            bias_correction=optimizer_config.bias_correction,
            trust_ratio_bounds=optimizer_config.trust_ratio_bounds,
        )
    elif optimizer_config.name == "adamw":
        if variables is None:
            raise ValueError("AdamW needs the model's variables to select its weight-decay exclusions")
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate,
            weight_decay=optimizer_config.weight_decay,
            beta_1=optimizer_config.beta_1,
            beta_2=optimizer_config.beta_2,
            epsilon=optimizer_config.epsilon,
        )
        patterns = weight_decay_exclusions(optimizer_config)
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in variables if excluded_from_weight_decay(v, patterns)]
        )
    else:
        raise ValueError(f"optimizer.name: unknown optimizer {optimizer_config.name!r}")
    if mixed_precision == LOSS_SCALED_PRECISION:
        optimizer = keras.optimizers.LossScaleOptimizer(
            optimizer, initial_scale=initial_loss_scale, dynamic_growth_steps=loss_scale_growth_steps
        )
    if variables is not None:
        optimizer.build(variables)
    return optimizer


def inner_optimizer(optimizer):
    """The optimizer that updates the weights (the one a LossScaleOptimizer wraps)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def loss_scale(optimizer):
    """The current dynamic loss scale (a float), or None without loss scaling."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return float(optimizer.dynamic_scale.numpy())
    return None


def adapted_variables(optimizer, variables):
    """The variables whose step LAMB scales by a trust ratio ([] for AdamW)."""
    inner = inner_optimizer(optimizer)
    if not isinstance(inner, lamb.LAMB):
        return []
    return [v for v in variables if inner.applies_layer_adaptation(v)]


def trust_ratios(optimizer, variables):
    """The last update's trust ratios {path: float} of the adapted variables ({} for AdamW)."""
    adapted = {v.path for v in adapted_variables(optimizer, variables)}
    if not adapted:
        return {}
    ratios = inner_optimizer(optimizer).trust_ratios()
    return {path: float(ratio) for path, ratio in ratios.items() if path in adapted}


def log_optimizer(optimizer_config, optimizer, variables):
    """One line saying which optimizer runs and which variables get weight decay and trust ratios, and by
    which exclusion regexes (naming where a default list came from)."""
    no_decay = weight_decay_exclusions(optimizer_config)
    decayed = [
        v
        for v in variables
        if optimizer_config.weight_decay > 0 and not excluded_from_weight_decay(v, no_decay)
    ]
    adapted = adapted_variables(optimizer, variables)
    trust = f", trust ratio on {len(adapted)}" if optimizer_config.name == "lamb" else " (no trust ratio)"
    scaling = ""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        scaling = (
            f"; dynamic loss scaling from {optimizer.initial_scale:g}, doubled after "
            f"{optimizer.dynamic_growth_steps} finite steps, halved (and the step skipped) on a "
            "non-finite gradient"
        )
    logging.info(
        "optimizer %s: %d trainable variables, %d parameters; weight decay %g on %d variables%s%s; "
        "exclusions: %s",
        optimizer_config.name,
        len(variables),
        sum(math.prod(v.shape) for v in variables),
        optimizer_config.weight_decay,
        len(decayed),
        trust,
        scaling,
        describe_exclusions(optimizer_config),
    )


def describe_exclusions(optimizer_config):
    """The exclusion regexes in force, e.g. "weight decay [LayerNorm, bias] (the model's list), ..."."""

    def one(name, configured, patterns):
        origin = f" (the model's list: optimizer.{name} is null)" if configured is None else ""
        return f"{name} [{', '.join(patterns)}]{origin}"

    parts = [
        one(
            "exclude_from_weight_decay",
            optimizer_config.exclude_from_weight_decay,
            weight_decay_exclusions(optimizer_config),
        )
    ]
    if optimizer_config.name == "lamb":
        parts.append(
            one(
                "exclude_from_layer_adaptation",
                optimizer_config.exclude_from_layer_adaptation,
                layer_adaptation_exclusions(optimizer_config),
            )
        )
    return "; ".join(parts)
