"""The demo path: the Makefile's data step and configs/demo.yaml agree, and a demo-like run (data made
first, as `make demo` does) trains and evaluates on held-out shards against the most-frequent-token
baseline; without its data a run stops with one line naming the command that makes it."""

import dataclasses
import fnmatch
import os
import pathlib
import re
import shlex

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import write_tiny_bert_config

import data
import trainer
from data.create_pretraining_data import CreationConfig, create_pretraining_data, parse_command_line
from trainer.evaluation import majority_baseline

ROOT = pathlib.Path(__file__).resolve().parents[2]


def makefile_demo_data_command():
    """The CreationConfig of the Makefile's demo-data step, with its make variables filled in."""
    makefile = re.sub(r"\\\n\s*", " ", (ROOT / "Makefile").read_text())  # continued lines joined
    variables = dict(re.findall(r"^(\w+) := (.*)$", makefile, re.MULTILINE))
    (command,) = re.findall(r"^\t\$\(PY\) -m data\.create_pretraining_data (.*)$", makefile, re.MULTILINE)
    command = re.sub(r"\$\((\w+)\)", lambda match: variables[match.group(1)], command)
    config, beam_args = parse_command_line(shlex.split(command))
    assert beam_args is None
    return config


def test_the_demo_reaches_a_large_batch_by_accumulation_on_one_cpu():
    config = trainer.load_config("demo.yaml")
    plan = trainer.plan_batches(config.train.global_batch_size, config.train.micro_batch_size, num_replicas=1)
    assert plan.accumulation_steps >= 8
    assert config.runtime.strategy == "one_device"
    assert config.runtime.model_dir.startswith("runs/demo/")


def test_the_demo_trains_and_evaluates_on_disjoint_shards_of_the_data_the_makefile_makes():
    config = trainer.load_config("demo.yaml")
    create = makefile_demo_data_command()
    create.validate()
    assert create.input == "embedded" and create.learn_vocab
    assert config.model.vocab_size == create.vocab_size
    assert (config.data.max_seq_length, config.data.max_predictions_per_seq) == (
        create.max_seq_length,
        create.max_predictions_per_seq,
    )
    shards = [
        os.path.join(create.output_dir, data.shard_file_name(create.shard_prefix, i, create.num_shards))
        for i in range(create.num_shards)
    ]
    train = [path for path in shards if any(fnmatch.fnmatch(path, p) for p in config.data.train_files)]
    held_out = [path for path in shards if any(fnmatch.fnmatch(path, p) for p in config.data.eval_files)]
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
schedule: {{peak_learning_rate: 2.0e-2, warmup_steps: 1, total_steps: 4}}
train:
  {{global_batch_size: 16, micro_batch_size: 4, log_every_steps: 2, summary_every_steps: 2,
   export_saved_model: false}}
runtime: {{model_dir: {tmp_path / "model"}}}
"""
    )
    config = trainer.load_config(str(config_path))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(data.DataConfigError) as missing:
        trainer.train(config, strategy=strategy)
    create_pretraining_data(
        CreationConfig(input=corpus, output_dir=str(data_dir), learn_vocab=True, vocab_size=128,
                       max_seq_length=16, max_predictions_per_seq=3, dupe_factor=2, num_shards=2,
                       num_workers=1, quiet=True)
    )  # fmt: skip
    return config, trainer.train(config, strategy=strategy), data_dir, str(missing.value)


def test_a_run_without_its_data_names_the_command_that_makes_it(demo_like_run):
    config, _, _, missing = demo_like_run
    assert missing == (
        f"data.train_files: no TFRecord file matches {config.data.train_files[0]} (make the data first: "
        "python -m data.create_pretraining_data; for the demo, make demo-data)"
    )


def test_the_run_trains_on_the_data_made_first(demo_like_run):
    _, result, data_dir, _ = demo_like_run
    meta = data.read_meta(str(data_dir))
    assert meta["vocab_size"] == 128
    assert (meta["max_seq_length"], meta["max_predictions_per_seq"]) == (16, 3)
    assert meta["num_shards"] == 2
    assert result.step == 4


def test_the_run_ends_with_a_held_out_evaluation_and_its_baseline(demo_like_run):
    _, result, _, _ = demo_like_run
    metrics = result.eval_metrics
    assert metrics["sequences"] > 0
    assert 0.0 < metrics["masked_lm_majority_accuracy"] < 1.0
    assert 0.0 <= metrics["masked_lm_accuracy"] <= 1.0
    assert os.path.isdir(os.path.join(os.path.dirname(result.export_dir), "eval"))


def test_running_again_does_not_train_past_the_end(demo_like_run):
    config, result, _, _ = demo_like_run
    again = trainer.train(config, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert again.step == result.step
    assert again.eval_metrics["masked_lm_accuracy"] == pytest.approx(
        result.eval_metrics["masked_lm_accuracy"]
    )


def test_resuming_with_dynamic_masking_reads_on_with_the_same_masks(demo_like_run, tmp_path):
    config, result, _, _ = demo_like_run
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
