"""The BERT model of a run: its BertConfig from `model.bert_config`."""

import dataclasses
import os

import bert
from trainer.config import CONFIG_DIR
from trainer.errors import ConfigError

BERT_SIZES_DIR = CONFIG_DIR / "bert"


def load_bert_config(model_config):
    """The BertConfig of `model.bert_config` (a size name or a path), with `model.vocab_size` applied."""
    name = model_config.bert_config
    path = BERT_SIZES_DIR / f"{name}.json" if os.sep not in name and not name.endswith(".json") else name
    if not os.path.isfile(path):
        sizes = ", ".join(sorted(p.stem for p in BERT_SIZES_DIR.glob("*.json")))
        raise ConfigError(
            f"model.bert_config: no file {path} (a size name is one of {sizes}, or give a path)"
        )
    try:
        bert_config = bert.BertConfig.from_json_file(str(path))
        if model_config.vocab_size is not None:
            bert_config = dataclasses.replace(bert_config, vocab_size=model_config.vocab_size)
    except ValueError as e:
        raise ConfigError(f"model.bert_config: {e}") from None
    return bert_config
