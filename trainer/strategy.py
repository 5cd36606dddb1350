"""The tf.distribute strategy of a run (runtime.strategy, or --strategy / --tpu / --num_gpus).

one_device    one GPU, or the CPU when there is none
mirrored      the GPUs of one host (all, or runtime.num_gpus of them)
multi_worker  MultiWorkerMirroredStrategy over the hosts listed in the TF_CONFIG environment variable
tpu           TPUStrategy on the Cloud TPU named by runtime.tpu (TPUClusterResolver)
auto          multi_worker when TF_CONFIG lists several tasks, tpu when a TPU is named, mirrored
              when the host has several GPUs, else one_device

`strategy_for(config)` makes the strategy of a run and checks the hardware against the config first:

- multi_worker's collectives follow runtime.all_reduce: NCCL when the host has GPUs (auto) or when asked,
  else ring (MultiWorkerMirroredStrategy's own AUTO does not pick NCCL). MirroredStrategy (one host) uses
  NCCL on GPUs by itself.
- A TensorFlow built with CUDA that sees no GPU (a container started without its GPUs, a driver that does
  not load) would train on the CPU without a word. A run refuses that (NoGpuError; run_pretraining.py then
  shows TensorFlow's CUDA messages) unless runtime.allow_cpu is true, or null and the model has at most
  CPU_PARAMETER_LIMIT parameters (BERT-tiny to -medium: the demo, the tests, trying the tool on a laptop).
- mixed_float16 on a CPU is emulated, hundreds of times slower than float32 (a BERT-tiny training step,
  scripts/benchmarks/bench_cpu_float16.py): refused.
- runtime.num_replicas, when the config states it (a hardware overlay does), must be what the strategy
  found: the batch plan of --mode=plan was made for it.
"""

import json
import os
import subprocess
import sys

import tensorflow as tf
from absl import logging

from trainer.errors import UserError
from trainer.memory import parameter_count
from trainer.model import load_bert_config

CPU_PARAMETER_LIMIT = 50_000_000

_COLLECTIVES = {
    "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    "ring": tf.distribute.experimental.CommunicationImplementation.RING,
}


class NoGpuError(UserError):
    """TensorFlow is built with CUDA but sees no GPU, and the config does not allow the CPU."""


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


def strategy_for(config, local=False):
    """The strategy of a run of `config`, after the checks of the module docstring. `local` (evaluation,
    export): a multi-worker run's strategy becomes the GPUs of this host (mirrored), since the other
    workers are not there to join its collectives; runtime.num_replicas is then not checked."""
    runtime = config.runtime
    name = resolve_strategy_name(runtime.strategy, runtime.tpu)
    if local and name == "multi_worker":
        name = "mirrored"
    if name != "tpu":
        gpus = tf.config.list_physical_devices("GPU")  # physical devices: the runtime is not started yet
        on_cpu = not gpus or runtime.num_gpus == 0
        check_precision(runtime.mixed_precision, on_cpu)
        if not gpus:
            parameters = parameter_count(load_bert_config(config.model))
            check_cpu_allowed(runtime.allow_cpu, parameters, tf.test.is_built_with_cuda())
    strategy = make_strategy(name, runtime.tpu, runtime.num_gpus, runtime.all_reduce)
    if not local:
        check_replicas(runtime.num_replicas, strategy)
    return strategy


def check_precision(mixed_precision, on_cpu):
    if mixed_precision == "mixed_float16" and on_cpu:
        raise UserError(
            "runtime.mixed_precision: mixed_float16 on a CPU is emulated, hundreds of times slower than "
            "float32; use float32, or mixed_bfloat16 on a CPU with AMX"
        )


def check_cpu_allowed(allow_cpu, parameters, built_with_cuda):
    """Refuses a run on the CPU of a CUDA build (no GPU visible) unless runtime.allow_cpu allows it."""
    if not built_with_cuda or allow_cpu:
        return
    if allow_cpu is None and parameters <= CPU_PARAMETER_LIMIT:
        logging.info(
            "TensorFlow is built with CUDA but sees no GPU: training this %d-parameter model on the CPU "
            "(runtime.allow_cpu null allows models of at most %d)",
            parameters,
            CPU_PARAMETER_LIMIT,
        )
        return
    why = "runtime.allow_cpu is false" if allow_cpu is False else f"more than {CPU_PARAMETER_LIMIT:,}"
    raise NoGpuError(
        f"TensorFlow is built with CUDA but sees no GPU, and a {parameters:,}-parameter model would train on "
        f"the CPU ({why}); check that the GPUs are visible (docker run --gpus all, CUDA_VISIBLE_DEVICES, "
        "nvidia-smi) or set runtime.allow_cpu: true"
    )


def show_cuda_diagnostics():
    """Writes TensorFlow's messages about CUDA (why no GPU was found) to stderr: the quiet start-up of
    run_pretraining.py hid them. A fresh process, because TensorFlow looks for GPUs only once."""
    probe = "import tensorflow as tf; tf.config.list_physical_devices('GPU')"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    subprocess.run([sys.executable, "-c", probe], env=environment, stdout=subprocess.DEVNULL, check=False)


def check_replicas(num_replicas, strategy):
    found = strategy.num_replicas_in_sync
    if num_replicas is not None and num_replicas != found:
        raise UserError(
            f"runtime.num_replicas: the config plans for {num_replicas} replicas, but the strategy found "
            f"{found}; use the hardware overlay of this machine, or --set runtime.num_replicas={found} "
            "(and check the plan: --mode=plan)"
        )


def communication_options(all_reduce, has_gpus):
    """(implementation name, tf.distribute.experimental.CommunicationOptions) for runtime.all_reduce."""
    if all_reduce == "auto":
        all_reduce = "nccl" if has_gpus else "ring"
    if all_reduce == "nccl" and not has_gpus:
        raise UserError("runtime.all_reduce: nccl needs GPUs and this host has none; use ring or auto")
    if all_reduce not in _COLLECTIVES:
        raise UserError(f"runtime.all_reduce: expected auto, nccl or ring, got {all_reduce!r}")
    return all_reduce, tf.distribute.experimental.CommunicationOptions(
        implementation=_COLLECTIVES[all_reduce]
    )


def make_strategy(name="auto", tpu=None, num_gpus=None, all_reduce="auto"):
    """Creates the strategy `name` (see the module docstring). Call it before any other TensorFlow work:
    multi_worker and tpu must configure the runtime before it starts (even listing devices starts it)."""
    name = resolve_strategy_name(name, tpu)
    if num_gpus is not None and name not in ("mirrored", "one_device"):
        raise UserError(f"runtime.num_gpus is for strategies mirrored and one_device, not {name}")
    if name == "multi_worker":
        strategy = _multi_worker_strategy(all_reduce)
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


def _multi_worker_strategy(all_reduce):
    config = tf_config()
    if not config.get("cluster"):
        raise UserError(
            "strategy multi_worker needs the TF_CONFIG environment variable describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    task = config.get("task", {})
    if task.get("type") not in ("chief", "worker") or not isinstance(task.get("index"), int):
        raise UserError('TF_CONFIG: "task" must be {"type": "chief" or "worker", "index": <int>}')
    implementation, options = communication_options(all_reduce, bool(tf.config.list_physical_devices("GPU")))
    logging.info("multi_worker collectives: %s (runtime.all_reduce %s)", implementation, all_reduce)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


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
