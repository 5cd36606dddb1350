"""Pretrain BERT on a Cloud TPU VM (or TPU VM slice): create it, ship the code, install, phase 1, phase 2.

    python scripts/launch/launch_tpu_vm.py --tpu_name=bert-lamb --zone=us-central2-b \\
        --accelerator_type=v4-128 --overlay=hardware/tpu-v4-128.yaml \\
        --model_dir=gs://my-bucket/bert-large \\
        --phase1_data='gs://my-bucket/data/seq128/*.tfrecord' \\
        --phase2_data='gs://my-bucket/data/seq512/*.tfrecord' --dry_run

The steps, each a gcloud command (printed, not run, with --dry_run):
  1. `gcloud compute tpus tpu-vm create` with the TensorFlow TPU software version of the pinned TensorFlow
     (tpu-vm-tf-<version>[-pod]-pjrt; -pod for slices of several hosts), unless --skip_create;
  2. the code on every worker: this checkout's committed HEAD (`git archive`, copied with
     `gcloud compute tpus tpu-vm scp --worker=all`), or `git clone` of --repo_url;
  3. the pinned requirements on every worker, keeping the TensorFlow of the TPU software version (pip must
     not replace it with the non-TPU wheel), tensorflow-text without dependencies for the same reason;
  4. on worker 0, detached from the ssh session (setsid nohup: a closed laptop or a dropped connection does
     not stop the pod): phase 1 (configs/phase1.yaml, batch 65536, sequence 128) with --strategy=tpu, then
     phase 2 (configs/phase2.yaml, batch 32768, sequence 512) from phase 1's final weights, each with
     --overlay as its second --config. Each phase's log is written on worker 0 (bert-lamb/logs/) and copied
     every minute, and at its end, to <model_dir>/<phase>/run.log;
  5. follow the logs until the phases end (stopping this follows nothing more: the phases go on), and exit
     with the phases' exit code;
  6. `gcloud compute tpus tpu-vm delete` with --delete_when_done (only reached when step 5 saw the end).

TensorFlow drives a TPU slice from one client process (TPUStrategy connects to every host of the slice
through the TPU name): the phases run on worker 0, while every worker holds the code and the requirements
(the input pipeline's ops run on all hosts). A single-host TPU is reached as --tpu=local. The data and
model_dir must be gs:// paths: every host reads the data, and the checkpoints must outlive the VM.
"""

import re
import shlex
import sys

from launch_common import (
    ENTRY_POINT,
    ROOT,
    ArgumentParser,
    LaunchError,
    add_phase_arguments,
    main_with,
    pinned_version,
    pretraining_args,
    single,
    two_phase_plan,
)

REMOTE_DIR = "bert-lamb"  # on every worker, relative to the home directory
ARCHIVE = f"{REMOTE_DIR}.tar.gz"
LOG_DIR = "logs"  # in REMOTE_DIR on worker 0: <phase>.log, run.pid, exit_code
COPY_LOGS_EVERY_SECONDS = 60
ACCELERATOR = re.compile(r"^v\d+[a-z]*-(\d+)$")  # v3-8, v4-128, v5litepod-16, v5p-64, v6e-8


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tpu_name", required=True, help="name of the TPU VM to create or use")
    parser.add_argument("--zone", required=True, help="e.g. us-central2-b")
    parser.add_argument("--project", help="Google Cloud project (default: gcloud's configured project)")
    parser.add_argument(
        "--accelerator_type",
        required=True,
        help="e.g. v3-8, v4-128, v5litepod-256 (more than 8 = several hosts)",
    )
    parser.add_argument(
        "--runtime_version", help="TPU software version (default: tpu-vm-tf-<pinned TF>[-pod]-pjrt)"
    )
    parser.add_argument("--spot", action="store_true", help="create a Spot TPU VM")
    parser.add_argument("--skip_create", action="store_true", help="use an existing TPU VM named --tpu_name")
    parser.add_argument(
        "--skip_setup", action="store_true", help="the code and requirements are already there"
    )
    parser.add_argument("--repo_url", help="git clone this repository on the workers instead of copying HEAD")
    parser.add_argument("--repo_ref", default="main", help="branch or tag of --repo_url (default main)")
    parser.add_argument("--python", default="python3", help="Python on the TPU VM (default python3)")
    parser.add_argument("--delete_when_done", action="store_true", help="delete the TPU VM after phase 2")
    add_phase_arguments(parser, "gs:// directory of the run", "a gs:// file glob")
    return parser.parse_args(argv)


def hosts_of(accelerator_type):
    """1 for single-host types (at most 8 cores or chips), else more than one."""
    match = ACCELERATOR.match(accelerator_type)
    if not match:
        raise LaunchError(
            f"--accelerator_type: expected <version>-<cores or chips> (v4-128), got {accelerator_type!r}"
        )
    return 1 if int(match.group(1)) <= 8 else 2


def check_gcs_paths(args):
    if not args.model_dir.startswith("gs://"):
        raise LaunchError(
            f"--model_dir: expected a gs:// path (TPU hosts write to Cloud Storage), got {args.model_dir!r}"
        )
    for phase in args.phases:
        name = f"phase{phase}_data"
        value = getattr(args, name)
        if not value:
            raise LaunchError(
                f"--{name}: required for phase {phase} (a gs:// file glob of the training TFRecords)"
            )
        if not value.startswith("gs://"):
            raise LaunchError(
                f"--{name}: expected a gs:// path (every TPU host reads the data), got {value!r}"
            )


def gcloud_tpu(args, verb, *rest):
    scope = [f"--zone={args.zone}"] + ([f"--project={args.project}"] if args.project else [])
    return ("gcloud", "compute", "tpus", "tpu-vm", verb, *rest, *scope)


def on_workers(args, workers, script):
    return gcloud_tpu(args, "ssh", args.tpu_name, f"--worker={workers}", f"--command={script}")


def install_script(args):
    """Installs requirements.txt with constraints.txt, keeping the TPU software version's TensorFlow."""
    tensorflow = pinned_version("tensorflow")
    tensorflow_text = pinned_version("tensorflow-text")
    major_minor = ".".join(tensorflow.split(".")[:2])
    check = (
        f'import tensorflow as tf, tensorflow_text; assert tf.__version__.startswith("{major_minor}."), '
        f'"TensorFlow " + tf.__version__ + " on the TPU VM; the code is pinned to {tensorflow}"'
    )
    pip = f"{args.python} -m pip install --quiet"
    return " && ".join(
        [
            f"cd {REMOTE_DIR}",
            "grep -v -E '^(tensorflow|tensorflow-text)==' requirements.txt > /tmp/requirements-tpu.txt",
            f"{pip} -r /tmp/requirements-tpu.txt -c constraints.txt",
            f"{pip} --no-deps tensorflow-text=={tensorflow_text}",
            f"{args.python} -c {shlex.quote(check)}",
        ]
    )


def setup_stages(args):
    if args.repo_url:
        fetch = f"rm -rf {REMOTE_DIR} && git clone --depth=1 --branch={shlex.quote(args.repo_ref)} " + (
            f"{shlex.quote(args.repo_url)} {REMOTE_DIR}"
        )
        code = [single("clone the code on every worker", on_workers(args, "all", fetch))]
    else:
        local_archive = f"/tmp/{args.tpu_name}-{ARCHIVE}"
        pack = (
            "git",
            "-C",
            str(ROOT),
            "archive",
            "--format=tar.gz",
            f"--prefix={REMOTE_DIR}/",
            "-o",
            local_archive,
            "HEAD",
        )
        copy = gcloud_tpu(args, "scp", local_archive, f"{args.tpu_name}:{ARCHIVE}", "--worker=all")
        unpack = f"rm -rf {REMOTE_DIR} && tar -xzf {ARCHIVE} && rm {ARCHIVE}"
        code = [
            single("pack this checkout's committed HEAD", pack),
            single("copy it to every worker", copy),
            single("unpack it on every worker", on_workers(args, "all", unpack)),
        ]
    install = single(
        "install the pinned requirements on every worker", on_workers(args, "all", install_script(args))
    )
    return [*code, install]


def detached_script(commands):
    """The shell script that starts the phases one after the other in a session of their own (setsid nohup),
    so that they outlive the ssh connection; each phase's log is copied to its model_dir."""

    def copy(phase):
        return (
            f"gcloud storage cp --quiet {LOG_DIR}/{phase.name}.log {phase.model_dir}/run.log >/dev/null 2>&1"
        )

    copy_all = "; ".join(copy(phase) for phase, _ in commands)
    lines = [
        f"( while sleep {COPY_LOGS_EVERY_SECONDS}; do {copy_all}; done ) & copier=$!",
        "status=0",
    ]
    for phase, command in commands:
        run = f"{command} > {LOG_DIR}/{phase.name}.log 2>&1 || status=$?"
        lines.append(f"[ $status -eq 0 ] && {{ {run}; {copy(phase)}; }}")
    lines += ["kill $copier", f"echo $status > {LOG_DIR}/exit_code"]
    inner = "; ".join(lines)
    # In braces, `&` puts only setsid in the background, and $! is the phases' process (no job control: setsid
    # does not fork), which the follow stage waits for.
    return (
        f"cd {REMOTE_DIR} && mkdir -p {LOG_DIR} && rm -f {LOG_DIR}/exit_code && "
        f"{{ setsid nohup sh -c {shlex.quote(inner)} > {LOG_DIR}/launcher.log 2>&1 < /dev/null & "
        f"echo $! > {LOG_DIR}/run.pid; }}"
    )


def follow_script(phases):
    """Shows the phases' logs until they end, then exits with their exit code."""
    logs = " ".join(f"{LOG_DIR}/{phase.name}.log" for phase in phases)
    return (
        f"cd {REMOTE_DIR} && tail -n +1 -F --pid=$(cat {LOG_DIR}/run.pid) {logs} 2>/dev/null; "
        f"exit $(cat {LOG_DIR}/exit_code 2>/dev/null || echo 1)"
    )


def build_stages(args):
    check_gcs_paths(args)
    multi_host = hosts_of(args.accelerator_type) > 1
    version = args.runtime_version or (
        f"tpu-vm-tf-{pinned_version('tensorflow')}{'-pod' if multi_host else ''}-pjrt"
    )
    stages = []
    if not args.skip_create:
        create = gcloud_tpu(
            args,
            "create",
            args.tpu_name,
            f"--accelerator-type={args.accelerator_type}",
            f"--version={version}",
        )
        stages.append(
            single(f"create the TPU VM {args.tpu_name}", create + (("--spot",) if args.spot else ()))
        )
    if not args.skip_setup:
        stages += setup_stages(args)
    # A slice of several hosts is driven by the TensorFlow client on worker 0 through the TPU name; the
    # client must leave the TPU library to the TPU runtime of the hosts. One host: the local TPU. The
    # accelerator type names the TPU for the model FLOP utilisation (trainer/summaries.py).
    tpu, library = (args.tpu_name, " TPU_LOAD_LIBRARY=0") if multi_host else ("local", "")
    environment = f"env TPU_ACCELERATOR_TYPE={shlex.quote(args.accelerator_type)}{library} "
    phases = two_phase_plan(args)
    commands = [
        (
            phase,
            environment + shlex.join([args.python, ENTRY_POINT, *pretraining_args(phase, "tpu", tpu=tpu)]),
        )
        for phase in phases
    ]
    names = ", ".join(phase.name for phase in phases)
    stages.append(
        single(f"start {names} on worker 0, detached", on_workers(args, "0", detached_script(commands)))
    )
    stages.append(
        single(f"follow the logs of {names} until they end", on_workers(args, "0", follow_script(phases)))
    )
    if args.delete_when_done:
        stages.append(
            single(f"delete the TPU VM {args.tpu_name}", gcloud_tpu(args, "delete", args.tpu_name, "--quiet"))
        )
    return stages


if __name__ == "__main__":
    sys.exit(main_with(parse_args, build_stages, sys.argv[1:]))
