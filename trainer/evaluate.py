"""--mode=eval (and the end of a run with data.eval_files): Google's pretraining metrics on held-out data.

One pass over every record of data.eval_files with the latest checkpoint of model_dir, on one device. Next to
the masked-LM accuracy it reports the accuracy of always predicting the most frequent masked token of the
same data, the floor a model must clear to have learned anything beyond token frequencies.
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

import bert
import data
from trainer.checkpoints import restore_model
from trainer.errors import ConfigError
from trainer.export import find_vocab_file
from trainer.model import load_bert_config
from trainer.summaries import Summaries

EVAL_SUMMARY_DIR_NAME = "eval"


def majority_baseline(token_counts):
    """(accuracy, token id) of always predicting the most frequent masked token, from weighted counts."""
    total = token_counts.sum()
    token_id = int(np.argmax(token_counts))
    return (float(token_counts[token_id] / total) if total else 0.0), token_id


def token_name(vocab_file, token_id):
    if not vocab_file or not tf.io.gfile.exists(vocab_file):
        return f"id {token_id}"
    with tf.io.gfile.GFile(vocab_file) as f:
        tokens = f.read().splitlines()
    return repr(tokens[token_id]) if token_id < len(tokens) else f"id {token_id}"


def evaluate(config):
    """Masked-LM and next-sentence loss and accuracy over every record of data.eval_files, once.

    Runs on one device with batches of train.micro_batch_size sequences; the numbers are logged and written
    to TensorBoard (model_dir/eval) at the step of the evaluated checkpoint. Returns the metrics, with
    `masked_lm_majority_accuracy` (always the most frequent masked token) and `sequences`.
    """
    model_dir, data_config = config.runtime.model_dir, config.data
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if not data_config.eval_files:
        raise ConfigError("data.eval_files: missing (evaluation reads held-out TFRecords from it)")
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
    token_counts = np.zeros(bert_config.vocab_size)
    for batch in dataset:
        sums = bert.add_sums(sums, batch_sums(batch))
        ids, weights = batch["masked_lm_ids"].numpy().ravel(), batch["masked_lm_weights"].numpy().ravel()
        token_counts += np.bincount(ids, weights=weights, minlength=bert_config.vocab_size)
    metrics = {name: float(value) for name, value in bert.pretraining_metrics(sums).items()}
    baseline, token_id = majority_baseline(token_counts)
    metrics["masked_lm_majority_accuracy"] = baseline
    metrics["sequences"] = float(sums["nsp_count"])

    logging.info(
        "eval of %s (step %d) on %d held-out sequences: %s",
        path,
        step,
        int(metrics["sequences"]),
        "  ".join(f"{name} {metrics[name]:.4f}" for name in bert.pretraining_metrics(sums)),
    )
    vocab_file = find_vocab_file(data_config.vocab_file, data_config.eval_files)
    logging.info(
        "held-out masked-LM accuracy %.4f; always predicting the most frequent masked token (%s) gives %.4f",
        metrics["masked_lm_accuracy"],
        token_name(vocab_file, token_id),
        baseline,
    )
    summaries = Summaries(os.path.join(model_dir, EVAL_SUMMARY_DIR_NAME))
    summaries.scalars(step, metrics)
    summaries.flush()
    return metrics
