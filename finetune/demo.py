"""What pretraining bought, on the demo: the library task (finetune/library_task.py: 16 labelled sentences
per library, 1800 held out) fine-tuned from the pretrained BERT-tiny of `make demo` and from random weights
of the same architecture and vocabulary, with the same config, budget, data and seed, for three seeds (a
seed draws the labelled sentences and sets train.seed).

    make demo-finetune           (= python -m finetune.demo, after make demo)

Under runs/demo/library: seed-S/train.tsv and dev.tsv (written again by every run, the same each time), and
the runs seed-S/pretrained and seed-S/random, each started afresh (a run of other weights is never
resumed). Prints every held-out accuracy, the means and the difference. The config's learning rate is the
best of a grid for both starts (scripts/experiments/library_gap.py; docs/finetuning.md).
"""

import argparse
import os
import shutil
import statistics
import sys

from data.tensorflow_startup import import_tensorflow_quietly
from finetune import library_task
from finetune.config import load_config
from finetune.train import finetune
from trainer.cli import show_progress_only
from trainer.errors import USER_ERRORS

CONFIG = "demo_library.yaml"
WORK_DIR = os.path.join("runs", "demo", "library")
SEEDS = (0, 1, 2)
STARTS = ("pretrained", "random")


def pretrained_export(config):
    export_dir = config.model.init_checkpoint
    if not export_dir or not os.path.isdir(export_dir):
        raise ValueError(
            f"model.init_checkpoint: no pretrained export at {export_dir} (run `make demo` first)"
        )
    return export_dir


def start_overrides(start, export_dir):
    """The keys of a start: the export's weights, or random weights of its architecture and vocabulary."""
    if start == "pretrained":
        return [f"model.init_checkpoint={export_dir}"]
    return [
        "model.init_checkpoint=null",
        f"model.bert_config={os.path.join(export_dir, 'bert_config.json')}",
        f"model.vocab_file={os.path.join(export_dir, 'vocab.txt')}",
    ]


def write_task(work_dir, seed, library_kwargs=None):
    """<work_dir>/seed-S with the task's files of seed S (the same files each time for the same arguments)."""
    data_dir = os.path.join(work_dir, f"seed-{seed}")
    train_rows, eval_rows = library_task.write_library_task(data_dir, seed=seed, **(library_kwargs or {}))
    print(f"wrote the library task to {data_dir}: {len(train_rows)} training, {len(eval_rows)} held out")
    return data_dir


def finetune_from(start, data_dir, seed, config_name=CONFIG, overrides=(), run_name=""):
    """The held-out accuracy of one run of the config on the task in `data_dir`, from `start` ("pretrained"
    or "random") with train.seed `seed`, started afresh in <data_dir>/<run_name>/<start>. `overrides` apply
    first, then the start's, the seed's and the directories' keys."""
    export_dir = pretrained_export(load_config(config_name, overrides))
    model_dir = os.path.join(data_dir, run_name, start)
    shutil.rmtree(model_dir, ignore_errors=True)
    config = load_config(
        config_name,
        [
            *overrides,
            *start_overrides(start, export_dir),
            f"train.seed={seed}",
            f"task.data_dir={data_dir}",
            f"runtime.model_dir={model_dir}",
        ],
    )
    return finetune(config).eval_metrics["accuracy"]


def compare(config_name=CONFIG, overrides=(), seeds=SEEDS, work_dir=WORK_DIR, library_kwargs=None):
    """{(start, seed): held-out accuracy} for every start and seed."""
    pretrained_export(load_config(config_name, overrides))  # before the corpus is read
    data_dirs = {seed: write_task(work_dir, seed, library_kwargs) for seed in seeds}
    return {
        (start, seed): finetune_from(start, data_dirs[seed], seed, config_name, overrides)
        for seed in seeds
        for start in STARTS
    }


def with_mean(values):
    return [*values, statistics.mean(values)]


def table(results):
    """A Markdown table: a row per start and one of their difference, a column per seed and the mean."""
    seeds = sorted({seed for _, seed in results})
    pretrained = [results["pretrained", seed] for seed in seeds]
    random_start = [results["random", seed] for seed in seeds]
    differences = [p - r for p, r in zip(pretrained, random_start, strict=True)]
    rows = [
        ("pretrained (make demo)", [f"{a:.4f}" for a in with_mean(pretrained)]),
        ("random initialisation", [f"{a:.4f}" for a in with_mean(random_start)]),
        ("difference", [f"{d:+.4f}" for d in with_mean(differences)]),
    ]
    lines = [
        "| encoder at the start | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean |",
        "|---" * (len(seeds) + 2) + "|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", action="append", default=[], help="section.key=value, for every run")
    args = parser.parse_args()
    import_tensorflow_quietly(list_devices=True)  # without the GPU driver's start-up lines
    show_progress_only()
    try:
        results = compare(args.config, args.set)
    except USER_ERRORS + (ValueError,) as e:
        print(f"finetune.demo: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    labelled = library_task.TRAIN_PER_LIBRARY * len(library_task.LIBRARIES)
    print(
        f"held-out accuracy on the library task, {labelled} labelled sentences "
        f"(chance {1 / len(library_task.LIBRARIES):.4f}):"
    )
    print(table(results))


if __name__ == "__main__":
    main()
