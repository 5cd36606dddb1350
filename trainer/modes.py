"""The three modes of run_pretraining.py: train, eval and export."""

import bert
from trainer.checkpoints import restore_model
from trainer.errors import ConfigError, UserError
from trainer.evaluation import evaluate, follow_checkpoints
from trainer.export import export_model, find_vocab_file
from trainer.model import load_bert_config
from trainer.pretraining import train

MODES = ("train", "eval", "export")


def run(config, mode="train", strategy=None):
    """Runs `mode` with `config`: train, eval (on data.eval_files; following the training run's checkpoints
    with eval.follow) or export (runtime.checkpoint, else the latest)."""
    if mode == "train":
        return train(config, strategy)
    if mode == "eval":
        return follow_checkpoints(config) if config.eval.follow else evaluate(config)
    if mode == "export":
        return export_checkpoint(config)
    raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")


def export_checkpoint(config, checkpoint=None):
    """Exports the model of a checkpoint of model_dir (`checkpoint`, else runtime.checkpoint, else the
    latest) in Google's format, with the serving SavedModel when train.export_saved_model; returns the
    export directory."""
    model_dir = config.runtime.model_dir
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    model = bert.BertPretrainingModel(load_bert_config(config.model))
    restore_model(model, model_dir, checkpoint or config.runtime.checkpoint)
    vocab_file = find_vocab_file(config.data.vocab_file, config.data.train_files)
    return export_model(model, model_dir, vocab_file, saved_model=config.train.export_saved_model)
