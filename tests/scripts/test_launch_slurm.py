"""scripts/launch/slurm_pretrain.sbatch under stand-ins for Slurm's scontrol and srun (no Slurm here).

The stand-in srun runs the job step's command once per node of the allocation with that node's
SLURM_NODEID, as srun --ntasks-per-node=1 does; the launcher is asked for --dry_run through EXTRA.
"""

import json
import os
import shlex
import subprocess

from launch_dry_run import ROOT, parse_plan, pretraining_call

NODELIST, HOSTS = "gpu-[01-03]", ["gpu-01", "gpu-02", "gpu-03"]

SCONTROL = """#!/bin/sh
# scontrol show hostnames <nodelist>
[ "$1 $2" = "show hostnames" ] || exit 1
printf 'gpu-01\\ngpu-02\\ngpu-03\\n'
"""

SRUN = """#!/bin/sh
# srun [options] command...: the command once per node, in node order, with SLURM_NODEID set.
while [ "${1#--}" != "$1" ]; do shift; done
for node in 0 1 2; do
  echo "=== srun node $node"
  SLURM_NODEID=$node "$@" || exit $?
done
"""


def run_batch_script(tmp_path, **settings):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("scontrol", SCONTROL), ("srun", SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_SUBMIT_DIR": str(ROOT),
        "SLURM_JOB_NODELIST": NODELIST,
        "SLURM_JOB_ID": "4242",
        "PYTHON": "python3",
        "EXTRA": "--dry_run --set=train.micro_batch_size=32",
        **settings,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "launch" / "slurm_pretrain.sbatch")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def node_outputs(stdout):
    """{(step, node): the plan printed by that node's launcher}."""
    outputs, key, step = {}, None, -1
    for line in stdout.splitlines():
        if line.startswith("=== srun node "):
            node = int(line.split()[-1])
            step += node == 0
            key = (step, node)
            outputs[key] = []
        elif key is not None:
            outputs[key].append(line)
    return {key: "\n".join(lines) for key, lines in outputs.items()}


def test_each_node_runs_its_own_task_phase_1_then_phase_2(tmp_path):
    result = run_batch_script(
        tmp_path, MODEL_DIR="/shared/runs/bert", PHASE1_DATA="/shared/seq128/*.tfrecord"
    )
    assert result.returncode == 0, result.stderr
    outputs = node_outputs(result.stdout)
    assert sorted(outputs) == [(step, node) for step in (0, 1) for node in (0, 1, 2)]
    port = 20000 + 4242 % 20000
    for (step, node), output in outputs.items():
        (stage,) = parse_plan(output)
        (words,) = stage.commands
        assert words[:3] == ["env", "-C", str(ROOT)]
        call = pretraining_call(words)
        assert json.loads(call.environment["TF_CONFIG"]) == {
            "cluster": {"worker": [f"{host}:{port}" for host in HOSTS]},
            "task": {"type": "worker", "index": node},  # SLURM_NODEID
        }
        assert call.config == ["phase1.yaml", "phase2.yaml"][step]
        assert call.model_dir == f"/shared/runs/bert/phase{step + 1}"
        assert call.strategy == "multi_worker"
        assert call.sets[-1] == "train.micro_batch_size=32"
        if step == 0:
            assert call.sets[0] == "data.train_files=/shared/seq128/*.tfrecord"
        else:
            assert "model.init_checkpoint=/shared/runs/bert/phase1" in call.sets


def test_docker_settings_reach_the_launcher(tmp_path):
    result = run_batch_script(
        tmp_path,
        LAUNCHER="docker",
        MODEL_DIR="/model/bert",
        PHASE1_DATA="/data/seq128/*.tfrecord",
        PHASE2_DATA="/data/seq512/*.tfrecord",
        DATA_VOLUME="/shared/data",
        MODEL_VOLUME="/shared/runs",
    )
    assert result.returncode == 0, result.stderr
    (stage,) = parse_plan(node_outputs(result.stdout)[1, 2])
    (words,) = stage.commands
    assert words[:2] == ["docker", "run"] and "/shared/runs:/model" in words
    assert shlex.join(words).count("TF_CONFIG=") == 1


def test_a_bad_setting_stops_the_job_before_phase_2(tmp_path):
    result = run_batch_script(
        tmp_path,
        LAUNCHER="docker",
        MODEL_DIR="/not/under/model",
        PHASE1_DATA="/data/a",
        PHASE2_DATA="/data/b",
    )
    assert result.returncode == 2
    assert "=== srun node 0" in result.stdout and "phase2" not in result.stdout
    assert "--model_dir" in result.stderr


def test_an_overlay_reaches_both_phases_with_the_replicas_of_all_nodes(tmp_path):
    result = run_batch_script(tmp_path, OVERLAY="hardware/h100-80g-x8.yaml", EXTRA="--dry_run")
    assert result.returncode == 0, result.stderr
    for output in node_outputs(result.stdout).values():
        (stage,) = parse_plan(output)
        (words,) = stage.commands
        call = pretraining_call(words)
        assert call.overlay == "hardware/h100-80g-x8.yaml"
        assert call.sets[-1] == "runtime.num_replicas=24"  # 8 GPUs x 3 nodes
