"""scripts/launch/launch_tpu_vm.py: create a TPU VM, ship code and requirements, phase 1, then phase 2."""

import shlex
import subprocess
import tarfile

import pytest
from launch_dry_run import (
    ROOT,
    assert_one_line_error,
    load_with_the_trainer,
    parse_plan,
    pretraining_call,
    run,
)

SCRIPT = "launch_tpu_vm.py"
REQUIRED = [
    "--tpu_name=bert-tpu",
    "--zone=us-central2-b",
    "--model_dir=gs://bucket/bert-large",
    "--phase1_data=gs://bucket/data/seq128/*.tfrecord",
    "--phase2_data=gs://bucket/data/seq512/*.tfrecord",
]


def pinned(package):
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==")[1].strip()
    raise AssertionError(package)


def dry_run(*args):
    result = run(SCRIPT, *REQUIRED, *args, "--dry_run")
    assert result.returncode == 0, result.stderr
    return parse_plan(result.stdout)


def only_command(stage):
    (argv,) = stage.commands
    return argv


def flag(argv, name):
    (value,) = [word.split("=", 1)[1] for word in argv if word.startswith(f"{name}=")]
    return value


def ssh_script(argv):
    """`gcloud compute tpus tpu-vm ssh NAME --worker=W --command=SCRIPT ...` -> (W, SCRIPT)."""
    assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "bert-tpu"], argv
    return flag(argv, "--worker"), flag(argv, "--command")


def test_steps_in_order_for_a_pod_slice():
    stages = dry_run("--accelerator_type=v4-128", "--project=my-project", "--delete_when_done")
    descriptions = [stage.description for stage in stages]
    assert descriptions[0].startswith("create") and descriptions[-1].startswith("delete")
    assert [d.split()[0] for d in descriptions[-3:-1]] == ["phase1", "phase2"]
    for stage in stages:
        argv = only_command(stage)
        if argv[0] == "gcloud":
            assert flag(argv, "--zone") == "us-central2-b" and flag(argv, "--project") == "my-project"


def test_create_uses_the_tensorflow_software_version_of_the_pin():
    create = only_command(dry_run("--accelerator_type=v4-128", "--spot")[0])
    assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "bert-tpu"]
    assert flag(create, "--accelerator-type") == "v4-128"
    assert flag(create, "--version") == f"tpu-vm-tf-{pinned('tensorflow')}-pod-pjrt"  # several hosts
    assert "--spot" in create
    single_host = only_command(dry_run("--accelerator_type=v3-8")[0])
    assert flag(single_host, "--version") == f"tpu-vm-tf-{pinned('tensorflow')}-pjrt"
    custom = only_command(dry_run("--accelerator_type=v3-8", "--runtime_version=tpu-vm-tf-2.21.1-pjrt")[0])
    assert flag(custom, "--version") == "tpu-vm-tf-2.21.1-pjrt"


def test_code_and_requirements_go_to_every_worker():
    stages = dry_run("--accelerator_type=v4-128", "--skip_create")
    pack, copy, unpack, install = (only_command(stage) for stage in stages[:4])
    assert pack[:4] == ["git", "-C", str(ROOT), "archive"] and pack[-1] == "HEAD"
    archive = pack[pack.index("-o") + 1]
    assert copy[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and archive in copy
    assert flag(copy, "--worker") == "all"
    assert ssh_script(unpack)[0] == "all"
    workers, script = ssh_script(install)
    assert workers == "all"
    assert "-r /tmp/requirements-tpu.txt -c constraints.txt" in script
    assert f"--no-deps tensorflow-text=={pinned('tensorflow-text')}" in script


def test_the_tpu_requirements_are_the_pinned_ones_without_tensorflow(tmp_path):
    """The install keeps the TPU software version's TensorFlow: everything else of requirements.txt."""
    _, script = ssh_script(only_command(dry_run("--accelerator_type=v3-8", "--skip_create")[3]))
    (grep,) = [part.strip() for part in script.split("&&") if part.strip().startswith("grep")]
    filtered = subprocess.run(
        grep.split(" > ")[0], shell=True, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    expected = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if not line.startswith(("tensorflow==", "tensorflow-text=="))
    ]
    assert filtered == expected
    assert any(line.startswith("tensorflow-datasets==") for line in filtered)


def test_the_packed_archive_holds_the_committed_code(tmp_path):
    pack = only_command(dry_run("--accelerator_type=v3-8", "--skip_create")[0])
    archive = tmp_path / "code.tar.gz"
    pack[pack.index("-o") + 1] = str(archive)
    subprocess.run(pack, check=True, capture_output=True)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {
        "bert-lamb/requirements.txt",
        "bert-lamb/constraints.txt",
        "bert-lamb/scripts/launch/launch_tpu_vm.py",
    } <= names


def test_phases_run_on_worker_0_of_a_pod_slice_with_the_tpu_name():
    stages = dry_run("--accelerator_type=v4-128", "--skip_create", "--skip_setup")
    calls = []
    for stage in stages:
        workers, script = ssh_script(only_command(stage))
        assert workers == "0"
        words = shlex.split(script)
        assert words[:3] == ["cd", "bert-lamb", "&&"]
        call = pretraining_call(words)
        assert call.environment == {"TPU_LOAD_LIBRARY": "0"}  # the client leaves libtpu to the hosts
        calls.append(call)
    phase1, phase2 = calls
    assert (phase1.config, phase2.config) == ("phase1.yaml", "phase2.yaml")
    assert phase1.strategy == phase2.strategy == "tpu" and phase1.tpu == phase2.tpu == "bert-tpu"
    assert (phase1.model_dir, phase2.model_dir) == (
        "gs://bucket/bert-large/phase1",
        "gs://bucket/bert-large/phase2",
    )
    assert phase1.sets == ["data.train_files=gs://bucket/data/seq128/*.tfrecord"]
    assert phase2.sets == [
        "data.train_files=gs://bucket/data/seq512/*.tfrecord",
        "model.init_checkpoint=gs://bucket/bert-large/phase1",
    ]
    config1, config2 = load_with_the_trainer(phase1), load_with_the_trainer(phase2)
    assert config1.runtime.tpu == "bert-tpu" and config2.model.init_checkpoint == config1.runtime.model_dir


def test_a_single_host_tpu_is_the_local_one():
    stages = dry_run(
        "--accelerator_type=v3-8", "--skip_create", "--skip_setup", "--set=train.micro_batch_size=16"
    )
    for stage in stages:
        call = pretraining_call(shlex.split(ssh_script(only_command(stage))[1]))
        assert call.tpu == "local" and call.environment == {}
        assert call.sets[-1] == "train.micro_batch_size=16"


def test_repo_url_clones_instead_of_copying():
    stages = dry_run(
        "--accelerator_type=v3-8", "--skip_create", "--repo_url=https://example.org/bert-lamb.git"
    )
    workers, script = ssh_script(only_command(stages[0]))
    assert workers == "all"
    assert "git clone --depth=1 --branch=main https://example.org/bert-lamb.git bert-lamb" in script
    assert not any(only_command(stage)[0] == "git" for stage in stages)


def test_phases_selects_phase_2_alone():
    stages = dry_run("--accelerator_type=v3-8", "--skip_create", "--skip_setup", "--phases=2")
    assert [stage.description.split()[0] for stage in stages] == ["phase2"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--model_dir": "/local/runs"}, "--model_dir"),
        ({"--phase1_data": "/local/data/*.tfrecord"}, "--phase1_data"),
        ({"--phase2_data": None}, "--phase2_data"),
        ({"--accelerator_type": "tpu-128"}, "--accelerator_type"),
        ({"--tpu_name": None}, "--tpu_name"),
        ({"--phases": "2,1"}, "--phases"),
    ],
)
def test_argument_errors_are_one_line_and_exit_code_2(change, fragment):
    arguments = {"--accelerator_type": "v4-32"} | dict(a.split("=", 1) for a in REQUIRED) | change
    argv = [f"{name}={value}" for name, value in arguments.items() if value is not None]
    assert_one_line_error(run(SCRIPT, *argv, "--dry_run"), fragment)
