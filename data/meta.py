"""meta.json: the description that travels with a directory of pretraining TFRecord shards.

The creation tool writes `meta.json` beside the shards, LAST and atomically, so a directory with a
`meta.json` holds complete shards. The input pipeline reads it back and refuses to train when the data
was made for another sequence length, number of predictions or vocabulary, naming both values and the file
(instead of the opaque "Can't parse serialized Example" that a length mismatch gives at the first step).

Paths may be local or any filesystem `tf.io.gfile` knows (`gs://...`).
"""

import json

import tensorflow as tf

from data import paths

META_FILENAME = "meta.json"
META_FORMAT = "bert-pretraining-tfrecord"
META_FORMAT_VERSION = 1


class DataConfigError(ValueError):
    """The data does not exist or does not match the training configuration; the message says why."""


def write_meta(output_dir, meta):
    """Writes `meta` as `<output_dir>/meta.json` atomically (data.paths.write_atomically) and returns the
    file's path."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    text = json.dumps(meta, indent=2) + "\n"  # Serialise first: a bad value fails before any file is touched.
    return paths.write_atomically(paths.join(output_dir, META_FILENAME), text)


def _has_glob_characters(path):
    return any(character in path for character in "*?[")


def meta_directory(directory_or_pattern):
    """The directory whose meta.json describes `directory_or_pattern` (a directory, a file or a file glob).

    Raises DataConfigError when a glob with wildcards in its directory part matches files in several
    directories: each directory has its own meta.json, read them one by one.
    """
    path = str(directory_or_pattern)
    if tf.io.gfile.isdir(path):
        return path
    directory = paths.dirname(path) or "."
    if not _has_glob_characters(directory):
        return directory
    directories = sorted({paths.dirname(name) or "." for name in tf.io.gfile.glob(path)})
    if len(directories) > 1:
        raise DataConfigError(
            f"{path} matches files in {len(directories)} directories ({', '.join(directories)}); "
            f"read the {META_FILENAME} of each directory separately"
        )
    return directories[0] if directories else directory


def read_meta(directory_or_pattern):
    """Returns the parsed meta.json describing `directory_or_pattern`, or None when there is none.

    `directory_or_pattern` is a data directory, one shard's path, or a file glob such as
    `gs://bucket/wiki/part-*.tfrecord` (meta.json is looked up in the directory of the glob).
    A meta.json that is not a JSON object raises DataConfigError naming the file.
    """
    path = paths.join(meta_directory(directory_or_pattern), META_FILENAME)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataConfigError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    return meta


def check_meta(meta, *, max_seq_length, max_predictions_per_seq, vocab_size=None, source=META_FILENAME):
    """Raises DataConfigError unless `meta` describes data made for this training configuration.

    Checks the format tag and version, then max_seq_length, max_predictions_per_seq and (when given)
    vocab_size for equality: every record holds exactly max_seq_length and max_predictions_per_seq values,
    and token ids index the vocabulary the data was made with. `source` names the file in messages.
    """
    data_format = meta.get("format")
    if data_format != META_FORMAT:
        raise DataConfigError(f"{source}: format is {data_format!r} but expected {META_FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= META_FORMAT_VERSION:
        raise DataConfigError(
            f"{source}: format_version is {version!r} but this code reads versions 1 to {META_FORMAT_VERSION}"
        )
    expected = {
        "max_seq_length": max_seq_length,
        "max_predictions_per_seq": max_predictions_per_seq,
        "vocab_size": vocab_size,
    }
    for key, value in expected.items():
        if value is None:
            continue
        if key not in meta:
            raise DataConfigError(f"{source}: key {key!r} is missing (the training config has {key}={value})")
        if meta[key] != value:
            raise DataConfigError(
                f"{source}: the data has {key}={meta[key]} but the training config has {key}={value}"
            )
