"""Session-wide test set-up.

TensorFlow fixes its device list the first time it is used, so the logical CPU devices that the
distribution tests need (MirroredStrategy over 2-4 replicas) are created here, before any test runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 4


def _split_cpu_into_logical_devices(count):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


_split_cpu_into_logical_devices(NUM_LOGICAL_CPUS)

# In-process MirroredStrategy tests pass `cross_device_ops=tf.distribute.ReductionToOneDevice()`: CPU
# collective ops number their groups from the same start in every strategy of a process, so two default
# (collective) strategies of different sizes in one pytest session can collide. The default collective path
# is covered by the two-process MultiWorkerMirroredStrategy tests, where each process holds one strategy.
