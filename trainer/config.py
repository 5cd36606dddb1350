"""The configuration of a pretraining run: YAML loaded strictly into typed dataclasses.

A config file has up to seven sections (model, data, optimizer, schedule, train, runtime, eval); a missing
section or key takes its default, except the keys marked required. Loading is strict: an unknown key, a
value of the wrong type or a bad value raises ConfigError with one line naming the key and what was
expected, e.g.

    configs/phase1.yaml: optimizer.weight_dacay: unknown key; did you mean weight_decay?

Several files layer: `--config=phase1.yaml --config=hardware/tpu-v3-1024.yaml` reads the phase, then the
hardware overlay, whose keys replace the phase's (a nested section key by key, a list whole); the `--set`
overrides come last. An error names the file (or --set) that set the key.

`--set section.key=value` overrides are parsed as YAML values and typed by the schema below, so
`--set schedule.peak_learning_rate=4e-3` is a float and `--set model.init_checkpoint=null` clears a path.
The loading machinery is generic (trainer/typed_yaml.py); this module is the pretraining schema.
"""

import dataclasses
import os
import pathlib
from typing import Literal

from data.checks import VERIFY_LEVELS
from trainer import typed_yaml
from trainer.errors import ConfigError
from trainer.typed_yaml import (
    REQUIRED,
    at_least,
    bounds,
    greater_than,
    in_unit_interval,
    key,
    not_empty,
    power_of_two,
    regexes,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
CONFIG_FILE_NAME = "config.yaml"  # the resolved config, written to model_dir

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
ALL_REDUCE = ("auto", "nccl", "ring")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw")


# The schema. Field order is the order of the docs and of the written config.


@dataclasses.dataclass(kw_only=True)
class ModelConfig:
    bert_config: str = key(
        REQUIRED,
        "BERT size: a name in configs/bert/ (tiny, mini, small, medium, base, large) or a bert_config.json",
        not_empty,
    )
    vocab_size: int | None = key(
        None, "replaces bert_config's vocab_size (to match the data's vocabulary); null keeps it", at_least(1)
    )
    init_checkpoint: str | None = key(
        None,
        "weights to start from when model_dir has no checkpoint yet: a Google BERT checkpoint prefix, "
        "or a checkpoint (or model_dir) of this trainer; model weights only, fresh optimizer and step",
        not_empty,
    )


def file_patterns(patterns):
    return None if all(pattern.strip() for pattern in patterns) else "globs or directories, none empty"


@dataclasses.dataclass(kw_only=True)
class DataConfig:
    train_files: list[str] = key(
        REQUIRED,
        "training TFRecords: a list of globs or directories (local or gs://); one string is a list of one",
        file_patterns,
        text_is_a_list_of_one=True,
    )
    eval_files: list[str] = key(
        [],
        "held-out TFRecords, evaluated at the end of training and by --mode=eval; []: none",
        file_patterns,
        text_is_a_list_of_one=True,
    )
    max_seq_length: int = key(128, "tokens per sequence; must equal the data's (meta.json)", at_least(2))
    max_predictions_per_seq: int = key(
        20, "masked positions per sequence; must equal the data's (meta.json)", at_least(1)
    )
    vocab_file: str | None = key(
        None,
        "vocab.txt exported with the model (and used by dynamic masking of data without meta.json); "
        "null: the vocab.txt named in the data's meta.json",
        not_empty,
    )
    verify: Literal[VERIFY_LEVELS] = key(
        "size",
        "before training, each shard listed in meta.json must have the listed size; full: also the "
        "listed checksum of its records (reads every file once)",
    )
    shuffle_buffer: int = key(10000, "examples in each worker's shuffle buffer", at_least(1))
    cycle_length: int = key(8, "TFRecord files read in parallel by each worker", at_least(1))
    dynamic_masking: bool = key(
        False,
        "mask each batch afresh with the data's masking settings (meta.json) instead of the stored masks",
    )
    masked_lm_prob: float | None = key(
        None,
        "dynamic masking: fraction of tokens masked; null: the data's (meta.json; needed without one)",
        in_unit_interval,
    )
    whole_word_mask: bool | None = key(
        None, "dynamic masking: mask whole words; null: the data's (meta.json), or false without one"
    )
    seed: int = key(12345, "seed of the file order, the shuffling and dynamic masking")


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig:
    name: Literal[OPTIMIZERS] = key(
        "lamb",
        "lamb (lamb.LAMB) or adamw (keras.optimizers.AdamW: the same decay, betas, epsilon and exclusions, "
        "no trust ratio; its epsilon is added to the root of the uncorrected second moment)",
    )
    beta_1: float = key(0.9, "first-moment decay", in_unit_interval)
    beta_2: float = key(0.999, "second-moment decay", in_unit_interval)
    epsilon: float = key(1e-6, "epsilon of the Adam ratio's denominator", greater_than(0.0))
    weight_decay: float = key(0.01, "decoupled weight decay rate", at_least(0.0))
    exclude_from_weight_decay: list[str] | None = key(
        None,
        "regexes of variable paths without weight decay (re.search on variable.path, for both optimizers); "
        "null: the model's own list, bert.WEIGHT_DECAY_EXCLUSIONS (LayerNorm, layer_norm, bias)",
        regexes,
    )
    exclude_from_layer_adaptation: list[str] | None = key(
        None,
        "regexes of variable paths updated without trust ratio (LAMB only: AdamW has no trust ratio); "
        "null: the model's own list, bert.WEIGHT_DECAY_EXCLUSIONS",
        regexes,
    )
    bias_correction: bool = key(True, "Adam bias correction of the moments (AdamW always corrects)")
    trust_ratio_bounds: list[float] | None = key(
        None, "[min, max] clip of the trust ratio; null: unbounded (LAMB only)", bounds
    )
    clip_global_norm: float | None = key(
        1.0,
        "clip the gradient of the whole global batch to this global norm; null: no clipping",
        greater_than(0.0),
    )


@dataclasses.dataclass(kw_only=True)
class ScheduleConfig:
    peak_learning_rate: float = key(REQUIRED, "learning rate at the end of the warmup", greater_than(0.0))
    total_steps: int = key(REQUIRED, "optimizer steps of the whole schedule", at_least(1))
    warmup_steps: int = key(0, "optimizer steps of linear warmup from 0", at_least(0))
    power: float = key(
        1.0, "power of the polynomial decay after warmup (0.5 = square root)", greater_than(0.0)
    )
    end_learning_rate: float = key(0.0, "learning rate at total_steps", at_least(0.0))
    reference_batch_size: int | None = key(
        None,
        "if set, peak_learning_rate, warmup_steps and total_steps are the recipe for this global batch, "
        "rescaled to train.global_batch_size by the LAMB paper's rules (logged); null: used as written",
        at_least(1),
    )


@dataclasses.dataclass(kw_only=True)
class TrainConfig:
    global_batch_size: int = key(REQUIRED, "sequences per optimizer step, over all replicas", at_least(1))
    micro_batch_size: int = key(
        REQUIRED,
        "sequences per replica per forward/backward pass; accumulation steps = "
        "global_batch_size / (micro_batch_size x replicas)",
        at_least(1),
    )
    max_steps: int | None = key(
        None,
        "stop after this many optimizer steps (the schedule still spans total_steps); null: total_steps",
        at_least(1),
    )
    steps_per_loop: int = key(1, "optimizer steps per call of the compiled training loop", at_least(1))
    log_every_steps: int = key(
        100, "steps between progress lines (a multiple of steps_per_loop)", at_least(1)
    )
    summary_every_steps: int = key(
        100, "steps between TensorBoard summaries (a multiple of steps_per_loop)", at_least(1)
    )
    checkpoint_every_steps: int = key(
        1000,
        "steps between checkpoints (a multiple of steps_per_loop); one is also written at the end",
        at_least(1),
    )
    keep_checkpoints: int = key(3, "checkpoints kept in model_dir (older ones are deleted)", at_least(1))
    export_saved_model: bool = key(
        True,
        "the export (at the end of training and by --mode=export) also holds a SavedModel of the encoder "
        "for serving (export/saved_model)",
    )
    seed: int = key(0, "seed of the initial weights and of dropout")


@dataclasses.dataclass(kw_only=True)
class RuntimeConfig:
    model_dir: str | None = key(
        None, "directory of checkpoints, logs and the export (--model_dir overrides)", not_empty
    )
    strategy: Literal[STRATEGIES] = key(
        "auto",
        "auto (TF_CONFIG with several tasks: multi_worker; else several GPUs: mirrored; else one_device), "
        "one_device, mirrored, multi_worker or tpu (--strategy overrides)",
    )
    tpu: str | None = key(None, "TPU name or grpc:// address for strategy tpu (--tpu overrides)", not_empty)
    num_gpus: int | None = key(None, "GPUs used by mirrored; null: all (--num_gpus overrides)", at_least(0))
    num_replicas: int | None = key(
        None,
        "the replicas the run expects (a hardware overlay states it; --mode=plan plans with it, a run "
        "refuses a strategy with another count); null: whatever the strategy finds",
        at_least(1),
    )
    device_memory_gib: float | None = key(
        None,
        "memory of one replica's device in GiB, as a hardware overlay states it; --mode=plan compares the "
        "estimate (trainer/memory.py) with it; null: not compared",
        greater_than(0.0),
    )
    all_reduce: Literal[ALL_REDUCE] = key(
        "auto",
        "multi_worker's collective implementation: auto (NCCL when this host has GPUs, else ring), nccl "
        "or ring",
    )
    allow_cpu: bool | None = key(
        None,
        "train on the CPU when TensorFlow is built with CUDA but sees no GPU; null: only models of at "
        "most 50M parameters (tiny to medium), so BERT-base or -large is refused rather than crawling",
    )
    mixed_precision: Literal[PRECISIONS] = key(
        "float32",
        "float32, mixed_bfloat16 or mixed_float16 (with dynamic loss scaling); weights, optimizer state "
        "and trust ratios stay float32",
    )
    initial_loss_scale: float = key(2.0**15, "mixed_float16: the loss scale at the start", power_of_two)
    loss_scale_growth_steps: int = key(
        2000, "mixed_float16: finite steps after which the loss scale doubles", at_least(1)
    )
    jit_compile: bool = key(
        False,
        "compile the whole replica step (forward, backward, accumulation, all-reduce, clip, optimizer "
        "update) as one XLA program; one device only (TPUs always compile it)",
    )
    checkpoint: str | None = key(
        None,
        "the checkpoint --mode=eval and --mode=export read: a name in model_dir (ckpt-2000) or a path "
        "prefix; null: the latest (--checkpoint overrides)",
        not_empty,
    )


@dataclasses.dataclass(kw_only=True)
class EvalConfig:
    follow: bool = key(
        False,
        "--mode=eval: evaluate each new checkpoint of model_dir as it appears, until the one of the "
        "final step (--follow overrides)",
    )
    follow_timeout_seconds: int = key(
        3600, "--mode=eval with follow: stop after waiting this long for a new checkpoint", at_least(1)
    )


@dataclasses.dataclass(kw_only=True)
class Config:
    model: ModelConfig = key(REQUIRED, "the BERT model")
    data: DataConfig = key(REQUIRED, "the training data")
    optimizer: OptimizerConfig = key(OptimizerConfig, "the optimizer: LAMB or AdamW")
    schedule: ScheduleConfig = key(REQUIRED, "the learning-rate schedule")
    train: TrainConfig = key(REQUIRED, "batch sizes, steps, logging and checkpoint intervals")
    runtime: RuntimeConfig = key(RuntimeConfig, "where and how the run executes")
    eval: EvalConfig = key(EvalConfig, "--mode=eval")


# ---------------------------------------------------------------------------------------------------------
# Loading


def load_config(names_or_paths, overrides=()):
    """Loads one YAML config or a list of them (paths or names in configs/), each later file overriding
    the keys it names, then the `--set` overrides; checks it all. Typical: a phase config, then a hardware
    overlay (`["phase1.yaml", "hardware/tpu-v3-1024.yaml"]`)."""
    config, sources = typed_yaml.load(Config, names_or_paths, overrides, CONFIG_DIR, validate)
    check_model_dir(config.runtime.model_dir, sources.get("runtime.model_dir", "runtime.model_dir"))
    return config


def check_model_dir(model_dir, source):
    """A local model_dir must be a directory or not exist yet (a file there would fail deep in TensorFlow)."""
    if model_dir and "://" not in model_dir and os.path.lexists(model_dir) and not os.path.isdir(model_dir):
        raise ConfigError(
            f"{source}: runtime.model_dir: {model_dir} is an existing file; expected a directory (or a path "
            "that does not exist yet)"
        )


def validate(config):
    """Checks between keys (each key alone was checked when it was read)."""
    data, schedule, train, runtime = config.data, config.schedule, config.train, config.runtime
    if data.max_predictions_per_seq > data.max_seq_length:
        raise ConfigError(
            f"data.max_predictions_per_seq: expected at most data.max_seq_length ({data.max_seq_length}), "
            f"got {data.max_predictions_per_seq}"
        )
    if schedule.warmup_steps > schedule.total_steps:
        raise ConfigError(
            f"schedule.warmup_steps: expected at most schedule.total_steps ({schedule.total_steps}), "
            f"got {schedule.warmup_steps}"
        )
    if schedule.end_learning_rate > schedule.peak_learning_rate:
        raise ConfigError(
            f"schedule.end_learning_rate: expected at most schedule.peak_learning_rate "
            f"({schedule.peak_learning_rate}), got {schedule.end_learning_rate}"
        )
    if train.global_batch_size % train.micro_batch_size:
        raise ConfigError(
            f"train.global_batch_size: expected a multiple of train.micro_batch_size "
            f"({train.micro_batch_size}), got {train.global_batch_size}"
        )
    for name in ("log_every_steps", "summary_every_steps", "checkpoint_every_steps"):
        every = getattr(train, name)
        if every % train.steps_per_loop:
            raise ConfigError(
                f"train.{name}: expected a multiple of train.steps_per_loop ({train.steps_per_loop}), "
                f"got {every}"
            )
    optimizer = config.optimizer
    if optimizer.name == "adamw":
        # Keras' AdamW has no trust ratio and always corrects its moments: refuse what it would ignore.
        if optimizer.trust_ratio_bounds is not None:
            raise ConfigError(
                "optimizer.trust_ratio_bounds: LAMB only (AdamW has no trust ratio); set it to null"
            )
        if not optimizer.bias_correction:
            raise ConfigError("optimizer.bias_correction: AdamW always corrects its moments; set it to true")
    if runtime.num_replicas is not None and train.global_batch_size % (
        train.micro_batch_size * runtime.num_replicas
    ):
        raise ConfigError(
            f"runtime.num_replicas: train.global_batch_size ({train.global_batch_size}) is not divisible by "
            f"train.micro_batch_size ({train.micro_batch_size}) x {runtime.num_replicas} replicas"
        )
    if runtime.tpu is not None and runtime.strategy not in ("auto", "tpu"):
        raise ConfigError(f"runtime.tpu: only used with runtime.strategy tpu, not {runtime.strategy}")


def key_table():
    """(key, expected form, default, description) of every pretraining key."""
    return typed_yaml.key_table(Config)


def markdown_key_table():
    return typed_yaml.markdown_key_table(Config)
