"""What the fine-tuning loop needs of a task: its features, its model, its loss and its metrics.

ClassificationTask and SquadTask both give
    train_features()              numpy features of the training examples (labels included)
    eval_features()               numpy features of the evaluation examples
    make_model(encoder)           the encoder with the task's head
    loss_sum(outputs, batch)      the summed loss of a batch (the loop divides by the global batch size)
    evaluate(outputs)             the task's official metrics of the model's outputs on eval_features()
"""

import numpy as np
import tensorflow as tf

from finetune import classification, squad
from finetune.config import SQUAD_TASK
from finetune.model import ClassifierModel, SpanModel

LABEL_KEYS = ("label_ids", "start_positions", "end_positions")


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

    def make_model(self, encoder):
        return ClassifierModel(encoder, self.task.num_labels)

    def loss_sum(self, logits, batch):
        return tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["label_ids"], logits=logits)
        )

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

    def make_model(self, encoder):
        return SpanModel(encoder)

    def loss_sum(self, outputs, batch):
        """Google's run_squad loss: the mean of the start and the end position's cross-entropy."""
        start = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch["start_positions"], logits=outputs["start_logits"]
        )
        end = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch["end_positions"], logits=outputs["end_logits"]
        )
        return tf.reduce_sum(start + end) / 2.0

    def evaluate(self, outputs):
        self.eval_features()
        examples, _, windows = self._eval
        c = self.config
        return squad.evaluate(
            examples,
            windows,
            outputs["start_logits"],
            outputs["end_logits"],
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
