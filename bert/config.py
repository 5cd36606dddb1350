"""BERT hyperparameters in the format of Google's `bert_config.json`."""

import dataclasses
import json
import math
import os

from bert.activations import ACTIVATIONS

# Keys that some of Google's released configs carry (multilingual and Chinese models) but that do not change
# the model Google's code builds: accepted when reading and dropped.
IGNORED_GOOGLE_KEYS = frozenset(
    {
        "directionality",
        "pooler_fc_size",
        "pooler_num_attention_heads",
        "pooler_num_fc_layers",
        "pooler_size_per_head",
        "pooler_type",
    }
)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of Google's `bert_config.json`, with Google's defaults (`modeling.BertConfig`).

    `hidden_act` is "gelu" (Google's tanh approximation), "gelu_exact" (the erf form), "relu", "tanh" or
    "linear". Every value is checked on construction; a bad one raises ValueError naming the field.
    """

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02

    def __post_init__(self):
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
            _check_positive_int(field, getattr(self, field))
        for field in ("intermediate_size", "max_position_embeddings", "type_vocab_size"):
            _check_positive_int(field, getattr(self, field))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {self.hidden_act!r}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = _check_number(field, getattr(self, field))
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{field} must be in [0, 1), got {value}")
        value = _check_number("initializer_range", self.initializer_range)
        if not value > 0.0:
            raise ValueError(f"initializer_range must be > 0, got {value}")

    @property
    def head_size(self):
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a dict with Google's keys; unknown keys are an error naming them."""
        if not isinstance(values, dict):
            raise ValueError(f"a BERT config must be a JSON object, got {type(values).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - IGNORED_GOOGLE_KEYS)
        if unknown:
            raise ValueError(f"unknown BERT config key(s) {unknown}; expected keys are {sorted(known)}")
        if "vocab_size" not in values:
            raise ValueError("missing BERT config key 'vocab_size'")
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_json_file(cls, path):
        """Reads a `bert_config.json`; every error message names the file."""
        try:
            with open(path) as f:
                values = json.load(f)
        except OSError as error:
            raise ValueError(f"{path}: cannot read BERT config: {error.strerror}") from error
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from error
        try:
            return cls.from_dict(values)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json_string(self):
        """Google's layout: indent 2, sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path):
        """Writes the config atomically (temporary file + rename)."""
        temporary = f"{path}.tmp-{os.getpid()}"
        with open(temporary, "w") as f:
            f.write(self.to_json_string())
        os.replace(temporary, path)


def _check_positive_int(field, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")


def _check_number(field, value):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be a number, got {value!r}")
    return float(value)
