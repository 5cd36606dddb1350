"""The official metrics of the fine-tuning tasks, in plain Python and numpy.

GLUE (Wang et al. 2018, the metric each task reports): accuracy; F1 of the positive class (label 1) for MRPC
and QQP; Matthews correlation for CoLA.

SQuAD v1.1 (the official evaluate-v1.1.py): an answer and each gold answer are normalised (lower case,
punctuation removed, the articles a/an/the removed, whitespace collapsed); exact match is 1 when the
normalised strings are equal, F1 is the harmonic mean of precision and recall of their common tokens
(a multiset). Each question takes the best score over its gold answers; both are averaged and x100.
"""

import collections
import math
import re
import string

import numpy as np


def accuracy(labels, predictions):
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions))


def f1_positive(labels, predictions):
    """F1 of class 1: 2 TP / (2 TP + FP + FN); 0 when there is no positive label or prediction."""
    labels, predictions = np.asarray(labels) == 1, np.asarray(predictions) == 1
    true_positives = np.sum(labels & predictions)
    denominator = 2 * true_positives + np.sum(~labels & predictions) + np.sum(labels & ~predictions)
    return float(2 * true_positives / denominator) if denominator else 0.0


def matthews_correlation(labels, predictions):
    """(TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) of binary labels; 0 when a factor is 0."""
    labels, predictions = np.asarray(labels) == 1, np.asarray(predictions) == 1
    tp = float(np.sum(labels & predictions))
    tn = float(np.sum(~labels & ~predictions))
    fp = float(np.sum(~labels & predictions))
    fn = float(np.sum(labels & ~predictions))
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


CLASSIFICATION_METRICS = {
    "accuracy": accuracy,
    "f1": f1_positive,
    "matthews_correlation": matthews_correlation,
}


# ---------------------------------------------------------------------------------------------------------
# SQuAD v1.1

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text):
    """Lower case, no punctuation, no articles, single spaces (the official script's order)."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold):
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, gold_answers):
    """{"exact_match", "f1"} (x100) of `predictions` {question id: text} against `gold_answers`
    {question id: [texts]}; a question without a prediction scores 0, as in the official script."""
    exact, f1 = 0.0, 0.0
    for question_id, golds in gold_answers.items():
        prediction = predictions.get(question_id)
        if prediction is None:
            continue
        exact += max(exact_match_score(prediction, gold) for gold in golds)
        f1 += max(f1_score(prediction, gold) for gold in golds)
    count = max(len(gold_answers), 1)
    return {"exact_match": 100.0 * exact / count, "f1": 100.0 * f1 / count}
