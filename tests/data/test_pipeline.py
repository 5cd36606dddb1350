"""The input pipeline, on small TFRecord files written here directly from Google's schema.

The files are written with a plain tf.train.Example writer following google-research/bert's
create_pretraining_data.py (int64 input_ids, input_mask, segment_ids, masked_lm_positions, masked_lm_ids,
float masked_lm_weights, int64 next_sentence_labels [1]), independently of the package's creation code.
Every record carries its id in input_ids[1] (as token 1000 + id), so tests can tell records apart.
"""

import hashlib
import json
import os
import re
import shutil
import uuid

import numpy as np
import pytest
import tensorflow as tf

from data import (
    DataConfigError,
    MaskingConfig,
    MaskingSettingsError,
    check_data,
    dynamic_masking_config,
    pretraining_dataset,
    write_meta,
)

S, P = 16, 4  # max_seq_length, max_predictions_per_seq of the test files
CLS, SEP, MASK = 101, 102, 103
ID_OFFSET = 1000


def original_tokens(record_id):
    """The unmasked tokens of record `record_id`: [CLS] A [SEP] B [SEP], 6 to 10 of them."""
    length = 6 + record_id % 5
    middle = length // 2
    tokens = [CLS, ID_OFFSET + record_id] + [200 + i for i in range(middle - 3)] + [SEP]
    tokens += [300 + i for i in range(length - len(tokens) - 1)] + [SEP]
    return tokens


def google_record(record_id, seq_length=S, max_predictions=P):
    """Record `record_id` as lists of feature values, as Google's write_instance_to_example_files has them.

    Two predictions: position 2 replaced by [MASK], position length-2 left unchanged.
    """
    tokens = original_tokens(record_id)
    length = len(tokens)
    middle = length // 2
    input_ids = tokens[:2] + [MASK] + tokens[3:]
    padding = [0] * (seq_length - length)
    return {
        "input_ids": input_ids + padding,
        "input_mask": [1] * length + padding,
        "segment_ids": [0] * middle + [1] * (length - middle) + padding,
        "masked_lm_positions": [2, length - 2] + [0] * (max_predictions - 2),
        "masked_lm_ids": [tokens[2], tokens[length - 2]] + [0] * (max_predictions - 2),
        "masked_lm_weights": [1.0, 1.0] + [0.0] * (max_predictions - 2),
        "next_sentence_labels": [record_id % 2],
    }


def serialize(features):
    def feature(values):
        if isinstance(values[0], float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    example = tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    )
    return example.SerializeToString()


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(serialize(record))
    return str(path)


def write_shards(directory, num_files, records_per_file, **record_kwargs):
    os.makedirs(directory, exist_ok=True)
    for f in range(num_files):
        ids = range(f * records_per_file, (f + 1) * records_per_file)
        name = f"part-{f:05d}-of-{num_files:05d}.tfrecord"
        write_records(os.path.join(directory, name), [google_record(i, **record_kwargs) for i in ids])
    return os.path.join(str(directory), "part-*.tfrecord")


def record_ids(batch):
    return (batch["input_ids"][:, 1].numpy() - ID_OFFSET).tolist()


def all_ids(dataset):
    return [i for batch in dataset for i in record_ids(batch)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """6 Google-format files of 5 records each (ids 0..29), without meta.json."""
    return write_shards(tmp_path_factory.mktemp("google"), num_files=6, records_per_file=5)


def dataset(pattern, batch_size=4, **kwargs):
    return pretraining_dataset(pattern, batch_size, S, P, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Batches: shapes, dtypes and values.


def test_training_batches_have_static_shapes_and_model_dtypes(shards):
    spec = dataset(shards, batch_size=4).element_spec
    expected = {
        "input_ids": ([4, S], tf.int32),
        "input_mask": ([4, S], tf.int32),
        "segment_ids": ([4, S], tf.int32),
        "masked_lm_positions": ([4, P], tf.int32),
        "masked_lm_ids": ([4, P], tf.int32),
        "masked_lm_weights": ([4, P], tf.float32),
        "next_sentence_labels": ([4], tf.int32),
    }
    assert {name: (s.shape.as_list(), s.dtype) for name, s in spec.items()} == expected


def test_every_feature_of_every_record_is_decoded_exactly(shards):
    batch = next(iter(dataset(shards, batch_size=30, is_training=False)))
    assert record_ids(batch) == list(range(30))  # evaluation reads files in order
    for i in range(30):
        for name, values in google_record(i).items():
            decoded = batch[name][i].numpy()
            np.testing.assert_array_equal(decoded, values if name != "next_sentence_labels" else values[0])


# ---------------------------------------------------------------------------------------------------------
# Training and evaluation order.


def test_eval_reads_every_record_once_in_file_order_and_keeps_the_remainder(shards):
    batches = list(dataset(shards, batch_size=8, is_training=False))
    assert [len(record_ids(b)) for b in batches] == [8, 8, 8, 6]
    assert all_ids(batches) == list(range(30))


def test_eval_can_drop_the_remainder(shards):
    batches = list(dataset(shards, batch_size=8, is_training=False, drop_remainder=True))
    assert all_ids(batches) == list(range(24))


def test_training_repeats_and_each_epoch_holds_every_record_once(shards):
    # With one file open at a time and no record shuffle, epochs do not overlap in the stream.
    ids = all_ids(dataset(shards, batch_size=10, seed=3, cycle_length=1, shuffle_buffer=1).take(9))
    for epoch in range(3):
        assert sorted(ids[30 * epoch : 30 * (epoch + 1)]) == list(range(30))
    assert ids[:30] != ids[30:60]  # files are shuffled again each epoch


def test_training_shuffles_records_across_files(shards):
    ids = all_ids(dataset(shards, batch_size=30, seed=3).take(1))
    assert ids != sorted(ids)
    assert len({i // 5 for i in ids[:8]}) > 2  # the first records come from several files


def test_same_seed_gives_the_same_batches_and_another_seed_others(shards):
    first = all_ids(dataset(shards, seed=11).take(20))
    again = all_ids(dataset(shards, seed=11).take(20))
    other = all_ids(dataset(shards, seed=12).take(20))
    assert first == again
    assert first != other


@pytest.mark.parametrize("dynamic_masking", [None, "dynamic"])
def test_iterator_checkpoint_resumes_at_the_exact_next_batch(shards, tmp_path, dynamic_masking):
    masking = MASKING if dynamic_masking else None
    iterator = iter(dataset(shards, seed=5, dynamic_masking=masking))
    for _ in range(7):
        next(iterator)
    prefix = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    expected = [next(iterator) for _ in range(12)]

    restored = iter(dataset(shards, seed=5, dynamic_masking=masking))
    tf.train.Checkpoint(iterator=restored).restore(prefix).assert_consumed()
    for want in expected:
        got = next(restored)
        for name in want:
            np.testing.assert_array_equal(got[name].numpy(), want[name].numpy())


# ---------------------------------------------------------------------------------------------------------
# Sharding between input pipelines (workers).


def contexts(num_pipelines):
    return [tf.distribute.InputContext(num_pipelines, i, num_pipelines) for i in range(num_pipelines)]


@pytest.mark.parametrize("num_pipelines", [2, 3, 4, 6, 8, 11])
def test_eval_shards_are_disjoint_and_complete(shards, num_pipelines):
    # 6 files: up to 6 pipelines read whole files; 8 and 11 pipelines fall back to sharding records.
    per_pipeline = [
        all_ids(dataset(shards, input_context=c, is_training=False)) for c in contexts(num_pipelines)
    ]
    assert sorted(i for ids in per_pipeline for i in ids) == list(range(30))
    assert all(ids for ids in per_pipeline)


@pytest.mark.parametrize("num_pipelines", [3, 8])
def test_training_shards_are_disjoint_and_complete(shards, num_pipelines):
    per_pipeline = [
        set(all_ids(dataset(shards, input_context=c, seed=2, shuffle_buffer=16).take(15)))
        for c in contexts(num_pipelines)
    ]
    for a in range(num_pipelines):
        for b in range(a):
            assert not per_pipeline[a] & per_pipeline[b]
    assert set.union(*per_pipeline) == set(range(30))


def test_each_pipeline_reads_whole_files_when_there_are_enough(shards):
    for context in contexts(3):
        files = {i // 5 for i in all_ids(dataset(shards, input_context=context, is_training=False))}
        assert files == {context.input_pipeline_id, context.input_pipeline_id + 3}


def test_mirrored_strategy_gives_each_replica_its_own_records(shards):
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    global_batch = 6

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(global_batch)
        return pretraining_dataset(shards, per_replica, S, P, input_context=context, is_training=False)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)

    @tf.function
    def step(batch):
        def replica_fn(features):
            tf.debugging.assert_equal(tf.shape(features["input_ids"]), [3, S])
            return features["input_ids"][:, 1] - ID_OFFSET

        return strategy.run(replica_fn, args=(batch,))

    seen = []
    for batch in distributed:
        for ids in strategy.experimental_local_results(step(batch)):
            seen.extend(ids.numpy().tolist())
    assert sorted(seen) == list(range(30))


# ---------------------------------------------------------------------------------------------------------
# Checking the files: meta.json, Google-format files without it, missing files.


def write_meta_json(directory, **overrides):
    meta = {
        "format": "bert-pretraining-tfrecord",
        "format_version": 1,
        "max_seq_length": S,
        "max_predictions_per_seq": P,
        "vocab_size": 2000,
        "vocab_file": "vocab.txt",
    }
    meta.update(overrides)
    with open(os.path.join(directory, "meta.json"), "w") as f:
        json.dump(meta, f)


@pytest.fixture
def data_dir(tmp_path):
    """A directory as the creation tool leaves it: 2 shards, meta.json and vocab.txt."""
    write_shards(tmp_path, num_files=2, records_per_file=3)
    write_meta_json(
        tmp_path,
        shards=[{"file": f"part-{f:05d}-of-00002.tfrecord", "num_instances": 3} for f in range(2)],
    )
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    return tmp_path


def test_a_directory_with_meta_json_reads_its_shards_only(data_dir):
    (data_dir / "logs").mkdir()
    for pattern in (
        str(data_dir),
        str(data_dir / "*.*"),
        [str(data_dir / "part-00001*"), str(data_dir / "*.tfrecord")],
    ):
        ids = all_ids(pretraining_dataset(pattern, 2, S, P, vocab_size=2000, is_training=False))
        assert ids == list(range(6))


def test_training_on_a_directory_with_meta_json(data_dir):
    # Each pipeline reads one file; the shuffle buffer is capped at the 3 records meta.json counts there.
    for context in contexts(2):
        ids = all_ids(pretraining_dataset(str(data_dir), 3, S, P, input_context=context, seed=0).take(4))
        start = 3 * context.input_pipeline_id
        assert set(ids) == set(range(start, start + 3))


def test_files_on_a_tf_io_gfile_filesystem_are_read_and_checked():
    # TensorFlow's in-memory filesystem takes the same code path as gs://.
    directory = f"ram://pipeline-test-{uuid.uuid4().hex}"
    tf.io.gfile.makedirs(directory)
    write_records(f"{directory}/part-00000-of-00001.tfrecord", [google_record(i) for i in range(5)])
    assert all_ids(pretraining_dataset(directory, 2, S, P, is_training=False)) == list(range(5))
    write_meta(directory, {"format": "bert-pretraining-tfrecord", "format_version": 1, "max_seq_length": 64})
    with pytest.raises(DataConfigError, match=f"{directory}/meta.json: the data has max_seq_length=64"):
        pretraining_dataset(f"{directory}/part-*", 2, S, P)


@pytest.mark.parametrize(
    "key, value",
    [("max_seq_length", 32), ("max_predictions_per_seq", 8), ("vocab_size", 3000)],
)
def test_meta_mismatch_is_refused_naming_both_values_and_the_file(data_dir, key, value):
    arguments = {"max_seq_length": S, "max_predictions_per_seq": P, "vocab_size": 2000, key: value}
    data_value = {"max_seq_length": S, "max_predictions_per_seq": P, "vocab_size": 2000}[key]
    with pytest.raises(DataConfigError) as error:
        pretraining_dataset(str(data_dir), 2, **arguments)
    message = str(error.value)
    assert str(data_dir / "meta.json") in message
    assert f"{key}={data_value}" in message and f"{key}={value}" in message


def test_a_shard_not_listed_in_meta_json_is_refused(data_dir):
    write_records(data_dir / "part-00007-of-00008.tfrecord", [google_record(99)])
    with pytest.raises(DataConfigError, match="part-00007-of-00008.tfrecord is not one of the shards listed"):
        pretraining_dataset(str(data_dir / "part-*"), 2, S, P)


def test_google_files_with_other_lengths_are_refused_naming_feature_and_lengths(shards):
    with pytest.raises(DataConfigError) as error:
        pretraining_dataset(shards, 2, 32, P)
    message = str(error.value)
    assert "part-00000-of-00006.tfrecord: feature 'input_ids' of the first record has 16 values" in message
    assert "max_seq_length=32 needs 32" in message

    with pytest.raises(DataConfigError, match="'masked_lm_positions' of the first record has 4 values but "):
        pretraining_dataset(shards, 2, S, 20)


def test_a_record_missing_a_feature_or_with_another_type_is_refused(tmp_path):
    record = google_record(0)
    del record["next_sentence_labels"]
    write_records(tmp_path / "a.tfrecord", [record])
    with pytest.raises(
        DataConfigError, match="feature 'next_sentence_labels' of the first record is missing"
    ):
        pretraining_dataset(str(tmp_path / "a.tfrecord"), 2, S, P)

    record = google_record(0)
    record["masked_lm_weights"] = [1, 1, 0, 0]
    write_records(tmp_path / "b.tfrecord", [record])
    with pytest.raises(DataConfigError, match="'masked_lm_weights' .* is a int64_list but .* float_list"):
        pretraining_dataset(str(tmp_path / "b.tfrecord"), 2, S, P)


def test_missing_files_are_refused_naming_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(DataConfigError, match=re.escape(f"no TFRecord file matches {pattern}")):
        pretraining_dataset(pattern, 2, S, P)
    with pytest.raises(DataConfigError, match="no TFRecord file matches"):
        pretraining_dataset(str(tmp_path / "missing_dir" / "*"), 2, S, P)


def test_files_without_records_or_not_tfrecord_are_refused(tmp_path):
    write_records(tmp_path / "empty-0.tfrecord", [])
    write_records(tmp_path / "empty-1.tfrecord", [])
    with pytest.raises(DataConfigError, match="no records in .*empty-0.tfrecord or the 1 other files"):
        pretraining_dataset(str(tmp_path / "empty-*"), 2, S, P)
    (tmp_path / "text.tfrecord").write_text("one sentence per line\n" * 10)
    with pytest.raises(DataConfigError, match="text.tfrecord is not a readable TFRecord file"):
        pretraining_dataset(str(tmp_path / "text.tfrecord"), 2, S, P)


def test_bad_sizes_are_refused(shards):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        pretraining_dataset(shards, 0, S, P)


# ---------------------------------------------------------------------------------------------------------
# Dynamic masking: fresh masks every epoch, from the records' original tokens.

MASKING = MaskingConfig(
    vocab_size=2000,
    cls_id=CLS,
    sep_id=SEP,
    mask_id=MASK,
    pad_id=0,
    masked_lm_prob=0.15,
    max_predictions_per_seq=P,
)


def restore_originals(batch):
    """The original tokens of a batch [B, S]: masked_lm_ids written back at masked_lm_positions (numpy)."""
    ids = batch["input_ids"].numpy().copy()
    positions, labels = batch["masked_lm_positions"].numpy(), batch["masked_lm_ids"].numpy()
    for row, weights in enumerate(batch["masked_lm_weights"].numpy()):
        for slot in np.flatnonzero(weights > 0):
            ids[row, positions[row, slot]] = labels[row, slot]
    return ids


def test_dynamic_masking_gives_valid_masks_and_new_ones_each_epoch(shards):
    masks_of_record = {i: set() for i in range(30)}
    replacements = {"mask": 0, "same": 0, "random": 0}
    for batch in dataset(shards, batch_size=10, seed=4, dynamic_masking=MASKING).take(30):  # 10 epochs
        assert batch["input_ids"].dtype == tf.int32 and batch["masked_lm_weights"].dtype == tf.float32
        originals = restore_originals(batch)
        for row in range(10):
            record_id = int(originals[row, 1]) - ID_OFFSET
            tokens = original_tokens(record_id)
            length = len(tokens)
            np.testing.assert_array_equal(originals[row], tokens + [0] * (S - length))

            weights = batch["masked_lm_weights"][row].numpy()
            count = min(P, max(1, round(length * 0.15)))  # Google's count, [CLS]/[SEP] included in length
            np.testing.assert_array_equal(weights, [1.0] * count + [0.0] * (P - count))
            positions = batch["masked_lm_positions"][row].numpy()
            chosen = positions[:count]
            assert np.all(np.diff(chosen) > 0) and np.all(positions[count:] == 0)
            assert all(tokens[p] not in (CLS, SEP) for p in chosen)
            np.testing.assert_array_equal(
                batch["masked_lm_ids"][row].numpy()[:count], [tokens[p] for p in chosen]
            )
            np.testing.assert_array_equal(batch["masked_lm_ids"][row].numpy()[count:], 0)

            input_ids = batch["input_ids"][row].numpy()
            unchosen = [p for p in range(S) if p not in chosen]
            np.testing.assert_array_equal(input_ids[unchosen], originals[row][unchosen])
            for p in chosen:
                new = int(input_ids[p])
                replacements["mask" if new == MASK else "same" if new == tokens[p] else "random"] += 1
            masks_of_record[record_id].add(tuple(chosen))

    assert all(len(masks) > 1 for masks in masks_of_record.values())  # new masks in later epochs
    total = sum(replacements.values())
    assert replacements["mask"] > 0.6 * total and replacements["random"] < 0.25 * total


def test_dynamic_masking_is_deterministic_by_seed(shards):
    def first_batches(seed):
        batches = dataset(shards, seed=seed, dynamic_masking=MASKING).take(10)
        return [
            np.concatenate([b["input_ids"].numpy(), b["masked_lm_positions"].numpy()], 1) for b in batches
        ]

    reference = first_batches(8)
    np.testing.assert_array_equal(first_batches(8), reference)
    assert not np.array_equal(first_batches(9), reference)


def test_dynamic_masking_must_match_the_training_config(shards):
    with pytest.raises(DataConfigError, match="max_predictions_per_seq=20 but .* max_predictions_per_seq=4"):
        dataset(shards, dynamic_masking=MaskingConfig(vocab_size=2000, cls_id=CLS, sep_id=SEP, mask_id=MASK))
    with pytest.raises(DataConfigError, match="vocab_size=2000 but .* vocab_size=30522"):
        dataset(shards, vocab_size=30522, dynamic_masking=MASKING)


def test_dynamic_masking_config_reads_the_settings_and_the_vocab_of_meta_json(data_dir):
    vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\ncat\n"
    (data_dir / "vocab.txt").write_text(vocab)
    sha256 = hashlib.sha256(vocab.encode()).hexdigest()
    write_meta_json(
        data_dir, masked_lm_prob=0.2, do_whole_word_mask=True, vocab_sha256=sha256, max_predictions_per_seq=P
    )
    config = dynamic_masking_config(str(data_dir / "part-*"), P)
    assert (config.vocab_size, config.pad_id, config.cls_id, config.sep_id, config.mask_id) == (8, 0, 2, 3, 4)
    assert config.continuation_ids == (6,)
    assert (config.masked_lm_prob, config.max_predictions_per_seq, config.whole_word_mask) == (0.2, P, True)

    write_meta_json(data_dir, masked_lm_prob=0.2, do_whole_word_mask=True, vocab_sha256="0" * 64)
    with pytest.raises(DataConfigError, match="vocab.txt is not the vocabulary of .*meta.json"):
        dynamic_masking_config(str(data_dir), P)


def test_dynamic_masking_of_data_without_meta_json_takes_the_given_settings(data_dir):
    (data_dir / "meta.json").unlink()  # as Google's tool leaves a directory
    (data_dir / "google_vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\ncat\n")
    with pytest.raises(
        MaskingSettingsError, match="has no meta.json to take the masking settings from"
    ) as error:
        dynamic_masking_config(str(data_dir / "part-*"), P)
    assert error.value.missing == ["masked_lm_prob", "vocab_file"]
    config = dynamic_masking_config(
        str(data_dir / "part-*"), P, masked_lm_prob=0.25, vocab_file=str(data_dir / "google_vocab.txt")
    )
    assert (config.vocab_size, config.mask_id, config.continuation_ids) == (8, 4, (6,))
    assert (config.masked_lm_prob, config.max_predictions_per_seq, config.whole_word_mask) == (0.25, P, False)


# ---------------------------------------------------------------------------------------------------------
# Reading what data.create_pretraining_data writes (the meta.json contract between the two halves of data/).


CORPUS_WORDS = "the cat sat on a mat and then it ran far away from home . dogs bark at cats"


@pytest.fixture(scope="module")
def created(tmp_path_factory):
    """A tiny data set made by data.create_pretraining_data: (directory, its meta.json)."""
    from data.create_pretraining_data import CreationConfig, create_pretraining_data

    directory = tmp_path_factory.mktemp("created")
    words = CORPUS_WORDS.split()
    with open(directory / "corpus.txt", "w") as f:
        for document in range(12):
            for sentence in range(6):
                f.write(" ".join(words[(document + sentence + i) % len(words)] for i in range(5 + sentence)))
                f.write("\n")
            f.write("\n")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words)), "##s"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    output = str(directory / "out")
    meta = create_pretraining_data(
        CreationConfig(
            input=str(directory / "corpus.txt"),
            output_dir=output,
            vocab_file=str(directory / "vocab.txt"),
            max_seq_length=32,
            max_predictions_per_seq=5,
            dupe_factor=2,
            num_shards=2,
            num_workers=1,
            quiet=True,
        )
    )
    return output, meta


def test_data_made_by_create_pretraining_data_is_read_record_for_record(created):
    directory, meta = created
    batches = pretraining_dataset(directory, 8, 32, 5, vocab_size=meta["vocab_size"], is_training=False)
    read = [row for batch in batches for row in batch["input_ids"].numpy().tolist()]
    written = []  # the shards meta.json lists, decoded with the protobuf API
    for shard in meta["shards"]:
        for record in tf.data.TFRecordDataset(os.path.join(directory, shard["file"])):
            written.append(
                list(
                    tf.train.Example.FromString(record.numpy()).features.feature["input_ids"].int64_list.value
                )
            )
    assert read == written
    assert len(read) == meta["num_instances"] > 0


def test_dynamic_masking_of_created_data_keeps_its_tokens_and_changes_its_masks(created):
    directory, meta = created
    config = dynamic_masking_config(directory, 5)
    assert (config.max_predictions_per_seq, config.masked_lm_prob) == (5, meta["masked_lm_prob"])
    as_written = pretraining_dataset(directory, 8, 32, 5, is_training=False)
    remasked = pretraining_dataset(directory, 8, 32, 5, is_training=False, seed=0, dynamic_masking=config)
    changed = 0
    for written, fresh in zip(as_written, remasked, strict=True):
        np.testing.assert_array_equal(restore_originals(fresh), restore_originals(written))
        changed += int(np.any(fresh["masked_lm_positions"].numpy() != written["masked_lm_positions"].numpy()))
    assert changed > 0


def copy_of(directory, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    return copy


def test_a_listed_shard_of_another_size_is_refused_before_reading(created, tmp_path):
    directory, meta = created
    copy = copy_of(directory, tmp_path)
    shard = copy / meta["shards"][1]["file"]
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated: its first record still reads
    with pytest.raises(DataConfigError) as error:
        check_data(str(copy), 32, 5)
    size = meta["shards"][1]["size_bytes"]
    assert str(error.value) == (
        f"{shard}: {size - 100} bytes but {copy}/meta.json lists {size} (a truncated or replaced shard); "
        "make the data again"
    )


def test_verify_full_also_recomputes_the_checksums(created, tmp_path):
    directory, meta = created
    copy = copy_of(directory, tmp_path)
    assert check_data(str(copy), 32, 5, verify="full").files == tuple(
        str(copy / shard["file"]) for shard in meta["shards"]
    )
    # Another shard of the same size: a record of shard 0 with one token id changed, CRCs recomputed.
    shard = copy / meta["shards"][0]["file"]
    records = list(tf.data.TFRecordDataset(str(shard)).as_numpy_iterator())
    example = tf.train.Example.FromString(records[-1])
    ids = example.features.feature["input_ids"].int64_list.value
    ids[1] = 5 if ids[1] != 5 else 6
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in [*records[:-1], example.SerializeToString()]:
            writer.write(record)
    assert os.path.getsize(shard) == meta["shards"][0]["size_bytes"]
    check_data(str(copy), 32, 5)  # the size is right
    with pytest.raises(DataConfigError, match=re.escape(f"{shard}: its records' checksum differs")):
        check_data(str(copy), 32, 5, verify="full")
