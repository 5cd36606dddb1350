"""scripts/launch/launch_tpu_vm.py: create a TPU VM, ship code and requirements, phase 1, then phase 2."""

import os
import re
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
    assert descriptions[-3:-1] == [
        "start phase1, phase2 on worker 0, detached",
        "follow the logs of phase1, phase2 until they end",
    ]
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


def detached_phases(stages):
    """The phase commands in the script of the "start ... detached" stage: {phase: PretrainingCall}."""
    (start,) = [stage for stage in stages if stage.description.startswith("start")]
    workers, script = ssh_script(only_command(start))
    assert workers == "0"
    words = shlex.split(script)
    assert words[:3] == ["cd", "bert-lamb", "&&"]
    assert words[words.index("setsid") : words.index("setsid") + 4][:3] == ["setsid", "nohup", "sh"]
    inner = words[words.index("-c") + 1]
    found = re.findall(r"\{ (.*?) > logs/(phase\d)\.log 2>&1 \|\| status=\$\?", inner)
    return {phase: pretraining_call(shlex.split(command)) for command, phase in found}


def test_phases_run_on_worker_0_of_a_pod_slice_with_the_tpu_name_and_the_overlay():
    stages = dry_run(
        "--accelerator_type=v4-128", "--skip_create", "--skip_setup", "--overlay=hardware/tpu-v4-128.yaml"
    )
    calls = detached_phases(stages)
    phase1, phase2 = calls["phase1"], calls["phase2"]
    for call in (phase1, phase2):
        # the client leaves libtpu to the hosts; the accelerator type names the TPU for the FLOP utilisation
        assert call.environment == {"TPU_ACCELERATOR_TYPE": "v4-128", "TPU_LOAD_LIBRARY": "0"}
        assert call.overlay == "hardware/tpu-v4-128.yaml"
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
    assert config1.runtime.num_replicas == 64 and config2.runtime.mixed_precision == "mixed_bfloat16"


def test_a_single_host_tpu_is_the_local_one():
    stages = dry_run(
        "--accelerator_type=v3-8", "--skip_create", "--skip_setup", "--set=train.micro_batch_size=16"
    )
    for call in detached_phases(stages).values():
        assert call.tpu == "local" and call.overlay is None
        assert call.environment == {"TPU_ACCELERATOR_TYPE": "v3-8"}
        assert call.sets[-1] == "train.micro_batch_size=16"


def test_the_detached_phases_outlive_the_shell_run_in_order_and_leave_their_logs(tmp_path):
    """The start script run by sh here, with stand-ins for python3 (prints its arguments) and gcloud (copies
    the log): the shell that started it returns at once, the phases run one after the other in a session of
    their own, and the follow script prints both logs and exits with the phases' code."""
    stages = dry_run("--accelerator_type=v3-8", "--skip_create", "--skip_setup", "--python=fake-python")
    (start, follow) = [only_command(stage) for stage in stages]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fake-python").write_text(
        '#!/bin/sh\necho "phase args: $*"; echo "session $(ps -o sid= $$)"\n'
    )
    (bin_dir / "gcloud").write_text(
        "#!/bin/sh\n# gcloud storage cp --quiet SRC gs://bucket/X -> $GS/X\n"
        'dst="$GS/${5#gs://bucket/}"; mkdir -p "$(dirname "$dst")"; cp "$4" "$dst"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "bert-lamb").mkdir()
    environment = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GS": str(tmp_path / "gs")}
    subprocess.run(["sh", "-c", ssh_script(start)[1]], cwd=tmp_path, env=environment, check=True, timeout=30)
    followed = subprocess.run(
        ["sh", "-c", ssh_script(follow)[1]],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert followed.returncode == 0, followed
    logs = tmp_path / "bert-lamb" / "logs"
    phase1, phase2 = (logs / "phase1.log").read_text(), (logs / "phase2.log").read_text()
    assert "--config=phase1.yaml" in phase1 and "--config=phase2.yaml" in phase2
    assert "phase args: run_pretraining.py --config=phase1.yaml" in followed.stdout
    assert "phase args: run_pretraining.py --config=phase2.yaml" in followed.stdout
    own_session = int(phase1.split("session")[1].split()[0])
    assert own_session != int(subprocess.check_output(["ps", "-o", "sid=", str(os.getpid())]))
    assert (tmp_path / "gs" / "bert-large" / "phase2" / "run.log").read_text() == phase2  # under model_dir
    assert (logs / "exit_code").read_text().strip() == "0"


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
    assert [stage.description for stage in stages] == [
        "start phase2 on worker 0, detached",
        "follow the logs of phase2 until they end",
    ]
    assert list(detached_phases(stages)) == ["phase2"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--model_dir": "/local/runs"}, "--model_dir"),
        ({"--phase1_data": "/local/data/*.tfrecord"}, "--phase1_data"),
        ({"--phase2_data": None}, "--phase2_data"),
        ({"--accelerator_type": "tpu-128"}, "--accelerator_type"),
        ({"--tpu_name": None}, "--tpu_name"),
        ({"--phases": "2,1"}, "--phases"),
        ({"--overlay": "hardware/tpu-v9-8.yaml"}, "--overlay"),
    ],
)
def test_argument_errors_are_one_line_and_exit_code_2(change, fragment):
    arguments = {"--accelerator_type": "v4-32"} | dict(a.split("=", 1) for a in REQUIRED) | change
    argv = [f"{name}={value}" for name, value in arguments.items() if value is not None]
    assert_one_line_error(run(SCRIPT, *argv, "--dry_run"), fragment)
