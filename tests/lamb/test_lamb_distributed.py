"""Under MirroredStrategy and MultiWorkerMirroredStrategy, LAMB trains exactly like one device on the same
global batch (including sparse embedding gradients), and its trust ratios are readable afterwards."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from lamb_distributed_setup import make_model, make_optimizer, train

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def single_device_result():
    return train(tf.distribute.get_strategy())


def assert_same_training(result, expected):
    weights, ratios = result
    expected_weights, expected_ratios = expected
    assert sorted(weights) == sorted(expected_weights)
    for path, value in expected_weights.items():
        np.testing.assert_allclose(weights[path], value, rtol=1e-5, atol=1e-6, err_msg=path)
    assert ratios == pytest.approx(expected_ratios, rel=1e-5)


def test_single_device_run_trains_and_adapts(single_device_result):
    weights, ratios = single_device_result
    initial = {v.path: v.numpy() for v in make_model().trainable_variables}
    assert all(not np.allclose(weights[path], initial[path]) for path in initial)
    assert ratios["LayerNorm/gamma"] == 1.0  # excluded from layer adaptation
    assert ratios["word_embeddings/embeddings"] != 1.0


def mirrored(replicas):
    """MirroredStrategy over `replicas` logical CPUs, reducing through one device.

    On CPUs MirroredStrategy defaults to collective ops whose group and instance keys restart from the
    same numbers in every strategy of a process, so two of them in one test session (these tests and
    other packages') can collide. The collective path is exercised by the two-process MultiWorker test.
    """
    devices = [f"/cpu:{i}" for i in range(replicas)]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.mark.parametrize("replicas", [2, 4])
def test_mirrored_strategy_matches_one_device(replicas, single_device_result):
    assert_same_training(train(mirrored(replicas)), single_device_result)


def test_model_fit_under_mirrored_strategy_matches_one_device():
    rng = np.random.default_rng(13)
    ids = rng.integers(0, 20, size=(32, 3)).astype("int32")
    targets = rng.normal(size=(32, 1)).astype("float32")

    def fit(strategy):
        with strategy.scope():
            model = make_model()
            model.compile(optimizer=make_optimizer(), loss="mse")
        model.fit(ids, targets, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return [v.numpy() for v in model.trainable_variables]

    for a, b in zip(fit(mirrored(2)), fit(tf.distribute.get_strategy()), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_with_two_processes_matches_one_device(tmp_path, single_device_result):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        command = [sys.executable, str(HERE / "lamb_multi_worker.py"), str(tmp_path / f"worker{index}.npz")]
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        outputs = [process.communicate(timeout=240) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for index, (process, (_, stderr)) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"worker {index} failed:\n{stderr[-3000:]}"

    for index in range(2):
        with np.load(tmp_path / f"worker{index}.npz") as result:
            assert int(result["replicas"]) == 2
            weights = {
                key[len("weight:") :]: result[key] for key in result.files if key.startswith("weight:")
            }
            ratios = {
                key[len("ratio:") :]: float(result[key]) for key in result.files if key.startswith("ratio:")
            }
        assert_same_training((weights, ratios), single_device_result)


def test_trust_ratios_are_readable_in_cross_replica_context():
    strategy = mirrored(2)
    with strategy.scope():
        variable = keras.Variable(np.full((2, 2), 3.0, np.float32), name="kernel")
        optimizer = make_optimizer()
        optimizer.build([variable])

    @tf.function
    def step():
        strategy.run(lambda: optimizer.apply_gradients([(tf.ones((2, 2)), variable)]))

    step()
    with strategy.scope():
        assert tf.distribute.in_cross_replica_context()
        ratios = optimizer.trust_ratios()
    assert list(ratios) == ["kernel"]
    # The gradient is summed over the two replicas: g = 2, so m̂ = 2, v̂ = 4, u = 2 / (2 + ε) + 0.01·3 ≈ 1.03.
    assert float(ratios["kernel"]) == pytest.approx(6.0 / np.linalg.norm(np.full(4, 1.03)), rel=1e-5)
