"""Elementwise functions compiled by XLA into one loop forward and one loop backward, on CPUs.

TensorFlow runs a chain of elementwise ops one op at a time, each reading and writing a whole tensor. For
GELU on the [B*S, F] output of the intermediate projection (the largest activation of a layer) that is about
ten passes over memory forward and as many backward; `fused` makes it one loop each way, while the matmuls
around it stay TensorFlow's (oneDNN's on CPU, faster there than XLA's). The backward loop recomputes what it
needs from the forward input instead of keeping intermediate tensors. Inside a step compiled whole with XLA
on a CPU the kernel is simply inlined. Measured on a 2-core AVX-512 CPU (training step, seq 128,
interleaved timings): 8-10% more sequences/s in mixed_bfloat16 and 0-4% in float32 than TensorFlow's
op-by-op GELU.

This is a CPU-only speed trick, chosen in `fused` by the device the op runs on: on GPUs and TPUs the
function runs as plain ops, which the step's XLA program fuses itself (an XLA function nested inside the
step's XLA program is not what those devices should run).
"""

import functools

import tensorflow as tf


def fused(function):
    """`function(x) -> y` (elementwise, same shape) as one XLA computation, and its gradient as another.

    XLA compiles each kernel once per input shape and dtype. Off a CPU, `function` runs as it is.
    """
    forward = tf.function(function, jit_compile=True)

    @tf.function(jit_compile=True)
    def backward(output_gradient, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        return tape.gradient(y, x, output_gradients=output_gradient)

    @tf.custom_gradient
    def kernel(x):
        return forward(x), lambda output_gradient: backward(output_gradient, x)

    def call(x):
        x = tf.convert_to_tensor(x)
        return kernel(x) if runs_on_cpu(x) else function(x)

    return functools.update_wrapper(call, function)


def runs_on_cpu(x):
    """True when `x` is placed on a CPU, or unplaced in a process that sees no GPU and no TPU."""
    device_type = tf.DeviceSpec.from_string(x.device or "").device_type
    if device_type:
        return device_type == "CPU"
    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def wide(x):
    """x in float32, or as it is when it is float32 or float64 already."""
    return tf.cast(x, tf.float32) if x.dtype.size < 4 else x
