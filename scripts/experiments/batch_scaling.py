"""The large-batch experiment: masked-LM loss against batch size, LAMB and AdamW at a fixed number of epochs.

You et al. (arXiv 1904.00962) pretrain BERT for a fixed number of epochs at batch sizes up to 64k and move
the recipe from one batch size to another with two rules: the learning rate grows with the square root of
the batch (square-root scaling), and the warmup keeps its number of steps, i.e. lasts k times more epochs
at a k times larger batch (linear-epoch warmup); a k times larger batch makes k times fewer updates. Their
claim: with LAMB the loss stays close to the small batch's up to very large batches, where Adam(W) under the
same rules falls behind. This script runs that experiment in miniature, through the application
(`trainer.train`, the trainer's `schedule.reference_batch_size` rescaling, `optimizer.name: lamb | adamw`):

    python scripts/experiments/batch_scaling.py         # full experiment: 2 optimizers x 5 batch sizes, ~1 h
    python scripts/experiments/batch_scaling.py --quick # 2 x 2 runs on an eighth of the corpus, a few minutes
    python scripts/experiments/batch_scaling.py --tune  # reference learning rates: a grid

Data: the embedded corpus (data/corpus.py: docstrings of the Python standard library, numpy and TensorFlow),
built once with the data library into <work_dir>/data as the demo builds it (a 4000-token WordPiece
vocabulary learned from it, 64-token sequences, 10 masked positions, 4 shards) and reused by every run and
every later invocation. Shards 0-2 train; shard 3 is held out and gives the final metrics (its stored masks,
the same for every run). Training masks afresh every epoch (dynamic masking).

Every run: BERT-tiny (L2 H128 A2) from the same initial weights (seed 0), the same data order, 8 passes
(epochs) over the training shards, Google's BERT recipe otherwise (weight decay 0.01 except LayerNorm and
biases, gradient clipped to global norm 1.0, betas 0.9 / 0.999, epsilon 1e-6), learning rate warmed up
linearly from 0, then decayed to 0 with power 0.5 (the LAMB phase-1 recipe). The reference recipe is
written for batch 32: a peak learning rate per optimizer (chosen with --tune), 4 warmup steps and
ceil(8 epochs x training sequences / 32) steps. Every batch size gets that recipe rescaled by the trainer
(`schedule.reference_batch_size`, i.e. lamb.scale_for_batch_size) with k = batch / 32: learning rate
x sqrt(k), total steps / k (rounded up), warmup steps unchanged. Batches larger than 64 are reached by
gradient accumulation of 64-sequence micro-batches (one update per global batch). The FULL and QUICK
settings below hold these numbers; the command line can change them.

Outputs (--out_dir, default docs/): batch_scaling.csv (one row per run), batch_scaling_curves.csv (the
training masked-LM loss of every summary interval), batch_scaling_final_loss.png (held-out masked-LM loss
and accuracy against batch size), batch_scaling_curves.png (training loss against epochs, a panel per
optimizer, a line per batch size) and batch_scaling.md (settings and table). --tune writes
batch_scaling_tuning.csv and batch_scaling_tuning.md instead. Runs live in <work_dir>/runs (model_dir of
each run: checkpoint, TensorBoard events, export); each invocation starts them afresh.
"""

import argparse
import csv
import dataclasses
import datetime
import io
import math
import os
import pathlib
import platform
import shlex
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402
from absl import logging  # noqa: E402

import data  # noqa: E402
import trainer  # noqa: E402
from data.corpus import DocumentList, embedded_corpus  # noqa: E402
from data.create_pretraining_data import CreationConfig, create_pretraining_data  # noqa: E402
from scripts.experiments.experiment_common import (  # noqa: E402
    OneLineParser,
    batch_list,
    learning_rate_list,
    positive,
    write_atomically,
)
from trainer.controller import SUMMARY_DIR_NAME  # noqa: E402

OPTIMIZERS = ("lamb", "adamw")
OPTIMIZER_TITLES = {"lamb": "LAMB", "adamw": "AdamW"}

# The data: as configs/demo.yaml builds it.
MAX_SEQ_LENGTH = 64
MAX_PREDICTIONS_PER_SEQ = 10
NUM_SHARDS = 4  # shards 0 .. NUM_SHARDS-2 train, the last one is held out
DUPE_FACTOR = 1
DATA_SEED = 12345


@dataclasses.dataclass(frozen=True)
class Setup:
    """The settings of one mode (full or --quick); the command line may replace some of them."""

    batch_sizes: tuple[int, ...]
    epochs: int
    reference_batch_size: int
    reference_learning_rates: dict  # {optimizer: peak learning rate at reference_batch_size}
    reference_warmup_steps: int
    micro_batch_size: int
    corpus_stride: int  # every corpus_stride-th document of the embedded corpus (1: all of it)
    vocab_size: int
    tune_learning_rates: dict  # {optimizer: learning rates tried by --tune at reference_batch_size}


# The reference learning rates are starting values (the demo's LAMB rate moved to batch 32 by the square-root
# rule; a common AdamW rate) until `batch_scaling.py --tune` has chosen them (a grid of
# factor-2 steps at batch 32 with the same epochs, warmup and decay; the lowest held-out masked-LM loss wins).
# 4 warmup steps are 29% of the 14 updates of batch 8192.
FULL = Setup(
    batch_sizes=(32, 128, 512, 2048, 8192),
    epochs=8,
    reference_batch_size=32,
    reference_learning_rates={"lamb": 5e-3, "adamw": 1e-3},
    reference_warmup_steps=4,
    micro_batch_size=64,
    corpus_stride=1,
    vocab_size=4000,
    tune_learning_rates={"lamb": (2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2), "adamw": (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)},
)
QUICK = Setup(
    batch_sizes=(32, 256),
    epochs=2,
    reference_batch_size=32,
    reference_learning_rates={"lamb": 1e-2, "adamw": 2e-3},
    reference_warmup_steps=2,
    micro_batch_size=64,
    corpus_stride=8,
    vocab_size=1000,
    tune_learning_rates={"lamb": (5e-3, 1e-2), "adamw": (1e-3, 2e-3)},
)
CURVE_POINTS = 40  # summary intervals per run (at least one step each)

CSV_FIELDS = (
    "optimizer",
    "batch_size",
    "micro_batch_size",
    "accumulation_steps",
    "peak_learning_rate",
    "warmup_steps",
    "total_steps",
    "epochs",
    "train_masked_lm_loss",
    "heldout_masked_lm_loss",
    "heldout_masked_lm_accuracy",
    "heldout_next_sentence_accuracy",
    "wall_seconds",
)
CURVE_FIELDS = ("optimizer", "batch_size", "step", "epoch", "train_masked_lm_loss")


class ExperimentError(ValueError):
    """A setting the experiment cannot run with; main() prints it as one line with exit code 2."""


# ----------------------------------------------------------------------------------------------------
# Data


def corpus_source(stride):
    """The embedded corpus, or every `stride`-th document of it (the --quick mode's smaller corpus)."""
    corpus = embedded_corpus()
    if stride == 1:
        return corpus
    return DocumentList.from_documents(
        corpus.documents_list[::stride], f"every {stride}th document of {corpus.description}"
    )


def corpus_prefix(stride):
    """How meta.json's "corpus" of data built by corpus_source(stride) begins."""
    return "embedded:" if stride == 1 else f"every {stride}th document of embedded:"


def data_files(data_dir):
    """(training files, held-out files) of the data directory."""
    shards = [
        os.path.join(data_dir, data.shard_file_name("pretraining", i, NUM_SHARDS)) for i in range(NUM_SHARDS)
    ]
    return shards[:-1], shards[-1:]


def ensure_data(data_dir, setup):
    """Builds the data into `data_dir` unless it holds finished data of these settings; returns meta.json.

    A directory with a meta.json of other settings is refused (delete it or choose another --work_dir).
    """
    meta = data.read_meta(data_dir)
    if meta is not None:
        expected = {
            "max_seq_length": MAX_SEQ_LENGTH,
            "max_predictions_per_seq": MAX_PREDICTIONS_PER_SEQ,
            "dupe_factor": DUPE_FACTOR,
            "random_seed": DATA_SEED,
            "num_shards": NUM_SHARDS,
        }
        found = {name: meta.get(name) for name in expected}
        found["corpus"] = str(meta.get("corpus"))[: len(corpus_prefix(setup.corpus_stride))]
        expected["corpus"] = corpus_prefix(setup.corpus_stride)
        found["learned vocab_size"] = meta.get("vocab_source", "").rpartition("vocab_size=")[2].rstrip(")")
        expected["learned vocab_size"] = str(setup.vocab_size)
        for name, value in expected.items():
            if found[name] != value:
                raise ExperimentError(
                    f"{data_dir}: holds data with {name} {found[name]!r}, this experiment needs {value!r}; "
                    f"delete the directory or give another --work_dir"
                )
        print(f"Data: reusing {data_dir} ({meta['num_instances']} sequences)")
        return meta
    print(f"Data: building {data_dir} from the embedded corpus (once; later runs reuse it)")
    settings = CreationConfig(
        input="embedded",  # the corpus_source below: every corpus_stride-th document of it
        output_dir=str(data_dir),
        learn_vocab=True,
        vocab_size=setup.vocab_size,
        max_seq_length=MAX_SEQ_LENGTH,
        max_predictions_per_seq=MAX_PREDICTIONS_PER_SEQ,
        dupe_factor=DUPE_FACTOR,
        random_seed=DATA_SEED,
        num_shards=NUM_SHARDS,
        overwrite=True,  # no meta.json: at most the remains of an interrupted build are there
        quiet=not sys.stderr.isatty(),
    )
    return create_pretraining_data(settings, corpus=corpus_source(setup.corpus_stride))


def training_sequences(meta):
    return sum(shard["num_instances"] for shard in meta["shards"][:-1])


# ----------------------------------------------------------------------------------------------------
# Runs


def base_config(data_dir, meta, setup, train_sequences):
    """The config every run starts from (the reference recipe); runs change it with `--set` overrides."""
    train_files, eval_files = data_files(data_dir)
    return {
        "model": {"bert_config": "tiny", "vocab_size": meta["vocab_size"]},
        "data": {
            "train_files": train_files,
            "eval_files": eval_files,
            "max_seq_length": MAX_SEQ_LENGTH,
            "max_predictions_per_seq": MAX_PREDICTIONS_PER_SEQ,
            "dynamic_masking": True,
            "shuffle_buffer": 2000,
            "cycle_length": NUM_SHARDS - 1,
            "seed": DATA_SEED,
        },
        "optimizer": {
            "name": "lamb",
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-6,
            "weight_decay": 0.01,
            "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"],
            "exclude_from_layer_adaptation": ["LayerNorm", "layer_norm", "bias"],
            "clip_global_norm": 1.0,
        },
        "schedule": {
            "peak_learning_rate": setup.reference_learning_rates["lamb"],
            "warmup_steps": setup.reference_warmup_steps,
            "total_steps": reference_total_steps(setup, train_sequences),
            "power": 0.5,
            "end_learning_rate": 0.0,
            "reference_batch_size": setup.reference_batch_size,
        },
        "train": {
            "global_batch_size": setup.reference_batch_size,
            "micro_batch_size": min(setup.reference_batch_size, setup.micro_batch_size),
            "seed": 0,
        },
        "runtime": {"strategy": "one_device", "mixed_precision": "float32", "jit_compile": False},
    }


def reference_total_steps(setup, train_sequences):
    """Updates of the reference recipe: `epochs` passes over the training sequences at the reference batch."""
    return math.ceil(setup.epochs * train_sequences / setup.reference_batch_size)


@dataclasses.dataclass(frozen=True)
class Run:
    optimizer: str
    batch_size: int
    reference_learning_rate: float
    model_dir: str
    overrides: tuple[str, ...]  # --set overrides of the base config
    schedule: trainer.SchedulePlan  # as the trainer plans it
    micro_batch_size: int

    @property
    def name(self):
        return f"{self.optimizer}-b{self.batch_size}-lr{self.reference_learning_rate:g}"


def micro_batch_for(batch_size, setup):
    """Sequences per forward/backward pass: the batch, at most setup.micro_batch_size (then accumulation)."""
    return min(batch_size, setup.micro_batch_size)


def plan_run(config_path, setup, optimizer, batch_size, reference_learning_rate, runs_dir):
    """The overrides of one run, and its schedule as the trainer rescales it (errors before any training)."""
    micro = micro_batch_for(batch_size, setup)
    model_dir = os.path.join(runs_dir, f"{optimizer}-b{batch_size}-lr{reference_learning_rate:g}")
    overrides = [
        f"optimizer.name={optimizer}",
        f"schedule.peak_learning_rate={reference_learning_rate!r}",
        f"train.global_batch_size={batch_size}",
        f"train.micro_batch_size={micro}",
        f"runtime.model_dir={model_dir}",
    ]
    config = trainer.load_config(config_path, overrides)
    try:
        schedule = trainer.plan_schedule(config.schedule, config.train)
    except trainer.ConfigError as e:
        raise ExperimentError(f"batch size {batch_size} with {setup.epochs} epochs: {e}") from None
    # Summaries (the loss curve) about CURVE_POINTS times per run; one host-loop call per interval.
    interval = max(1, math.ceil(schedule.total_steps / CURVE_POINTS))
    last = interval * math.ceil(schedule.total_steps / interval)
    overrides += [
        f"train.steps_per_loop={interval}",
        f"train.summary_every_steps={interval}",
        f"train.log_every_steps={interval * math.ceil(CURVE_POINTS / 8)}",
        f"train.checkpoint_every_steps={last}",  # only the final checkpoint
        "train.keep_checkpoints=1",
    ]
    return Run(optimizer, batch_size, reference_learning_rate, model_dir, tuple(overrides), schedule, micro)


def read_curve(log_dir, tag="masked_lm_loss"):
    """[(step, value)] of a scalar in the TensorBoard event files of `log_dir`, by step."""
    points = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    points[int(event.step)] = float(value.simple_value)
    return sorted(points.items())


def train_run(run, config_path, train_sequences):
    """Trains one run afresh through the application; returns (CSV row, curve rows)."""
    if os.path.exists(run.model_dir):
        shutil.rmtree(run.model_dir)  # the trainer would resume from an earlier invocation's checkpoint
    config = trainer.load_config(config_path, run.overrides)
    keras.backend.clear_session()  # each run starts from a fresh Keras state (names, graphs)
    start = time.perf_counter()
    result = trainer.train(config)
    seconds = time.perf_counter() - start
    curve = read_curve(os.path.join(run.model_dir, SUMMARY_DIR_NAME))
    if result.step != run.schedule.total_steps or not curve:
        raise RuntimeError(f"{run.name}: the run ended at step {result.step} of {run.schedule.total_steps}")
    batch = run.batch_size
    row = {
        "optimizer": run.optimizer,
        "batch_size": batch,
        "micro_batch_size": run.micro_batch_size,
        "accumulation_steps": batch // run.micro_batch_size,
        "peak_learning_rate": f"{run.schedule.peak_learning_rate:.8g}",
        "warmup_steps": run.schedule.warmup_steps,
        "total_steps": run.schedule.total_steps,
        "epochs": f"{run.schedule.total_steps * batch / train_sequences:.4f}",
        "train_masked_lm_loss": f"{curve[-1][1]:.4f}",  # the last summary interval
        "heldout_masked_lm_loss": f"{result.eval_metrics['masked_lm_loss']:.4f}",
        "heldout_masked_lm_accuracy": f"{result.eval_metrics['masked_lm_accuracy']:.4f}",
        "heldout_next_sentence_accuracy": f"{result.eval_metrics['next_sentence_accuracy']:.4f}",
        "wall_seconds": f"{seconds:.1f}",
    }
    curve_rows = [
        {
            "optimizer": run.optimizer,
            "batch_size": batch,
            "step": step,
            "epoch": f"{step * batch / train_sequences:.4f}",
            "train_masked_lm_loss": f"{loss:.4f}",
        }
        for step, loss in curve
    ]
    return row, curve_rows, result.eval_metrics


def describe_run(run, index, count):
    s = run.schedule
    return (
        f"[{index}/{count}] {OPTIMIZER_TITLES[run.optimizer]} batch {run.batch_size} "
        f"(micro-batch {run.micro_batch_size} x {run.batch_size // run.micro_batch_size}): peak lr "
        f"{s.peak_learning_rate:.4g}, warmup {s.warmup_steps} of {s.total_steps} steps"
    )


def run_all(runs, config_path, train_sequences):
    rows, curves, majority = [], [], None
    for index, run in enumerate(runs, 1):
        print(describe_run(run, index, len(runs)), flush=True)
        row, curve_rows, eval_metrics = train_run(run, config_path, train_sequences)
        majority = eval_metrics["masked_lm_majority_accuracy"]
        rows.append(row)
        curves.extend(curve_rows)
        print(
            f"    train MLM loss {row['train_masked_lm_loss']}, held-out MLM loss "
            f"{row['heldout_masked_lm_loss']}, accuracy {row['heldout_masked_lm_accuracy']} "
            f"({row['wall_seconds']} s)",
            flush=True,
        )
    return rows, curves, majority


# ----------------------------------------------------------------------------------------------------
# Outputs


def csv_text(rows, fields):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def batch_ticks(axis, batch_sizes):
    axis.set_xscale("log", base=2)
    axis.set_xticks(batch_sizes)
    axis.set_xticklabels([str(b) for b in batch_sizes])
    axis.minorticks_off()


def plot_final_loss(rows, majority_accuracy, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch_sizes = sorted({int(r["batch_size"]) for r in rows})
    fig, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"lamb": "tab:blue", "adamw": "tab:orange"}
    for optimizer in OPTIMIZERS:
        mine = sorted((int(r["batch_size"]), r) for r in rows if r["optimizer"] == optimizer)
        if not mine:
            continue
        x = [b for b, _ in mine]
        label = OPTIMIZER_TITLES[optimizer]
        color = colors[optimizer]
        loss_axis.plot(x, [float(r["heldout_masked_lm_loss"]) for _, r in mine], "o-", color=color,
                       label=f"{label}, held-out")  # fmt: skip
        loss_axis.plot(x, [float(r["train_masked_lm_loss"]) for _, r in mine], "s--", color=color, alpha=0.5,
                       markersize=4, label=f"{label}, training (last interval)")  # fmt: skip
        accuracy_axis.plot(x, [float(r["heldout_masked_lm_accuracy"]) for _, r in mine], "o-", color=color,
                           label=label)  # fmt: skip
    accuracy_axis.axhline(majority_accuracy, color="gray", linestyle=":", label="most frequent token")
    loss_axis.set_ylabel("masked-LM loss")
    accuracy_axis.set_ylabel("held-out masked-LM accuracy")
    for axis in (loss_axis, accuracy_axis):
        batch_ticks(axis, batch_sizes)
        axis.set_xlabel("global batch size (sequences)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def plot_curves(curves, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optimizers = [o for o in OPTIMIZERS if any(c["optimizer"] == o for c in curves)]
    batch_sizes = sorted({int(c["batch_size"]) for c in curves})
    colormap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(
        1, len(optimizers), figsize=(5.5 * len(optimizers), 4.2), sharey=True, squeeze=False
    )
    for axis, optimizer in zip(axes[0], optimizers, strict=True):
        for i, batch in enumerate(batch_sizes):
            points = [c for c in curves if c["optimizer"] == optimizer and int(c["batch_size"]) == batch]
            color = colormap(i / max(len(batch_sizes) - 1, 1) * 0.9)
            epochs = [float(c["epoch"]) for c in points]
            losses = [float(c["train_masked_lm_loss"]) for c in points]
            marker = "." if len(points) < 20 else None
            axis.plot(epochs, losses, "-", marker=marker, color=color, label=f"batch {batch}")
        axis.set_title(OPTIMIZER_TITLES[optimizer])
        axis.set_xlabel("epochs (passes over the training shards)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0][0].set_ylabel("training masked-LM loss")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def markdown_table(rows, columns):
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---:|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[name]) for _, name in columns) + " |")
    return "\n".join(lines)


TABLE_COLUMNS = (
    ("optimizer", "optimizer"),
    ("batch", "batch_size"),
    ("accumulation", "accumulation_steps"),
    ("peak lr", "peak_learning_rate"),
    ("warmup / steps", "steps"),
    ("epochs", "epochs"),
    ("train MLM loss", "train_masked_lm_loss"),
    ("held-out MLM loss", "heldout_masked_lm_loss"),
    ("held-out MLM acc.", "heldout_masked_lm_accuracy"),
    ("wall s", "wall_seconds"),
)


def settings_text(setup, meta, train_sequences, command, seconds):
    heldout = meta["shards"][-1]["num_instances"]
    rates = ", ".join(
        f"{OPTIMIZER_TITLES[o]} {setup.reference_learning_rates[o]:g}" for o in setup.reference_learning_rates
    )
    return (
        f"Command: `{command}`; {datetime.date.today().isoformat()}, {platform.machine()} "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{seconds / 60:.1f} minutes in all.\n\n"
        f"BERT-tiny (L2 H128 A2, vocabulary {meta['vocab_size']}) on the embedded corpus "
        f"({train_sequences} training sequences of {MAX_SEQ_LENGTH} tokens, {heldout} held out), "
        f"{setup.epochs} epochs at every batch size. Reference recipe at batch {setup.reference_batch_size}: "
        f"peak learning rate {rates}; {setup.reference_warmup_steps} warmup steps; "
        f"{reference_total_steps(setup, train_sequences)} steps; power-0.5 decay to 0. Other batch sizes: "
        f"learning rate x sqrt(batch / {setup.reference_batch_size}), the same warmup steps, steps / "
        f"(batch / {setup.reference_batch_size}) rounded up. Weight decay 0.01 (not LayerNorm, biases), "
        f"global-norm clipping 1.0, betas 0.9/0.999, epsilon 1e-6, dynamic masking, seed 0."
    )


def table_rows(rows):
    """The CSV rows as the markdown tables show them."""
    return [
        {
            **r,
            "optimizer": OPTIMIZER_TITLES[r["optimizer"]],
            "peak_learning_rate": f"{float(r['peak_learning_rate']):.4g}",
            "steps": f"{r['warmup_steps']} / {r['total_steps']}",
            "epochs": f"{float(r['epochs']):.2f}",
        }
        for r in rows
    ]


def write_experiment_outputs(out_dir, rows, curves, majority, setup, meta, train_sequences, command, seconds):
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = (
        f"BERT-tiny, {setup.epochs} epochs of the embedded corpus at every batch size; learning rate x "
        f"sqrt(batch/{setup.reference_batch_size}), linear-epoch warmup"
    )
    settings = settings_text(setup, meta, train_sequences, command, seconds)
    report = "\n\n".join(
        [
            "# Masked-LM loss against batch size: LAMB and AdamW",
            settings,
            markdown_table(table_rows(rows), TABLE_COLUMNS),
            f"Held-out accuracy of always predicting the most frequent masked token: {majority:.4f}.",
        ]
    )
    paths = {
        "csv": out_dir / "batch_scaling.csv",
        "curves_csv": out_dir / "batch_scaling_curves.csv",
        "final_loss": out_dir / "batch_scaling_final_loss.png",
        "curves": out_dir / "batch_scaling_curves.png",
        "report": out_dir / "batch_scaling.md",
    }
    write_atomically(paths["csv"], lambda p: p.write_text(csv_text(rows, CSV_FIELDS)))
    write_atomically(paths["curves_csv"], lambda p: p.write_text(csv_text(curves, CURVE_FIELDS)))
    write_atomically(paths["final_loss"], lambda p: plot_final_loss(rows, majority, title, p))
    write_atomically(paths["curves"], lambda p: plot_curves(curves, title, p))
    write_atomically(paths["report"], lambda p: p.write_text(report + "\n"))
    return report, paths


TUNING_COLUMNS = (
    ("optimizer", "optimizer"),
    ("batch", "batch_size"),
    ("peak lr", "peak_learning_rate"),
    ("warmup / steps", "steps"),
    ("train MLM loss", "train_masked_lm_loss"),
    ("held-out MLM loss", "heldout_masked_lm_loss"),
    ("held-out MLM acc.", "heldout_masked_lm_accuracy"),
    ("wall s", "wall_seconds"),
)


def best_learning_rates(rows):
    """{optimizer: peak learning rate of its lowest held-out masked-LM loss}."""
    best = {}
    for row in rows:
        current = best.get(row["optimizer"])
        if current is None or float(row["heldout_masked_lm_loss"]) < float(current["heldout_masked_lm_loss"]):
            best[row["optimizer"]] = row
    return {optimizer: float(row["peak_learning_rate"]) for optimizer, row in best.items()}


def write_tuning_outputs(out_dir, rows, setup, meta, train_sequences, command, seconds):
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_learning_rates(rows)
    chosen = ", ".join(f"{OPTIMIZER_TITLES[o]} {lr:g}" for o, lr in best.items())
    report = "\n\n".join(
        [
            f"# Reference learning rates at batch {setup.reference_batch_size}",
            settings_text(setup, meta, train_sequences, command, seconds).split("Reference recipe")[0]
            + "Every run: the reference recipe with the peak learning rate of the row.",
            markdown_table(table_rows(rows), TUNING_COLUMNS),
            f"Lowest held-out masked-LM loss: {chosen}.",
        ]
    )
    paths = {"csv": out_dir / "batch_scaling_tuning.csv", "report": out_dir / "batch_scaling_tuning.md"}
    write_atomically(paths["csv"], lambda p: p.write_text(csv_text(rows, CSV_FIELDS)))
    write_atomically(paths["report"], lambda p: p.write_text(report + "\n"))
    return report, paths


# ----------------------------------------------------------------------------------------------------
# Command line


def optimizer_list(text):
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items or any(item not in OPTIMIZERS for item in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of lamb,adamw, got {text!r}")
    return tuple(o for o in OPTIMIZERS if o in items)


def parse_args(argv):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"batch sizes {QUICK.batch_sizes}, {QUICK.epochs} epochs, every "
                        f"{QUICK.corpus_stride}th document of the corpus: a few minutes")  # fmt: skip
    parser.add_argument("--tune", action="store_true",
                        help="train the reference batch size at each learning rate of a grid "
                        "(--tune_lamb_lrs, --tune_adamw_lrs) instead of the batch sizes")  # fmt: skip
    parser.add_argument("--optimizers", type=optimizer_list, default=OPTIMIZERS)
    parser.add_argument("--batch_sizes", type=batch_list, help=f"default {FULL.batch_sizes}")
    parser.add_argument("--epochs", type=positive(int), help=f"default {FULL.epochs}")
    for optimizer in OPTIMIZERS:
        parser.add_argument(f"--{optimizer}_lr", type=positive(float),
                            help=f"{OPTIMIZER_TITLES[optimizer]} peak learning rate at the reference batch "
                            f"(default {FULL.reference_learning_rates[optimizer]:g})")  # fmt: skip
        grid = ",".join(f"{lr:g}" for lr in FULL.tune_learning_rates[optimizer])
        parser.add_argument(f"--tune_{optimizer}_lrs", type=learning_rate_list, help=f"default {grid}")
    warmup = f"warmup steps of the reference recipe (default {FULL.reference_warmup_steps})"
    parser.add_argument("--warmup_steps", type=positive(int), help=warmup)
    parser.add_argument("--out_dir", default=str(ROOT / "docs"))
    parser.add_argument("--work_dir", help="data cache and runs (default runs/batch_scaling[_quick])")
    parser.add_argument("--verbose", action="store_true", help="the trainer's progress lines")
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else FULL
    rates = dict(setup.reference_learning_rates)
    grids = dict(setup.tune_learning_rates)
    for optimizer in OPTIMIZERS:
        rates[optimizer] = getattr(args, f"{optimizer}_lr") or rates[optimizer]
        grids[optimizer] = getattr(args, f"tune_{optimizer}_lrs") or grids[optimizer]
    args.setup = dataclasses.replace(
        setup,
        batch_sizes=args.batch_sizes or setup.batch_sizes,
        epochs=args.epochs or setup.epochs,
        reference_learning_rates={o: rates[o] for o in args.optimizers},
        reference_warmup_steps=args.warmup_steps or setup.reference_warmup_steps,
        tune_learning_rates={o: grids[o] for o in args.optimizers},
    )
    for batch in args.setup.batch_sizes:
        if batch % micro_batch_for(batch, args.setup):
            parser.error(
                f"--batch_sizes: {batch} is not a multiple of the micro-batch of "
                f"{args.setup.micro_batch_size} sequences (gradient accumulation needs whole micro-batches)"
            )
    default_work_dir = ROOT / "runs" / ("batch_scaling_quick" if args.quick else "batch_scaling")
    args.work_dir = pathlib.Path(args.work_dir or default_work_dir)
    return args


def plan_runs(args, config_path, runs_dir):
    setup = args.setup
    if args.tune:
        cells = [
            (optimizer, setup.reference_batch_size, lr)
            for optimizer in args.optimizers
            for lr in setup.tune_learning_rates[optimizer]
        ]
    else:
        cells = [
            (optimizer, batch, setup.reference_learning_rates[optimizer])
            for optimizer in args.optimizers
            for batch in setup.batch_sizes
        ]
    return [plan_run(config_path, setup, o, b, lr, runs_dir) for o, b, lr in cells]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.set_verbosity(logging.INFO if args.verbose else logging.WARNING)
    setup = args.setup
    command = shlex.join(["python", "scripts/experiments/batch_scaling.py", *argv])
    start = time.perf_counter()
    try:
        meta = ensure_data(str(args.work_dir / "data"), setup)
        train_sequences = training_sequences(meta)
        config_path = args.work_dir / "base_config.yaml"
        config_text = yaml.safe_dump(
            base_config(args.work_dir / "data", meta, setup, train_sequences), sort_keys=False
        )
        config_path.write_text(config_text)
        runs = plan_runs(args, config_path, str(args.work_dir / "runs"))
    except (ExperimentError, trainer.ConfigError) as e:
        print(f"batch_scaling.py: error: {e}", file=sys.stderr)
        return 2
    print(
        f"{len(runs)} runs of BERT-tiny, {setup.epochs} epochs of {train_sequences} training sequences each; "
        f"reference batch {setup.reference_batch_size}, {setup.reference_warmup_steps} warmup steps; "
        f"work directory {args.work_dir}",
        flush=True,
    )
    rows, curves, majority = run_all(runs, config_path, train_sequences)
    seconds = time.perf_counter() - start
    if args.tune:
        report, paths = write_tuning_outputs(
            args.out_dir, rows, setup, meta, train_sequences, command, seconds
        )
    else:
        report, paths = write_experiment_outputs(
            args.out_dir, rows, curves, majority, setup, meta, train_sequences, command, seconds
        )
    print(report)
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
