"""The activation functions a `bert_config.json` can name in `hidden_act`."""

import tensorflow as tf


def gelu(x):
    """Google's BERT GELU, the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    tf.nn.gelu(approximate=True) is this formula term for term; using the op (rather than spelling it out)
    lets TF's graph optimiser fuse it with the preceding matmul + bias.
    """
    return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
    """The exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    return tf.nn.gelu(x, approximate=False)


def linear(x):
    return x


ACTIVATIONS = {
    "gelu": gelu,
    "gelu_exact": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": linear,
}
