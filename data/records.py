"""Google's pretraining tf.train.Example records, encoded a batch at a time in numpy; shard files written
atomically.

The features are those of google-research/bert's create_pretraining_data.py:

    input_ids, input_mask, segment_ids        int64 [max_seq_length]
    masked_lm_positions, masked_lm_ids        int64 [max_predictions_per_seq]
    masked_lm_weights                         float32 [max_predictions_per_seq]
    next_sentence_labels                      int64 [1]   (1 = segment B is a random next sentence)

A record is the protobuf wire format of these messages (tensorflow/core/example/{example,feature}.proto):

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }    (a map entry: { string key = 1; Feature value = 2; })
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    Int64List { repeated int64 value = 1 [packed = true]; }
    FloatList { repeated float value = 1 [packed = true]; }

Every record of a batch has the same fields in the same order; only the varint-encoded integers (values and
length prefixes) differ in length. So instead of building one tf.train.Example per record in Python (tens of
microseconds each), a batch is written out directly as one byte matrix with numpy: each piece of the layout
is a [B, w] block of bytes plus, for varints, which of its bytes are used, and the records are the used bytes
row by row. The map entries are in key order, as `tf.train.Example.SerializeToString(deterministic=True)`
writes them; the bytes are identical to its output.
"""

import functools
import hashlib
import struct

import numpy as np
import tensorflow as tf

from data import paths

INT64_FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids")
FLOAT_FEATURES = ("masked_lm_weights",)
FEATURE_NAMES = (*INT64_FEATURES, *FLOAT_FEATURES, "next_sentence_labels")

# Tags: (field number << 3) | 2, the wire type of length-delimited fields (messages, strings, packed lists).
_FIELD_1, _FIELD_2, _FIELD_3 = 0x0A, 0x12, 0x1A
_FLOAT_LIST, _INT64_LIST = _FIELD_2, _FIELD_3  # Feature's oneof


def shard_file_name(prefix, index, num_shards):
    """`<prefix>-00003-of-00008.tfrecord`."""
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


def _varint(number):
    """The varint bytes of one non-negative Python int: 7 bits per byte, low first, high bit = more follow."""
    out = []
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    return [*out, number]


def _varints(values):
    """Varints of integers [B, n] (a negative int64 takes 10 bytes, its two's complement, as protobuf writes
    int64): (bytes [B, n, W] uint8, used [B, n, W] bool or None when all are, byte length of each row [B]).
    W is the longest varint's length; a shorter varint uses the first bytes of its W."""
    values = np.asarray(values)
    B, n = values.shape
    if values.dtype == bool or not values.size or 0 <= values.min() <= values.max() < 0x80:
        return values.astype(np.uint8)[:, :, None], None, np.full(B, n, np.int64)  # one byte each
    v = values.astype(np.uint64)  # two's complement for negative values
    width = -(-int(v.max()).bit_length() // 7)
    if width <= 4:
        v = v.astype(np.uint32)  # the same digits, faster
    digits = np.empty((B, n, width), np.uint8)
    used = np.empty((B, n, width), bool)
    used[:, :, 0] = True
    lengths = np.full(B, n, np.int64)
    for k in range(width):  # one byte plane at a time (a short innermost axis would make numpy slow)
        more = v >= 0x80
        np.bitwise_or(v & 0x7F, more.view(np.uint8) << 7, out=digits[:, :, k], casting="unsafe")
        if k + 1 < width:
            used[:, :, k + 1] = more
            lengths += np.count_nonzero(more, axis=1)
        v >>= 7
    return digits, used, lengths


def _varint_lengths(values):
    """The byte count of the varint of each non-negative integer of `values`."""
    count = np.ones(values.shape, np.int64)
    for k in range(1, 10):
        more = values >= (1 << (7 * k))
        if not more.any():
            return count
        count += more
    return count


@functools.cache
def _constants(names):
    """The bytes every record has, per feature: entry tag, key (and the tag of the entry's value), kind."""
    keys = [
        np.array([_FIELD_1, *_varint(len(name)), *name.encode("ascii"), _FIELD_2], np.uint8) for name in names
    ]
    kinds = [np.array([_FLOAT_LIST if name in FLOAT_FEATURES else _INT64_LIST], np.uint8) for name in names]
    return np.array([_FIELD_1], np.uint8), keys, kinds


def serialize_examples(features):
    """Serialized tf.train.Example records (a list of B `bytes`) from a dict of Google's features as
    arrays [B, n] (see the module docstring; `next_sentence_labels` may be [B] or [B, 1]): integers of
    any integer dtype are written as int64, `masked_lm_weights` as float32."""
    names = tuple(sorted(FEATURE_NAMES))  # the map entries in key order
    B = len(np.asarray(features["input_ids"]))
    if B == 0:
        return []
    field_1, keys, kinds = _constants(names)
    values = [np.asarray(features[name]).reshape(B, -1) for name in names]
    payloads, payload_length = [], np.empty((B, len(names)), np.int64)
    for f, (name, v) in enumerate(zip(names, values, strict=True)):
        if name in FLOAT_FEATURES:  # little-endian float32
            payloads.append((np.ascontiguousarray(v, "<f4").view(np.uint8), None))
            payload_length[:, f] = 4 * v.shape[1]
        else:
            digits, used, payload_length[:, f] = _varints(v)
            payloads.append((digits.reshape(B, -1), None if used is None else used.reshape(B, -1)))

    # The byte length of every enclosing message, innermost first ([B, 7]: a column per feature).
    has_values = np.array([v.shape[1] > 0 for v in values])  # an empty list has no field at all
    list_length = np.where(has_values, 1 + _varint_lengths(payload_length) + payload_length, 0)  # Int64List
    feature_length = 1 + _varint_lengths(list_length) + list_length  # Feature
    entry_length = np.array([len(k) for k in keys]) + _varint_lengths(feature_length) + feature_length
    features_length = (1 + _varint_lengths(entry_length) + entry_length).sum(axis=1)  # Features
    record_length = 1 + _varint_lengths(features_length) + features_length  # Example
    lengths = np.concatenate(
        [features_length[:, None], entry_length, feature_length, list_length, payload_length], 1
    )
    digits, used, _ = _varints(lengths)  # [B, 29, W]

    def length(column):  # the varint piece of one of `lengths` columns
        return digits[:, column], None if used is None else used[:, column]

    # The pieces of a record in order: (bytes [B, w] or [w], used [B, w] or None when all are).
    n = len(names)
    pieces = [(field_1, None), length(0)]  # Example.features
    for f in range(n):
        pieces += [(field_1, None), length(1 + f)]  # Features.feature: a map entry
        pieces += [(keys[f], None), length(1 + n + f)]  # entry.key, then entry.value: a Feature
        pieces += [(kinds[f], None), length(1 + 2 * n + f)]  # Feature.kind: the value list
        if has_values[f]:
            pieces += [(field_1, None), length(1 + 3 * n + f), payloads[f]]  # the packed values
    table = np.empty((B, sum(p.shape[-1] for p, _ in pieces)), np.uint8)  # the pieces side by side
    keep = np.ones(table.shape, bool)
    start = 0
    for piece, piece_used in pieces:
        end = start + piece.shape[-1]
        table[:, start:end] = piece
        if piece_used is not None:
            keep[:, start:end] = piece_used
        start = end
    buffer = np.compress(keep.ravel(), table.ravel()).tobytes()  # the used bytes, row by row
    ends = np.cumsum(record_length).tolist()
    return [buffer[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


_RECORD_FRAMING = 8 + 4 + 4  # a TFRecord: the data's length (uint64), its CRC, the data, the data's CRC


def records_digest():
    """The running checksum of a shard's records (meta.json's `records_sha256`): SHA-256 over each record
    as its length (8 bytes, little-endian) then its bytes, in file order. It covers what a reader gets
    from the file; TFRecord's own CRCs cover the framing."""
    return hashlib.sha256()


def update_records_digest(digest, record):
    digest.update(struct.pack("<Q", len(record)))
    digest.update(record)


class AtomicRecordWriter:
    """Writes a TFRecord file under a temporary name in the same directory and renames it to `path` only
    on `commit()`; closing without commit (an exception, an interrupt) deletes the temporary file. A file
    at `path` is therefore always complete. While writing it counts the file's bytes and the checksum of
    its records (`size_bytes`, `records_sha256` after commit), for meta.json."""

    def __init__(self, path):
        self.path = path
        self.temp_path = paths.temporary_path(path, "incomplete")
        self._writer = tf.io.TFRecordWriter(self.temp_path)
        self._digest = records_digest()
        self.num_records = 0
        self.size_bytes = 0

    def write(self, serialized_records):
        for record in serialized_records:
            self._writer.write(record)
            update_records_digest(self._digest, record)
            self.size_bytes += _RECORD_FRAMING + len(record)
            self.num_records += 1

    @property
    def records_sha256(self):
        return self._digest.hexdigest()

    def commit(self):
        self._writer.close()
        written = tf.io.gfile.stat(self.temp_path).length
        if written != self.size_bytes:
            raise OSError(f"{self.temp_path}: {written} bytes written, expected {self.size_bytes}")
        tf.io.gfile.rename(self.temp_path, self.path, overwrite=True)

    def abort(self):
        self._writer.close()
        if tf.io.gfile.exists(self.temp_path):
            tf.io.gfile.remove(self.temp_path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
