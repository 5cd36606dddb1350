"""The LAMB optimizer for Keras 3 (TensorFlow backend).

You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", arXiv 1904.00962.
Per variable w with gradient g, at update t = (updates applied so far) + 1:

    m = β1·m + (1 − β1)·g                        first moment
    v = β2·v + (1 − β2)·g²                       second moment
    m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)     bias correction (optional: m̂ = m, v̂ = v)
    r = m̂ / (√v̂ + ε)                            Adam ratio, ε outside the square root
    u = r + λ·w                                  decoupled weight decay, inside the trust ratio
    ratio = ‖w‖ / ‖u‖                            1 if either norm is 0, clipped to trust_ratio_bounds
    w ← w − η·ratio·u

Norms are over the whole variable. Moments, the update and the ratio are computed in float32 whatever
the dtype of the variable or the gradient.
"""

import numbers
import re

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lamb")
class LAMB(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Moments for Batch training (LAMB).

    A drop-in replacement for `keras.optimizers.Adam` / `AdamW` in `model.compile(...)` or in a custom
    loop (`optimizer.apply_gradients(zip(grads, variables))`).

    Args:
        learning_rate: float, a `keras.optimizers.schedules.LearningRateSchedule` (e.g.
            `lamb.WarmupPolynomialDecay`) or a callable returning the learning rate η.
        beta_1: decay rate β1 of the first moment, in [0, 1).
        beta_2: decay rate β2 of the second moment, in [0, 1).
        epsilon: ε > 0, added to √v̂ (outside the square root).
        weight_decay: λ >= 0 of the decoupled weight decay, applied inside the trust ratio.
        exclude_from_weight_decay: list of regular expressions; a variable whose full path
            (`variable.path`, e.g. "encoder/layer_0/attention/output/LayerNorm/gamma") matches any of them
            with `re.search` gets no weight decay. None or [] decays every variable.
        exclude_from_layer_adaptation: list of regular expressions, same matching; a matching variable
            uses ratio = 1 (plain AdamW-style step). None or [] adapts every variable.
        bias_correction: divide the moments by (1 − β^t) as in Adam.
        trust_ratio_bounds: None or (low, high): the ratio is clipped to [low, high] (a bound in the
            spirit of the paper's scaling function φ).
        name: name of the optimizer (prefix of its variables).
        **kwargs: Keras' own optimizer options (`global_clipnorm`, `clipnorm`, `clipvalue`,
            `gradient_accumulation_steps`, `loss_scale_factor`, `use_ema`, ...).

    Keras' `optimizer.exclude_from_weight_decay(var_list=..., var_names=...)` is honoured as well
    (when called before the optimizer is built), in addition to the regular expressions.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.0,
        exclude_from_weight_decay=None,
        exclude_from_layer_adaptation=None,
        bias_correction=True,
        trust_ratio_bounds=None,
        name="lamb",
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"lamb.LAMB needs the TensorFlow backend of Keras; the active backend is "
                f"'{keras.backend.backend()}' (set KERAS_BACKEND=tensorflow)."
            )
        weight_decay = 0.0 if weight_decay is None else weight_decay
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
        self.beta_1 = _check_decay_rate("beta_1", beta_1)
        self.beta_2 = _check_decay_rate("beta_2", beta_2)
        self.epsilon = _check_number("epsilon", epsilon, "a number > 0", lambda x: x > 0)
        self.weight_decay = _check_number("weight_decay", weight_decay, "a number >= 0", lambda x: x >= 0)
        self.bias_correction = _check_bool("bias_correction", bias_correction)
        self.trust_ratio_bounds = _check_bounds(trust_ratio_bounds)
        self._weight_decay_exclusions = _compile_patterns(
            "exclude_from_weight_decay", exclude_from_weight_decay
        )
        self._layer_adaptation_exclusions = _compile_patterns(
            "exclude_from_layer_adaptation", exclude_from_layer_adaptation
        )

    # ------------------------------------------------------------------ variables

    def build(self, var_list):
        """Creates every slot now (never lazily inside a replica context): m, v and the last trust ratio."""
        if self.built:
            return
        super().build(var_list)
        self._momentums = [self._add_float32_slot(variable, "momentum") for variable in var_list]
        self._velocities = [self._add_float32_slot(variable, "velocity") for variable in var_list]
        self._trust_ratios = [
            self.add_variable(shape=(), dtype="float32", name=f"{_slot_prefix(variable)}_trust_ratio")
            for variable in var_list
        ]
        # Static per-variable choices, fixed at build time: the update step holds no Python state.
        self._decays = tuple(self.applies_weight_decay(variable) for variable in var_list)
        self._adapts = tuple(self.applies_layer_adaptation(variable) for variable in var_list)
        self._trust_ratio_keys = tuple(_unique_keys([_path_of(variable) for variable in var_list]))

    def _add_float32_slot(self, variable, name):
        """A zero slot shaped like `variable`, colocated with it, always float32."""
        reference = variable.value if isinstance(variable, keras.Variable) else variable
        with tf.distribute.get_strategy().extended.colocate_vars_with(reference):
            return self.add_variable(
                shape=variable.shape,
                dtype="float32",
                name=f"{_slot_prefix(variable)}_{name}",
                layout=getattr(variable, "_layout", None),
            )

    def applies_weight_decay(self, variable):
        """True if `variable` gets the decoupled weight decay λ·w (λ > 0 and no exclusion matches)."""
        if self.weight_decay == 0 or _matches_any(self._weight_decay_exclusions, variable):
            return False
        return self._use_weight_decay(variable)  # Keras' exclude_from_weight_decay(var_list, var_names)

    def applies_layer_adaptation(self, variable):
        """True if `variable`'s step is scaled by the trust ratio (no exclusion matches)."""
        return not _matches_any(self._layer_adaptation_exclusions, variable)

    def _apply_weight_decay(self, variables):
        """Does nothing: Keras would decay w outside the trust ratio; LAMB decays inside `update_step`."""

    # ------------------------------------------------------------------ the update

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m_slot, v_slot = self._momentums[index], self._velocities[index]
        c1, c2 = self._bias_corrections()
        on_cpu = _is_on_cpu(variable)
        # The CPU-only speed tricks (see `_lamb_update`): chosen here, by the device of the variable.
        update = _compiled_lamb_update if on_cpu else _lamb_update
        # Tensors, not variables, go into the compiled function: a mirrored slot passed as a variable would
        # be read from its primary copy on every replica's device.
        m, v, ratio, w_new = update(
            tf.convert_to_tensor(gradient),  # densifies tf.IndexedSlices
            tf.convert_to_tensor(variable),
            tf.convert_to_tensor(m_slot.value),
            tf.convert_to_tensor(v_slot.value),
            tf.cast(learning_rate, tf.float32),
            c1,
            c2,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decay=self.weight_decay if self._decays[index] else 0.0,
            adapt=self._adapts[index],
            trust_ratio_bounds=self.trust_ratio_bounds,
            on_cpu=on_cpu,
        )
        self.assign(m_slot, m)
        self.assign(v_slot, v)
        self.assign(self._trust_ratios[index], ratio)
        self.assign(variable, tf.cast(w_new, variable.dtype))

    def _bias_corrections(self):
        """c1 = 1 / (1 − β1^t), c2 = 1 / (1 − β2^t); without bias correction c = 1 / (1 − 0^t) = 1."""
        t = tf.cast(self.iterations + 1, tf.float32)
        b1, b2 = (self.beta_1, self.beta_2) if self.bias_correction else (0.0, 0.0)
        return 1.0 / (1.0 - tf.pow(b1, t)), 1.0 / (1.0 - tf.pow(b2, t))

    # ------------------------------------------------------------------ telemetry and config

    def trust_ratios(self):
        """The trust ratios of the last update: {variable path: float32 scalar tensor}.

        The ratios are kept in one scalar variable per model variable (one scalar write per update), so
        reading them is optional. Works eagerly, inside tf.function and in cross-replica context after a
        distributed step. Values are 0 before the first update; {} before the optimizer is built.
        """
        if not self.built:
            return {}
        return {
            key: tf.convert_to_tensor(ratio.value)
            for key, ratio in zip(self._trust_ratio_keys, self._trust_ratios, strict=True)
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "exclude_from_weight_decay": [p.pattern for p in self._weight_decay_exclusions],
                "exclude_from_layer_adaptation": [p.pattern for p in self._layer_adaptation_exclusions],
                "bias_correction": self.bias_correction,
                "trust_ratio_bounds": None
                if self.trust_ratio_bounds is None
                else list(self.trust_ratio_bounds),
            }
        )
        return config


# ---------------------------------------------------------------------- helpers


def _lamb_update(
    g,
    w,
    m,
    v,
    learning_rate,
    c1,
    c2,
    *,
    beta_1,
    beta_2,
    epsilon,
    weight_decay,
    adapt,
    trust_ratio_bounds,
    on_cpu,
):
    """The update of one variable: (m, v, trust ratio, new w), all float32.

    On a CPU it runs compiled on its own (`_compiled_lamb_update`): it then reads g, w, m and v and writes
    m, v and w in a few fused loops whether or not the surrounding step is compiled (op by op, TensorFlow
    would write every intermediate to memory); XLA compiles it once per variable shape and setting, and
    inlines it into a step that is compiled whole. On GPUs and TPUs it is plain ops: an XLA function nested
    in the step's own XLA program is not what those devices should run, and XLA fuses the plain ops there.
    """
    g, w = tf.cast(g, tf.float32), tf.cast(w, tf.float32)
    b1, b2, eps, decay = beta_1, beta_2, epsilon, weight_decay  # λ = decay

    # Moments: m = β1·m + (1 − β1)·g,  v = β2·v + (1 − β2)·g²
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * tf.square(g)

    # Bias correction: m̂ = c1·m, v̂ = c2·v with c = 1 / (1 − β^t) (c = 1 without bias correction).
    # Adam ratio r = m̂ / (√v̂ + ε), plus decoupled weight decay: u = r + λ·w
    u = (c1 * m) / (tf.sqrt(c2 * v) + eps)
    if decay:
        u += decay * w

    # Trust ratio ρ = ‖w‖ / ‖u‖ (1 if either is 0), clipped to the bounds; 1 if excluded
    ratio = _trust_ratio(w, u, trust_ratio_bounds, on_cpu) if adapt else tf.constant(1.0)

    # Apply: w ← w − η·ρ·u. The same u, written with its scalars folded and √v̂ as √c2·√v: being a
    # different expression, XLA recomputes it in this pass instead of keeping u in memory between the
    # norm and the update (one write and one read of the variable's size fewer). c1 and c2 are inputs of
    # the computation, so XLA cannot fold them (nor tell the two expressions equal) even when they are 1.
    step = learning_rate * ratio  # η·ρ
    w_new = w - (step * c1) * m / (tf.sqrt(c2) * tf.sqrt(v) + eps)
    if decay:
        w_new -= (step * decay) * w
    return m, v, ratio, w_new


_compiled_lamb_update = tf.function(_lamb_update, jit_compile=True)


def _trust_ratio(w, u, bounds, on_cpu):
    w_squared_norm, u_squared_norm = _squared_norms(w, u, on_cpu)
    w_norm, u_norm = tf.sqrt(w_squared_norm), tf.sqrt(u_squared_norm)
    ratio = tf.where((w_norm > 0.0) & (u_norm > 0.0), w_norm / u_norm, 1.0)
    if bounds is not None:
        low, high = bounds
        ratio = tf.clip_by_value(ratio, low, high)
    return ratio


def _squared_norms(w, u, on_cpu):
    """(‖w‖², ‖u‖²) in one pass that reads w once, with u computed on the fly (never stored).

    XLA on CPU fuses elementwise producers into a matrix-vector product but not into a large reduction
    (which it rewrites into an unfused reduce-window), so there the squares are summed per row as x² · 1,
    with the rows of w and u interleaved: the row of w read for ‖w‖ is still in cache when the same row
    of u needs it. GPUs and TPUs fuse reductions well, and would run the product at reduced (TF32 /
    bfloat16) precision, so they sum directly.
    """
    if not on_cpu:
        return tf.reduce_sum(tf.square(w)), tf.reduce_sum(tf.square(u))
    columns = w.shape[-1] if w.shape.rank else 1
    pairs = tf.stack([tf.reshape(w, [-1, columns]), tf.reshape(u, [-1, columns])], axis=1)  # [R, 2, C]
    rows = tf.reshape(pairs, [-1, columns])  # [2R, C]: w row 0, u row 0, w row 1, u row 1, ...
    row_sums = tf.linalg.matvec(tf.square(rows), tf.ones([columns]))  # [2R]
    sums = tf.reduce_sum(tf.reshape(row_sums, [-1, 2]), axis=0)  # [2]: ‖w‖², ‖u‖²
    return sums[0], sums[1]


def _is_on_cpu(variable):
    return tf.DeviceSpec.from_string(variable.device or "").device_type == "CPU"


def _path_of(variable):
    """The full path of a Keras variable; the name of a plain tf.Variable."""
    return getattr(variable, "path", None) or variable.name


def _slot_prefix(variable):
    return _path_of(variable).replace("/", "_").replace(":", "_")


def _matches_any(patterns, variable):
    path = _path_of(variable)
    return any(pattern.search(path) for pattern in patterns)


def _unique_keys(paths):
    """Paths as dict keys; a repeated path gets a "#<index>" suffix so no ratio is hidden."""
    seen = set()
    keys = []
    for index, path in enumerate(paths):
        key = path if path not in seen else f"{path}#{index}"
        seen.add(path)
        keys.append(key)
    return keys


def _compile_patterns(argument, patterns):
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        raise ValueError(
            f"LAMB argument `{argument}` must be a list of regular expressions (or None); got the string "
            f"{patterns!r}. Write [{patterns!r}] for a single pattern."
        )
    if not isinstance(patterns, (list, tuple)):
        raise ValueError(
            f"LAMB argument `{argument}` must be a list of regular expressions (or None); got {patterns!r}."
        )
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"LAMB argument `{argument}`: {pattern!r} is not a string regular expression.")
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise ValueError(
                f"LAMB argument `{argument}`: {pattern!r} is not a valid regular expression ({error})."
            ) from None
    return tuple(compiled)


def _check_number(argument, value, expected, is_valid):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not is_valid(value):
        raise ValueError(f"LAMB argument `{argument}` must be {expected}; got {value!r}.")
    return float(value)


def _check_decay_rate(argument, value):
    return _check_number(argument, value, "a number in [0, 1)", lambda x: 0 <= x < 1)


def _check_bool(argument, value):
    if not isinstance(value, bool):
        raise ValueError(f"LAMB argument `{argument}` must be True or False; got {value!r}.")
    return value


def _check_bounds(bounds):
    if bounds is None:
        return None
    message = (
        "LAMB argument `trust_ratio_bounds` must be None or (low, high) with 0 <= low <= high; "
        f"got {bounds!r}."
    )
    if isinstance(bounds, str) or not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        raise ValueError(message)
    low, high = bounds
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(message)
    if not 0 <= low <= high:
        raise ValueError(message)
    return (float(low), float(high))
