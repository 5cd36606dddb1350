"""The tf.distribute strategy of a run (runtime.strategy, or --strategy / --tpu / --num_gpus).

one_device    one GPU, or the CPU when there is none
mirrored      the GPUs of one host (all, or runtime.num_gpus of them)
multi_worker  MultiWorkerMirroredStrategy over the hosts listed in the TF_CONFIG environment variable
tpu           TPUStrategy on the Cloud TPU named by runtime.tpu (TPUClusterResolver)
auto          multi_worker when TF_CONFIG lists several tasks, tpu when a TPU is named, mirrored
              when the host has several GPUs, else one_device
"""

import json
import os

import tensorflow as tf
from absl import logging

from trainer.errors import UserError


def tf_config():
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG: not valid JSON ({e})") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster", {}), dict):
        raise UserError('TF_CONFIG: expected {"cluster": {"worker": [...]}, "task": {...}}')
    return value


def cluster_size():
    """Number of training tasks (chief + workers) listed in TF_CONFIG; 0 without TF_CONFIG."""
    cluster = tf_config().get("cluster", {})
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))


def resolve_strategy_name(name, tpu=None):
    if name != "auto":
        return name
    if tpu:
        return "tpu"
    if cluster_size() > 1:
        return "multi_worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def make_strategy(name="auto", tpu=None, num_gpus=None):
    """Creates the strategy `name` (see the module docstring). Call it before any other TensorFlow work:
    multi_worker and tpu must configure the runtime before it starts (even listing devices starts it)."""
    name = resolve_strategy_name(name, tpu)
    if num_gpus is not None and name not in ("mirrored", "one_device"):
        raise UserError(f"runtime.num_gpus is for strategies mirrored and one_device, not {name}")
    if name == "multi_worker":
        strategy = _multi_worker_strategy()
    elif name == "tpu":
        strategy = _tpu_strategy(tpu)
    elif name in ("one_device", "mirrored"):
        strategy = _local_strategy(name, num_gpus)
    else:
        raise UserError(f"runtime.strategy: unknown strategy {name!r}")
    logging.info(
        "strategy %s: %d replica(s) in sync, local devices %s",
        name,
        strategy.num_replicas_in_sync,
        ", ".join(strategy.extended.worker_devices),
    )
    return strategy


def _local_strategy(name, num_gpus):
    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if num_gpus is not None and num_gpus > len(gpus):
        raise UserError(f"runtime.num_gpus is {num_gpus} but this host has {len(gpus)} GPU(s)")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus and num_gpus != 0 else "/cpu:0")
    devices = gpus if num_gpus is None else gpus[:num_gpus]
    return tf.distribute.MirroredStrategy(devices or ["/cpu:0"])


def _multi_worker_strategy():
    config = tf_config()
    if not config.get("cluster"):
        raise UserError(
            "strategy multi_worker needs the TF_CONFIG environment variable describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    task = config.get("task", {})
    if task.get("type") not in ("chief", "worker") or not isinstance(task.get("index"), int):
        raise UserError('TF_CONFIG: "task" must be {"type": "chief" or "worker", "index": <int>}')
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as e:
        raise UserError(f"runtime.tpu: cannot reach TPU {tpu or '(local)'!r}: {e}") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True in the task that writes logs, summaries, the config and the export (one per cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    if resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_name(strategy):
    """A name for this task's own files ("worker-1"); "chief" outside multi-worker runs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return "chief"
    return f"{resolver.task_type}-{resolver.task_id}"
