"""--mode=eval (and the end of a run with data.eval_files): Google's pretraining metrics on held-out data.

One pass over every record of data.eval_files with a checkpoint of model_dir (the latest, or
runtime.checkpoint), under the run's strategy (the TPU or the GPUs of the training), each replica taking
micro_batch_size sequences of a batch, the sums added over the replicas. A multi-worker run is evaluated
on one host: by --mode=eval on its GPUs, at the end of training on the chief's first device. Masked-LM
loss and accuracy (weighted by masked_lm_weights, as Google's
`metric_fn`), next-sentence loss and accuracy, and the total loss. Next to the masked-LM accuracy it
reports the accuracy of always predicting the most frequent masked token of the same data, the floor a model
must clear to have learned anything beyond token frequencies. The numbers are logged and written to
TensorBoard (model_dir/eval) at the checkpoint's step.

With eval.follow the evaluation follows a training run: it evaluates each checkpoint as it appears in
model_dir (tf.train.checkpoints_iterator) and stops after the checkpoint of the run's final step, or when no
new checkpoint came for eval.follow_timeout_seconds.
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
from trainer.plan import plan_schedule
from trainer.strategy import strategy_for
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


class Evaluator:
    """The model and the held-out data of `config`, evaluated at one checkpoint after another."""

    def __init__(self, config, strategy=None):
        self.config = config
        self.model_dir, data_config = config.runtime.model_dir, config.data
        if not self.model_dir:
            raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
        if not data_config.eval_files:
            raise ConfigError("data.eval_files: missing (evaluation reads held-out TFRecords from it)")
        self.strategy = evaluation_strategy(strategy or strategy_for(config, local=True))
        bert_config = load_bert_config(config.model)
        self.vocab_size = bert_config.vocab_size
        with self.strategy.scope():
            self.model = bert.BertPretrainingModel(bert_config, dtype=config.runtime.mixed_precision)
        replicas = self.strategy.num_replicas_in_sync
        try:
            dataset = data.pretraining_dataset(
                data_config.eval_files,
                config.train.micro_batch_size * replicas,
                data_config.max_seq_length,
                data_config.max_predictions_per_seq,
                is_training=False,
                vocab_size=self.vocab_size,
            )
        except data.DataConfigError as e:
            raise data.DataConfigError(f"data.eval_files: {e}") from None
        self.dataset = self.strategy.experimental_distribute_dataset(dataset)
        self.vocab_file = find_vocab_file(data_config.vocab_file, data_config.eval_files)
        self.summaries = Summaries(os.path.join(self.model_dir, EVAL_SUMMARY_DIR_NAME))
        self._batch_sums = self._make_batch_sums()

    def _make_batch_sums(self):
        """A tf.function: one distributed batch -> (the bert.SUM_KEYS sums [K], the weighted count of each
        masked token id [V]), added over the replicas."""

        def replica_sums(batch):
            sums = bert.pretraining_sums(self.model(batch, training=False), batch)
            ids = tf.reshape(tf.cast(batch["masked_lm_ids"], tf.int32), [-1])  # [B x P]
            weights = tf.reshape(tf.cast(batch["masked_lm_weights"], tf.float32), [-1])  # [B x P]
            counts = tf.math.unsorted_segment_sum(weights, ids, self.vocab_size)  # [V]
            return tf.stack([sums[name] for name in bert.SUM_KEYS]), counts

        @tf.function
        def batch_sums(batch):
            sums, counts = self.strategy.run(replica_sums, args=(batch,))
            total = tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(total, sums, axis=None), self.strategy.reduce(
                total, counts, axis=None
            )

        return batch_sums

    def evaluate(self, checkpoint=None):
        """Metrics of one checkpoint (`find_checkpoint`); returns (metrics, its step)."""
        path, step = restore_model(self.model, self.model_dir, checkpoint)
        sums = dict.fromkeys(bert.SUM_KEYS, 0.0)
        token_counts = np.zeros(self.vocab_size)
        for batch in self.dataset:
            batch_sums, counts = self._batch_sums(batch)
            sums = bert.add_sums(sums, dict(zip(bert.SUM_KEYS, tf.unstack(batch_sums), strict=True)))
            token_counts += counts.numpy()
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
        logging.info(
            "held-out masked-LM accuracy %.4f; always predicting the most frequent masked token (%s) gives "
            "%.4f",
            metrics["masked_lm_accuracy"],
            token_name(self.vocab_file, token_id),
            baseline,
        )
        self.summaries.scalars(step, metrics)
        self.summaries.flush()
        return metrics, step


def evaluation_strategy(strategy):
    """`strategy`, or for a multi-worker run the first local device of this worker: the evaluation runs on
    one host (the chief, or a host of its own), where the other workers' collectives never come."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return tf.distribute.OneDeviceStrategy(strategy.extended.worker_devices[0])
    return strategy


def evaluate(config, checkpoint=None, strategy=None):
    """Masked-LM and next-sentence loss and accuracy over every record of data.eval_files, once, with the
    checkpoint `checkpoint` (default: runtime.checkpoint, else the latest), under `strategy` (default: the
    one of runtime.strategy). Returns the metrics, with `masked_lm_majority_accuracy` (always the most
    frequent masked token) and `sequences`."""
    metrics, _ = Evaluator(config, strategy).evaluate(checkpoint or config.runtime.checkpoint)
    return metrics


def follow_checkpoints(config, poll_seconds=1.0, strategy=None):
    """Evaluates each checkpoint of model_dir as it appears, until the one of the run's final step (or
    eval.follow_timeout_seconds without a new one). Returns {step: metrics}."""
    evaluator = Evaluator(config, strategy)
    final_step = plan_schedule(config.schedule, config.train).train_steps
    timeout = config.eval.follow_timeout_seconds
    logging.info(
        "following the checkpoints of %s until step %d (giving up after %d s without a new one)",
        evaluator.model_dir,
        final_step,
        timeout,
    )
    results = {}
    checkpoints = tf.train.checkpoints_iterator(
        evaluator.model_dir, min_interval_secs=poll_seconds, timeout=timeout
    )
    for path in checkpoints:
        try:
            if not tf.io.gfile.exists(f"{path}.index"):
                raise tf.errors.NotFoundError(None, None, path)
            metrics, step = evaluator.evaluate(path)
        except tf.errors.NotFoundError:  # deleted (train.keep_checkpoints) before it could be read
            logging.warning("%s was deleted before it could be evaluated", path)
            continue
        results[step] = metrics
        if step >= final_step:
            logging.info("evaluated the checkpoint of the final step %d", step)
            return results
    logging.warning("no new checkpoint in %s for %d s: stopped following", evaluator.model_dir, timeout)
    return results
