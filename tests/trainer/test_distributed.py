"""Whole runs under tf.distribute: the result does not depend on how the global batch is split.

1 device x 4 accumulation steps, 4 logical-CPU replicas x 1 step and 2 replicas x 2 steps train on the same
global batches (consecutive sequences of one input pipeline) and must end with the same weights (float32
summation order differs, hence the tolerance). A two-process MultiWorkerMirroredStrategy run on loopback
trains, checkpoints and exports through run_pretraining.py.
"""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import tiny_config_yaml

import trainer

ROOT = pathlib.Path(__file__).resolve().parents[2]


def mirrored(num_devices):
    # ReductionToOneDevice: CPU collectives of strategies of different sizes in one process would share keys.
    devices = [f"/cpu:{i}" for i in range(num_devices)]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def final_weights(result):
    reader = tf.train.load_checkpoint(os.path.join(result.export_dir, "bert_model.ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("distributed")


def run(data_dir, name, strategy, micro_batch_size):
    path = tiny_config_yaml(
        data_dir,
        model_dir=str(data_dir / name),
        micro_batch_size=micro_batch_size,
        total_steps=3,
        dropout=0.0,
    )
    return trainer.train(trainer.load_config(path, ["train.log_every_steps=1"]), strategy=strategy)


def test_replicas_and_accumulation_steps_give_the_same_training(data_dir):
    one_device = run(data_dir, "one_device", tf.distribute.OneDeviceStrategy("/cpu:0"), micro_batch_size=4)
    four_replicas = run(data_dir, "mirrored4", mirrored(4), micro_batch_size=4)
    two_replicas = run(data_dir, "mirrored2", mirrored(2), micro_batch_size=4)
    reference = final_weights(one_device)
    for result in (four_replicas, two_replicas):
        weights = final_weights(result)
        for name, value in reference.items():
            np.testing.assert_allclose(weights[name], value, rtol=0, atol=1e-5, err_msg=name)
        assert result.metrics["loss"] == pytest.approx(one_device.metrics["loss"], rel=1e-5)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_worker_processes_train_with_multi_worker_mirrored_strategy(data_dir):
    model_dir = data_dir / "multi_worker"
    config = tiny_config_yaml(data_dir, model_dir=str(model_dir), micro_batch_size=4, total_steps=8)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        command = [
            sys.executable,
            str(ROOT / "run_pretraining.py"),
            f"--config={config}",
            "--strategy=multi_worker",
            "--set=train.checkpoint_every_steps=2",
            "--set=train.keep_checkpoints=2",
        ]
        workers.append(subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=240)[1])
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
    chief_log = outputs[0]
    assert "2 replica(s) in sync" in chief_log
    assert "global batch 16 = micro-batch 4 x 2 replica(s) x 2 accumulation step(s)" in chief_log
    # Both workers log the same global numbers for the last step.
    last_step = [re.findall(r"step 8/8 .* grad_norm \S+", output) for output in outputs]
    assert len(last_step[0]) == 1 and last_step[0] == last_step[1]
    # The chief wrote the checkpoints (the 2 newest kept) and the export; each worker its input position.
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert list(state.all_model_checkpoint_paths) == [str(model_dir / "ckpt-6"), str(model_dir / "ckpt-8")]
    assert (model_dir / "export" / "bert_model.ckpt.index").exists()
    assert sorted(os.listdir(model_dir / "data")) == ["worker-0", "worker-1"]
    assert not [name for name in os.listdir(model_dir) if name.startswith(".scratch")]
