"""The one use of Keras' private API: a Keras version that changed it fails here, saying what to check."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.keras_private import PRIVATE_METHOD, use_reduced_gradients

CHANGED = (
    f"keras {keras.__version__} changed {PRIVATE_METHOD} of keras/src/backend/tensorflow/optimizer.py: "
    "adapt trainer/keras_private.py (the train step all-reduces gradients itself, before clipping)"
)


def test_keras_optimizers_still_reduce_gradients_in_the_private_method():
    for optimizer in (keras.optimizers.SGD(), keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())):
        assert callable(getattr(optimizer, PRIVATE_METHOD, None)), CHANGED


def test_with_the_adapter_apply_uses_the_gradients_as_given_on_every_replica():
    # Two replicas each apply gradient 1 with SGD(1): Keras alone would sum them (w = 1 - 2); with the
    # adapter each replica's already reduced gradient is applied as it is (w = 1 - 1).
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    results = {}
    for adapted in (False, True):
        with strategy.scope():
            variable = keras.Variable(np.ones([2], np.float32))
            optimizer = keras.optimizers.SGD(1.0)
            optimizer.build([variable])
        if adapted:
            use_reduced_gradients(optimizer)

        apply_ones(strategy, optimizer, variable)
        results[adapted] = variable.numpy()
    np.testing.assert_array_equal(results[False], [-1.0, -1.0], err_msg=CHANGED)
    np.testing.assert_array_equal(results[True], [0.0, 0.0], err_msg=CHANGED)


def apply_ones(strategy, optimizer, variable):
    """Every replica applies the gradient 1 to `variable`."""

    @tf.function
    def step():
        strategy.run(lambda: optimizer.apply([tf.ones([2])], [variable]))

    step()


def test_an_optimizer_without_the_method_is_refused_with_the_file_to_check():
    class Changed:
        inner_optimizer = None

    with pytest.raises(TypeError, match="keras/src/backend/tensorflow/optimizer.py"):
        use_reduced_gradients(Changed())
