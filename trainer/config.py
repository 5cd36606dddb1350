"""The configuration of a pretraining run: YAML loaded strictly into typed dataclasses.

A config file has up to seven sections (model, data, optimizer, schedule, train, runtime, eval); a missing
section or key takes its default, except the keys marked required. Loading is strict: an unknown key, a
value of the wrong type or a bad value raises ConfigError with one line naming the key and what was
expected, e.g.

    configs/phase1.yaml: optimizer.weight_dacay: unknown key; did you mean weight_decay?

`--set section.key=value` overrides are parsed as YAML values and typed by the schema below, so
`--set schedule.peak_learning_rate=4e-3` is a float and `--set model.init_checkpoint=null` clears a path.
"""

import dataclasses
import difflib
import math
import pathlib
import re
import types
import typing
from typing import Literal

import yaml

from trainer.errors import ConfigError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
CONFIG_FILE_NAME = "config.yaml"  # the resolved config, written to model_dir
REQUIRED = dataclasses.MISSING

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw")


def key(default, help, check=None):
    """One config key: its default (REQUIRED when it has none), a one-line description, a value check.

    `check(value)` returns None when the value is good, else the expected form ("an integer >= 1").
    """
    metadata = {"help": help, "check": check}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# Value checks (a value's type is already right when they run).


def at_least(minimum):
    return lambda value: None if value >= minimum else f"a number >= {minimum}"


def greater_than(minimum):
    return lambda value: None if value > minimum else f"a number > {minimum}"


def in_unit_interval(value):
    return None if 0.0 <= value < 1.0 else "a number in [0, 1)"


def regexes(patterns):
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            return f"a list of regular expressions ({pattern!r}: {e})"
    return None


def bounds(pair):
    if len(pair) == 2 and 0.0 <= pair[0] <= pair[1]:
        return None
    return "[minimum, maximum] with 0 <= minimum <= maximum"


def power_of_two(value):
    return None if value > 0 and math.frexp(value)[0] == 0.5 else "a power of two (exact unscaling)"


def not_empty(text):
    return None if text.strip() else "a non-empty string"


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


@dataclasses.dataclass(kw_only=True)
class CreateDataConfig:
    """How to build the training data when `data.train_files` matches nothing (the demo does this)."""

    corpus: str = key(
        "embedded", "'embedded' (the corpus shipped in data/embedded/) or a glob of text files", not_empty
    )
    vocab_size: int = key(2000, "size of the WordPiece vocabulary learned from the corpus", at_least(10))
    do_lower_case: bool = key(True, "lower-case and strip accents before tokenizing")
    dupe_factor: int = key(5, "times each document is used, with different masks", at_least(1))
    masked_lm_prob: float = key(0.15, "fraction of tokens masked", in_unit_interval)
    short_seq_prob: float = key(0.1, "probability of a shorter than maximal sequence", in_unit_interval)
    whole_word_mask: bool = key(False, "mask whole words instead of WordPiece tokens")
    num_shards: int = key(4, "number of TFRecord shards written", at_least(1))
    num_workers: int | None = key(
        None, "processes building shards (null: one per CPU); does not change the data", at_least(1)
    )
    seed: int = key(12345, "random seed of the data creation")


@dataclasses.dataclass(kw_only=True)
class DataConfig:
    train_files: str = key(
        REQUIRED, "training TFRecords: a glob, or several separated by commas (local or gs://)", not_empty
    )
    eval_files: str | None = key(
        None, "held-out TFRecords, evaluated at the end of training and by --mode=eval", not_empty
    )
    max_seq_length: int = key(128, "tokens per sequence; must equal the data's (meta.json)", at_least(2))
    max_predictions_per_seq: int = key(
        20, "masked positions per sequence; must equal the data's (meta.json)", at_least(1)
    )
    vocab_file: str | None = key(
        None,
        "vocab.txt exported with the model; null: the vocab.txt named in the data's meta.json",
        not_empty,
    )
    shuffle_buffer: int = key(10000, "examples in each worker's shuffle buffer", at_least(1))
    cycle_length: int = key(8, "TFRecord files read in parallel by each worker", at_least(1))
    dynamic_masking: bool = key(
        False,
        "mask each batch afresh with the data's masking settings (meta.json) instead of the stored masks",
    )
    seed: int = key(12345, "seed of the file order, the shuffling and dynamic masking")
    create: CreateDataConfig | None = key(
        None, "build the data into the directory of train_files when it matches no file (null: never)"
    )


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
    exclude_from_weight_decay: list[str] = key(
        ["LayerNorm", "layer_norm", "bias"],
        "regexes of variable paths without weight decay (re.search on variable.path, for both optimizers)",
        regexes,
    )
    exclude_from_layer_adaptation: list[str] = key(
        ["LayerNorm", "layer_norm", "bias"],
        "regexes of variable paths updated without trust ratio (LAMB only: AdamW has no trust ratio)",
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
    mixed_precision: Literal[PRECISIONS] = key(
        "float32",
        "float32, mixed_bfloat16 or mixed_float16 (with dynamic loss scaling); weights, optimizer state "
        "and trust ratios stay float32",
    )
    initial_loss_scale: float = key(2.0**15, "mixed_float16: the loss scale at the start", power_of_two)
    loss_scale_growth_steps: int = key(
        2000, "mixed_float16: finite steps after which the loss scale doubles", at_least(1)
    )
    jit_compile: bool = key(False, "compile the forward/backward pass with XLA")
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
    optimizer: OptimizerConfig = key(dataclasses.MISSING, "the optimizer: LAMB or AdamW")
    schedule: ScheduleConfig = key(REQUIRED, "the learning-rate schedule")
    train: TrainConfig = key(REQUIRED, "batch sizes, steps, logging and checkpoint intervals")
    runtime: RuntimeConfig = key(dataclasses.MISSING, "where and how the run executes")
    eval: EvalConfig = key(dataclasses.MISSING, "--mode=eval")


# Sections whose every key has a default may be left out of a file.
OPTIONAL_SECTIONS = ("optimizer", "runtime", "eval")


# ---------------------------------------------------------------------------------------------------------
# YAML reading


class _StrictLoader(yaml.SafeLoader):
    """YAML 1.1 safe loading, plus: `6e-3` is a float (PyYAML wants `6.0e-3`); a duplicate key is an error."""


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping_without_duplicates(loader, node):
    seen = set()
    for key_node, _ in node.value:
        name = loader.construct_object(key_node)
        if name in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {name!r} appears twice")
        seen.add(name)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_without_duplicates
)


def parse_yaml(text, source):
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None


def resolve_config_path(name):
    """`name` as a path, or a bare file name looked up in configs/ (`phase1.yaml`, also `phase1`)."""
    path = pathlib.Path(name)
    if path.is_file():
        return path
    if path.parent == pathlib.Path("."):
        for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    raise ConfigError(f"--config: no config file {name!r} (looked for it as a path and in {CONFIG_DIR})")


# ---------------------------------------------------------------------------------------------------------
# Typing values by the schema


def _optional_inner(tp):
    """For `X | None` returns X, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def describe_type(tp):
    """The expected form of a value of type `tp`, for messages and the docs."""
    inner = _optional_inner(tp)
    if inner is not None:
        return f"{describe_type(inner)} or null"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(arg) for arg in _literal_values(tp))
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return {str: "a list of strings", float: "a list of numbers", int: "a list of integers"}[item]
    if dataclasses.is_dataclass(tp):
        return "a mapping of keys"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def _literal_values(tp):
    values = typing.get_args(tp)
    if len(values) == 1 and isinstance(values[0], tuple):  # Literal[SOME_TUPLE]
        return values[0]
    return values


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(value, tp, name):
    """`value` (from YAML) checked against type `tp`; returns it typed (an int is accepted as a float)."""
    wrong = ConfigError(f"{name}: expected {describe_type(tp)}, got {_short_repr(value)}")
    inner = _optional_inner(tp)
    if inner is not None:
        if value is None:
            return None
        try:
            return coerce(value, inner, name)
        except ConfigError:
            raise wrong from None
    if dataclasses.is_dataclass(tp):
        return build(tp, value, name)
    if typing.get_origin(tp) is Literal:
        if isinstance(value, str) and value in _literal_values(tp):
            return value
        raise wrong
    if typing.get_origin(tp) is list:
        if not isinstance(value, list):
            raise wrong
        (item,) = typing.get_args(tp)
        try:
            return [coerce(element, item, f"{name}[{i}]") for i, element in enumerate(value)]
        except ConfigError:
            raise wrong from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong
    if tp is str:
        if isinstance(value, str):
            return value
        raise wrong
    raise TypeError(f"{name}: unsupported schema type {tp!r}")


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(field, hints[field.name]) for field in dataclasses.fields(cls)]


def _unknown_key_message(name, known):
    message = f"{name}: unknown key"
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], known, n=1)
    if close:
        message += f"; did you mean {close[0]}?"
    return message + f" (expected one of: {', '.join(known)})"


def build(cls, values, prefix=""):
    """Builds dataclass `cls` from the mapping `values`, strictly; `prefix` names the section in messages."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {_short_repr(values)}")
    fields = _fields(cls)
    known = [field.name for field, _ in fields]
    for name in values:
        if name not in known:
            raise ConfigError(_unknown_key_message(_join(prefix, str(name)), known))
    kwargs = {}
    for field, tp in fields:
        name = _join(prefix, field.name)
        if field.name not in values:
            if field.default is REQUIRED and field.default_factory is dataclasses.MISSING:
                if field.name in OPTIONAL_SECTIONS and cls is Config:
                    kwargs[field.name] = build(tp, {}, name)
                    continue
                raise ConfigError(f"{name}: missing (expected {describe_type(tp)})")
            continue
        value = coerce(values[field.name], tp, name)
        check = field.metadata.get("check")
        if check is not None and value is not None and not dataclasses.is_dataclass(value):
            expected = check(value)
            if expected is not None:
                raise ConfigError(f"{name}: expected {expected}, got {_short_repr(value)}")
        kwargs[field.name] = value
    return cls(**kwargs)


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


# ---------------------------------------------------------------------------------------------------------
# Overrides, loading, validation


def _field_type(path):
    """The schema type of the dotted key `path` (ConfigError when there is no such key)."""
    cls = Config
    parts = path.split(".")
    for depth, part in enumerate(parts):
        fields = dict((field.name, tp) for field, tp in _fields(cls))
        if part not in fields:
            raise ConfigError(_unknown_key_message(".".join(parts[: depth + 1]), list(fields)))
        tp = fields[part]
        if depth < len(parts) - 1:
            inner = _optional_inner(tp) or tp
            if not dataclasses.is_dataclass(inner):
                raise ConfigError(f"{'.'.join(parts[: depth + 1])}: is a key, not a section")
            cls = inner
    return tp


def _accepts_text(tp):
    tp = _optional_inner(tp) or tp
    return tp is str or typing.get_origin(tp) is Literal


def parse_override(text):
    """`section.key=value` -> (path, typed-able value). The value is YAML; for a text key it stays text."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or "." not in name:
        raise ConfigError(f"{text!r}: expected section.key=value")
    tp = _field_type(name)
    value = parse_yaml(raw, f"--set {name}")
    if _accepts_text(tp) and value is not None and not isinstance(value, str):
        value = raw.strip()  # `--set model.init_checkpoint=2024` is a path, not a number
    if value is None and _optional_inner(tp) is None:
        raise ConfigError(f"{name}: expected {describe_type(tp)}, got null")
    return name, value


def apply_override(values, path, value):
    """Sets `values[a][b]...` for path "a.b..." in the raw (not yet typed) mapping, creating sections."""
    parts = path.split(".")
    node = values
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def load_config(name_or_path, overrides=()):
    """Loads a YAML config (a path or a name in configs/), applies `--set` overrides, checks it all."""
    path = resolve_config_path(name_or_path)
    values = parse_yaml(path.read_text(), str(path))
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {_short_repr(values)}")
    try:
        parsed = [parse_override(text) for text in overrides]
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None
    for name, value in parsed:
        apply_override(values, name, value)
    try:
        config = build(Config, values)
        validate(config)
    except ConfigError as e:
        overridden = any(str(e).startswith((f"{name}:", f"{name}.", f"{name}[")) for name, _ in parsed)
        raise ConfigError(f"{'--set' if overridden else path}: {e}") from None
    return config


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
    if runtime.tpu is not None and runtime.strategy not in ("auto", "tpu"):
        raise ConfigError(f"runtime.tpu: only used with runtime.strategy tpu, not {runtime.strategy}")


# ---------------------------------------------------------------------------------------------------------
# Writing and documenting


def to_dict(config):
    return dataclasses.asdict(config)


def to_yaml(config):
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


def flatten(values, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for name, value in values.items():
        path = _join(prefix, name)
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def format_config(config):
    """The resolved config as `section.key = value` lines, for the log."""
    return [f"{path} = {value!r}" for path, value in flatten(to_dict(config)).items()]


def key_table(cls=Config, prefix=""):
    """(key, expected form, default, description) of every key, for --helpfull and the README."""
    rows = []
    for field, tp in _fields(cls):
        name = _join(prefix, field.name)
        inner = _optional_inner(tp) or tp
        if dataclasses.is_dataclass(inner):
            if cls is not Config:
                default = "required" if field.default is REQUIRED else "null"
                rows.append((name, "a section, or null", default, field.metadata["help"]))
            rows.extend(key_table(inner, name))
            continue
        if field.default is not REQUIRED:
            default = _yaml_scalar(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = _yaml_scalar(field.default_factory())
        else:
            default = "required"
        rows.append((name, describe_type(tp), default, field.metadata["help"]))
    return rows


def _yaml_scalar(value):
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def markdown_key_table():
    lines = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for name, form, default, help in key_table():
        lines.append(f"| `{name}` | {form} | `{default}` | {help} |")
    return "\n".join(lines)
