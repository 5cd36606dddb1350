"""meta.json: atomic writing, lookup from a directory, a file or a glob, and the checks against a config."""

import json
import os
import uuid

import pytest
import tensorflow as tf

from data import META_FILENAME, DataConfigError, check_meta, read_meta, write_meta

GOOD_META = {
    "format": "bert-pretraining-tfrecord",
    "format_version": 1,
    "max_seq_length": 128,
    "max_predictions_per_seq": 20,
    "vocab_size": 30522,
    "shards": [{"file": "part-00000-of-00001.tfrecord", "num_instances": 3}],
}


def test_data_config_error_is_a_value_error():
    assert issubclass(DataConfigError, ValueError)
    assert META_FILENAME == "meta.json"


def test_write_meta_writes_json_that_read_meta_returns(tmp_path):
    path = write_meta(str(tmp_path), GOOD_META)
    assert path == os.path.join(str(tmp_path), "meta.json")
    with open(path) as f:
        assert json.load(f) == GOOD_META
    assert read_meta(str(tmp_path)) == GOOD_META


def test_write_meta_leaves_only_meta_json_behind(tmp_path):
    write_meta(str(tmp_path), GOOD_META)
    write_meta(str(tmp_path), dict(GOOD_META, num_instances=7))
    assert os.listdir(tmp_path) == ["meta.json"]
    assert read_meta(str(tmp_path))["num_instances"] == 7


def test_write_meta_that_cannot_be_serialised_keeps_the_previous_file(tmp_path):
    write_meta(str(tmp_path), GOOD_META)
    with pytest.raises(TypeError):
        write_meta(str(tmp_path), {"not_json": object()})
    assert os.listdir(tmp_path) == ["meta.json"]
    assert read_meta(str(tmp_path)) == GOOD_META


def test_read_meta_finds_the_file_from_a_shard_path_or_a_glob(tmp_path):
    write_meta(str(tmp_path), GOOD_META)
    shard = tmp_path / "part-00000-of-00001.tfrecord"
    shard.write_bytes(b"")
    assert read_meta(str(shard)) == GOOD_META
    assert read_meta(str(tmp_path / "part-*.tfrecord")) == GOOD_META


def test_read_meta_follows_a_glob_in_the_directory_part(tmp_path):
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "part-0.tfrecord").write_bytes(b"")
    write_meta(str(tmp_path / "wiki"), GOOD_META)
    assert read_meta(str(tmp_path / "w*" / "part-*.tfrecord")) == GOOD_META


def test_read_meta_refuses_a_glob_spanning_several_directories(tmp_path):
    for name in ("books", "wiki"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part-0.tfrecord").write_bytes(b"")
    with pytest.raises(DataConfigError, match="2 directories"):
        read_meta(str(tmp_path / "*" / "part-*.tfrecord"))


def test_read_meta_returns_none_without_meta_json(tmp_path):
    assert read_meta(str(tmp_path)) is None
    assert read_meta(str(tmp_path / "part-*.tfrecord")) is None
    assert read_meta(str(tmp_path / "missing" / "part-*.tfrecord")) is None


def test_read_meta_names_the_file_when_it_is_not_json(tmp_path):
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(DataConfigError, match="meta.json: not valid JSON"):
        read_meta(str(tmp_path))
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(DataConfigError, match="expected a JSON object"):
        read_meta(str(tmp_path))


def check(meta, **overrides):
    config = dict(max_seq_length=128, max_predictions_per_seq=20, vocab_size=30522, source="/d/meta.json")
    config.update(overrides)
    check_meta(meta, **config)


def test_check_meta_accepts_matching_data():
    check(GOOD_META)
    check(GOOD_META, vocab_size=None)  # vocab_size unknown to the caller: not checked


@pytest.mark.parametrize(
    "key, training_value",
    [("max_seq_length", 512), ("max_predictions_per_seq", 80), ("vocab_size", 28996)],
)
def test_check_meta_mismatch_names_the_key_both_values_and_the_file(key, training_value):
    with pytest.raises(DataConfigError) as error:
        check(GOOD_META, **{key: training_value})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("/d/meta.json: ")
    assert f"{key}={GOOD_META[key]}" in message
    assert f"{key}={training_value}" in message


def test_check_meta_refuses_a_missing_key():
    meta = {k: v for k, v in GOOD_META.items() if k != "max_predictions_per_seq"}
    with pytest.raises(DataConfigError, match="/d/meta.json: key 'max_predictions_per_seq' is missing"):
        check(meta)


def test_check_meta_refuses_another_format_or_a_newer_version():
    with pytest.raises(DataConfigError, match="format is 'something-else'"):
        check(dict(GOOD_META, format="something-else"))
    with pytest.raises(DataConfigError, match="format_version is 2"):
        check(dict(GOOD_META, format_version=2))


def test_write_and_read_meta_through_tf_io_gfile_for_remote_paths():
    # TensorFlow's in-memory filesystem takes the same code path as gs:// (tf.io.gfile, rename).
    directory = f"ram://meta-test-{uuid.uuid4().hex}/wiki"
    tf.io.gfile.makedirs(directory)
    assert write_meta(directory, GOOD_META) == f"{directory}/meta.json"
    assert tf.io.gfile.listdir(directory) == ["meta.json"]
    assert read_meta(f"{directory}/part-*.tfrecord") == GOOD_META
