"""Pretrain BERT on several GPU hosts with MultiWorkerMirroredStrategy: one TF_CONFIG per node.

    python scripts/launch/launch_gpu_cluster.py --hosts=gpu-a,gpu-b,gpu-c,gpu-d \\
        --model_dir=/shared/runs/bert \\
        --phase1_data='/shared/data/seq128/*.tfrecord' --phase2_data='/shared/data/seq512/*.tfrecord' \\
        --dry_run

Every node runs `run_pretraining.py --strategy=multi_worker` with the environment variable TF_CONFIG naming
the whole cluster (the same list of host:port workers on every node) and the node's own task index; worker 0
is the chief that writes the logs, the summaries and the export. Phase 1 starts on all nodes at the same
time; phase 2 starts when phase 1 has ended on every node, from phase 1's final weights.

  --launcher=ssh     `ssh <host> env -C <workdir> TF_CONFIG=... python3 run_pretraining.py ...`
                     (the checkout and its virtualenv at the same path on every node: a shared filesystem)
  --launcher=docker  `ssh <host> docker run --gpus=all --network=host -e TF_CONFIG=... -v <data>:/data
                     -v <model>:/model <image> ...` with the image built from the Dockerfile
  --this_node=K      run node K's commands here, without ssh: under Slurm every node runs this script with
                     K = $SLURM_NODEID (scripts/launch/slurm_pretrain.sbatch)

model_dir and the data must be visible to every node at the same path (a shared filesystem or gs://):
each worker reads its share of the data, and phase 2 on every node reads phase 1's checkpoint.

--overlay=hardware/a100-80g-x8.yaml gives both phases the overlay of one node (micro-batch, precision,
NCCL); its runtime.num_replicas counts the GPUs of one node, so the phases get runtime.num_replicas = that x
the number of nodes (--gpus_per_node x nodes when given), which the run checks against what it finds.
"""

import dataclasses
import json
import shlex
import sys

import yaml
from launch_common import (
    ENTRY_POINT,
    ROOT,
    ArgumentParser,
    Command,
    LaunchError,
    Stage,
    add_phase_arguments,
    main_with,
    overlay_path,
    pretraining_args,
    two_phase_plan,
)

CONTAINER_DATA, CONTAINER_MODEL = "/data", "/model"  # the volumes of the Dockerfile


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hosts", required=True, help="comma-separated hosts, optionally host:port; node K = K-th"
    )
    parser.add_argument(
        "--port", type=int, default=23456, help="port of every worker without its own (23456)"
    )
    parser.add_argument("--launcher", choices=("ssh", "docker"), default="ssh")
    parser.add_argument("--this_node", type=int, help="run node K here without ssh (Slurm: $SLURM_NODEID)")
    parser.add_argument(
        "--ssh", default="ssh", help="ssh command and options, e.g. 'ssh -p 2222' (default ssh)"
    )
    parser.add_argument(
        "--workdir", default=str(ROOT), help="ssh: the checkout on every node (default this one)"
    )
    parser.add_argument(
        "--python", default="python3", help="ssh: Python with the requirements, e.g. .venv/bin/python"
    )
    parser.add_argument("--gpus_per_node", type=int, help="GPUs used on each node (default all)")
    parser.add_argument(
        "--image", default="bert-lamb:latest", help="docker: the image built from the Dockerfile"
    )
    parser.add_argument("--data_volume", help=f"docker: host directory mounted at {CONTAINER_DATA}")
    parser.add_argument("--model_volume", help=f"docker: host directory mounted at {CONTAINER_MODEL}")
    add_phase_arguments(
        parser,
        f"directory of the run on a shared filesystem or gs:// (docker: under {CONTAINER_MODEL} or gs://)",
        f"a glob visible to every node (docker: under {CONTAINER_DATA} or gs://)",
    )
    return parser.parse_args(argv)


def workers_of(args):
    """['host:port', ...] in node order."""
    workers = []
    for entry in args.hosts.split(","):
        host, _, port = entry.strip().partition(":")
        if not host or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise LaunchError(
                f"--hosts: expected host or host:port entries separated by commas, got {entry!r}"
            )
        workers.append(f"{host}:{port or args.port}")
    if len(set(workers)) != len(workers):
        raise LaunchError(f"--hosts: a worker is listed twice in {args.hosts!r}")
    return workers


def tf_config(workers, index):
    """TF_CONFIG of node `index`: the whole cluster and this node's task (worker 0 is the chief)."""
    config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
    return json.dumps(config, separators=(",", ":"))


def check_args(args, workers):
    if not 1 <= args.port <= 65535:
        raise LaunchError(f"--port: expected 1..65535, got {args.port}")
    if args.this_node is not None and not 0 <= args.this_node < len(workers):
        raise LaunchError(
            f"--this_node: expected 0..{len(workers) - 1} (one per host of --hosts), got {args.this_node}"
        )
    if args.gpus_per_node is not None and args.gpus_per_node < 1:
        raise LaunchError(f"--gpus_per_node: expected a number >= 1, got {args.gpus_per_node}")
    if args.launcher == "docker":
        for phase in args.phases:
            if not getattr(args, f"phase{phase}_data"):
                raise LaunchError(
                    f"--phase{phase}_data: required with --launcher=docker (the config's default path is not "
                    f"inside the container), a glob under {CONTAINER_DATA} or gs://"
                )
        for flag, value, inside in (
            ("--model_dir", args.model_dir, CONTAINER_MODEL),
            ("--phase1_data", args.phase1_data, CONTAINER_DATA),
            ("--phase2_data", args.phase2_data, CONTAINER_DATA),
        ):
            if value and not (value.startswith("gs://") or value.startswith(inside + "/") or value == inside):
                raise LaunchError(
                    f"{flag}: with --launcher=docker, expected a path under {inside} or gs://, got {value!r}"
                )
        if args.model_dir.startswith(CONTAINER_MODEL) and not args.model_volume:
            raise LaunchError(
                f"--model_volume: required with --launcher=docker and --model_dir under {CONTAINER_MODEL}"
            )
        data = (args.phase1_data or "") + (args.phase2_data or "")
        if CONTAINER_DATA in data and not args.data_volume:
            raise LaunchError(
                f"--data_volume: required with --launcher=docker and data under {CONTAINER_DATA}"
            )


def node_command(args, phase, workers, index):
    """The command that runs `phase` as node `index`, as that node runs it."""
    arguments = pretraining_args(phase, "multi_worker")
    config = tf_config(workers, index)
    if args.launcher == "docker":
        gpus = "all" if args.gpus_per_node is None else str(args.gpus_per_node)
        volumes = []
        if args.data_volume:
            volumes += ["-v", f"{args.data_volume}:{CONTAINER_DATA}:ro"]
        if args.model_volume:
            volumes += ["-v", f"{args.model_volume}:{CONTAINER_MODEL}"]
        # --network=host: the workers reach each other at the host:port of TF_CONFIG; --ipc=host: NCCL's
        # shared memory between the GPUs of a node.
        docker = ["docker", "run", "--rm", f"--gpus={gpus}", "--network=host", "--ipc=host"]
        return [*docker, "-e", f"TF_CONFIG={config}", *volumes, args.image, *arguments]
    environment = [f"TF_CONFIG={config}"]
    if args.gpus_per_node is not None:
        environment.append("CUDA_VISIBLE_DEVICES=" + ",".join(map(str, range(args.gpus_per_node))))
    # env -C: run in the checkout (relative paths of the configs and of --python are relative to it).
    return ["env", "-C", args.workdir, *environment, *shlex.split(args.python), ENTRY_POINT, *arguments]


def on_node(args, workers, index, command):
    """`command` on node `index`: here with --this_node, else through ssh."""
    if args.this_node is not None:
        return tuple(command)
    host = workers[index].rsplit(":", 1)[0]
    return (*shlex.split(args.ssh), host, shlex.join(command))


def cluster_replicas(args, overlay, num_nodes):
    """The replicas of the whole cluster: GPUs per node (--gpus_per_node, else the overlay's
    runtime.num_replicas, which describes one node) x nodes."""
    per_node = args.gpus_per_node
    if per_node is None:
        values = yaml.safe_load(overlay_path(overlay).read_text()) or {}
        per_node = (values.get("runtime") or {}).get("num_replicas")
        if not isinstance(per_node, int):
            raise LaunchError(f"--overlay: {overlay} states no runtime.num_replicas (the GPUs of one node)")
    return per_node * num_nodes


def build_stages(args):
    workers = workers_of(args)
    check_args(args, workers)
    nodes = range(len(workers)) if args.this_node is None else [args.this_node]
    stages = []
    for phase in two_phase_plan(args):
        if phase.overlay:
            replicas = cluster_replicas(args, phase.overlay, len(workers))
            phase = dataclasses.replace(
                phase, overrides=(*phase.overrides, f"runtime.num_replicas={replicas}")
            )
        commands = tuple(
            Command(
                f"node {index} ({workers[index]})",
                on_node(args, workers, index, node_command(args, phase, workers, index)),
            )
            for index in nodes
        )
        where = (
            f"on {len(workers)} nodes"
            if args.this_node is None
            else f"as node {args.this_node} of {len(workers)}"
        )
        stages.append(Stage(f"{phase.name} {where} ({phase.config})", commands))
    return stages


if __name__ == "__main__":
    sys.exit(main_with(parse_args, build_stages, sys.argv[1:]))
