"""Google's pretraining tf.train.Example records, encoded a batch at a time; shard files written atomically.

The features are those of google-research/bert's create_pretraining_data.py, in its order:

    input_ids, input_mask, segment_ids        int64 [max_seq_length]
    masked_lm_positions, masked_lm_ids        int64 [max_predictions_per_seq]
    masked_lm_weights                         float32 [max_predictions_per_seq]
    next_sentence_labels                      int64 [1]   (1 = segment B is a random next sentence)

Building one tf.train.Example per record in Python costs tens of microseconds; here `tf.io.encode_proto`
builds the same messages for a whole batch inside TensorFlow, one nesting level per call:
Int64List/FloatList -> Feature -> Features.FeatureEntry (the map entry: key, value) -> Features -> Example.
"""

import os
import uuid

import tensorflow as tf

INT64_FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids")
FLOAT_FEATURES = ("masked_lm_weights",)
FEATURE_ORDER = (*INT64_FEATURES, *FLOAT_FEATURES, "next_sentence_labels")


def shard_file_name(prefix, index, num_shards):
    """`<prefix>-00003-of-00008.tfrecord`."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


def _encode(message_type, field, values):
    """Serialized `message_type` messages [B]; field `field` of message i holds row i of values [B, n]."""
    sizes = tf.fill([tf.shape(values)[0], 1], tf.shape(values)[1])
    return tf.io.encode_proto(sizes, [values], [field], message_type)


def _feature(values, is_float):
    """Serialized tf.train.Feature [B] holding each row of values [B, n]."""
    if is_float:
        inner = _encode("tensorflow.FloatList", "value", tf.cast(values, tf.float32))
        return _encode("tensorflow.Feature", "float_list", inner[:, None])
    inner = _encode("tensorflow.Int64List", "value", tf.cast(values, tf.int64))
    return _encode("tensorflow.Feature", "int64_list", inner[:, None])


def serialize_examples(features):
    """Serialized tf.train.Example [B] from a dict of Google's features as tensors [B, n] (see module
    docstring; `next_sentence_labels` may be [B] or [B, 1]). Usable inside tf.function."""
    entries = []
    for name in FEATURE_ORDER:
        values = tf.convert_to_tensor(features[name])
        if name == "next_sentence_labels":
            values = tf.reshape(values, [-1, 1])
        value = _feature(values, is_float=name in FLOAT_FEATURES)
        key = tf.fill(tf.shape(value), name)
        sizes = tf.ones([tf.shape(value)[0], 2], tf.int32)  # one key, one value
        entry = tf.io.encode_proto(
            sizes, [key[:, None], value[:, None]], ["key", "value"], "tensorflow.Features.FeatureEntry"
        )
        entries.append(entry)
    feature_map = tf.stack(entries, axis=1)  # [B, 7] map entries
    features_message = _encode("tensorflow.Features", "feature", feature_map)
    return _encode("tensorflow.Example", "features", features_message[:, None])


class AtomicRecordWriter:
    """Writes a TFRecord file under a temporary name in the same directory and renames it to `path` only
    on `commit()`; closing without commit (an exception, an interrupt) deletes the temporary file. A file
    at `path` is therefore always complete."""

    def __init__(self, path):
        self.path = path
        directory, name = os.path.split(path)
        self.temp_path = os.path.join(directory, f".{name}.incomplete-{uuid.uuid4().hex[:8]}")
        self._writer = tf.io.TFRecordWriter(self.temp_path)
        self.num_records = 0

    def write(self, serialized_records):
        for record in serialized_records:
            self._writer.write(record)
            self.num_records += 1

    def commit(self):
        self._writer.close()
        os.replace(self.temp_path, self.path)

    def abort(self):
        self._writer.close()
        if os.path.exists(self.temp_path):
            os.remove(self.temp_path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
