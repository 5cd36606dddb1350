"""Pretrain BERT with LAMB at large batch sizes.

    python run_pretraining.py --config=phase1.yaml                        # BERT-Large, batch 65536, seq 128
    python run_pretraining.py --config=phase2.yaml                        # batch 32768, seq 512, from phase 1
    python run_pretraining.py --config=demo.yaml                          # tiny BERT on the CPU, minutes
    python run_pretraining.py --config=phase1.yaml --set train.micro_batch_size=32 --model_dir=gs://b/run1
    python run_pretraining.py --config=phase1.yaml --config=hardware/tpu-v3-1024.yaml --mode=plan
    python run_pretraining.py --config=phase1.yaml --mode=eval --follow   # evaluate checkpoints as they come
    python run_pretraining.py --config=phase1.yaml --mode=export --checkpoint=ckpt-2000

A bad config, command line, data set or checkpoint, and a run whose loss stops being finite, are reported as
one line on stderr with exit code 2. On SIGTERM, SIGINT (Ctrl-C) or SIGHUP (a closed terminal) a training
run saves a checkpoint and exits with code 128 + the signal's number; the same command resumes it.
--mode=plan prints the resolved config, the batches, the schedule and the memory estimate, without making
a strategy or reading data. Every config key is listed in the help of --set (python run_pretraining.py
--helpfull).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before anything imports TensorFlow: its C++ start-up lines (and the GPU driver's, when the devices are first
# listed) would otherwise come before a one-line error.
from data.tensorflow_startup import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly(list_devices=True)


from absl import app, flags, logging  # noqa: E402

import trainer  # noqa: E402
from trainer import config as config_lib  # noqa: E402
from trainer import plan as plan_lib  # noqa: E402
from trainer import strategy as strategy_lib  # noqa: E402
from trainer.cli import keys_help, show_progress_only  # noqa: E402

MODES = (*trainer.MODES, "plan")


flags.DEFINE_multi_string(
    "config",
    [],
    "YAML config: a path, or a name in configs/ (phase1.yaml, phase2.yaml, demo.yaml, hardware/cpu.yaml); "
    "repeatable: each later file overrides the keys it sets (a phase, then a hardware overlay)",
)
flags.DEFINE_multi_string("set", [], keys_help(config_lib.key_table()))
flags.DEFINE_string("model_dir", None, "checkpoints, logs and the export (sets runtime.model_dir)")
flags.DEFINE_string(
    "mode", "train", f"one of {', '.join(MODES)} (plan: print the plan; no strategy, no data read)"
)
flags.DEFINE_string(
    "strategy", None, f"one of {', '.join(config_lib.STRATEGIES)} (sets runtime.strategy; default auto)"
)
flags.DEFINE_string("tpu", None, "Cloud TPU name or grpc:// address (sets runtime.tpu)")
flags.DEFINE_string("num_gpus", None, "GPUs used by the mirrored strategy (sets runtime.num_gpus)")
flags.DEFINE_string(
    "checkpoint",
    None,
    "--mode=eval/export: a checkpoint name in model_dir (ckpt-2000) or a path; default the latest "
    "(sets runtime.checkpoint)",
)
flags.DEFINE_bool(
    "follow",
    None,
    "--mode=eval: evaluate each new checkpoint of model_dir until the final step (sets eval.follow)",
)

FLAGS = flags.FLAGS

# These flags are shorthands for config keys; given, they win over the file and --set.
SHORTHAND_FLAGS = {
    "model_dir": "runtime.model_dir",
    "strategy": "runtime.strategy",
    "tpu": "runtime.tpu",
    "num_gpus": "runtime.num_gpus",
    "checkpoint": "runtime.checkpoint",
    "follow": "eval.follow",
}


def fail(message):
    """One line on stderr, exit code 2: what a user has to fix, without a traceback."""
    print(f"run_pretraining.py: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])} (flags are --name=value)")
    if not FLAGS.config:
        fail("--config is required (e.g. --config=demo.yaml)")
    if FLAGS.mode not in MODES:
        fail(f"--mode: expected one of {', '.join(MODES)}, got {FLAGS.mode!r}")
    show_progress_only()
    overrides = list(FLAGS.set)
    for flag, key in SHORTHAND_FLAGS.items():
        value = FLAGS[flag].value
        if value is not None:
            overrides.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    try:
        config = trainer.load_config(FLAGS.config, overrides)
        if FLAGS.mode == "plan":
            print("\n".join(plan_lib.describe_plan(config)))
            return
        trainer.run(config, mode=FLAGS.mode)
    except strategy_lib.NoGpuError as e:
        strategy_lib.show_cuda_diagnostics()
        fail(e)
    except trainer.USER_ERRORS as e:
        fail(e)
    except trainer.Preempted as e:
        logging.warning("%s", e)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    app.run(main)
