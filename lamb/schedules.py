"""Learning-rate schedule for large-batch training: linear warmup, then polynomial decay."""

import numbers

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lamb")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then polynomial decay to `end_learning_rate`.

    With step s (the optimizer's iteration count, 0 at the first update), W = warmup_steps,
    T = total_steps, η = peak_learning_rate, η_end = end_learning_rate, p = power:

        s < W:       η · s / W
        W <= s < T:  (η − η_end) · (1 − (s − W) / (T − W))^p + η_end
        s >= T:      η_end (held)

    The two pieces meet at s = W (the rate is η there: the schedule is continuous at the end of
    warmup). As in Google's BERT, the first update (s = 0) of a warmup uses rate 0. power=1.0 is the
    linear decay of Google's BERT; NVIDIA's LAMB recipe for BERT uses power=0.5.

    Example: WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10) gives 0 at step 0, 5e-4 at
    step 5, 1e-3 at step 10, 5e-4 at step 55 and 0 from step 100 on.

    The schedule is pure TensorFlow arithmetic on the step, so it works under tf.function and XLA
    (jit_compile=True), and it is serializable (get_config / from_config, `.keras` files).
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        power=1.0,
        end_learning_rate=0.0,
        name=None,
    ):
        super().__init__()
        self.peak_learning_rate = _check_real(
            "peak_learning_rate", peak_learning_rate, "a number >= 0", lambda x: x >= 0
        )
        self.total_steps = _check_integer("total_steps", total_steps, minimum=1)
        self.warmup_steps = _check_integer("warmup_steps", warmup_steps, minimum=0)
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                f"WarmupPolynomialDecay: warmup_steps ({self.warmup_steps}) must not exceed "
                f"total_steps ({self.total_steps})."
            )
        self.power = _check_real("power", power, "a number > 0", lambda x: x > 0)
        self.end_learning_rate = _check_real(
            "end_learning_rate", end_learning_rate, "a number >= 0", lambda x: x >= 0
        )
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "WarmupPolynomialDecay"):
            step = tf.cast(step, tf.float32)
            peak, end = self.peak_learning_rate, self.end_learning_rate
            warmup, total = float(self.warmup_steps), float(self.total_steps)

            warmup_rate = peak * step / max(warmup, 1.0)
            remaining = tf.clip_by_value((total - step) / max(total - warmup, 1.0), 0.0, 1.0)  # 1 − progress
            decay_rate = (peak - end) * tf.pow(remaining, self.power) + end
            rate = tf.where(step < total, decay_rate, end)
            return tf.where(step < warmup, warmup_rate, rate)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }


def _check_real(argument, value, expected, is_valid):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not is_valid(value):
        raise ValueError(f"WarmupPolynomialDecay: `{argument}` must be {expected}; got {value!r}.")
    return float(value)


def _check_integer(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"WarmupPolynomialDecay: `{argument}` must be an integer >= {minimum}; got {value!r}."
        )
    return int(value)
