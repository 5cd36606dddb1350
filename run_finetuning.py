"""Fine-tune a pretrained BERT on GLUE, SQuAD v1.1 or the demo's library task.

    python run_finetuning.py --config=mrpc.yaml --set task.data_dir=glue/MRPC \
        --set model.init_checkpoint=runs/demo/model/export --model_dir=runs/mrpc
    python run_finetuning.py --config=squad_v1.1.yaml --set model.init_checkpoint=uncased_L-12_H-768_A-12 \
        --model_dir=gs://bucket/squad --strategy=tpu --tpu=my-tpu
    python run_finetuning.py --config=mrpc.yaml --model_dir=runs/mrpc --mode=eval     # the latest checkpoint

The config files are in configs/finetune/ (or give a path). Running the same command again resumes from the
latest checkpoint in model_dir; SIGTERM, SIGINT or SIGHUP save a checkpoint and stop (exit code 128 + the
signal's number). A bad config, command line, data file or checkpoint is reported as one line
on stderr with exit code 2. Every config key is listed in the help of --set (--helpfull).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before anything imports TensorFlow: its C++ start-up lines would otherwise come before a one-line error.
from data.tensorflow_startup import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly(list_devices=True)

from absl import app, flags, logging  # noqa: E402

import finetune  # noqa: E402
import trainer  # noqa: E402
from finetune import config as config_lib  # noqa: E402
from trainer.cli import keys_help, show_progress_only  # noqa: E402

flags.DEFINE_multi_string(
    "config",
    [],
    "YAML config: a path, or a file name in configs/finetune/ (mrpc.yaml, ...); repeatable: each later "
    "file overrides the keys it sets",
)
flags.DEFINE_multi_string("set", [], keys_help(config_lib.key_table()))
flags.DEFINE_string(
    "model_dir", None, "checkpoints, config.yaml and eval_results.json (sets runtime.model_dir)"
)
flags.DEFINE_string("mode", "train", f"one of {', '.join(finetune.MODES)}")
flags.DEFINE_string(
    "strategy", None, "one of auto, one_device, mirrored, multi_worker, tpu (sets runtime.strategy)"
)
flags.DEFINE_string("tpu", None, "Cloud TPU name or grpc:// address (sets runtime.tpu)")
flags.DEFINE_string("num_gpus", None, "GPUs used by the mirrored strategy (sets runtime.num_gpus)")
flags.DEFINE_string(
    "checkpoint", None, "--mode=eval: a checkpoint name in model_dir or a path (sets runtime.checkpoint)"
)

FLAGS = flags.FLAGS

SHORTHAND_FLAGS = {
    "model_dir": "runtime.model_dir",
    "strategy": "runtime.strategy",
    "tpu": "runtime.tpu",
    "num_gpus": "runtime.num_gpus",
    "checkpoint": "runtime.checkpoint",
}


def fail(message):
    """One line on stderr, exit code 2: what a user has to fix, without a traceback."""
    print(f"run_finetuning.py: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])} (flags are --name=value)")
    if not FLAGS.config:
        fail("--config is required (e.g. --config=mrpc.yaml)")
    if FLAGS.mode not in finetune.MODES:
        fail(f"--mode: expected one of {', '.join(finetune.MODES)}, got {FLAGS.mode!r}")
    show_progress_only()
    overrides = list(FLAGS.set)
    for flag, key in SHORTHAND_FLAGS.items():
        if FLAGS[flag].value is not None:
            overrides.append(f"{key}={FLAGS[flag].value}")
    try:
        config = finetune.load_config(FLAGS.config, overrides)
        finetune.run(config, mode=FLAGS.mode)
    except (*trainer.USER_ERRORS, ValueError) as e:
        fail(e)
    except trainer.Preempted as e:
        logging.warning("%s", e)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    app.run(main)
