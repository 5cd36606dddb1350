"""Bad input is one line naming what is wrong, and nothing that looks complete is written.

Each case calls trainer.train and checks the exception: a trainer.USER_ERRORS type, which run_pretraining.py
turns into one line on stderr with exit code 2 and no traceback. That command-line path, a misspelt config
key and a data glob matching nothing are in test_config.py.
"""

import json
import os
import pathlib
import shutil

import pytest
import tensorflow as tf
from tiny_setup import PREDICTIONS, SEQ_LENGTH, VOCAB_SIZE, tiny_config_yaml

import bert
import trainer
from data import damaged_record_message
from trainer import preemption as preemption_module
from trainer.errors import OutOfMemoryError, out_of_memory_message


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def mirrored(num_devices):
    devices = [f"/cpu:{i}" for i in range(num_devices)]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A directory with the tiny data (two shards + meta.json) and a config path to edit with overrides."""
    tmp_path = tmp_path_factory.mktemp("bad_input")
    return tmp_path, tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "unused"))


def copy_shards(tmp_path, name, meta=None):
    """The tiny shards in a new directory, with `meta` as meta.json (None: Google's format, no meta.json)."""
    directory = tmp_path / name
    directory.mkdir()
    for path in sorted((tmp_path / "data").glob("tiny-*.tfrecord")):
        shutil.copy(path, directory / path.name)
    if meta is not None:
        (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def tiny_meta(tmp_path, **changes):
    return {**json.loads((tmp_path / "data" / "meta.json").read_text()), **changes}


def train_error(config_path, overrides, model_dir, strategy=None):
    """The exception of trainer.train (a user error, its message one line) for a config in `model_dir`."""
    config = trainer.load_config(config_path, [*overrides, f"runtime.model_dir={model_dir}"])
    with pytest.raises(trainer.USER_ERRORS) as error:
        trainer.train(config, strategy=strategy or one_device())
    message = str(error.value)
    assert "\n" not in message
    return message


def assert_nothing_written(model_dir):
    assert not os.path.exists(model_dir) or os.listdir(model_dir) == [], os.listdir(model_dir)


def assert_no_checkpoint(model_dir):
    assert tf.train.latest_checkpoint(str(model_dir)) is None
    assert (
        not list(pathlib.Path(model_dir).glob("ckpt-*")) and not (pathlib.Path(model_dir) / "export").exists()
    )


# ----------------------------------------------------------------------------------------------------------
# The data


def test_data_files_without_any_record(tiny):
    tmp_path, config = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    for i in range(2):
        (empty / f"part-{i}.tfrecord").write_bytes(b"")
    message = train_error(config, [f"data.train_files={empty}/part-*.tfrecord"], tmp_path / "m1")
    assert message == f"data.train_files: no records in {empty}/part-0.tfrecord or the 1 other files there"
    assert_nothing_written(tmp_path / "m1")


def test_data_made_for_another_sequence_length_per_meta_json(tiny):
    tmp_path, config = tiny
    directory = copy_shards(tmp_path, "seq32", tiny_meta(tmp_path, max_seq_length=32))
    message = train_error(config, [f"data.train_files={directory}/*.tfrecord"], tmp_path / "m2")
    assert message == (
        f"data.train_files: {directory}/meta.json: the data has max_seq_length=32 but the training config "
        f"has max_seq_length={SEQ_LENGTH}"
    )
    assert_nothing_written(tmp_path / "m2")


def test_google_format_data_without_meta_json_made_for_other_lengths(tiny):
    tmp_path, config = tiny
    directory = copy_shards(tmp_path, "google_format")
    overrides = [
        f"data.train_files={directory}/*.tfrecord",
        f"data.max_predictions_per_seq={PREDICTIONS + 2}",
    ]
    message = train_error(config, overrides, tmp_path / "m3")
    assert message == (
        f"data.train_files: {directory}/tiny-00000-of-00002.tfrecord: feature 'masked_lm_positions' of the "
        f"first record has {PREDICTIONS} values but max_predictions_per_seq={PREDICTIONS + 2} needs "
        f"{PREDICTIONS + 2}"
    )
    assert_nothing_written(tmp_path / "m3")


def test_a_data_vocabulary_larger_than_the_model_per_meta_json(tiny):
    tmp_path, config = tiny
    message = train_error(config, [f"model.vocab_size={VOCAB_SIZE // 2}"], tmp_path / "m4")
    assert message == (
        f"data.train_files: {tmp_path}/data/meta.json: the data has vocab_size={VOCAB_SIZE} but the training "
        f"config has vocab_size={VOCAB_SIZE // 2}"
    )
    assert_nothing_written(tmp_path / "m4")


def test_token_ids_beyond_the_model_vocabulary_in_data_without_meta_json(tiny):
    tmp_path, config = tiny
    directory = copy_shards(tmp_path, "google_format_ids")
    overrides = [f"data.train_files={directory}/*.tfrecord", f"model.vocab_size={VOCAB_SIZE // 2}"]
    message = train_error(config, overrides, tmp_path / "m5")
    assert message.startswith("data.train_files: a training record holds token id ")
    assert f"outside the model's vocabulary of {VOCAB_SIZE // 2} ids" in message
    token_id = int(message.split("token id ")[1].split(",")[0])
    assert VOCAB_SIZE // 2 <= token_id < VOCAB_SIZE
    assert_no_checkpoint(tmp_path / "m5")


def flip_a_byte(path, offset):
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))


def record_offsets(path):
    """The byte offset of each record of a TFRecord file (8-byte length, 4-byte CRC, data, 4-byte CRC)."""
    content, offsets, position = path.read_bytes(), [], 0
    while position < len(content):
        offsets.append(position)
        position += 16 + int.from_bytes(content[position : position + 8], "little")
    return offsets


def reader_error(path):
    """The DataLossError TensorFlow's TFRecord reader raises on `path`."""
    with pytest.raises(tf.errors.DataLossError) as error:
        for _ in tf.data.TFRecordDataset(str(path)):
            pass
    return error.value


@pytest.mark.parametrize("where", ["length", "data"])
def test_a_damaged_record_inside_a_file_is_located_from_the_readers_error(tiny, where):
    tmp_path, _ = tiny
    directory = copy_shards(tmp_path, f"flipped_{where}")
    damaged = directory / "tiny-00001-of-00002.tfrecord"
    offset = record_offsets(damaged)[10]
    flip_a_byte(damaged, offset + {"length": 2, "data": 20}[where])  # the 11th record's length or data
    files = sorted(str(path) for path in directory.glob("*.tfrecord"))
    error = reader_error(damaged)
    assert damaged_record_message(error, files) == (
        f"data.train_files: {damaged}: corrupted record at {offset + {'length': 0, 'data': 12}[where]} "
        f"(a damaged TFRecord file); repair or remove it"
    )


def test_a_file_damaged_at_its_start_is_named_before_anything_is_written(tiny):
    tmp_path, config = tiny
    directory = copy_shards(tmp_path, "flipped_start", tiny_meta(tmp_path))
    damaged = directory / "tiny-00001-of-00002.tfrecord"
    flip_a_byte(damaged, 20)  # in the data of the first record
    message = train_error(config, [f"data.train_files={directory}/*.tfrecord"], tmp_path / "m6")
    assert message == (
        f"data.train_files: {damaged} is not a readable TFRecord file (corrupted record at 12)"
    )  # 12: the offset of the first record's data
    assert_nothing_written(tmp_path / "m6")


def test_a_file_whose_last_record_is_truncated_is_named_and_the_checkpoints_stay(tiny):
    # Found while training (the first records are fine): the run stops, its checkpoints stay as they were.
    tmp_path, config = tiny
    directory = copy_shards(tmp_path, "truncated", tiny_meta(tmp_path))
    damaged = directory / "tiny-00000-of-00002.tfrecord"
    last = record_offsets(damaged)[-1]
    damaged.write_bytes(damaged.read_bytes()[:-5])
    overrides = [
        f"data.train_files={directory}/*.tfrecord",
        "data.shuffle_buffer=1",  # read the records as training goes
        "train.checkpoint_every_steps=2",
        "schedule.total_steps=40",
    ]
    message = train_error(config, overrides, tmp_path / "m7")
    assert message == (
        f"data.train_files: {damaged}: truncated record at {last} (a damaged TFRecord file); "
        "repair or remove it"
    )
    latest = tf.train.latest_checkpoint(str(tmp_path / "m7"))
    assert latest is not None and tf.train.load_checkpoint(latest)  # complete, loadable
    assert not (tmp_path / "m7" / "export").exists()


# ----------------------------------------------------------------------------------------------------------
# Checkpoints and devices


def test_an_init_checkpoint_that_does_not_exist(tiny):
    tmp_path, config = tiny
    missing = tmp_path / "nowhere" / "bert_model.ckpt"
    message = train_error(config, [f"model.init_checkpoint={missing}"], tmp_path / "m8")
    assert message == f"model.init_checkpoint: no checkpoint at {missing} (no {missing}.index)"
    assert_nothing_written(tmp_path / "m8")


def test_an_init_checkpoint_of_another_model_size(tiny):
    tmp_path, config = tiny
    other = bert.BertPretrainingModel(
        bert.BertConfig(vocab_size=VOCAB_SIZE, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    prefix = tmp_path / "other_size" / "bert_model.ckpt"
    prefix.parent.mkdir()
    bert.save_google_checkpoint(other, str(prefix))
    message = train_error(config, [f"model.init_checkpoint={prefix}"], tmp_path / "m9")
    assert message.startswith(f"model.init_checkpoint: cannot load {prefix} into this model: ")
    assert "bert/embeddings/word_embeddings" in message
    assert_nothing_written(tmp_path / "m9")


def test_a_global_batch_the_devices_cannot_share(tiny):
    tmp_path, config = tiny
    message = train_error(config, [], tmp_path / "m10", strategy=mirrored(3))
    assert message.startswith(
        "train.global_batch_size (16) is not divisible by train.micro_batch_size (4) x 3 replica(s) = 12; "
    )
    assert_nothing_written(tmp_path / "m10")


@pytest.mark.parametrize(
    ("global_batch", "micro", "replicas", "expected"),
    [
        (
            32768,
            32,
            8,
            "out of device memory with train.micro_batch_size 32 (128 accumulation step(s) x 8 replica(s) "
            "for the global batch 32768); try --set train.micro_batch_size=16 (256 accumulation steps, the "
            "same global batch; --mode=plan shows the memory estimate)",
        ),
        (  # 192 sequences per replica: no micro-batch from 47 down to 33 divides it, 32 does (6 x 32)
            384,
            48,
            2,
            "out of device memory with train.micro_batch_size 48 (4 accumulation step(s) x 2 replica(s) for "
            "the global batch 384); try --set train.micro_batch_size=32 (6 accumulation steps, the same "
            "global batch; --mode=plan shows the memory estimate)",
        ),
        (
            8,
            1,
            8,
            "out of device memory with train.micro_batch_size 1 (1 accumulation step(s) x 8 replica(s) for "
            "the global batch 8); no smaller micro-batch exists: use mixed precision, shorter sequences or "
            "devices with more memory (--mode=plan shows the estimate)",
        ),
    ],
)
def test_out_of_memory_names_the_micro_batch_and_a_smaller_one_that_keeps_the_global_batch(
    global_batch, micro, replicas, expected
):
    batches = trainer.plan_batches(global_batch, micro, replicas)
    assert out_of_memory_message(batches) == expected


def test_a_resource_exhausted_error_in_the_loop_becomes_the_one_line(tmp_path, monkeypatch):
    config = trainer.load_config(tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "run"), total_steps=4))

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[8,2,16,16]")

    monkeypatch.setattr(preemption_module.SignalWatch, "run", out_of_memory)
    with pytest.raises(OutOfMemoryError, match=r"^out of device memory with train.micro_batch_size "):
        trainer.train(config, strategy=one_device())
