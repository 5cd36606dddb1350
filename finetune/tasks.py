"""What the fine-tuning loop needs of a task: its features, its model, its loss and its metrics.

ClassificationTask and SquadTask both give
    train_features()              numpy features of the training examples (labels included)
    eval_features()               numpy features of the evaluation examples
    make_model(encoder)           the encoder with the task's head
    loss                          the training loss, as trainer/step.py's loss definition: the mean over the
                                  global batch of each example's cross-entropy (ClassificationLoss, SpanLoss)
    head_flops(hidden, seq)       forward matmul FLOPs of the head per example (the model FLOP utilisation)
    evaluate(outputs)             the task's official metrics of the model's outputs on eval_features()
"""

import numpy as np
import tensorflow as tf

from finetune import classification, squad
from finetune.config import SQUAD_TASK
from finetune.model import ClassifierModel, SpanModel

LABEL_KEYS = ("label_ids", "start_positions", "end_positions")


class MeanLoss:
    """The mean over the global batch G of a per-example loss, as trainer/step.py's loss definition:

        loss = sum_G(loss_i) / |G|,   micro-batch b's term: sum_b(loss_i) / |G|

    |G|, the configured batch size, is known before the forward pass. Subclasses give `per_example`:
    {"loss": [B]} (and "correct": [B] 0/1 for an accuracy)."""

    sum_keys = ("loss_sum", "example_count")
    progress = (("loss", "loss"),)

    def denominators(self, features, global_batch_size):
        del features
        return {"example_count": tf.constant(float(global_batch_size))}

    def term(self, outputs, batch, denominators):
        per_example = self.per_example(outputs, batch)
        sums = {
            "loss_sum": tf.reduce_sum(per_example["loss"]),
            "example_count": tf.cast(tf.size(per_example["loss"]), tf.float32),
        }
        if "correct" in per_example:
            sums["correct_sum"] = tf.reduce_sum(per_example["correct"])
        return sums["loss_sum"] / denominators["example_count"], sums

    def loss(self, sums):
        return sums["loss_sum"] / sums["example_count"]

    def metrics(self, sums):
        return {"loss": self.loss(sums)}


class ClassificationLoss(MeanLoss):
    """Softmax cross-entropy of the logits [B, num_labels] against label_ids, and the accuracy."""

    sum_keys = (*MeanLoss.sum_keys, "correct_sum")
    progress = (*MeanLoss.progress, ("acc", "accuracy"))

    def per_example(self, logits, batch):
        labels = tf.cast(batch["label_ids"], tf.int32)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return {"loss": loss, "correct": correct}

    def metrics(self, sums):
        return {"loss": self.loss(sums), "accuracy": sums["correct_sum"] / sums["example_count"]}


class SpanLoss(MeanLoss):
    """Google's run_squad loss: the mean of the start and the end position's cross-entropy."""

    def per_example(self, outputs, batch):
        start = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch["start_positions"], logits=outputs["start_logits"]
        )
        end = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch["end_positions"], logits=outputs["end_logits"]
        )
        return {"loss": (start + end) / 2.0}


class ClassificationTask:
    def __init__(self, task_config, tokenizer):
        self.config = task_config
        self.task = classification.TASKS[task_config.name]
        self.tokenizer = tokenizer
        self._eval = None

    def _features(self, is_training):
        config = self.config
        examples = classification.read_examples(self.task, config.data_dir, is_training, config.tfds_data_dir)
        return classification.encode(examples, self.tokenizer, config.max_seq_length)

    def train_features(self):
        return self._features(is_training=True)

    def eval_features(self):
        if self._eval is None:
            self._eval = self._features(is_training=False)
        return self._eval

    loss = ClassificationLoss()

    def make_model(self, encoder):
        return ClassifierModel(encoder, self.task.num_labels)

    def head_flops(self, hidden_size, seq_length):
        """The pooler (H x H) and the output layer (H x num_labels) on the [CLS] position."""
        del seq_length
        return 2 * hidden_size * hidden_size + 2 * hidden_size * self.task.num_labels

    def evaluate(self, logits):
        return classification.evaluate(self.task, logits, self.eval_features())


class SquadTask:
    def __init__(self, task_config, tokenizer):
        self.config = task_config
        self.tokenizer = tokenizer
        self._eval = None

    def _encode(self, is_training):
        c = self.config
        examples = squad.read_examples(c.data_dir, is_training, c.tfds_data_dir)
        features, windows = squad.encode(
            examples, self.tokenizer, c.max_seq_length, c.doc_stride, c.max_query_length, is_training
        )
        return examples, features, windows

    def train_features(self):
        return self._encode(is_training=True)[1]

    def eval_features(self):
        if self._eval is None:
            self._eval = self._encode(is_training=False)
        return self._eval[1]

    loss = SpanLoss()

    def make_model(self, encoder):
        return SpanModel(encoder)

    def head_flops(self, hidden_size, seq_length):
        """The output layer (H x 2) at every position."""
        return 2 * seq_length * hidden_size * 2

    def evaluate(self, outputs):
        self.eval_features()
        examples, features, windows = self._eval
        c = self.config
        return squad.evaluate(
            examples,
            windows,
            features["input_ids"],
            outputs["start_logits"],
            outputs["end_logits"],
            self.tokenizer,
            c.n_best_size,
            c.max_answer_length,
        )


def make_task(task_config, tokenizer):
    if task_config.name == SQUAD_TASK:
        return SquadTask(task_config, tokenizer)
    return ClassificationTask(task_config, tokenizer)


def num_examples(features):
    return len(features["input_ids"])


def model_inputs(features):
    """The features a model reads (labels left out)."""
    return {name: value for name, value in features.items() if name not in LABEL_KEYS}


def concatenate_outputs(outputs):
    """A list of per-batch outputs (arrays, or dicts of arrays) as one."""
    if isinstance(outputs[0], dict):
        return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}
    return np.concatenate(outputs)
