"""Typed YAML: a dataclass schema, files and `section.key=value` overrides loaded strictly into it.

A schema is a tree of dataclasses whose fields are declared with `key(default, help, check)`. Loading is
strict: an unknown key (with a close match suggested), a value of the wrong type or a value its check refuses
raises ConfigError with one line naming the dotted key and what was expected. Overrides are YAML values typed
by the schema, so `schedule.peak_learning_rate=4e-3` is a float and `model.init_checkpoint=null` clears
a path.

Nothing here knows an application's sections: trainer/config.py holds the pretraining schema.
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

REQUIRED = dataclasses.MISSING


def key(default, help, check=None, text_is_a_list_of_one=False):
    """One config key: its default (REQUIRED when it has none), a one-line description, a value check.

    A section is a key whose type is a dataclass: its default is REQUIRED, or the dataclass itself when
    every key of the section has a default (the section may then be left out).

    `check(value)` returns None when the value is good, else the expected form ("an integer >= 1").
    `text_is_a_list_of_one`: a list key that also takes one string (`--set data.train_files=gs://b/*`).
    """
    metadata = {"help": help, "check": check, "text_is_a_list_of_one": text_is_a_list_of_one}
    if dataclasses.is_dataclass(default) and isinstance(default, type):  # an optional section: its defaults
        return dataclasses.field(default_factory=default, metadata=metadata)
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


def short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(value, tp, name):
    """`value` (from YAML) checked against type `tp`; returns it typed (an int is accepted as a float)."""
    wrong = ConfigError(f"{name}: expected {describe_type(tp)}, got {short_repr(value)}")
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
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {short_repr(values)}")
    fields = _fields(cls)
    known = [field.name for field, _ in fields]
    for name in values:
        if name not in known:
            raise ConfigError(_unknown_key_message(join(prefix, str(name)), known))
    kwargs = {}
    for field, tp in fields:
        name = join(prefix, field.name)
        if field.name not in values:
            if field.default is REQUIRED and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{name}: missing (expected {describe_type(tp)})")
            continue
        value = values[field.name]
        if field.metadata.get("text_is_a_list_of_one") and isinstance(value, str):
            value = [value]
        value = coerce(value, tp, name)
        check = field.metadata.get("check")
        if check is not None and value is not None and not dataclasses.is_dataclass(value):
            expected = check(value)
            if expected is not None:
                raise ConfigError(f"{name}: expected {expected}, got {short_repr(value)}")
        kwargs[field.name] = value
    return cls(**kwargs)


def join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


# ---------------------------------------------------------------------------------------------------------
# Overrides


def field_type(schema, path):
    """The type of the dotted key `path` in dataclass `schema` (ConfigError when there is no such key)."""
    cls = schema
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


def parse_override(schema, text):
    """`section.key=value` -> (path, typed-able value). The value is YAML; for a text key it stays text."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or "." not in name:
        raise ConfigError(f"{text!r}: expected section.key=value")
    tp = field_type(schema, name)
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


# ---------------------------------------------------------------------------------------------------------
# Loading files


def resolve_config_path(name, config_dir):
    """`name` as a path, or a relative name looked up in `config_dir` (`phase1.yaml`, `phase1`,
    `hardware/tpu-v3-1024.yaml`)."""
    path = pathlib.Path(name)
    if path.is_file():
        return path
    if not path.is_absolute():
        for candidate in (config_dir / name, config_dir / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    raise ConfigError(f"--config: no config file {name!r} (looked for it as a path and in {config_dir})")


def read_config_file(path):
    """The mapping of sections in the YAML file `path` ({} when it is empty)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a text file (byte {e.start} is not UTF-8); expected a YAML config"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    values = parse_yaml(text, str(path))
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {short_repr(values)}")
    return values


def merge_layer(values, layer, source, sources, prefix=""):
    """Lays the mapping `layer` over `values`: a key it names replaces the earlier value (a nested mapping
    is merged key by key, a list is replaced whole). `sources[key]` records the file that set each key."""
    for name, value in layer.items():
        path = join(prefix, str(name))
        if isinstance(value, dict):
            if not isinstance(values.get(name), dict):
                values[name] = {}
            merge_layer(values[name], value, source, sources, path)
        else:
            values[name] = value
        sources[path] = source


def load(schema, names_or_paths, overrides, config_dir, validate=None):
    """Loads dataclass `schema` from one YAML file or a list of them (paths or names in `config_dir`), each
    later file overriding the keys it names, then the `section.key=value` overrides; `validate(config)`
    checks between keys. Returns (config, sources): sources[key] is the file (or "--set") that set the key.
    A ConfigError names that source and the key."""
    if isinstance(names_or_paths, (str, pathlib.PurePath)):
        names_or_paths = [names_or_paths]
    if not names_or_paths:
        raise ConfigError("--config: no config file given")
    values, sources = {}, {}
    paths = [resolve_config_path(name, config_dir) for name in names_or_paths]
    for path in paths:
        merge_layer(values, read_config_file(path), str(path), sources)
    try:
        parsed = [parse_override(schema, text) for text in overrides]
    except ConfigError as e:
        raise ConfigError(f"--set: {e}") from None
    for name, value in parsed:
        apply_override(values, name, value)
        sources[name] = "--set"
    try:
        config = build(schema, values)
        if validate is not None:
            validate(config)
    except ConfigError as e:
        raise ConfigError(f"{source_of_error(str(e), sources, paths)}: {e}") from None
    return config, sources


def source_of_error(message, sources, paths):
    """Which file (or --set) set the key that `message` names ("train.seed: expected ..."); all the files
    when no one of them did (a missing key)."""
    name = message.split(":", 1)[0].split("[", 1)[0]
    while name:
        if name in sources:
            return sources[name]
        name = name.rpartition(".")[0]
    return " + ".join(str(path) for path in paths)


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
        path = join(prefix, name)
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def format_config(config):
    """A loaded config as `section.key = value` lines, for the log."""
    return [f"{path} = {value!r}" for path, value in flatten(to_dict(config)).items()]


def key_table(cls, prefix=""):
    """(key, expected form, default, description) of every key of dataclass `cls`, for --helpfull and the
    docs; a nested section also has a row of its own."""
    rows = []
    for field, tp in _fields(cls):
        name = join(prefix, field.name)
        inner = _optional_inner(tp) or tp
        if dataclasses.is_dataclass(inner):
            if prefix:
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


def markdown_key_table(cls):
    lines = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for name, form, default, help in key_table(cls):
        lines.append(f"| `{name}` | {form} | `{default}` | {help} |")
    return "\n".join(lines)
