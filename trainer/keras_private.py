"""The one place that touches Keras' private API: turning off the gradient all-reduce inside `apply()`.

Keras 3's TensorFlow optimizer sums the gradients across replicas inside `apply()` (the method
`_all_reduce_sum_gradients` of keras/src/backend/tensorflow/optimizer.py). The train step reduces them itself,
before clipping (trainer/step.py), so that reduction is replaced by the identity on the step's optimizer.
A Keras version without the method refuses here, with the file to read, instead of reducing twice.
"""

PRIVATE_METHOD = "_all_reduce_sum_gradients"


def use_reduced_gradients(optimizer):
    """Makes `optimizer.apply()` use the given gradients as they are (they are already summed over the
    replicas), on the optimizer and on the one it wraps (a LossScaleOptimizer's inner optimizer)."""
    for target in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if target is None:
            continue
        if not callable(getattr(target, PRIVATE_METHOD, None)):
            raise TypeError(
                f"{type(target).__name__} has no method {PRIVATE_METHOD}: this Keras version reduces "
                "gradients differently; check keras/src/backend/tensorflow/optimizer.py before training"
            )
        if target.global_clipnorm or target.clipnorm or target.clipvalue:
            raise ValueError("clip in the train step (after the all-reduce), not in the Keras optimizer")
        setattr(target, PRIVATE_METHOD, _already_reduced)
    return optimizer


def _already_reduced(grads_and_vars):
    return list(grads_and_vars)
