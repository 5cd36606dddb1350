"""Checks of pretraining TFRecord files, all in one place: before training starts, and while it reads.

Before the first step (`check_data`, called once by the trainer, or by `pretraining_dataset` when it is
handed file patterns):

- every pattern matches a file; meta.json, its temporary files and the vocab file it names are not data;
- each directory's meta.json (when it has one; Google's tool writes none) fits the training configuration
  (sequence length, predictions, vocabulary size: data.meta.check_meta), and every file read is a shard
  it lists, of the size it lists (a truncated or replaced shard is named before anything is written);
  with verify="full" the checksum of every shard's records is recomputed too (data.records);
- the first record of EVERY file has Google's features with the configured lengths, so a file that is
  not a TFRecord file, damaged at its start, or made for other lengths is named before anything is
  written (Google's code fails at the first step with "Can't parse serialized Example").

While training:

- every batch's token ids are checked against the model's vocabulary size (data without meta.json cannot
  be checked beforehand; on a CPU an id past the embedding table fails with an unreadable message, on a
  GPU it silently reads zeros): `with_token_id_check`, `token_id_error`;
- a record damaged later in a file (a truncated last record, flipped bytes) is only found when it is
  read: TensorFlow's reader then raises DataLossError naming the byte offset but not the file. The file
  is located by walking the record headers of every file up to that offset (a file is a candidate when
  one of its records, or its data, starts exactly there) and reading the candidate's record:
  `damaged_record_message`.
"""

import concurrent.futures
import dataclasses
import os
import re
import struct

import tensorflow as tf

from data import paths
from data.meta import META_FILENAME, DataConfigError, check_meta, read_meta
from data.records import records_digest, update_records_digest

VERIFY_LEVELS = ("size", "full")  # what is checked of each listed shard: its size, or also its checksum
TOKEN_ID_CHECK = "token id check"
_TOKEN_ID_FAILURE = re.compile(re.escape(f"[{TOKEN_ID_CHECK}]") + r"\s*\[(-?\d+)\]\s*\[(-?\d+)\]")
_DAMAGED_RECORD = re.compile(r"(truncated|corrupted) record at (\d+)")
_HEADER_SIZE = 8 + 4  # a record: the data's length, its CRC, the data, the data's CRC
_FOOTER_SIZE = 4


@dataclasses.dataclass(frozen=True)
class DataFiles:
    """Checked data files: the sorted `files`, and `metas` {directory: its meta.json dict or None}."""

    files: tuple[str, ...]
    metas: dict


def feature_spec(max_seq_length, max_predictions_per_seq):
    """The features of google-research/bert's create_pretraining_data.py, with their fixed lengths."""
    S, P = max_seq_length, max_predictions_per_seq
    return {
        "input_ids": tf.io.FixedLenFeature([S], tf.int64),
        "input_mask": tf.io.FixedLenFeature([S], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([S], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([P], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([P], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([P], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def check_data(file_pattern, max_seq_length, max_predictions_per_seq, *, vocab_size=None, verify="size"):
    """Finds and checks the files of `file_pattern` (a glob, a directory, or a list of them; local or any
    gfile path) as the module docstring says; returns their DataFiles. Raises DataConfigError."""
    if verify not in VERIFY_LEVELS:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_LEVELS)}, got {verify!r}")
    files = find_files(file_pattern)
    metas = {}
    for directory, in_directory in _by_directory(files).items():
        meta = metas[directory] = read_meta(directory)
        if meta is not None:
            meta_path = paths.join(directory, META_FILENAME)
            check_meta(
                meta,
                max_seq_length=max_seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                vocab_size=vocab_size,
                source=meta_path,
            )
            _check_listed_shards(meta, meta_path, in_directory, verify)
    _check_first_records(files, max_seq_length, max_predictions_per_seq)
    return DataFiles(tuple(files), metas)


def find_files(file_pattern):
    """The sorted TFRecord files matching `file_pattern` (a glob, a directory, or a list of them).

    Every pattern must match at least one file; meta.json, its temporary files and the vocab file it names
    are left out, and so are the subdirectories of a directory.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str | os.PathLike) else list(file_pattern)
    if not patterns:
        raise DataConfigError("no input file pattern given")
    files = set()
    for pattern in map(str, patterns):
        if tf.io.gfile.isdir(pattern):
            found = [path for path in tf.io.gfile.glob(_join(pattern, "*")) if not tf.io.gfile.isdir(path)]
        else:
            found = tf.io.gfile.glob(pattern)
        found = [path for path in found if not _is_side_file(path)]
        if not found:
            raise DataConfigError(_no_match_message(pattern))
        files.update(found)
    return sorted(files)


def _no_match_message(pattern):
    """A pattern matched nothing: name it, and when no data set is there, the command that makes one."""
    message = f"no TFRecord file matches {pattern}"
    try:
        has_data = read_meta(pattern) is not None
    except DataConfigError:  # a glob over several directories
        has_data = True
    if not has_data:
        message += (
            " (make the data first: python -m data.create_pretraining_data; for the demo, make demo-data)"
        )
    return message


def _join(directory, name):
    return f"{directory.rstrip('/')}/{name}"


def directory_of(path):
    return path.rsplit("/", 1)[0] if "/" in path else "."


def _by_directory(files):
    grouped = {}
    for path in files:
        grouped.setdefault(directory_of(path), []).append(path)
    return grouped


def _is_side_file(path):
    """meta.json, a temporary meta.json, or the vocab file named by the directory's meta.json."""
    name = paths.basename(path)
    if name == META_FILENAME or name.startswith(f".{META_FILENAME}.tmp-"):
        return True
    if name.endswith(".txt") and tf.io.gfile.exists(_join(directory_of(path), META_FILENAME)):
        meta = read_meta(directory_of(path))
        return name == meta.get("vocab_file")
    return False


def _check_listed_shards(meta, meta_path, files, verify):
    """Each file must be a shard meta.json lists (a file it does not list is not part of that data set,
    e.g. left over from an earlier run), of the listed size, and with verify="full" the listed checksum."""
    if "shards" not in meta:
        return
    listed = {paths.basename(str(shard.get("file"))): shard for shard in meta["shards"]}
    for path in files:
        shard = listed.get(paths.basename(path))
        if shard is None:
            raise DataConfigError(f"{path} is not one of the shards listed in {meta_path}")
        size = shard.get("size_bytes")
        if isinstance(size, int):  # meta.json of tool version 1.2 and later
            actual = tf.io.gfile.stat(path).length
            if actual != size:
                raise DataConfigError(
                    f"{path}: {actual} bytes but {meta_path} lists {size} (a truncated or replaced shard); "
                    "make the data again"
                )
        if verify == "full" and "records_sha256" in shard and records_sha256(path) != shard["records_sha256"]:
            raise DataConfigError(
                f"{path}: its records' checksum differs from the records_sha256 in {meta_path} "
                "(damaged or replaced); make the data again"
            )


def records_sha256(path):
    """The checksum meta.json lists for a shard (data.records.records_digest), read back from the file."""
    digest = records_digest()
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            update_records_digest(digest, record)
    except tf.errors.DataLossError as e:
        raise DataConfigError(
            f"{path} is a damaged TFRecord file ({read_error_summary(e.message)})"
        ) from None
    return digest.hexdigest()


def _check_first_records(files, max_seq_length, max_predictions_per_seq, threads=16):
    """Reads and checks the first record of each file (in parallel: files may be on GCS); some file must
    hold a record (empty shards are allowed)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        checks = [pool.submit(_check_file, path, max_seq_length, max_predictions_per_seq) for path in files]
        has_records = [check.result() for check in checks]  # the first failing file in sorted order raises
    if not any(has_records):
        others = f" or the {len(files) - 1} other files there" if len(files) > 1 else ""
        raise DataConfigError(f"no records in {files[0]}{others}")


def _check_file(path, max_seq_length, max_predictions_per_seq):
    """Checks the first record of `path` against Google's schema; returns False for an empty file."""
    try:
        records = list(tf.data.TFRecordDataset(path).take(1).as_numpy_iterator())
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise DataConfigError(
            f"{path} is not a readable TFRecord file ({read_error_summary(e.message)})"
        ) from None
    if not records:
        return False
    example = tf.train.Example.FromString(records[0])
    for name, feature_config in feature_spec(max_seq_length, max_predictions_per_seq).items():
        _check_feature(example, name, feature_config, path, max_seq_length, max_predictions_per_seq)
    return True


_KIND_OF_DTYPE = {tf.int64: "int64_list", tf.float32: "float_list"}


def _check_feature(example, name, feature_config, path, max_seq_length, max_predictions_per_seq):
    where = f"{path}: feature {name!r} of the first record"
    if name not in example.features.feature:
        raise DataConfigError(f"{where} is missing (present: {', '.join(sorted(example.features.feature))})")
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    expected_kind = _KIND_OF_DTYPE[feature_config.dtype]
    if kind != expected_kind:
        raise DataConfigError(f"{where} is a {kind} but Google's format has a {expected_kind}")
    length = len(getattr(feature, kind).value)
    expected_length = feature_config.shape[0]
    if length != expected_length:
        if name in ("input_ids", "input_mask", "segment_ids"):
            reason = f"max_seq_length={max_seq_length}"
        elif name == "next_sentence_labels":
            reason = "Google's format"
        else:
            reason = f"max_predictions_per_seq={max_predictions_per_seq}"
        raise DataConfigError(f"{where} has {length} values but {reason} needs {expected_length}")


# ----------------------------------------------------------------------------------------------------------
# While training.


def read_error_summary(message):
    """The useful part of a TFRecord reader error ("corrupted record at 90"), without TensorFlow's prefix."""
    match = _DAMAGED_RECORD.search(message)
    if match:
        return match.group(0)
    return re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\].*", "", message).strip().splitlines()[0]


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
