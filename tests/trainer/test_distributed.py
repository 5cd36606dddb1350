"""Whole runs under tf.distribute: the result does not depend on how the global batch is split.

1 device x 4 accumulation steps, 4 logical-CPU replicas x 1 step and 2 replicas x 2 steps train on the same
global batches (consecutive sequences of one input pipeline) and must end with the same weights (float32
summation order differs, hence the tolerance). A two-process MultiWorkerMirroredStrategy run on loopback
trains, checkpoints and exports through run_pretraining.py, and stops and resumes on a preemption notice.
"""

import json
import os
import pathlib
import re
import signal
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


MULTI_WORKER_STEPS = 24


def launch_workers(config, log_dir, name):
    """Starts two run_pretraining.py worker processes on loopback; worker 0's stderr is a pipe, worker 1's
    goes to a file."""
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
            "--set=train.log_every_steps=1",
            "--set=train.checkpoint_every_steps=4",
            "--set=train.keep_checkpoints=2",
        ]
        stderr = subprocess.PIPE if index == 0 else open(log_dir / f"{name}-worker-1.log", "w")  # noqa: SIM115
        workers.append(subprocess.Popen(command, env=env, cwd=ROOT, stderr=stderr, text=True))
    return workers


def wait_for_workers(workers, log_dir, name, signal_at_step=None):
    """Waits for both workers; sends SIGTERM to worker 1 once worker 0 logged `signal_at_step`. Returns
    their (return code, log)."""
    lines = []
    try:
        for line in workers[0].stderr:
            lines.append(line)
            if signal_at_step and f" step {signal_at_step}/{MULTI_WORKER_STEPS} " in line:
                workers[1].send_signal(signal.SIGTERM)
                break
        lines.append(workers[0].communicate(timeout=300)[1])
        workers[1].wait(timeout=300)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    worker_1_log = (log_dir / f"{name}-worker-1.log").read_text()
    return [(workers[0].returncode, "".join(lines)), (workers[1].returncode, worker_1_log)]


def test_two_worker_processes_train_and_stop_together_on_a_preemption_notice(data_dir):
    """MultiWorkerMirroredStrategy: worker 1 gets SIGTERM; TensorFlow's PreemptionCheckpointHandler makes
    both workers save at the same step and stop; started again, both resume there and finish."""
    model_dir = data_dir / "multi_worker"
    config = tiny_config_yaml(data_dir, model_dir=str(model_dir), total_steps=MULTI_WORKER_STEPS)
    preempted = wait_for_workers(
        launch_workers(config, data_dir, "first"), data_dir, "first", signal_at_step=3
    )
    for returncode, log in preempted:
        assert returncode == 143, log[-3000:]
    stopped_at = {
        int(step) for _, log in preempted for step in re.findall(r"preempted \(SIGTERM\) at step (\d+)", log)
    }
    assert len(stopped_at) == 1, "both workers stop at the same step"
    (stop_step,) = stopped_at
    assert 3 <= stop_step < MULTI_WORKER_STEPS
    assert tf.train.latest_checkpoint(str(model_dir)) == str(model_dir / f"ckpt-{stop_step}")

    finished = wait_for_workers(launch_workers(config, data_dir, "second"), data_dir, "second")
    for returncode, log in finished:
        assert returncode == 0, log[-3000:]
        assert re.search(
            rf"resumed from \S+ckpt-{stop_step} at step {stop_step}, with the data position", log
        )
    chief_log = finished[0][1]
    assert "2 replica(s) in sync" in chief_log
    assert "global batch 16 = micro-batch 4 x 2 replica(s) x 2 accumulation step(s)" in chief_log
    # Both workers log the same global numbers for the last step.
    last = [
        re.findall(rf"step {MULTI_WORKER_STEPS}/{MULTI_WORKER_STEPS} .* grad_norm \S+", log)
        for _, log in finished
    ]
    assert len(last[0]) == 1 and last[0] == last[1]
    # The chief wrote the checkpoints (the 2 newest kept) and the export; each worker its input position.
    state = tf.train.get_checkpoint_state(str(model_dir))
    assert list(state.all_model_checkpoint_paths) == [
        str(model_dir / f"ckpt-{MULTI_WORKER_STEPS - 4}"),
        str(model_dir / f"ckpt-{MULTI_WORKER_STEPS}"),
    ]
    assert (model_dir / "export" / "bert_model.ckpt.index").exists()
    assert sorted(os.listdir(model_dir / "data")) == ["worker-0", "worker-1"]
    assert not [name for name in os.listdir(model_dir) if name.startswith(".scratch")]
