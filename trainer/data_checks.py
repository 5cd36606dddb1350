"""Checks of the training files beyond data/'s own (meta.json, the first record of each directory).

- At start-up the first record of EVERY file is read and checked against Google's schema and the lengths
  of the config: a file that is not a TFRecord file, damaged at its start, or made for other lengths is
  named before anything is written.
- While training, every batch's token ids are checked against the model's vocabulary size (data without
  meta.json cannot be checked beforehand; on a CPU an id past the embedding table fails with an unreadable
  message, on a GPU it silently reads zeros).
- A record damaged later in a file (a truncated last record, flipped bytes) is only found when it is read:
  TensorFlow's reader then raises DataLossError naming the byte offset but not the file. The file is
  located by walking the record headers of every file up to that offset (a file is a candidate when one of
  its records, or its data, starts exactly there) and reading the candidate's record.
"""

import concurrent.futures
import re
import struct

import tensorflow as tf

import data
from data.pipeline import check_first_record, find_files

TOKEN_ID_CHECK = "token id check"
_TOKEN_ID_FAILURE = re.compile(re.escape(f"[{TOKEN_ID_CHECK}]") + r"\s*\[(-?\d+)\]\s*\[(-?\d+)\]")
_DAMAGED_RECORD = re.compile(r"(truncated|corrupted) record at (\d+)")
_HEADER_SIZE = 8 + 4  # a record: the data's length, its CRC, the data, the data's CRC
_FOOTER_SIZE = 4


def split_patterns(train_files):
    return [pattern.strip() for pattern in train_files.split(",") if pattern.strip()]


def read_error_summary(message):
    """The useful part of a TFRecord reader error ("corrupted record at 90"), without TensorFlow's prefix."""
    match = _DAMAGED_RECORD.search(message)
    if match:
        return match.group(0)
    return re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\].*", "", message).strip().splitlines()[0]


def _check_file(path, max_seq_length, max_predictions_per_seq):
    try:
        has_records = any(True for _ in tf.data.TFRecordDataset(path).take(1))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise data.DataConfigError(
            f"{path} is not a readable TFRecord file ({read_error_summary(e.message)})"
        ) from None
    if has_records:  # empty shards are allowed (data/ checks that some file has records)
        check_first_record([path], max_seq_length, max_predictions_per_seq)


def check_each_file(files, max_seq_length, max_predictions_per_seq, threads=16):
    """Reads and checks the first record of each file (in parallel: files may be on GCS)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        checks = [pool.submit(_check_file, path, max_seq_length, max_predictions_per_seq) for path in files]
        for check in checks:
            check.result()  # the first failing file in sorted order raises


def check_training_files(train_files, max_seq_length, max_predictions_per_seq):
    """The sorted training files of `data.train_files`, each one's first record checked."""
    files = find_files(split_patterns(train_files))
    check_each_file(files, max_seq_length, max_predictions_per_seq)
    return files


def with_token_id_check(dataset, vocab_size):
    """`dataset` whose batches fail (InvalidArgumentError, see `token_id_error`) when a token id of
    input_ids or masked_lm_ids is outside [0, vocab_size)."""

    def check(features):
        ids = tf.concat(
            [tf.reshape(features["input_ids"], [-1]), tf.reshape(features["masked_lm_ids"], [-1])], 0
        )
        smallest, largest = tf.reduce_min(ids), tf.reduce_max(ids)
        in_range = (smallest >= 0) & (largest < vocab_size)
        with tf.control_dependencies([tf.debugging.Assert(in_range, [TOKEN_ID_CHECK, smallest, largest])]):
            return {name: tf.identity(t) for name, t in features.items()}

    return dataset.map(check)


def token_id_error(error, vocab_size):
    """The user-facing message of a failed token id check, or None when `error` is something else."""
    match = _TOKEN_ID_FAILURE.search(error.message)
    if match is None:
        return None
    smallest, largest = int(match.group(1)), int(match.group(2))
    found = largest if largest >= vocab_size else smallest
    return (
        f"data.train_files: a training record holds token id {found}, outside the model's vocabulary of "
        f"{vocab_size} ids (model.vocab_size or the bert_config's vocab_size): the data was made with "
        f"another vocabulary"
    )


def _record_at(path, offset):
    """The index of the record of `path` whose header or data starts at byte `offset` (TensorFlow's reader
    reports either, depending on which checksum failed), else None."""
    position, index = 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while position <= offset:
            if offset in (position, position + _HEADER_SIZE):
                return index
            f.seek(position)
            header = f.read(8)
            if len(header) < 8:
                return None
            (length,) = struct.unpack("<Q", header)
            position += _HEADER_SIZE + length + _FOOTER_SIZE
            index += 1
    return None


def _is_damaged_after(path, count):
    try:
        for _ in tf.data.TFRecordDataset(path).skip(count).take(1):
            pass
    except tf.errors.DataLossError:
        return True
    return False


def locate_damaged_record(files, offset):
    """The files of `files` whose record at byte `offset` (as TensorFlow's reader reports it) is damaged."""
    damaged = []
    for path in files:
        if tf.io.gfile.stat(path).length <= offset:
            continue
        index = _record_at(path, offset)
        if index is not None and _is_damaged_after(path, index):
            damaged.append(path)
    return damaged


def damaged_record_message(error, files):
    """The user-facing message of a DataLossError raised while reading the training files."""
    summary = read_error_summary(error.message)
    match = _DAMAGED_RECORD.search(error.message)
    damaged = locate_damaged_record(files, int(match.group(2))) if match and files else []
    if damaged:
        where = ", ".join(damaged)
        return f"data.train_files: {where}: {summary} (a damaged TFRecord file); repair or remove it"
    return f"data.train_files: a training file is damaged ({summary}); check the files of data.train_files"
