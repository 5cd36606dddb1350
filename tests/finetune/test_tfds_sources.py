"""The TFDS sources (glue/*, squad/v1.1) read the right features, on TFDS's mock data (no download)."""

import pytest
import tensorflow_datasets as tfds

from finetune import classification, squad


def test_glue_pairs_and_labels_come_from_the_tfds_features():
    with tfds.testing.mock_data(num_examples=4):
        mrpc = classification.read_examples(classification.TASKS["mrpc"], None, is_training=False)
        mnli = classification.read_examples(classification.TASKS["mnli"], None, is_training=False)
        sst2 = classification.read_examples(classification.TASKS["sst2"], None, is_training=True)
    assert len(mrpc.texts) == 4 and all(
        len(t) == 2 and all(isinstance(s, str) for s in t) for t in mrpc.texts
    )
    assert set(mnli.labels) <= {0, 1, 2} and all(len(t) == 2 for t in mnli.texts)
    assert all(len(t) == 1 for t in sst2.texts)


def test_squad_examples_come_from_the_tfds_features():
    with tfds.testing.mock_data(num_examples=3):
        examples = squad.read_examples(None, is_training=False)
    assert len(examples) == 3 and all(e.answers and e.question and e.words for e in examples)


def test_a_dataset_that_is_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="TFDS glue/rte cannot be read"):
        classification.read_examples(classification.TASKS["rte"], None, True, tfds_data_dir=str(tmp_path))
