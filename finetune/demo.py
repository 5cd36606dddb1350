"""What pretraining bought, on the demo: the library task fine-tuned from the pretrained BERT-tiny of
`make demo` and from random weights of the same architecture, with the same config, budget and seed.

    make demo-finetune           (= python -m finetune.demo, after make demo)

Writes the task to runs/demo/library/ (when it is not there yet), runs configs/finetune/demo_library.yaml
twice (model_dir runs/demo/library/pretrained and runs/demo/library/random) and prints both held-out
accuracies. A run already finished is not trained again (its last evaluation is read back).
"""

import argparse
import os
import sys

from data.tensorflow_startup import import_tensorflow_quietly
from finetune import library_task
from finetune.config import load_config
from finetune.progress import show_progress_only
from finetune.train import finetune
from trainer.errors import USER_ERRORS

CONFIG = "demo_library.yaml"


def compare(config_name=CONFIG, overrides=(), library_kwargs=None):
    """Fine-tunes from init_checkpoint and from random weights; returns {"pretrained": metrics, "random":
    metrics}. `overrides` apply to both runs; `library_kwargs` go to library_task.write_library_task."""
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
    base = os.path.dirname(config.runtime.model_dir.rstrip("/"))
    random_overrides = [
        "model.init_checkpoint=null",
        f"model.bert_config={os.path.join(export_dir, 'bert_config.json')}",
        f"model.vocab_file={os.path.join(export_dir, 'vocab.txt')}",
        f"runtime.model_dir={os.path.join(base, 'random')}",
    ]
    return {
        "pretrained": finetune(config).eval_metrics,
        "random": finetune(load_config(config_name, [*overrides, *random_overrides])).eval_metrics,
    }


def table(results):
    lines = ["| encoder at the start | held-out accuracy |", "|---|---|"]
    for name, label in (("pretrained", "pretrained (make demo)"), ("random", "random initialisation")):
        lines.append(f"| {label} | {results[name]['accuracy']:.4f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", action="append", default=[], help="section.key=value, for both runs")
    args = parser.parse_args()
    import_tensorflow_quietly(list_devices=True)  # without the GPU driver's start-up lines
    show_progress_only()
    try:
        results = compare(args.config, args.set)
    except USER_ERRORS + (ValueError,) as e:
        print(f"finetune.demo: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    print(table(results))


if __name__ == "__main__":
    main()
