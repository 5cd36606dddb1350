"""--mode=eval and --mode=export on the checkpoints of a tiny run.

Eval is checked against Google's metric definitions written out here in numpy (weighted masked-LM loss and
accuracy, mean next-sentence loss and accuracy) over every held-out record; export against the Keras model
restored from the same checkpoint.
"""

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import PREDICTIONS, SEQ_LENGTH, tiny_config_yaml

import bert
import data
import trainer
from trainer.checkpoints import MODEL_KEY, model_variables
from trainer.evaluation import Evaluator
from trainer.model import load_bert_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """8 steps with checkpoints at 4 and 8; the training data doubles as the held-out data here."""
    tmp_path = tmp_path_factory.mktemp("eval_export")
    path = tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "run"), total_steps=8)
    overrides = [f"data.eval_files={tmp_path / 'data' / 'tiny-00001-of-00002.tfrecord'}"]
    config = trainer.load_config(path, overrides)
    trainer.train(config, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    return config, tmp_path


def with_changes(config, **sections):
    """`config` with some keys changed: with_changes(config, runtime={"checkpoint": "ckpt-4"})."""
    changes = {name: dataclasses.replace(getattr(config, name), **keys) for name, keys in sections.items()}
    return dataclasses.replace(config, **changes)


def model_at(config, checkpoint):
    """A float32 model holding the weights of `checkpoint` (read with tf.train.Checkpoint directly)."""
    model = bert.BertPretrainingModel(load_bert_config(config.model))
    tf.train.Checkpoint(**{MODEL_KEY: model_variables(model)}).read(checkpoint).expect_partial()
    return model


def googles_metrics(model, files):
    """Google's run_pretraining.py metric_fn over every record, in numpy float64."""
    features = next(iter(data.pretraining_dataset(files, 10_000, SEQ_LENGTH, PREDICTIONS, is_training=False)))
    outputs = model(features, training=False)
    log_probs = tf.nn.log_softmax(tf.cast(outputs["masked_lm_logits"], tf.float64)).numpy()  # [B, P, V]
    ids, weights = features["masked_lm_ids"].numpy(), features["masked_lm_weights"].numpy().astype(np.float64)
    nll = -np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]  # [B, P]
    correct = (log_probs.argmax(-1) == ids).astype(np.float64)
    nsp_log_probs = tf.nn.log_softmax(tf.cast(outputs["next_sentence_logits"], tf.float64)).numpy()  # [B, 2]
    labels = features["next_sentence_labels"].numpy()
    nsp_nll = -nsp_log_probs[np.arange(len(labels)), labels]
    return {
        "masked_lm_loss": np.sum(weights * nll) / np.sum(weights),
        "masked_lm_accuracy": np.sum(weights * correct) / np.sum(weights),
        "next_sentence_loss": np.mean(nsp_nll),
        "next_sentence_accuracy": np.mean(nsp_log_probs.argmax(-1) == labels),
        "sequences": len(labels),
    }


def eval_events(model_dir):
    steps = {}
    for path in (pathlib.Path(model_dir) / "eval").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(event.step, {})[value.tag] = value.simple_value
    return steps


def test_eval_gives_googles_metrics_for_the_chosen_checkpoint(tiny_run):
    config, _ = tiny_run
    model_dir = config.runtime.model_dir
    metrics = trainer.evaluate(with_changes(config, runtime={"checkpoint": "ckpt-4"}))
    expected = googles_metrics(model_at(config, f"{model_dir}/ckpt-4"), config.data.eval_files)
    assert metrics["sequences"] == expected["sequences"] == 256
    for name in ("masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss", "next_sentence_accuracy"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-5), name
    assert metrics["loss"] == pytest.approx(
        metrics["masked_lm_loss"] + metrics["next_sentence_loss"], rel=1e-5
    )
    # Written to TensorBoard at the checkpoint's step.
    assert eval_events(model_dir)[4]["masked_lm_accuracy"] == pytest.approx(metrics["masked_lm_accuracy"])


def test_eval_under_a_mirrored_strategy_sums_the_replicas_to_googles_metrics(tiny_run):
    """3 replicas of micro-batch 4: batches of 12 sequences, the last of the 256 split unevenly (4 left)."""
    config, _ = tiny_run
    model_dir = config.runtime.model_dir
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1", "/cpu:2"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    evaluator = Evaluator(config, strategy)
    # Built in the strategy's scope: mirrored variables.
    assert isinstance(evaluator.model.weights[0].value, tf.distribute.DistributedValues)
    metrics, step = evaluator.evaluate("ckpt-8")
    expected = googles_metrics(model_at(config, f"{model_dir}/ckpt-8"), config.data.eval_files)
    assert step == 8 and metrics["sequences"] == expected["sequences"] == 256
    for name in ("masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss", "next_sentence_accuracy"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-5), name


def copy_checkpoint(source_dir, target_dir, step):
    """Makes checkpoint `step` of source_dir appear in target_dir as a run does: files, then the list."""
    for path in pathlib.Path(source_dir).glob(f"ckpt-{step}.*"):
        shutil.copy(path, pathlib.Path(target_dir) / path.name)
    tf.compat.v1.train.update_checkpoint_state(
        str(target_dir), str(pathlib.Path(target_dir) / f"ckpt-{step}")
    )


def test_eval_follows_the_checkpoints_of_a_run_until_its_final_step(tiny_run, tmp_path):
    config, _ = tiny_run
    followed = tmp_path / "followed"
    followed.mkdir()
    copy_checkpoint(config.runtime.model_dir, followed, 4)

    def training_goes_on():
        time.sleep(2.0)
        copy_checkpoint(config.runtime.model_dir, followed, 8)

    writer = threading.Thread(target=training_goes_on)
    writer.start()
    try:
        results = trainer.follow_checkpoints(
            with_changes(config, runtime={"model_dir": str(followed)}, eval={"follow_timeout_seconds": 60}),
            poll_seconds=0.2,
        )
    finally:
        writer.join()
    assert list(results) == [4, 8]  # both evaluated, then it stopped at the final step (8)
    assert results[8]["masked_lm_accuracy"] == pytest.approx(eval_events(followed)[8]["masked_lm_accuracy"])


def test_following_stops_when_no_new_checkpoint_comes(tiny_run, tmp_path):
    config, _ = tiny_run
    copy_checkpoint(config.runtime.model_dir, tmp_path, 4)
    start = time.monotonic()
    results = trainer.follow_checkpoints(
        with_changes(config, runtime={"model_dir": str(tmp_path)}, eval={"follow_timeout_seconds": 1}),
        poll_seconds=0.2,
    )
    assert list(results) == [4]
    assert time.monotonic() - start < 30


def test_export_of_a_chosen_checkpoint_from_the_command_line(tiny_run, tmp_path):
    config, data_dir = tiny_run
    model_dir = tmp_path / "run"
    shutil.copytree(config.runtime.model_dir, model_dir)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_pretraining.py"),
            f"--config={data_dir / 'tiny.yaml'}",
            "--mode=export",
            "--checkpoint=ckpt-4",
            "--set=train.export_saved_model=true",
            f"--model_dir={model_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    export_dir = model_dir / "export"
    assert sorted(os.listdir(export_dir)) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
        "config.json",
        "model.safetensors",
        "saved_model",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    expected = model_at(config, str(model_dir / "ckpt-4"))
    # The Google-format checkpoint holds ckpt-4's weights.
    exported = bert.BertPretrainingModel(bert.BertConfig.from_json_file(str(export_dir / "bert_config.json")))
    bert.load_google_checkpoint(exported, str(export_dir / "bert_model.ckpt"))
    for a, b in zip(exported.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The SavedModel serves the encoder of ckpt-4.
    serving = tf.saved_model.load(str(export_dir / "saved_model")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    features = {
        "input_ids": tf.constant(rng.integers(0, 64, (3, 11)), tf.int32),
        "input_mask": tf.constant(np.arange(11)[None, :] < [[11], [7], [4]], tf.int32),
        "segment_ids": tf.constant(np.arange(11)[None, :] >= 5, tf.int32),
    }
    served = serving(**features)
    keras_outputs = expected.encoder(features, training=False)
    for name in ("sequence_output", "pooled_output"):
        assert served[name].dtype == tf.float32
        np.testing.assert_allclose(served[name].numpy(), keras_outputs[name].numpy(), rtol=0, atol=1e-6)
