"""The three modes of run_pretraining.py: train, eval and export."""

import bert
from trainer.checkpoints import restore_model
from trainer.errors import ConfigError, UserError
from trainer.evaluate import evaluate
from trainer.export import export_model, find_vocab_file
from trainer.model import load_bert_config
from trainer.train import train

MODES = ("train", "eval", "export")


def run(config, mode="train", strategy=None):
    """Runs `mode` with `config`: train, eval (on data.eval_files) or export (the latest checkpoint)."""
    if mode == "train":
        return train(config, strategy)
    if mode == "eval":
        return evaluate(config)
    if mode == "export":
        return export_latest(config)
    raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")


def export_latest(config):
    """Exports the model of the latest checkpoint in model_dir in Google's format; returns the directory."""
    model_dir = config.runtime.model_dir
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    model = bert.BertPretrainingModel(load_bert_config(config.model))
    restore_model(model, model_dir)
    return export_model(model, model_dir, find_vocab_file(config.data.vocab_file, config.data.train_files))
