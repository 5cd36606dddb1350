"""The activation functions a `bert_config.json` can name in `hidden_act`.

The two GELUs are fused kernels (bert/kernels.py): one XLA loop forward, one backward, computed in float32
(float64 stays float64) and returned in the input's dtype.
"""

import tensorflow as tf

from bert import kernels


@kernels.fused
def gelu(x):
    """Google's BERT GELU, the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return tf.cast(tf.nn.gelu(kernels.wide(x), approximate=True), x.dtype)


@kernels.fused
def gelu_exact(x):
    """The exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    return tf.cast(tf.nn.gelu(kernels.wide(x), approximate=False), x.dtype)


def linear(x):
    return x


ACTIVATIONS = {
    "gelu": gelu,
    "gelu_exact": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": linear,
}
