"""What pretraining bought, on the demo: the library task from the pretrained BERT-tiny of `make demo` and
from random weights of the same architecture, with the same config, budget and seed, two ways:

    linear probe   the encoder frozen, only the classifier trained (what the encoder's features hold)
    fine-tuned     every weight trained (configs/finetune/demo_library.yaml as it is)

    make demo-finetune           (= python -m finetune.demo, after make demo)

Writes the task to runs/demo/library/ (when it is not there yet), runs the config four times (model_dir
runs/demo/library/{probe,finetuned}/{pretrained,random}: the config's runtime.model_dir is the fine-tuned
pretrained one) and prints the four held-out accuracies.
"""

import argparse
import os
import sys

from data.tensorflow_startup import import_tensorflow_quietly
from finetune import library_task
from finetune.config import load_config
from finetune.train import finetune
from trainer.cli import show_progress_only
from trainer.errors import USER_ERRORS

CONFIG = "demo_library.yaml"
# The probe trains the classifier alone, which takes a larger learning rate than the whole model.
WAYS = {
    "probe": ["model.freeze_encoder=true", "schedule.peak_learning_rate=1e-3"],
    "finetuned": [],
}


def compare(config_name=CONFIG, overrides=(), library_kwargs=None):
    """{(way, start): metrics} for way in WAYS and start in ("pretrained", "random"). `overrides` apply
    to every run; `library_kwargs` go to library_task.write_library_task."""
    config = load_config(config_name, overrides)
    export_dir = config.model.init_checkpoint
    if not export_dir or not os.path.isdir(export_dir):
        raise ValueError(
            f"model.init_checkpoint: no pretrained export at {export_dir} (run `make demo` first)"
        )
    data_dir = config.task.data_dir
    if not os.path.isfile(os.path.join(data_dir, "dev.tsv")):
        train_rows, eval_rows = library_task.write_library_task(data_dir, **(library_kwargs or {}))
        print(f"wrote the library task to {data_dir}: {len(train_rows)} training, {len(eval_rows)} held out")
    # runtime.model_dir is <base>/finetuned/pretrained: the four runs go to <base>/<way>/<start>
    base = os.path.dirname(os.path.dirname(config.runtime.model_dir.rstrip("/")))
    random_start = [
        "model.init_checkpoint=null",
        f"model.bert_config={os.path.join(export_dir, 'bert_config.json')}",
        f"model.vocab_file={os.path.join(export_dir, 'vocab.txt')}",
    ]
    results = {}
    for way, way_overrides in WAYS.items():
        for start, start_overrides in (("pretrained", []), ("random", random_start)):
            model_dir = f"runtime.model_dir={os.path.join(base, way, start)}"
            run_config = load_config(config_name, [*overrides, *way_overrides, *start_overrides, model_dir])
            results[way, start] = finetune(run_config).eval_metrics
    return results


def table(results):
    lines = [
        "| encoder at the start | linear probe (encoder frozen) | fine-tuned (all weights) |",
        "|---|---|---|",
    ]
    for start, label in (("pretrained", "pretrained (make demo)"), ("random", "random initialisation")):
        probe, tuned = results["probe", start]["accuracy"], results["finetuned", start]["accuracy"]
        lines.append(f"| {label} | {probe:.4f} | {tuned:.4f} |")
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
    print("held-out accuracy on the library task (chance 0.3333):")
    print(table(results))


if __name__ == "__main__":
    main()
