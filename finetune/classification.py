"""Sentence and sentence-pair classification: the GLUE tasks and the demo's `library` task.

Examples come from the task's TSV files in `task.data_dir` (the layout of the GLUE download: a header line,
tab-separated columns, e.g. MRPC's `Quality  #1 ID  #2 ID  #1 String  #2 String`), or from TensorFlow
Datasets `glue/<name>` when `task.data_dir` is null (prepared beforehand; nothing is downloaded).
Labels are indices into the task's label list, which is TFDS's order, so both sources give the same ids.

An example becomes Google's `run_classifier.py` features: [CLS] a [SEP] (b [SEP]), segment ids 0 for a and
1 for b, the pair truncated by removing tokens from the end of the longer text first, padded with 0.
"""

import csv
import dataclasses
import os
import sys

import numpy as np

from finetune.metrics import CLASSIFICATION_METRICS


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    name: str
    labels: tuple  # the label of id i is labels[i]
    train_file: str
    eval_file: str
    text_columns: tuple  # TSV columns of text a (and text b)
    label_column: int  # TSV column of the label (-1: the last)
    header: bool  # the TSV files start with a header line
    metrics: tuple  # names in finetune.metrics.CLASSIFICATION_METRICS
    tfds_features: tuple = ()  # the TFDS features of text a (and b)
    tfds_eval_split: str = "validation"

    @property
    def num_labels(self):
        return len(self.labels)


GLUE_TASKS = {
    task.name: task
    for task in (
        ClassificationTask(
            "cola", ("0", "1"), "train.tsv", "dev.tsv", (3,), 1, False, ("matthews_correlation", "accuracy"),
            ("sentence",),
        ),
        ClassificationTask(
            "sst2", ("0", "1"), "train.tsv", "dev.tsv", (0,), 1, True, ("accuracy",), ("sentence",)
        ),
        ClassificationTask(
            "mrpc", ("0", "1"), "train.tsv", "dev.tsv", (3, 4), 0, True, ("accuracy", "f1"),
            ("sentence1", "sentence2"),
        ),
        ClassificationTask(
            "qqp", ("0", "1"), "train.tsv", "dev.tsv", (3, 4), 5, True, ("accuracy", "f1"),
            ("question1", "question2"),
        ),
        ClassificationTask(
            "mnli", ("entailment", "neutral", "contradiction"), "train.tsv", "dev_matched.tsv", (8, 9), -1,
            True, ("accuracy",), ("premise", "hypothesis"), "validation_matched",
        ),
        ClassificationTask(
            "qnli", ("entailment", "not_entailment"), "train.tsv", "dev.tsv", (1, 2), -1, True,
            ("accuracy",), ("question", "sentence"),
        ),
        ClassificationTask(
            "rte", ("entailment", "not_entailment"), "train.tsv", "dev.tsv", (1, 2), -1, True, ("accuracy",),
            ("sentence1", "sentence2"),
        ),
    )
}  # fmt: skip

# The demo's task (finetune/library_task.py writes its files): which library a documentation sentence is from.
LIBRARY_TASK = ClassificationTask(
    "library", ("stdlib", "numpy", "tensorflow"), "train.tsv", "dev.tsv", (0,), 1, True, ("accuracy",)
)

TASKS = {**GLUE_TASKS, LIBRARY_TASK.name: LIBRARY_TASK}


@dataclasses.dataclass
class Examples:
    texts: list  # [(a,) or (a, b)] per example
    labels: np.ndarray  # int32 [N]


def read_tsv_examples(task, path):
    """The examples of a task's TSV file; a bad row raises ValueError naming the file and line."""
    if not os.path.isfile(path):
        raise ValueError(f"task.data_dir: no file {path} (the {task.name} task reads {task.train_file} "
                         f"and {task.eval_file} there)")  # fmt: skip
    texts, labels = [], []
    label_ids = {label: i for i, label in enumerate(task.labels)}
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for line, row in enumerate(rows, start=1):
        if task.header and line == 1:
            continue
        needed = max(*task.text_columns, task.label_column) + 1
        if len(row) < needed:
            raise ValueError(
                f"{path}: line {line} has {len(row)} columns, the {task.name} task needs {needed}"
            )
        label = row[task.label_column].strip()
        if label not in label_ids:
            raise ValueError(f"{path}: line {line}: label {label!r} is not one of {', '.join(task.labels)}")
        texts.append(tuple(row[column] for column in task.text_columns))
        labels.append(label_ids[label])
    return Examples(texts, np.asarray(labels, np.int32))


def read_tfds_examples(task, split, data_dir=None):
    """The examples of TFDS `glue/<task>` (already prepared in `data_dir`: nothing is downloaded)."""
    if not task.tfds_features:
        raise ValueError(f"task.data_dir: the {task.name} task has no TFDS source; give its TSV directory")
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(f"glue/{task.name}", split=split, data_dir=data_dir, download=False)
    except Exception as e:  # TFDS raises several types for a dataset that is not prepared
        raise ValueError(f"task.data_dir is null and TFDS glue/{task.name} cannot be read: {e}") from None
    texts, labels = [], []
    for example in tfds.as_numpy(dataset):
        texts.append(tuple(example[name].decode("utf-8") for name in task.tfds_features))
        labels.append(int(example["label"]))
    return Examples(texts, np.asarray(labels, np.int32))


def read_examples(task, data_dir, is_training, tfds_data_dir=None):
    if data_dir:
        return read_tsv_examples(
            task, os.path.join(data_dir, task.train_file if is_training else task.eval_file)
        )
    return read_tfds_examples(task, "train" if is_training else task.tfds_eval_split, tfds_data_dir)


def truncate_pair(a, b, max_length):
    """Google's `_truncate_seq_pair`: pops from the end of the longer list until both fit `max_length`."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_length:
        (a if len(a) > len(b) else b).pop()
    return a, b


def encode(examples, tokenizer, max_seq_length):
    """Features of Google's run_classifier: int32 input_ids, input_mask, segment_ids [N, S], label_ids [N]."""
    vocab = tokenizer.vocab
    count = len(examples.texts)
    firsts = tokenizer.tokenize([texts[0] for texts in examples.texts])
    seconds = (
        tokenizer.tokenize([texts[1] for texts in examples.texts])
        if count and len(examples.texts[0]) > 1
        else None
    )
    features = {
        name: np.zeros([count, max_seq_length], np.int32)
        for name in ("input_ids", "input_mask", "segment_ids")
    }
    for i in range(count):
        if seconds is None:
            a, b = firsts[i][: max_seq_length - 2], []
            ids = [vocab.cls_id, *a, vocab.sep_id]
        else:
            a, b = truncate_pair(firsts[i], seconds[i], max_seq_length - 3)
            ids = [vocab.cls_id, *a, vocab.sep_id, *b, vocab.sep_id]
        features["input_ids"][i, : len(ids)] = ids
        features["input_mask"][i, : len(ids)] = 1
        features["segment_ids"][i, len(a) + 2 : len(ids)] = 1
    features["label_ids"] = examples.labels.astype(np.int32)
    return features


def evaluate(task, logits, features):
    """The task's metrics of `logits` [N, num_labels] against features["label_ids"]."""
    predictions = np.argmax(logits, axis=-1)
    return {name: CLASSIFICATION_METRICS[name](features["label_ids"], predictions) for name in task.metrics}
