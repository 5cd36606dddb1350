"""data.records: batch-encoded tf.train.Examples read back with Google's feature spec; atomic shard files."""

import os

import numpy as np
import pytest
import tensorflow as tf

from data.records import AtomicRecordWriter, serialize_examples, shard_file_name

S, P, B = 16, 4, 5

# Google's run_pretraining.py reads records with exactly this spec.
GOOGLE_SPEC = {
    "input_ids": tf.io.FixedLenFeature([S], tf.int64),
    "input_mask": tf.io.FixedLenFeature([S], tf.int64),
    "segment_ids": tf.io.FixedLenFeature([S], tf.int64),
    "masked_lm_positions": tf.io.FixedLenFeature([P], tf.int64),
    "masked_lm_ids": tf.io.FixedLenFeature([P], tf.int64),
    "masked_lm_weights": tf.io.FixedLenFeature([P], tf.float32),
    "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
}


def batch():
    rng = np.random.default_rng(0)
    return {
        "input_ids": rng.integers(0, 2**20, [B, S]).astype(np.int32),  # ids needing 1 to 3 varint bytes
        "input_mask": (np.arange(S) < rng.integers(5, S, [B, 1])).astype(np.int32),
        "segment_ids": rng.integers(0, 2, [B, S]).astype(np.int32),
        "masked_lm_positions": rng.integers(0, S, [B, P]).astype(np.int32),
        "masked_lm_ids": rng.integers(0, 30522, [B, P]).astype(np.int32),
        "masked_lm_weights": np.array([[1, 1, 0.5, 0]] * B, np.float32),
        "next_sentence_labels": rng.integers(0, 2, [B]).astype(np.int32),
    }


def test_records_parse_with_googles_spec():
    features = batch()
    serialized = serialize_examples(features).numpy()
    assert serialized.shape == (B,)
    for i, record in enumerate(serialized):
        parsed = tf.io.parse_single_example(record, GOOGLE_SPEC)
        for name, spec in GOOGLE_SPEC.items():
            expected = np.reshape(features[name][i], spec.shape)
            np.testing.assert_array_equal(parsed[name].numpy(), expected, err_msg=name)


def test_records_are_plain_tf_train_examples_with_exactly_googles_features():
    record = serialize_examples(batch()).numpy()[2]
    example = tf.train.Example.FromString(record)
    kinds = {name: feature.WhichOneof("kind") for name, feature in example.features.feature.items()}
    assert kinds == {
        name: "float_list" if name == "masked_lm_weights" else "int64_list" for name in GOOGLE_SPEC
    }
    assert list(example.features.feature["input_ids"].int64_list.value) == batch()["input_ids"][2].tolist()


def test_shard_names():
    assert shard_file_name("pretraining", 3, 8) == "pretraining-00003-of-00008.tfrecord"


def test_atomic_writer_renames_on_commit_and_deletes_on_failure(tmp_path):
    path = str(tmp_path / shard_file_name("p", 0, 1))
    with AtomicRecordWriter(path) as writer:
        writer.write([b"a", b"b"])
        assert not os.path.exists(path) and len(os.listdir(tmp_path)) == 1  # only the temporary file
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"a", b"b"]
    failing = str(tmp_path / shard_file_name("p", 0, 2))
    with pytest.raises(RuntimeError), AtomicRecordWriter(failing) as writer:
        writer.write([b"c"])
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == [os.path.basename(path)]
