"""Reading the --dry_run output of the launchers (scripts/launch/launch_*.py) back into commands.

The output format: `# [i/n] description` starts a stage, `#   label` names the next command, and every
other line is one command quoted for a POSIX shell.
"""

import dataclasses
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "launch"
STAGE = re.compile(r"^# \[(\d+)/(\d+)\] (.*)$")


def run(script, *args, cwd=None):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""


@dataclasses.dataclass
class Stage:
    description: str
    commands: list  # argv lists


def parse_plan(stdout):
    stages = []
    for line in stdout.splitlines():
        match = STAGE.match(line)
        if match:
            assert int(match.group(1)) == len(stages) + 1
            stages.append(Stage(match.group(3), []))
        elif not line.startswith("#"):
            stages[-1].commands.append(shlex.split(line))
    total = {int(STAGE.match(line).group(2)) for line in stdout.splitlines() if STAGE.match(line)}
    assert total == {len(stages)}
    return stages


@dataclasses.dataclass
class PretrainingCall:
    """One `run_pretraining.py` invocation: the words before it (env, cd ...) and its flags."""

    prefix: list
    environment: dict
    config: str
    strategy: str
    model_dir: str
    tpu: str | None
    sets: list
    overlay: str | None = None  # a second --config

    def overrides(self):
        """The config overrides run_pretraining.py derives from these flags."""
        deployment = [f"runtime.model_dir={self.model_dir}", f"runtime.strategy={self.strategy}"]
        if self.tpu:
            deployment.append(f"runtime.tpu={self.tpu}")
        return self.sets + deployment


def pretraining_call(words, image=None):
    """Reads the flags after `run_pretraining.py`, or after `image` for `docker run` (its entry point)."""
    if image is None:
        index = next(i for i, word in enumerate(words) if word.endswith("run_pretraining.py"))
    else:
        index = words.index(image)
    prefix, flags = words[:index], words[index + 1 :]
    environment = dict(word.split("=", 1) for word in prefix if re.match(r"^[A-Z_]+=", word))
    values, sets, configs = {}, [], []
    for flag in flags:
        name, equals, value = flag.partition("=")
        assert flag.startswith("--") and equals, f"flags are --name=value: {flag}"
        if name == "--set":
            sets.append(value)
        elif name == "--config":
            configs.append(value)
        else:
            assert name not in values, f"{name} given twice"
            values[name] = value
    assert set(values) <= {"--strategy", "--model_dir", "--tpu"}, values
    assert 1 <= len(configs) <= 2, configs  # a phase config, maybe a hardware overlay
    return PretrainingCall(
        prefix,
        environment,
        configs[0],
        values["--strategy"],
        values["--model_dir"],
        values.get("--tpu"),
        sets,
        configs[1] if len(configs) == 2 else None,
    )


def load_with_the_trainer(call):
    """The config the application would run with: fails if a --set key or value is not in the schema."""
    import trainer

    return trainer.load_config([call.config, *([call.overlay] if call.overlay else [])], call.overrides())
