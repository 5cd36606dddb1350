"""The three modes of run_pretraining.py: train, eval and export."""

import bert
from trainer.checkpoints import restore_model
from trainer.errors import ConfigError, UserError
from trainer.evaluation import evaluate, follow_checkpoints
from trainer.export import export_run_model
from trainer.model import load_bert_config
from trainer.pretraining import train
from trainer.strategy import strategy_for

MODES = ("train", "eval", "export")


def run(config, mode="train", strategy=None):
    """Runs `mode` with `config`: train, eval (on data.eval_files; following the training run's checkpoints
    with eval.follow) or export (runtime.checkpoint, else the latest)."""
    if mode == "train":
        return train(config, strategy)
    if mode == "eval":
        strategy = strategy or strategy_for(config, local=True)
        return (
            follow_checkpoints(config, strategy=strategy)
            if config.eval.follow
            else evaluate(config, strategy=strategy)
        )
    if mode == "export":
        return export_checkpoint(config, strategy=strategy)
    raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")


def export_checkpoint(config, checkpoint=None, strategy=None):
    """Exports the model of a checkpoint of model_dir (`checkpoint`, else runtime.checkpoint, else the
    latest) in Google's and Hugging Face's formats, with the serving SavedModel when
    train.export_saved_model; returns the export directory. The model is restored under `strategy`
    (default: runtime.strategy's, on this host)."""
    model_dir = config.runtime.model_dir
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    with (strategy or strategy_for(config, local=True)).scope():
        model = bert.BertPretrainingModel(load_bert_config(config.model))
    restore_model(model, model_dir, checkpoint or config.runtime.checkpoint)
    return export_run_model(model, config)
