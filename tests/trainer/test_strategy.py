"""Choosing the tf.distribute strategy from runtime.strategy, TF_CONFIG and the devices present."""

import json

import pytest
import tensorflow as tf

from trainer import strategy as strategy_module
from trainer.config import load_config
from trainer.errors import UserError
from trainer.strategy import (
    NoGpuError,
    check_cpu_allowed,
    communication_options,
    is_chief,
    make_strategy,
    resolve_strategy_name,
    strategy_for,
    task_name,
)


def set_tf_config(monkeypatch, num_workers, index=0):
    cluster = {"worker": [f"127.0.0.1:{20000 + i}" for i in range(num_workers)]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    )


def test_auto_is_one_device_on_a_host_without_gpus_or_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_strategy_name("auto") == "one_device"


def test_auto_is_multi_worker_when_tf_config_lists_several_tasks(monkeypatch):
    set_tf_config(monkeypatch, 2)
    assert resolve_strategy_name("auto") == "multi_worker"
    set_tf_config(monkeypatch, 1)
    assert resolve_strategy_name("auto") == "one_device"


def test_auto_is_tpu_when_a_tpu_is_named(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_strategy_name("auto", tpu="my-tpu") == "tpu"
    assert resolve_strategy_name("mirrored", tpu="my-tpu") == "mirrored"


def test_one_device_uses_the_cpu_without_gpus():
    strategy = make_strategy("one_device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.extended.worker_devices[0].endswith("CPU:0")
    assert is_chief(strategy) and task_name(strategy) == "chief"


def test_asking_for_more_gpus_than_the_host_has_is_a_user_error():
    with pytest.raises(UserError, match=r"runtime.num_gpus is 2 but this host has 0 GPU\(s\)"):
        make_strategy("mirrored", num_gpus=2)


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="strategy multi_worker needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")


def test_a_malformed_tf_config_is_a_user_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster: oops")
    with pytest.raises(UserError, match="TF_CONFIG: not valid JSON"):
        resolve_strategy_name("auto")


# runtime.all_reduce: the collectives of MultiWorkerMirroredStrategy

NCCL = tf.distribute.experimental.CommunicationImplementation.NCCL
RING = tf.distribute.experimental.CommunicationImplementation.RING


@pytest.mark.parametrize(
    ("all_reduce", "has_gpus", "expected"),
    [("auto", True, NCCL), ("auto", False, RING), ("nccl", True, NCCL), ("ring", True, RING)],
)
def test_the_collective_implementation_follows_all_reduce_and_the_gpus(all_reduce, has_gpus, expected):
    name, options = communication_options(all_reduce, has_gpus)
    assert options.implementation == expected and name == expected.name.lower()


def test_nccl_without_gpus_is_refused():
    with pytest.raises(UserError, match="runtime.all_reduce: nccl needs GPUs and this host has none"):
        communication_options("nccl", has_gpus=False)


def test_multi_worker_is_built_with_nccl_when_the_host_lists_gpus(monkeypatch):
    set_tf_config(monkeypatch, 2)
    fake_gpus = [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: fake_gpus if kind == "GPU" else []
    )
    built = {}

    class RecordingStrategy:
        def __init__(self, communication_options=None):
            built["options"] = communication_options

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", RecordingStrategy)
    strategy_module._multi_worker_strategy("auto")
    assert built["options"].implementation == NCCL


# The CPU of a CUDA build, mixed_float16 on a CPU, runtime.num_replicas


def test_a_cuda_build_without_gpus_refuses_a_large_model_unless_allowed():
    with pytest.raises(
        NoGpuError, match=r"built with CUDA but sees no GPU, and a 336,226,108-parameter model"
    ):
        check_cpu_allowed(None, 336_226_108, built_with_cuda=True)
    with pytest.raises(NoGpuError, match=r"\(runtime.allow_cpu is false\)"):
        check_cpu_allowed(False, 4_000_000, built_with_cuda=True)
    check_cpu_allowed(None, 4_000_000, built_with_cuda=True)  # BERT-tiny: the demo and the tests
    check_cpu_allowed(True, 336_226_108, built_with_cuda=True)  # asked for
    check_cpu_allowed(None, 336_226_108, built_with_cuda=False)  # a CPU build: the CPU is what there is


def test_strategy_for_refuses_bert_large_on_a_cuda_build_without_gpus(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    config = load_config("phase1.yaml", ["runtime.strategy=one_device"])
    with pytest.raises(NoGpuError):
        strategy_for(config)
    tiny = load_config("phase1.yaml", ["runtime.strategy=one_device", "model.bert_config=tiny"])
    assert strategy_for(tiny).num_replicas_in_sync == 1


def test_mixed_float16_on_a_cpu_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = load_config(
        "demo.yaml", ["runtime.mixed_precision=mixed_float16", "runtime.strategy=one_device"]
    )
    with pytest.raises(UserError, match="runtime.mixed_precision: mixed_float16 on a CPU is emulated"):
        strategy_for(config)


def test_a_strategy_with_another_replica_count_than_the_config_plans_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = load_config("demo.yaml", ["runtime.num_replicas=8", "train.micro_batch_size=4"])
    with pytest.raises(
        UserError, match=r"runtime.num_replicas: the config plans for 8 replicas, but the strategy"
    ):
        strategy_for(config)
    assert strategy_for(config, local=True).num_replicas_in_sync == 1  # evaluation and export do not check
