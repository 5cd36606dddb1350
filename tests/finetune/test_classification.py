"""GLUE files -> examples -> Google's run_classifier features, checked by hand on a tiny vocabulary."""

import numpy as np
import pytest
from finetune_setup import VOCAB, write_model_files

import data
from finetune import classification


@pytest.fixture
def tokenizer(tmp_path):
    vocab, _ = write_model_files(tmp_path / "model")
    return data.WordPieceTokenizer(data.load_vocab(vocab), do_lower_case=True)


def ids(words):
    return [VOCAB.index(w) for w in words.split()]


def test_pairs_truncate_the_longer_text_first():
    assert classification.truncate_pair([1, 2, 3, 4, 5], [6, 7], 4) == ([1, 2], [6, 7])
    assert classification.truncate_pair([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])
    assert classification.truncate_pair([1], [2], 4) == ([1], [2])


def test_mrpc_rows_become_cls_a_sep_b_sep_features(tmp_path, tokenizer):
    (tmp_path / "dev.tsv").write_text(
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t11\t12\tThe cat sat.\tA cat sat on the mat\n"
        "0\t13\t14\tThe dog ran\tthe red rug\n"
    )
    task = classification.TASKS["mrpc"]
    examples = classification.read_examples(task, str(tmp_path), is_training=False)
    features = classification.encode(examples, tokenizer, max_seq_length=10)
    # 4 + 6 pieces for 10 - 3 = 7 places: b, the longer, loses "mat" and "the", then (4 against 4: b
    # again, as Google pops b when the lengths are equal) "on".
    a, b = ids("the cat sat ."), ids("a cat sat")
    expected = [2, *a, 3, *b, 3]
    np.testing.assert_array_equal(features["input_ids"][0], expected)
    np.testing.assert_array_equal(features["input_mask"][0], [1] * 10)
    np.testing.assert_array_equal(features["segment_ids"][0], [0] * 6 + [1] * 4)
    second = [2, *ids("the dog ran"), 3, *ids("the red rug"), 3]
    np.testing.assert_array_equal(features["input_ids"][1], second + [0] * (10 - len(second)))
    np.testing.assert_array_equal(features["segment_ids"][1], [0] * 5 + [1] * 4 + [0])
    np.testing.assert_array_equal(features["label_ids"], [1, 0])


def test_mnli_labels_are_tfds_ids(tmp_path):
    header = "\t".join(f"c{i}" for i in range(12))
    rows = [["x"] * 8 + ["premise", "hypothesis", "x", label] for label in ("neutral", "contradiction")]
    (tmp_path / "train.tsv").write_text(header + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    examples = classification.read_examples(classification.TASKS["mnli"], str(tmp_path), is_training=True)
    assert examples.texts == [("premise", "hypothesis")] * 2
    np.testing.assert_array_equal(examples.labels, [1, 2])  # entailment 0, neutral 1, contradiction 2


def test_a_bad_label_or_a_short_row_names_the_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad film\tmaybe\n")
    with pytest.raises(ValueError, match=r"train.tsv: line 3: label 'maybe' is not one of 0, 1"):
        classification.read_examples(classification.TASKS["sst2"], str(tmp_path), is_training=True)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\njust text\n")
    with pytest.raises(ValueError, match=r"train.tsv: line 2 has 1 columns, the sst2 task needs 2"):
        classification.read_examples(classification.TASKS["sst2"], str(tmp_path), is_training=True)
    with pytest.raises(ValueError, match=r"no file .*dev.tsv"):
        classification.read_examples(classification.TASKS["sst2"], str(tmp_path), is_training=False)


def test_task_metrics_are_each_tasks_official_ones():
    features = {"label_ids": np.array([1, 1, 0, 0])}
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # predicts 1, 0, 0, 1
    mrpc = classification.evaluate(classification.TASKS["mrpc"], logits, features)
    assert mrpc == {"accuracy": 0.5, "f1": 0.5}
    cola = classification.evaluate(classification.TASKS["cola"], logits, features)
    assert cola == {"matthews_correlation": 0.0, "accuracy": 0.5}
