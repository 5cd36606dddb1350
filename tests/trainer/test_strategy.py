"""Choosing the tf.distribute strategy from runtime.strategy, TF_CONFIG and the devices present."""

import json

import pytest
import tensorflow as tf

from trainer.errors import UserError
from trainer.strategy import is_chief, make_strategy, resolve_strategy_name, task_name


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
