"""The official metrics against hand-computed values and the official SQuAD script's normalisation."""

import pytest

from finetune import metrics

# TP at 0 and 4, FN at 1, FP at 3, TN at 2 and 5.
LABELS = [1, 1, 0, 0, 1, 0]
PREDICTIONS = [1, 0, 0, 1, 1, 0]


def test_accuracy_f1_and_matthews_correlation_by_hand():
    assert metrics.accuracy(LABELS, PREDICTIONS) == pytest.approx(4 / 6)
    assert metrics.f1_positive(LABELS, PREDICTIONS) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    # (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / sqrt(3 * 3 * 3 * 3)
    assert metrics.matthews_correlation(LABELS, PREDICTIONS) == pytest.approx(3 / 9)


def test_degenerate_predictions_score_zero_not_nan():
    assert metrics.matthews_correlation([1, 0, 1], [1, 1, 1]) == 0.0  # TN + FN = 0
    assert metrics.f1_positive([0, 0], [0, 0]) == 0.0
    assert metrics.matthews_correlation([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("The Denver Broncos!", "denver broncos"),  # lower case, punctuation, article
        ("an apple a day", "apple day"),
        ("  Super   Bowl 50. ", "super bowl 50"),  # whitespace collapsed
        ("theater Anthem", "theater anthem"),  # articles only as whole words
        ("Saint-Denis", "saintdenis"),  # punctuation removed, not replaced by a space
        ("A", ""),
    ],
)
def test_normalisation_is_the_official_scripts(text, normalised):
    assert metrics.normalize_answer(text) == normalised


def test_squad_exact_match_and_f1_by_hand():
    # pred tokens [cat, sat, on, mat], gold [cat, on, mat]: precision 3/4, recall 1.
    assert metrics.f1_score("the cat sat on the mat", "cat on mat") == pytest.approx(2 * 0.75 / 1.75)
    assert metrics.exact_match_score("The Broncos.", "broncos") == 1.0
    assert metrics.f1_score("Paris", "London") == 0.0
    golds = {"q1": ["Denver Broncos", "Broncos"], "q2": ["Paris"], "q3": ["1990"]}
    predictions = {"q1": "the Broncos", "q2": "in Paris France"}  # q3 unanswered: scores 0
    scores = metrics.squad_scores(predictions, golds)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # q1: F1 1 (best gold); q2: [in, paris, france] against [paris]: precision 1/3, recall 1, F1 1/2.
    assert scores["f1"] == pytest.approx(100 * (1 + 0.5) / 3)
