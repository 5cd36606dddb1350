"""data.records: batch-encoded tf.train.Examples, byte for byte the serialized protos, read back with
Google's feature spec; atomic shard files."""

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


def batch(size=B, seq_length=S, predictions=P, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, 2**20, [size, seq_length]).astype(np.int32),  # 1 to 3 varint bytes
        "input_mask": (np.arange(seq_length) < rng.integers(1, seq_length + 1, [size, 1])).astype(np.int32),
        "segment_ids": rng.integers(0, 2, [size, seq_length]).astype(np.int32),
        "masked_lm_positions": rng.integers(0, seq_length, [size, predictions]).astype(np.int32),
        "masked_lm_ids": rng.integers(0, 30522, [size, predictions]).astype(np.int32),
        "masked_lm_weights": rng.choice([0.0, 0.5, 1.0], [size, predictions]).astype(np.float32),
        "next_sentence_labels": rng.integers(0, 2, [size]).astype(np.int32),
    }


def reference_example(features, i):
    """Record i built the plain way: a tf.train.Example proto, serialized with sorted map keys."""
    feature = {}
    for name, values in features.items():
        row = np.reshape(values, [len(features["input_ids"]), -1])[i].tolist()
        if name == "masked_lm_weights":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=row))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=row))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def test_records_parse_with_googles_spec():
    features = batch()
    serialized = serialize_examples(features)
    assert len(serialized) == B and all(isinstance(record, bytes) for record in serialized)
    for i, record in enumerate(serialized):
        parsed = tf.io.parse_single_example(record, GOOGLE_SPEC)
        for name, spec in GOOGLE_SPEC.items():
            expected = np.reshape(features[name][i], spec.shape)
            np.testing.assert_array_equal(parsed[name].numpy(), expected, err_msg=name)


def test_records_are_the_bytes_of_tf_train_example_protos():
    features = batch(size=40, seq_length=128, predictions=20, seed=1)
    features["input_ids"][:, 100:] = 0  # padding: 1-byte varints among 2- and 3-byte ones
    serialized = serialize_examples(features)
    for i, record in enumerate(serialized):
        assert record == reference_example(features, i)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros([3, 4], np.int64),  # every varint one byte
        np.array([[127, 128, 16383, 16384]] * 3, np.int64),  # the 1/2/3-byte boundaries
        np.array([[2**63 - 1, 2**35, -1, -(2**63)]] * 3, np.int64),  # 10-byte negative int64s, as protobuf
    ],
)
def test_any_int64_is_encoded_as_protobuf_does(values):
    features = batch(size=3, seq_length=4, predictions=2, seed=2)
    features["input_ids"] = values
    for i, record in enumerate(serialize_examples(features)):
        assert record == reference_example(features, i)


def test_no_predictions_and_no_records():
    features = batch(size=4, predictions=0, seed=3)  # max_predictions_per_seq = 0: empty lists
    for i, record in enumerate(serialize_examples(features)):
        assert record == reference_example(features, i)
    assert serialize_examples(batch(size=0)) == []


def test_records_are_plain_tf_train_examples_with_exactly_googles_features():
    record = serialize_examples(batch())[2]
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
