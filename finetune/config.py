"""The configuration of a fine-tuning run: YAML loaded strictly into typed dataclasses (typed_yaml).

Sections: task, model, optimizer (the pretraining keys, AdamW by default), schedule (in epochs, as the
published recipes give it), train, runtime (the pretraining keys: strategy, mixed precision, model_dir).
`--set section.key=value` overrides are typed by this schema.
"""

import dataclasses
from typing import Literal

from finetune.classification import TASKS as CLASSIFICATION_TASKS
from trainer import typed_yaml
from trainer.config import CONFIG_DIR, OPTIMIZERS, OptimizerConfig, RuntimeConfig
from trainer.errors import ConfigError
from trainer.typed_yaml import (
    REQUIRED,
    at_least,
    greater_than,
    in_unit_interval,
    key,
    not_empty,
)

FINETUNE_CONFIG_DIR = CONFIG_DIR / "finetune"
SQUAD_TASK = "squad_v1.1"
TASK_NAMES = (*CLASSIFICATION_TASKS, SQUAD_TASK)


@dataclasses.dataclass(kw_only=True)
class TaskConfig:
    name: Literal[TASK_NAMES] = key(REQUIRED, f"the task: {', '.join(TASK_NAMES)}")
    data_dir: str | None = key(
        None,
        "directory of the task's files (GLUE: train.tsv, dev.tsv / dev_matched.tsv; SQuAD: train-v1.1.json, "
        "dev-v1.1.json); null: TensorFlow Datasets glue/<name> or squad/v1.1, already prepared",
        not_empty,
    )
    tfds_data_dir: str | None = key(
        None, "TFDS data directory when data_dir is null; null: TFDS's default", not_empty
    )
    max_seq_length: int = key(128, "tokens per example, [CLS] and [SEP] included", at_least(8))
    doc_stride: int = key(128, "SQuAD: pieces between the starts of two context windows", at_least(1))
    max_query_length: int = key(64, "SQuAD: question pieces kept", at_least(1))
    max_answer_length: int = key(30, "SQuAD: longest answer predicted, in pieces", at_least(1))
    n_best_size: int = key(20, "SQuAD: best start and end positions tried per window", at_least(1))


@dataclasses.dataclass(kw_only=True)
class FinetuneModelConfig:
    init_checkpoint: str | None = key(
        None,
        "pretrained weights: an export directory, a Google BERT checkpoint (prefix or directory), or a "
        "pretraining model_dir / checkpoint; null: random initialisation",
        not_empty,
    )
    bert_config: str | None = key(
        None,
        "a bert_config.json or a size name in configs/bert/; null: the bert_config.json beside "
        "init_checkpoint",
        not_empty,
    )
    vocab_size: int | None = key(None, "replaces the bert_config's vocab_size; null keeps it", at_least(1))
    vocab_file: str | None = key(
        None, "the WordPiece vocab.txt; null: the one beside init_checkpoint", not_empty
    )
    do_lower_case: bool | None = key(
        None, "lower-case the text; null: tokenizer_config.json beside the vocab says, else true"
    )
    freeze_encoder: bool = key(
        False, "train the task head only, on the encoder's features as they are (a linear probe)"
    )


@dataclasses.dataclass(kw_only=True)
class FinetuneOptimizerConfig(OptimizerConfig):
    name: Literal[OPTIMIZERS] = key(
        "adamw", "adamw (keras.optimizers.AdamW, as Google's fine-tuning) or lamb (lamb.LAMB)"
    )


@dataclasses.dataclass(kw_only=True)
class FinetuneScheduleConfig:
    peak_learning_rate: float = key(REQUIRED, "learning rate at the end of the warmup", greater_than(0.0))
    epochs: float = key(REQUIRED, "passes over the training examples", greater_than(0.0))
    warmup_proportion: float = key(0.1, "fraction of the steps with linear warmup from 0", in_unit_interval)
    power: float = key(1.0, "power of the decay to 0 after warmup (1: linear, as Google)", greater_than(0.0))


@dataclasses.dataclass(kw_only=True)
class FinetuneTrainConfig:
    batch_size: int = key(32, "examples per optimizer step, over all replicas", at_least(1))
    micro_batch_size: int | None = key(
        None,
        "examples per replica per forward/backward pass; accumulation steps = batch_size / "
        "(micro_batch_size x replicas); null: a replica's whole share of the batch (no accumulation)",
        at_least(1),
    )
    eval_batch_size: int = key(64, "examples per evaluation batch", at_least(1))
    max_steps: int | None = key(
        None, "stop after this many steps (the schedule still spans all epochs); null: all", at_least(1)
    )
    steps_per_loop: int = key(1, "optimizer steps per call of the compiled training loop", at_least(1))
    log_every_steps: int = key(50, "steps between progress lines (a multiple of steps_per_loop)", at_least(1))
    summary_every_steps: int = key(
        100, "steps between TensorBoard summaries (a multiple of steps_per_loop)", at_least(1)
    )
    checkpoint_every_steps: int = key(
        1000,
        "steps between checkpoints (a multiple of steps_per_loop); one is also written at the end",
        at_least(1),
    )
    eval_every_steps: int | None = key(
        None, "steps between evaluations (a multiple of steps_per_loop); null: at the end only", at_least(1)
    )
    keep_checkpoints: int = key(2, "checkpoints kept in model_dir", at_least(1))
    seed: int = key(0, "seed of the head's initial weights, the example order and dropout")


@dataclasses.dataclass(kw_only=True)
class FinetuneConfig:
    task: TaskConfig = key(REQUIRED, "the task and its data")
    model: FinetuneModelConfig = key(FinetuneModelConfig, "the encoder to start from")
    optimizer: FinetuneOptimizerConfig = key(FinetuneOptimizerConfig, "the optimizer: AdamW or LAMB")
    schedule: FinetuneScheduleConfig = key(REQUIRED, "the learning-rate schedule")
    train: FinetuneTrainConfig = key(
        FinetuneTrainConfig, "batch sizes, steps, logging, checkpoints, evaluation"
    )
    runtime: RuntimeConfig = key(RuntimeConfig, "where and how the run executes (as for pretraining)")


def load_config(names_or_paths, overrides=()):
    """Loads one fine-tuning YAML config or a list of them (paths or names in configs/finetune/), each later
    file overriding the keys it names, then the `--set` overrides; checks it all (ConfigError names the key
    and the file that set it)."""
    config, _ = typed_yaml.load(FinetuneConfig, names_or_paths, overrides, FINETUNE_CONFIG_DIR, validate)
    return config


def validate(config):
    """Checks between keys."""
    train = config.train
    if train.micro_batch_size is not None and train.batch_size % train.micro_batch_size:
        raise ConfigError(
            f"train.batch_size: expected a multiple of train.micro_batch_size ({train.micro_batch_size}), "
            f"got {train.batch_size}"
        )
    for name in ("log_every_steps", "summary_every_steps", "checkpoint_every_steps", "eval_every_steps"):
        every = getattr(train, name)
        if every is not None and every % train.steps_per_loop:
            raise ConfigError(
                f"train.{name}: expected a multiple of train.steps_per_loop ({train.steps_per_loop}), "
                f"got {every}"
            )
    if config.optimizer.name == "adamw":
        if config.optimizer.trust_ratio_bounds is not None:
            raise ConfigError(
                "optimizer.trust_ratio_bounds: LAMB only (AdamW has no trust ratio); set it to null"
            )
        if not config.optimizer.bias_correction:
            raise ConfigError("optimizer.bias_correction: AdamW always corrects its moments; set it to true")
    if config.model.init_checkpoint is None and config.model.bert_config is None:
        raise ConfigError(
            "model.bert_config: needed when model.init_checkpoint is null (random initialisation)"
        )
    if config.model.init_checkpoint is None and config.model.vocab_file is None:
        raise ConfigError(
            "model.vocab_file: needed when model.init_checkpoint is null (random initialisation)"
        )


def key_table():
    return typed_yaml.key_table(FinetuneConfig)


def markdown_key_table():
    return typed_yaml.markdown_key_table(FinetuneConfig)
