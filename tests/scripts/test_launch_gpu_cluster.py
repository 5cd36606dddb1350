"""scripts/launch/launch_gpu_cluster.py: one TF_CONFIG per node, phase 1 on every node, then phase 2."""

import json
import os
import shlex
import subprocess
import sys
import time

import pytest
from launch_dry_run import (
    ROOT,
    SCRIPTS,
    assert_one_line_error,
    load_with_the_trainer,
    parse_plan,
    pretraining_call,
    run,
)

SCRIPT = "launch_gpu_cluster.py"
HOSTS = "gpu-a,gpu-b:2300,gpu-c"
WORKERS = ["gpu-a:23456", "gpu-b:2300", "gpu-c:23456"]  # --port 23456 where a host names no port
DATA = ["--phase1_data=/shared/data/seq128/*.tfrecord", "--phase2_data=/shared/data/seq512/*.tfrecord"]


def dry_run(*args):
    result = run(SCRIPT, *args, "--dry_run")
    assert result.returncode == 0, result.stderr
    return parse_plan(result.stdout)


def ssh_plan(*extra):
    return dry_run(
        f"--hosts={HOSTS}", "--model_dir=/shared/runs/bert", "--workdir=/shared/bert-lamb", *DATA, *extra
    )


def remote_words(argv):
    """`ssh host 'env -C dir ...'` -> (host, the remote command's words)."""
    assert argv[0] == "ssh" and len(argv) == 3, argv
    return argv[1], shlex.split(argv[2])


def test_phase_1_runs_on_every_node_then_phase_2():
    stages = ssh_plan()
    assert [len(stage.commands) for stage in stages] == [3, 3]
    assert stages[0].description.startswith("phase1") and stages[1].description.startswith("phase2")
    for stage, config in zip(stages, ["phase1.yaml", "phase2.yaml"], strict=True):
        for argv in stage.commands:
            assert pretraining_call(remote_words(argv)[1]).config == config


def test_every_node_gets_the_same_cluster_and_its_own_task_index():
    for stage in ssh_plan():
        indices = []
        for argv in stage.commands:
            host, words = remote_words(argv)
            assert words[:3] == ["env", "-C", "/shared/bert-lamb"]  # in the checkout
            call = pretraining_call(words)
            tf_config = json.loads(call.environment["TF_CONFIG"])
            assert tf_config["cluster"] == {"worker": WORKERS}
            assert tf_config["task"]["type"] == "worker"
            index = tf_config["task"]["index"]
            assert WORKERS[index].split(":")[0] == host  # the command for node K goes to host K
            indices.append(index)
        assert indices == [0, 1, 2]


def test_flags_of_the_two_phases():
    phase1, phase2 = (
        pretraining_call(remote_words(stage.commands[0])[1]) for stage in ssh_plan("--set=train.seed=7")
    )
    assert phase1.strategy == phase2.strategy == "multi_worker"
    assert (phase1.model_dir, phase2.model_dir) == ("/shared/runs/bert/phase1", "/shared/runs/bert/phase2")
    assert phase1.sets == ["data.train_files=/shared/data/seq128/*.tfrecord", "train.seed=7"]
    assert phase2.sets == [
        "data.train_files=/shared/data/seq512/*.tfrecord",
        "model.init_checkpoint=/shared/runs/bert/phase1",  # phase 2 starts from phase 1's final weights
        "train.seed=7",
    ]
    assert "CUDA_VISIBLE_DEVICES" not in phase1.environment  # all GPUs unless --gpus_per_node


def test_the_commands_load_as_valid_configs_of_the_application():
    phase1, phase2 = (pretraining_call(remote_words(stage.commands[0])[1]) for stage in ssh_plan())
    config1, config2 = load_with_the_trainer(phase1), load_with_the_trainer(phase2)
    assert config1.data.train_files == ["/shared/data/seq128/*.tfrecord"]
    assert config1.runtime.strategy == config2.runtime.strategy == "multi_worker"
    assert config2.model.init_checkpoint == config1.runtime.model_dir == "/shared/runs/bert/phase1"
    assert (config1.train.global_batch_size, config2.train.global_batch_size) == (65536, 32768)


def test_gpus_per_node_limits_the_visible_devices():
    call = pretraining_call(remote_words(ssh_plan("--gpus_per_node=4")[0].commands[1])[1])
    assert call.environment["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


def test_an_overlay_of_one_node_is_given_to_both_phases_with_the_cluster_replica_count():
    for extra, replicas in (([], 8 * 4), (["--gpus_per_node=4"], 4 * 4)):
        stages = dry_run(
            "--hosts=g1,g2,g3,g4", "--model_dir=/r", *DATA, "--overlay=hardware/a100-80g-x8.yaml", *extra
        )
        for stage in stages:
            call = pretraining_call(remote_words(stage.commands[0])[1])
            assert call.overlay == "hardware/a100-80g-x8.yaml"
            assert call.sets[-1] == f"runtime.num_replicas={replicas}"
            config = load_with_the_trainer(call)
            assert config.runtime.num_replicas == replicas and config.runtime.all_reduce == "nccl"
            assert config.runtime.strategy == "multi_worker"  # --strategy wins over the overlay's auto


def test_docker_launcher_runs_the_image_with_tf_config_and_the_volumes():
    stages = dry_run(
        "--hosts=gpu-a,gpu-b",
        "--launcher=docker",
        "--image=registry/bert-lamb:1",
        "--data_volume=/shared/data",
        "--model_volume=/shared/runs",
        "--model_dir=/model/bert",
        "--phase1_data=/data/seq128/*.tfrecord",
        "--phase2_data=gs://bucket/seq512/*.tfrecord",
    )
    for stage in stages:
        for index, argv in enumerate(stage.commands):
            host, words = remote_words(argv)
            assert host == ["gpu-a", "gpu-b"][index]
            assert words[:3] == ["docker", "run", "--rm"]
            assert {"--gpus=all", "--network=host"} <= set(words)
            assert "/shared/data:/data:ro" in words and "/shared/runs:/model" in words
            environment = words[words.index("-e") + 1]
            assert environment.startswith("TF_CONFIG=")
            assert json.loads(environment.removeprefix("TF_CONFIG="))["task"]["index"] == index
            call = pretraining_call(words, image="registry/bert-lamb:1")  # the image's entry point
            assert call.strategy == "multi_worker" and call.model_dir.startswith("/model/bert/phase")
    phase2 = pretraining_call(remote_words(stages[1].commands[0])[1], image="registry/bert-lamb:1")
    assert "model.init_checkpoint=/model/bert/phase1" in phase2.sets


def test_this_node_runs_only_its_own_command_without_ssh():
    stages = dry_run(
        "--hosts=n0,n1,n2,n3", "--this_node=2", "--model_dir=/shared/runs/bert", "--python=.venv/bin/python"
    )
    assert [len(stage.commands) for stage in stages] == [1, 1]
    for stage in stages:
        words = stage.commands[0]
        assert words[:3] == ["env", "-C", str(ROOT)]  # the checkout, default --workdir
        call = pretraining_call(words)
        assert call.prefix[-1] == ".venv/bin/python"
        assert json.loads(call.environment["TF_CONFIG"]) == {
            "cluster": {"worker": ["n0:23456", "n1:23456", "n2:23456", "n3:23456"]},
            "task": {"type": "worker", "index": 2},
        }


def test_phases_selects_one_phase():
    (stage,) = ssh_plan("--phases=2")
    assert stage.description.startswith("phase2")


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--hosts=a,b,a", "--model_dir=/m"], "--hosts"),
        (["--hosts=a,b:http", "--model_dir=/m"], "--hosts"),
        (["--hosts=a,b:70000", "--model_dir=/m"], "--hosts"),
        (["--hosts=a,b", "--model_dir=/m", "--this_node=2"], "--this_node"),
        (["--hosts=a,b", "--model_dir=/m", "--port=0"], "--port"),
        (["--hosts=a,b", "--model_dir=/m", "--phases=3"], "--phases"),
        (["--hosts=a,b", "--model_dir=/m", "--gpus_per_node=0"], "--gpus_per_node"),
        (["--hosts=a,b", "--model_dir=/m", "--launcher=docker", *DATA], "--model_dir"),
        (["--hosts=a,b", "--model_dir=/model/x", "--launcher=docker", *DATA], "--phase1_data"),
        (["--hosts=a,b", "--model_dir=/model/x", "--launcher=docker"], "--phase1_data"),
        (
            ["--hosts=a", "--model_dir=gs://b/x", "--launcher=docker", "--phases=2", "--phase2_data=/data/x"],
            "--data_volume",
        ),
        (["--model_dir=/m"], "--hosts"),
        (["--hosts=a,b", "--model_dir=/m", "--overlay=hardware/tpu-v9.yaml"], "--overlay"),
        (["--hosts=a,b", "--model_dir=/m", "--overlay=phase1.yaml"], "--overlay"),  # no num_replicas
    ],
)
def test_argument_errors_are_one_line_and_exit_code_2(arguments, fragment):
    assert_one_line_error(run(SCRIPT, *arguments, "--dry_run"), fragment)


RECORDER = """
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    call = {"argv": sys.argv[1:], "cwd": os.getcwd(), "tf_config": os.environ["TF_CONFIG"]}
    f.write(json.dumps(call) + "\\n")
sys.exit(int(os.environ.get("EXIT_CODE", "0")) if "--config=phase1.yaml" in sys.argv else 0)
"""


def run_with_recorder(tmp_path, exit_code):
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    record = tmp_path / "record.jsonl"
    environment = {**os.environ, "RECORD": str(record), "EXIT_CODE": str(exit_code)}
    command = [
        sys.executable,
        str(SCRIPTS / SCRIPT),
        "--hosts=n0,n1",
        "--this_node=1",
        f"--workdir={tmp_path}",
        f"--python={sys.executable} {recorder}",
        "--model_dir=/shared/runs/bert",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return result, calls


def test_without_dry_run_the_phases_run_in_order_in_the_workdir(tmp_path):
    result, calls = run_with_recorder(tmp_path, exit_code=0)
    assert result.returncode == 0, result.stderr
    assert [call["argv"][1] for call in calls] == ["--config=phase1.yaml", "--config=phase2.yaml"]
    assert all(call["cwd"] == str(tmp_path) for call in calls)
    assert all(json.loads(call["tf_config"])["task"]["index"] == 1 for call in calls)


def test_a_failed_phase_1_stops_the_plan_with_its_exit_code(tmp_path):
    result, calls = run_with_recorder(tmp_path, exit_code=3)
    assert result.returncode == 3
    assert [call["argv"][1] for call in calls] == ["--config=phase1.yaml"]  # phase 2 never started
    assert "phase1" in result.stderr and "exited with 3" in result.stderr


def test_when_one_node_fails_the_others_of_its_stage_are_stopped():
    sys.path.insert(0, str(SCRIPTS))
    try:
        from launch_common import Command, Stage, run_plan
    finally:
        sys.path.remove(str(SCRIPTS))
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    failing = (sys.executable, "-c", "import sys, time; time.sleep(0.5); sys.exit(5)")
    never = (sys.executable, "-c", "raise SystemExit('the next stage must not run')")
    stages = [
        Stage("phase1", (Command("node 0", sleeper), Command("node 1", failing))),
        Stage("phase2", (Command("node 0", never),)),
    ]
    start = time.monotonic()
    assert run_plan(stages, poll_seconds=0.1) == 5
    assert time.monotonic() - start < 30
