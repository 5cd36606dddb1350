"""What the launchers (launch_tpu_vm.py, launch_gpu_cluster.py) share: the two-phase plan, the
run_pretraining.py command line of each phase, and printing (--dry_run) or executing a plan.

A plan is a list of stages; a stage is one or more commands that run at the same time (one per node of a
cluster), and the next stage starts only when every command of the previous one has succeeded.
"""

import argparse
import dataclasses
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
CONFIGS = ROOT / "configs"
ENTRY_POINT = "run_pretraining.py"
PHASES = ("1", "2")


class LaunchError(ValueError):
    """A bad argument combination, reported as one line with exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def pinned_version(package, requirements=REQUIREMENTS):
    """The version pinned with `package==version` in requirements.txt."""
    for line in requirements.read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name.strip().lower() == package.lower() and version:
            return version.strip()
    raise LaunchError(f"{requirements}: no '{package}==<version>' pin")


# ----------------------------------------------------------------------------------------------------
# The two phases


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str  # "phase1" | "phase2"
    config: str  # a file name in configs/ or a path, as run_pretraining.py --config takes it
    model_dir: str
    overrides: tuple  # --set section.key=value
    overlay: str | None = None  # a hardware overlay, the second --config (hardware/tpu-v3-1024.yaml)


def parse_phases(text):
    phases = tuple(item.strip() for item in text.split(",") if item.strip())
    if not phases or any(p not in PHASES for p in phases) or list(phases) != sorted(set(phases)):
        raise argparse.ArgumentTypeError(f"expected 1, 2 or 1,2, got {text!r}")
    return phases


def two_phase_plan(args):
    """Phase 1 and/or phase 2 with their model_dirs under args.model_dir; phase 2 starts from phase 1.

    Phase 2 is initialised from phase 1's model_dir (its final checkpoint, model weights only: a fresh
    optimizer and step, the schedule re-warmed), as configs/phase2.yaml describes.
    """
    root = args.model_dir.rstrip("/")
    phase1_dir, phase2_dir = f"{root}/phase1", f"{root}/phase2"
    common = tuple(args.set or ())
    overlay = checked_overlay(args.overlay)
    phases = []
    if "1" in args.phases:
        data = (f"data.train_files={args.phase1_data}",) if args.phase1_data else ()
        phases.append(Phase("phase1", args.phase1_config, phase1_dir, data + common, overlay))
    if "2" in args.phases:
        data = (f"data.train_files={args.phase2_data}",) if args.phase2_data else ()
        init = (f"model.init_checkpoint={phase1_dir}",)
        phases.append(Phase("phase2", args.phase2_config, phase2_dir, data + init + common, overlay))
    return phases


def overlay_path(overlay):
    """The file of --overlay: a path, or a name under configs/ (hardware/a100-80g-x8.yaml); None if none."""
    for candidate in (pathlib.Path(overlay), CONFIGS / overlay):
        if candidate.is_file():
            return candidate
    return None


def checked_overlay(overlay):
    if overlay is not None and overlay_path(overlay) is None:
        names = ", ".join(sorted(f"hardware/{p.name}" for p in (CONFIGS / "hardware").glob("*.yaml")))
        raise LaunchError(f"--overlay: no file {overlay!r} (as a path or in configs/: {names})")
    return overlay


def add_phase_arguments(parser, model_dir_help, data_help):
    parser.add_argument("--model_dir", required=True, help=model_dir_help + " (phase1/ and phase2/ inside)")
    parser.add_argument("--phases", type=parse_phases, default=PHASES, help="1, 2 or 1,2 (default)")
    parser.add_argument(
        "--phase1_config", default="phase1.yaml", help="run_pretraining.py --config of phase 1"
    )
    parser.add_argument(
        "--phase2_config", default="phase2.yaml", help="run_pretraining.py --config of phase 2"
    )
    parser.add_argument(
        "--overlay",
        help="hardware overlay given to both phases after their config (a second --config), e.g. "
        "hardware/tpu-v3-1024.yaml: micro-batch, replicas, precision, steps_per_loop (configs/hardware/)",
    )
    parser.add_argument("--phase1_data", help=f"data.train_files of phase 1 (sequence 128); {data_help}")
    parser.add_argument("--phase2_data", help=f"data.train_files of phase 2 (sequence 512); {data_help}")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override passed to both phases (repeatable), e.g. train.micro_batch_size=32",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the commands instead of running them")


def pretraining_args(phase, strategy, tpu=None):
    """The arguments of run_pretraining.py for one phase."""
    args = [f"--config={phase.config}"] + ([f"--config={phase.overlay}"] if phase.overlay else [])
    args += [f"--strategy={strategy}", f"--model_dir={phase.model_dir}"]
    if tpu:
        args.append(f"--tpu={tpu}")
    args += [f"--set={override}" for override in phase.overrides]
    return args


# ----------------------------------------------------------------------------------------------------
# Plans: print or run


@dataclasses.dataclass(frozen=True)
class Command:
    label: str  # "node 0 (host-a:12345)", or "" for a single command
    argv: tuple


@dataclasses.dataclass(frozen=True)
class Stage:
    description: str
    commands: tuple  # of Command, run at the same time


def single(description, argv):
    """A stage of one command."""
    return Stage(description, (Command("", tuple(argv)),))


def print_plan(stages, out=sys.stdout):
    """Comment lines (#) describe each stage; every other line is one command, quoted for a POSIX shell."""
    for number, stage in enumerate(stages, 1):
        together = ", at the same time" if len(stage.commands) > 1 else ""
        print(f"# [{number}/{len(stages)}] {stage.description}{together}", file=out)
        for command in stage.commands:
            if command.label:
                print(f"#   {command.label}", file=out)
            print(shlex.join(command.argv), file=out)


def run_plan(stages, poll_seconds=1.0):
    """Runs the stages in order, the commands of one stage in parallel; returns the exit code.

    When a command of a stage fails, the others of that stage are terminated (a multi-worker run cannot
    go on without one of its workers) and the plan stops with the failed command's exit code.
    """
    for number, stage in enumerate(stages, 1):
        print(f"[{number}/{len(stages)}] {stage.description}", flush=True)
        running = {subprocess.Popen(command.argv): command for command in stage.commands}
        while running:
            finished = [process for process in running if process.poll() is not None]
            failed = [process for process in finished if process.returncode != 0]
            if failed:
                for process in running:
                    if process.poll() is None:
                        process.terminate()
                        process.wait()
                command, code = running[failed[0]], failed[0].returncode
                who = command.label or command.argv[0]
                print(
                    f"error: [{number}/{len(stages)}] {stage.description}: {who} exited with {code}",
                    file=sys.stderr,
                )
                return code if code > 0 else 1
            for process in finished:
                del running[process]
            if running:
                time.sleep(poll_seconds)
    return 0


def main_with(parse, build_stages, argv):
    """Parses, builds the plan and prints or runs it; LaunchError -> one line, exit code 2."""
    args = parse(argv)
    try:
        stages = build_stages(args)
    except LaunchError as e:
        print(f"{pathlib.Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print_plan(stages)
        return 0
    return run_plan(stages)
