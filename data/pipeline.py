"""The input pipeline: Google-schema TFRecord shards -> batches of int32 features for BERT pretraining.

    files ─► this pipeline's share ─► shuffle files ─► repeat ─► parallel interleave ─► shuffle records
          ─► batch ─► parse_example (vectorised, int64 -> int32) ─► [dynamic masking] ─► prefetch

Batching before parsing lets one `tf.io.parse_example` call decode a whole batch, instead of one
`parse_single_example` per record as in google-research/bert's run_pretraining.py.

Before building anything the files are checked once (data.checks.check_data), unless the caller hands in
the DataFiles that check returned.
"""

import hashlib
import random

import tensorflow as tf

from data import paths
from data.checks import DataFiles, check_data, directory_of, feature_spec
from data.masking import MaskingConfig, mask_tokens, unmask
from data.meta import META_FILENAME, DataConfigError, meta_directory, read_meta
from data.vocab import file_sha256, load_vocab

AUTOTUNE = tf.data.AUTOTUNE


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
      file_pattern: a glob (local or `gs://...`), a data directory, or a list of them (checked here), or
        the DataFiles of an earlier data.checks.check_data. meta.json, its temporary files and the vocab
        file it names are never read as records.
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
      dynamic_masking: a data.MaskingConfig (see `dynamic_masking_config`) to mask every batch afresh,
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

    if not isinstance(file_pattern, DataFiles):
        file_pattern = check_data(
            file_pattern, max_seq_length, max_predictions_per_seq, vocab_size=vocab_size
        )
    files, metas = list(file_pattern.files), file_pattern.metas
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


class MaskingSettingsError(DataConfigError):
    """Dynamic masking of data without meta.json, and some settings not given; `missing` names them."""

    def __init__(self, message, missing):
        super().__init__(message)
        self.missing = missing


def dynamic_masking_config(
    directory_or_pattern,
    max_predictions_per_seq,
    *,
    masked_lm_prob=None,
    whole_word_mask=None,
    vocab_file=None,
):
    """The data.MaskingConfig for dynamic masking of the data in `directory_or_pattern`.

    Each setting left None is the data's own, from its meta.json (masked_lm_prob, do_whole_word_mask, and
    the copy of the vocabulary beside it, checked against vocab_sha256): the data is masked again as it
    was made. Data without meta.json (made by Google's or NVIDIA's tool) needs masked_lm_prob and
    vocab_file given (MaskingSettingsError names those that are not); whole_word_mask then defaults to
    False, Google's default. The vocabulary gives the [CLS]/[SEP]/[MASK]/[PAD] ids and the "##" pieces.
    """
    directory = meta_directory(directory_or_pattern)
    meta = read_meta(directory)
    meta_path = paths.join(directory, META_FILENAME)
    given = {
        "masked_lm_prob": masked_lm_prob,
        "do_whole_word_mask": whole_word_mask,
        "vocab_file": vocab_file,
    }
    if meta is None:
        missing = [name for name in ("masked_lm_prob", "vocab_file") if given[name] is None]
        if missing:
            raise MaskingSettingsError(
                f"{directory} has no {META_FILENAME} to take the masking settings from", missing
            )
        meta = {"do_whole_word_mask": False}
    settings = {key: meta.get(key) if value is None else value for key, value in given.items()}
    for key, value in settings.items():
        if value is None:
            raise DataConfigError(f"{meta_path}: key {key!r} is missing (needed for dynamic masking)")
    if vocab_file is None:
        vocab_file = paths.join(directory, settings["vocab_file"])
        if "vocab_sha256" in meta and file_sha256(vocab_file) != meta["vocab_sha256"]:
            raise DataConfigError(f"{vocab_file} is not the vocabulary of {meta_path} (vocab_sha256 differs)")
    return MaskingConfig.from_vocab(
        load_vocab(vocab_file),
        masked_lm_prob=settings["masked_lm_prob"],
        max_predictions_per_seq=max_predictions_per_seq,
        whole_word_mask=bool(settings["do_whole_word_mask"]),
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
        meta = metas[directory_of(path)]
        counts = {
            paths.basename(str(s.get("file"))): s.get("num_instances") for s in (meta or {}).get("shards", [])
        }
        count = counts.get(paths.basename(path))
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
