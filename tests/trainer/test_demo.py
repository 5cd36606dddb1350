"""The demo path: configs/demo.yaml is consistent, and a run with `data.create` builds its data on first use,
trains, and evaluates on held-out shards against the most-frequent-token baseline."""

import dataclasses
import fnmatch
import os

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import write_tiny_bert_config

import data
import trainer
from trainer.evaluation import majority_baseline


def test_the_demo_reaches_a_large_batch_by_accumulation_on_one_cpu():
    config = trainer.load_config("demo.yaml")
    plan = trainer.plan_batches(config.train.global_batch_size, config.train.micro_batch_size, num_replicas=1)
    assert plan.accumulation_steps >= 8
    assert config.runtime.strategy == "one_device"
    assert config.runtime.model_dir.startswith("runs/demo/")


def test_the_demo_trains_and_evaluates_on_disjoint_shards_of_the_data_it_creates():
    config = trainer.load_config("demo.yaml")
    create = config.data.create
    assert create is not None and create.corpus == "embedded"
    assert config.model.vocab_size == create.vocab_size
    shards = [
        os.path.join("runs/demo/data", data.shard_file_name("pretraining", i, create.num_shards))
        for i in range(create.num_shards)
    ]
    train = [path for path in shards if fnmatch.fnmatch(path, config.data.train_files)]
    held_out = [path for path in shards if fnmatch.fnmatch(path, config.data.eval_files)]
    assert train and held_out
    assert sorted(train + held_out) == shards


def test_the_majority_baseline_is_the_share_of_the_most_frequent_masked_token():
    counts = np.array([0.0, 3.0, 5.0, 2.0])
    assert majority_baseline(counts) == (0.5, 2)


SENTENCES = [
    "the cat sat on the mat .",
    "a dog ran to the park .",
    "the bird sang in the tree .",
    "my friend read a book at home .",
    "the sun is bright in the sky .",
    "we walked along the river at night .",
    "she gave the dog a bone .",
    "the children played in the garden .",
]


def write_corpus(path, num_documents=60, seed=0):
    """Google's text format: one sentence per line, a blank line between documents."""
    rng = np.random.default_rng(seed)
    documents = ["\n".join(rng.choice(SENTENCES, size=6)) for _ in range(num_documents)]
    path.write_text("\n\n".join(documents) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def demo_like_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("demo_like")
    corpus = write_corpus(tmp_path / "corpus.txt")
    bert_config = write_tiny_bert_config(tmp_path / "bert_config.json")
    data_dir = tmp_path / "data"
    config_path = tmp_path / "demo_like.yaml"
    config_path.write_text(
        f"""
model: {{bert_config: {bert_config}, vocab_size: 128}}
data:
  train_files: {data_dir}/pretraining-00000-of-00002.tfrecord
  eval_files: {data_dir}/pretraining-00001-of-00002.tfrecord
  max_seq_length: 16
  max_predictions_per_seq: 3
  dynamic_masking: true
  shuffle_buffer: 64
  create: {{corpus: {corpus}, vocab_size: 128, dupe_factor: 2, num_shards: 2, num_workers: 1}}
schedule: {{peak_learning_rate: 2.0e-2, warmup_steps: 1, total_steps: 4}}
train:
  {{global_batch_size: 16, micro_batch_size: 4, log_every_steps: 2, summary_every_steps: 2,
   export_saved_model: false}}
runtime: {{model_dir: {tmp_path / "model"}}}
"""
    )
    config = trainer.load_config(str(config_path))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    return config, trainer.train(config, strategy=strategy), data_dir


def test_the_data_is_created_on_first_use(demo_like_run):
    config, result, data_dir = demo_like_run
    meta = data.read_meta(str(data_dir))
    assert meta["vocab_size"] == 128
    assert (meta["max_seq_length"], meta["max_predictions_per_seq"]) == (16, 3)
    assert meta["num_shards"] == 2
    assert result.step == 4


def test_the_run_ends_with_a_held_out_evaluation_and_its_baseline(demo_like_run):
    _, result, _ = demo_like_run
    metrics = result.eval_metrics
    assert metrics["sequences"] > 0
    assert 0.0 < metrics["masked_lm_majority_accuracy"] < 1.0
    assert 0.0 <= metrics["masked_lm_accuracy"] <= 1.0
    assert os.path.isdir(os.path.join(os.path.dirname(result.export_dir), "eval"))


def test_running_again_neither_recreates_the_data_nor_trains_past_the_end(demo_like_run):
    config, result, data_dir = demo_like_run
    meta_time = os.path.getmtime(data_dir / "meta.json")
    again = trainer.train(config, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert again.step == result.step
    assert os.path.getmtime(data_dir / "meta.json") == meta_time
    assert again.eval_metrics["masked_lm_accuracy"] == pytest.approx(
        result.eval_metrics["masked_lm_accuracy"]
    )


def test_resuming_with_dynamic_masking_reads_on_with_the_same_masks(demo_like_run, tmp_path):
    config, result, _ = demo_like_run
    resumed_config = dataclasses.replace(
        config, runtime=dataclasses.replace(config.runtime, model_dir=str(tmp_path / "resumed"))
    )
    stopped = dataclasses.replace(resumed_config, train=dataclasses.replace(config.train, max_steps=2))
    trainer.train(stopped, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    resumed = trainer.train(resumed_config, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert resumed.step == result.step
    expected = tf.train.load_checkpoint(os.path.join(result.export_dir, "bert_model.ckpt"))
    actual = tf.train.load_checkpoint(os.path.join(resumed.export_dir, "bert_model.ckpt"))
    for name in expected.get_variable_to_shape_map():
        np.testing.assert_array_equal(actual.get_tensor(name), expected.get_tensor(name), err_msg=name)
