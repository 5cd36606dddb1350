"""The Dockerfile, checked without a Docker engine: what it is built from, installs, copies and runs."""

import fnmatch
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

from data.create_pretraining_data import parse_command_line

ROOT = pathlib.Path(__file__).resolve().parents[2]


def instructions():
    """[(INSTRUCTION, arguments)] with Docker's line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", "", (ROOT / "Dockerfile").read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, arguments = line.partition(" ")
            result.append((name.upper(), arguments.strip()))
    return result


def all_of(name):
    return [arguments for instruction, arguments in instructions() if instruction == name]


def pinned(package):
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==")[1].strip()
    raise AssertionError(package)


def test_base_image_is_the_official_tensorflow_gpu_image_of_the_pinned_version():
    assert all_of("FROM") == [f"tensorflow/tensorflow:{pinned('tensorflow')}-gpu"]


def test_the_pinned_requirements_are_installed_with_the_constraints():
    copies = all_of("COPY")
    assert copies[0].split() == ["requirements.txt", "requirements-beam.txt", "constraints.txt", "./"]
    installs = [arguments for arguments in all_of("RUN") if "pip install" in arguments]
    assert len(installs) == 1
    (install,) = re.findall(r"pip install ([^&]*)", installs[0])
    assert install.split() == [
        "-r",
        "requirements-beam.txt",
        "-c",
        "constraints.txt",
    ]  # nothing unpinned, no -U
    assert "-r requirements.txt" in (ROOT / "requirements-beam.txt").read_text()
    # Every transitive package is pinned in constraints.txt, including TensorFlow itself.
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert f"tensorflow=={pinned('tensorflow')}" in constraints


def test_entry_point_is_run_pretraining_py_of_the_copied_code():
    (entry_point,) = all_of("ENTRYPOINT")
    assert json.loads(entry_point) == ["python3", "/opt/bert-lamb/run_pretraining.py"]
    workdirs_before_code = []
    for instruction, arguments in instructions():
        if instruction == "WORKDIR":
            workdirs_before_code.append(arguments)
        if (instruction, arguments) == ("COPY", ". ."):
            break
    assert workdirs_before_code[-1] == "/opt/bert-lamb"  # the code is copied there
    assert (ROOT / "run_pretraining.py").is_file()
    assert not ignored_by_docker("run_pretraining.py")


def test_runs_as_a_non_root_user_created_in_the_image():
    users = all_of("USER")
    assert users and users[-1] not in ("root", "0", "0:0")
    created = [arguments for arguments in all_of("RUN") if "useradd" in arguments]
    assert len(created) == 1 and re.search(rf"useradd .*\b{users[-1]}\b", created[0])
    names = [instruction for instruction, _ in instructions()]
    assert names.index("USER") > names.index("COPY")  # nothing runs as root after it


def test_data_and_model_dir_are_volumes_and_the_model_volume_is_writable():
    (volumes,) = all_of("VOLUME")
    assert set(json.loads(volumes)) == {"/data", "/model"}
    (created,) = [arguments for arguments in all_of("RUN") if "useradd" in arguments]
    assert "chown bert:bert /model" in created


def ignored_by_docker(path):
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = pathlib.PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) for pattern in patterns for prefix in prefixes
    )


def test_dockerignore_keeps_the_application_and_drops_local_state():
    for needed in ("lamb/optimizer.py", "bert", "data", "trainer", "configs/phase1.yaml", "requirements.txt"):
        assert not ignored_by_docker(needed), needed
    for local in (".git", ".venv/bin/python", "runs/phase1", "tests/conftest.py", "docs/mnist_table.md"):
        assert ignored_by_docker(local), local


def test_the_dependency_check_of_the_build_passes_with_the_pin_and_fails_without(tmp_path):
    """Runs the install step's shell here, with pip stubbed: TensorFlow must be the pinned version."""
    (step,) = [arguments for arguments in all_of("RUN") if "pip install" in arguments]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "python3"  # python3 -m pip ... -> no-op; anything else -> this interpreter
    stub.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then exit 0; fi\nexec {sys.executable} "$@"\n')
    stub.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def build_step(requirements):
        (tmp_path / "requirements.txt").write_text(requirements)
        return subprocess.run(
            ["/bin/sh", "-c", step],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )

    good = build_step((ROOT / "requirements.txt").read_text())
    assert good.returncode == 0, good.stderr
    assert f"TensorFlow {pinned('tensorflow')}" in good.stdout
    bad = build_step(f"tensorflow==1.15.5\ntensorflow-text=={pinned('tensorflow-text')}\n")
    assert bad.returncode != 0
    assert "pins 1.15.5" in bad.stderr


def documented_data_command():
    """The data tool's `docker run` command in the Dockerfile's header, continuation lines joined."""
    lines = [line[1:] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("#")]
    comments = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    (command,) = [line for line in comments.splitlines() if "docker run" in line and "--entrypoint" in line]
    return shlex.split(command)


def test_the_image_runs_the_data_tool_with_the_documented_command(tmp_path):
    words = documented_data_command()
    image = words.index("bert-lamb")
    assert words[image + 1 : image + 3] == ["-m", "data.create_pretraining_data"]
    config, beam_args = parse_command_line(words[image + 3 :])
    assert beam_args is None and config.output_dir.startswith("/model/")  # the writable volume
    # The image's working directory is /model and its code /opt/bert-lamb: `python3 -m data...` needs the
    # code on PYTHONPATH. Here: the repository as the code, a directory elsewhere as the working directory.
    (environment,) = all_of("ENV")
    assert "PYTHONPATH=/opt/bert-lamb" in environment.split()
    result = subprocess.run(
        [sys.executable, "-m", "data.create_pretraining_data", "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "--runner" in result.stdout and "--input_format" in result.stdout
