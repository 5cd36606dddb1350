"""The input pipeline: Google-schema TFRecord shards -> batches of int32 features for BERT pretraining.

    files ─► this pipeline's share ─► shuffle files ─► repeat ─► parallel interleave ─► shuffle records
          ─► batch ─► parse_example (vectorised, int64 -> int32) ─► [dynamic masking] ─► prefetch

Batching before parsing lets one `tf.io.parse_example` call decode a whole batch, instead of one
`parse_single_example` per record as in google-research/bert's run_pretraining.py.

Before building anything the files are checked: meta.json (when the directory has one) against the training
configuration, and the first record's features and lengths, so data made for another sequence length is
refused with a message naming the feature, the file and both lengths (Google's code fails at the first
step with "Can't parse serialized Example").
"""

import hashlib
import os
import random

import tensorflow as tf

from data.masking import MaskingConfig, mask_tokens, unmask
from data.meta import META_FILENAME, DataConfigError, check_meta, meta_directory, read_meta
from data.vocab import file_sha256, load_vocab

AUTOTUNE = tf.data.AUTOTUNE


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


def parse_batch(serialized, max_seq_length, max_predictions_per_seq):
    """Decodes a batch of serialized tf.train.Examples [B] into the model's features.

    Integer features become int32 (what the model and TPUs want), `masked_lm_weights` stays float32 and
    `next_sentence_labels` becomes a vector [B].
    """
    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    features = {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}
    features["next_sentence_labels"] = tf.reshape(features["next_sentence_labels"], [-1])  # [B, 1] -> [B]
    return features


def pretraining_dataset(
    file_pattern,
    batch_size,
    max_seq_length,
    max_predictions_per_seq,
    *,
    is_training=True,
    input_context=None,
    seed=None,
    vocab_size=None,
    shuffle_buffer=10_000,
    cycle_length=8,
    drop_remainder=None,
    deterministic=None,
    dynamic_masking=None,
):
    """A tf.data.Dataset of pretraining batches read from the TFRecord files matching `file_pattern`.

    Args:
      file_pattern: a glob (local or `gs://...`), a data directory, or a list of them. meta.json, its
        temporary files and the vocab file it names are never read as records.
      batch_size: the batch size of THIS pipeline; under a tf.distribute strategy that is the per-replica
        batch, `input_context.get_per_replica_batch_size(global_batch_size)`.
      max_seq_length, max_predictions_per_seq: the lengths the records must have (checked).
      is_training: True: shuffled, repeated forever, full batches only. False (evaluation): every record of
        this pipeline's share exactly once, in file order, keeping the last partial batch unless
        drop_remainder=True.
      input_context: the tf.distribute.InputContext given by `strategy.distribute_datasets_from_function`.
        With at least as many files as input pipelines each pipeline reads every n-th file; with fewer files
        each pipeline reads all files and keeps every n-th record (correct, but every worker reads all data).
      seed: makes the order deterministic and the iterator's checkpoint resume at the exact next batch.
        None: orders may vary from run to run (and parallel stages may reorder for speed).
      vocab_size: when given, checked against meta.json.
      shuffle_buffer: records held in the record-level shuffle buffer (training); capped at the number of
        records this pipeline reads per epoch when meta.json counts them.
      cycle_length: files read at the same time (training).
      drop_remainder: defaults to True for training (static shapes) and False for evaluation.
      deterministic: keep the element order of the parallel stages fixed; defaults to True for evaluation
        and to `seed is not None` for training.
      dynamic_masking: a data.MaskingConfig (see `masking_config_from_meta`) to mask every batch afresh,
        RoBERTa-style: the original tokens are restored from each record (`data.masking.unmask`) and masked
        again (`data.masking.mask_tokens`) with a stateless seed made from `seed`, the input pipeline and
        the batch's index, so a record gets new masks each epoch, reproducibly. None: the records' masks
        (use None for evaluation numbers comparable between runs).

    Returns:
      A dataset of dicts with Google's feature names: int32 `input_ids`, `input_mask`, `segment_ids` [B, S],
      int32 `masked_lm_positions`, `masked_lm_ids` [B, P], float32 `masked_lm_weights` [B, P] and int32
      `next_sentence_labels` [B] (1 = random next).

    Raises:
      DataConfigError: no file matches, a meta.json or a first record does not fit the arguments.
    """
    for name, value in (
        ("batch_size", batch_size),
        ("max_seq_length", max_seq_length),
        ("max_predictions_per_seq", max_predictions_per_seq),
        ("shuffle_buffer", shuffle_buffer),
        ("cycle_length", cycle_length),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if dynamic_masking is not None:
        _check_masking_config(dynamic_masking, max_predictions_per_seq, vocab_size)
    if drop_remainder is None:
        drop_remainder = is_training
    if deterministic is None:
        deterministic = seed is not None or not is_training

    files = find_files(file_pattern)
    metas = check_files(files, max_seq_length, max_predictions_per_seq, vocab_size)
    num_pipelines, pipeline_id = _pipeline_position(input_context)
    if len(files) >= num_pipelines:
        files, record_shard = files[pipeline_id::num_pipelines], None
    else:
        record_shard = (num_pipelines, pipeline_id)

    if is_training:
        seeds = {purpose: _derive_seed(seed, pipeline_id, purpose) for purpose in ("files", "records")}
        epoch_size = _records_per_epoch(files, metas, record_shard)
        if epoch_size == 0:
            raise DataConfigError(
                f"input pipeline {pipeline_id} of {num_pipelines} gets no records ({files[0]}...)"
            )
        buffer_size = min(shuffle_buffer, epoch_size or shuffle_buffer)
        records = _training_records(files, record_shard, buffer_size, cycle_length, deterministic, seeds)
    else:
        records = _eval_records(files, record_shard)

    batches = records.batch(batch_size, drop_remainder=drop_remainder)
    if dynamic_masking is None:

        def decode(serialized):
            return parse_batch(serialized, max_seq_length, max_predictions_per_seq)

    else:
        masking_seed = _derive_seed(seed, pipeline_id, "masking")
        if masking_seed is None:
            masking_seed = random.SystemRandom().randrange(2**31)
        batches = batches.enumerate()  # the batch index seeds the masks: new masks every epoch

        def decode(batch_index, serialized):
            batch_seed = tf.stack([tf.constant(masking_seed, tf.int64), batch_index])  # [2]
            features = parse_batch(serialized, max_seq_length, max_predictions_per_seq)
            return remask(features, dynamic_masking, batch_seed)

    batches = batches.map(decode, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return batches.prefetch(AUTOTUNE)


def remask(features, config, seed):
    """`features` (a parsed batch) with fresh masks: original tokens restored, then masked with `seed` [2]."""
    tokens = unmask(
        features["input_ids"],
        features["masked_lm_positions"],
        features["masked_lm_ids"],
        features["masked_lm_weights"],
    )  # [B, S]
    return {**features, **mask_tokens(tokens, config, seed)}


def _check_masking_config(config, max_predictions_per_seq, vocab_size):
    if not isinstance(config, MaskingConfig):
        raise TypeError(f"dynamic_masking must be a data.MaskingConfig or None, got {type(config).__name__}")
    if config.max_predictions_per_seq != max_predictions_per_seq:
        raise DataConfigError(
            f"dynamic masking has max_predictions_per_seq={config.max_predictions_per_seq} but the training "
            f"config has max_predictions_per_seq={max_predictions_per_seq}"
        )
    if vocab_size is not None and config.vocab_size != vocab_size:
        raise DataConfigError(
            f"dynamic masking has vocab_size={config.vocab_size} "
            f"but the training config has vocab_size={vocab_size}"
        )


def masking_config_from_meta(directory_or_pattern):
    """The data.MaskingConfig that made the data in `directory_or_pattern` (for dynamic masking).

    Reads meta.json (masked_lm_prob, max_predictions_per_seq, do_whole_word_mask, vocab_file) and the copy
    of the vocabulary beside it ([CLS]/[SEP]/[MASK]/[PAD] ids and the "##" continuation pieces), checked
    against meta.json's vocab_sha256 when present.
    """
    directory = meta_directory(directory_or_pattern)
    meta = read_meta(directory)
    meta_path = _join(directory, META_FILENAME)
    if meta is None:
        raise DataConfigError(f"no {meta_path} to take the masking settings from; build a data.MaskingConfig")
    for key in ("masked_lm_prob", "max_predictions_per_seq", "do_whole_word_mask", "vocab_file"):
        if key not in meta:
            raise DataConfigError(f"{meta_path}: key {key!r} is missing (needed for dynamic masking)")
    vocab_path = _join(directory, meta["vocab_file"])
    vocab = load_vocab(vocab_path)
    if "vocab_sha256" in meta and file_sha256(vocab_path) != meta["vocab_sha256"]:
        raise DataConfigError(f"{vocab_path} is not the vocabulary of {meta_path} (vocab_sha256 differs)")
    return MaskingConfig.from_vocab(
        vocab,
        masked_lm_prob=meta["masked_lm_prob"],
        max_predictions_per_seq=meta["max_predictions_per_seq"],
        whole_word_mask=bool(meta["do_whole_word_mask"]),
    )


def _pipeline_position(input_context):
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def _training_records(files, record_shard, shuffle_buffer, cycle_length, deterministic, seeds):
    """An endless stream of serialized records: shuffled files read `cycle_length` at a time, shuffled."""
    if record_shard is None:
        filenames = tf.data.Dataset.from_tensor_slices(files)
        filenames = filenames.shuffle(len(files), seed=seeds["files"]).repeat()
        records = filenames.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(cycle_length, len(files)),
            block_length=1,
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        records = _every_nth_record(files, record_shard).repeat()
    return records.shuffle(shuffle_buffer, seed=seeds["records"])


def _eval_records(files, record_shard):
    """Every record of this pipeline's share once, in file order (reproducible evaluation)."""
    if record_shard is None:
        return tf.data.TFRecordDataset(files)
    return _every_nth_record(files, record_shard)


def _every_nth_record(files, record_shard):
    """Fewer files than input pipelines: each pipeline reads all files in order, keeps every n-th record."""
    num_pipelines, pipeline_id = record_shard
    return tf.data.TFRecordDataset(files).shard(num_pipelines, pipeline_id)


def _records_per_epoch(files, metas, record_shard):
    """How many records this pipeline reads per epoch, from the shard counts in meta.json (None if unknown).

    The record shuffle buffer is capped at that: a larger buffer would only hold copies from later epochs
    (and fill slowly, epoch after epoch, on a tiny data set).
    """
    total = 0
    for path in files:
        meta = metas[_directory(path)]
        counts = {
            _basename(str(s.get("file"))): s.get("num_instances") for s in (meta or {}).get("shards", [])
        }
        count = counts.get(_basename(path))
        if not isinstance(count, int):
            return None
        total += count
    if record_shard is None:
        return total
    num_pipelines, pipeline_id = record_shard
    return len(range(pipeline_id, total, num_pipelines))


def _derive_seed(seed, pipeline_id, purpose):
    """A seed for one random stage of one pipeline, the same in every process (unlike Python's hash)."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}/{pipeline_id}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ----------------------------------------------------------------------------------------------------------
# Finding the files and checking them before training starts.


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
            matched = [path for path in tf.io.gfile.glob(_join(pattern, "*")) if not tf.io.gfile.isdir(path)]
        else:
            matched = tf.io.gfile.glob(pattern)
        matched = [path for path in matched if not _is_side_file(path)]
        if not matched:
            raise DataConfigError(f"no TFRecord file matches {pattern}")
        files.update(matched)
    return sorted(files)


def _join(directory, name):
    return f"{directory.rstrip('/')}/{name}"


def _directory(path):
    return path.rsplit("/", 1)[0] if "/" in path else "."


def _basename(path):
    return path.rsplit("/", 1)[-1]


def _is_side_file(path):
    """meta.json, a temporary meta.json, or the vocab file named by the directory's meta.json."""
    name = _basename(path)
    if name == META_FILENAME or name.startswith(f".{META_FILENAME}.tmp-"):
        return True
    if name.endswith(".txt") and tf.io.gfile.exists(_join(_directory(path), META_FILENAME)):
        meta = read_meta(_directory(path))
        return name == meta.get("vocab_file")
    return False


def check_files(files, max_seq_length, max_predictions_per_seq, vocab_size=None):
    """Checks each directory holding `files`: its meta.json (if any) and the first record found there.

    Returns {directory: its parsed meta.json or None}.

    Google's create_pretraining_data.py writes no meta.json; its files are accepted when the first record
    has Google's features with the expected lengths.
    """
    by_directory = {}
    for path in files:
        by_directory.setdefault(_directory(path), []).append(path)
    metas = {}
    for directory, paths in by_directory.items():
        meta = metas[directory] = read_meta(directory)
        if meta is not None:
            meta_path = _join(directory, META_FILENAME)
            check_meta(
                meta,
                max_seq_length=max_seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                vocab_size=vocab_size,
                source=meta_path,
            )
            _check_listed_shards(meta, meta_path, paths)
        check_first_record(paths, max_seq_length, max_predictions_per_seq)
    return metas


def _check_listed_shards(meta, meta_path, paths):
    """A file meta.json does not list is not part of that data set (e.g. left over from an earlier run)."""
    if "shards" not in meta:
        return
    listed = {_basename(str(shard["file"])) for shard in meta["shards"]}
    for path in paths:
        if _basename(path) not in listed:
            raise DataConfigError(f"{path} is not one of the shards listed in {meta_path}")


def check_first_record(paths, max_seq_length, max_predictions_per_seq):
    """Checks the first record of the first non-empty file among `paths` against Google's schema.

    Raises DataConfigError naming the file, the feature and the expected type or length, or when no file
    holds a record at all.
    """
    for path in paths:
        record = _first_record(path)
        if record is None:
            continue
        example = tf.train.Example.FromString(record)
        spec = feature_spec(max_seq_length, max_predictions_per_seq)
        for name, feature_config in spec.items():
            _check_feature(example, name, feature_config, path, max_seq_length, max_predictions_per_seq)
        return
    others = f" or the {len(paths) - 1} other files there" if len(paths) > 1 else ""
    raise DataConfigError(f"no records in {paths[0]}{others}")


def _first_record(path):
    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise DataConfigError(f"{path} is not a readable TFRecord file ({e.message})") from None
    return None


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
