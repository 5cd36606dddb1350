"""--mode=eval: Google's pretraining metrics of the latest checkpoint on held-out TFRecords (one pass)."""

import os

import tensorflow as tf
from absl import logging

import bert
import data
from trainer.checkpoints import restore_model
from trainer.errors import ConfigError
from trainer.summaries import Summaries
from trainer.train import load_bert_config

EVAL_SUMMARY_DIR_NAME = "eval"


def evaluate(config):
    """Masked-LM and next-sentence loss and accuracy over every record of data.eval_files, once.

    Runs on one device with batches of train.micro_batch_size sequences; the numbers are printed and
    written to TensorBoard (model_dir/eval) at the step of the evaluated checkpoint. Returns the metrics.
    """
    model_dir, data_config = config.runtime.model_dir, config.data
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if not data_config.eval_files:
        raise ConfigError("data.eval_files: missing (--mode=eval reads held-out TFRecords from it)")
    bert_config = load_bert_config(config.model)
    model = bert.BertPretrainingModel(bert_config, dtype=config.runtime.mixed_precision)
    path, step = restore_model(model, model_dir)
    dataset = data.pretraining_dataset(
        [pattern.strip() for pattern in data_config.eval_files.split(",") if pattern.strip()],
        config.train.micro_batch_size,
        data_config.max_seq_length,
        data_config.max_predictions_per_seq,
        is_training=False,
        vocab_size=bert_config.vocab_size,
    )

    @tf.function
    def batch_sums(batch):
        return bert.pretraining_sums(model(batch, training=False), batch)

    sums = dict.fromkeys(bert.SUM_KEYS, 0.0)
    for batch in dataset:
        sums = bert.add_sums(sums, batch_sums(batch))
    metrics = {name: float(value) for name, value in bert.pretraining_metrics(sums).items()}
    metrics["sequences"] = float(sums["nsp_count"])
    logging.info(
        "eval of %s (step %d) on %d sequences: %s",
        path,
        step,
        int(metrics["sequences"]),
        "  ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != "sequences"),
    )
    summaries = Summaries(os.path.join(model_dir, EVAL_SUMMARY_DIR_NAME))
    summaries.scalars(step, metrics)
    summaries.flush()
    return metrics
