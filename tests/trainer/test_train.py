"""End-to-end tiny runs: the loss goes down, checkpoints and TensorBoard events are written, the export loads
into bert/, a resumed run equals an uninterrupted one, and init_checkpoint loads weights only."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import tiny_config_yaml

import bert
import trainer
from trainer.checkpoints import load_init_checkpoint, restore_model
from trainer.errors import UserError
from trainer.model import load_bert_config


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def exported_weights(export_dir):
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "bert_model.ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def event_values(log_dir):
    """{tag: [(step, value or histogram)]} of the event files in log_dir."""
    values = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                content = value.simple_value if kind == "simple_value" else value.histo
                values.setdefault(value.tag, []).append((event.step, content))
    return values


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 12-step run (4 accumulation steps of 4 sequences on one device) shared by the tests below."""
    tmp_path = tmp_path_factory.mktemp("tiny_run")
    model_dir = str(tmp_path / "run")
    config = trainer.load_config(tiny_config_yaml(tmp_path, model_dir=model_dir, total_steps=12), [])
    result = trainer.train(config, strategy=one_device())
    return config, result, tmp_path


def test_the_loss_goes_down(tiny_run):
    config, result, _ = tiny_run
    losses = [
        value for _, value in sorted(event_values(os.path.join(config.runtime.model_dir, "train"))["loss"])
    ]
    assert len(losses) == 6  # every 2 steps
    assert losses[-1] < losses[0] - 0.1
    assert result.step == 12
    assert result.metrics["masked_lm_accuracy"] > 0.0


def test_checkpoints_are_written_every_n_steps_and_at_the_end(tiny_run):
    config, result, _ = tiny_run
    model_dir = config.runtime.model_dir
    assert result.checkpoint == os.path.join(model_dir, "ckpt-12")
    assert tf.train.get_checkpoint_state(model_dir).all_model_checkpoint_paths == [
        os.path.join(model_dir, f"ckpt-{step}") for step in (4, 8, 12)
    ]
    assert os.path.exists(os.path.join(model_dir, "data", "chief", "data-12.index"))
    # The resolved config is written beside the checkpoints and loads back to the same config.
    assert trainer.load_config(os.path.join(model_dir, "config.yaml")) == config


def test_the_look_ahead_rows_are_saved_with_the_input_position_not_with_the_model(tiny_run):
    config, _, _ = tiny_run
    model_dir = config.runtime.model_dir
    saved = dict(tf.train.list_variables(os.path.join(model_dir, "data", "chief", "data-12")))
    rows = {name: shape for name, shape in saved.items() if name.startswith("lookahead/replicas/0/")}
    assert len(rows) == 7 and all(shape[0] == 16 for shape in rows.values())  # 4 x 4 sequences
    assert saved["lookahead/filled/.ATTRIBUTES/VARIABLE_VALUE"] == []
    # The model checkpoint, which evaluation and export read, holds none of them.
    model_names = [name for name, _ in tf.train.list_variables(os.path.join(model_dir, "ckpt-12"))]
    assert not [name for name in model_names if "lookahead" in name]


def test_tensorboard_gets_the_logged_numbers_and_the_trust_ratios(tiny_run):
    config, _, _ = tiny_run
    values = event_values(os.path.join(config.runtime.model_dir, "train"))
    for tag in [
        "loss",
        "masked_lm_accuracy",
        "next_sentence_accuracy",
        "learning_rate",
        "gradient_norm",
        "sequences_per_second",
        "trust_ratio/min",
        "trust_ratio/median",
        "trust_ratio/max",
        "trust_ratio/histogram",
    ]:
        assert [step for step, _ in values[tag]] == [2, 4, 6, 8, 10, 12], tag
    # The rate of the 2nd update (iteration 1) of a 2-step linear warmup to 2e-2 is 1e-2.
    assert values["learning_rate"][0][1] == pytest.approx(1e-2)
    (_, histogram) = values["trust_ratio/histogram"][-1]
    assert histogram.num == 12  # the kernels and embeddings: the variables LAMB adapts in the tiny model
    assert histogram.min == pytest.approx(values["trust_ratio/min"][-1][1])


def test_the_export_is_a_google_checkpoint_that_bert_loads(tiny_run):
    config, result, _ = tiny_run
    assert sorted(os.listdir(result.export_dir)) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
        "config.json",  # the Hugging Face files: tests/trainer/test_export_huggingface.py
        "model.safetensors",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    exported = bert.BertPretrainingModel(
        bert.BertConfig.from_json_file(f"{result.export_dir}/bert_config.json")
    )
    bert.load_google_checkpoint(exported, os.path.join(result.export_dir, "bert_model.ckpt"))
    trained = bert.BertPretrainingModel(load_bert_config(config.model))
    restore_model(trained, config.runtime.model_dir)
    for a, b in zip(exported.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_resuming_after_a_stop_gives_the_weights_of_an_uninterrupted_run(tiny_run, tmp_path):
    config, result, data_dir = tiny_run
    model_dir = str(tmp_path / "resumed")
    path = tiny_config_yaml(data_dir, model_dir=model_dir, total_steps=12)
    first = trainer.train(trainer.load_config(path, ["train.max_steps=6"]), strategy=one_device())
    assert first.step == 6  # stopped mid-way (between two checkpoint intervals: a checkpoint at the stop)
    second = trainer.train(trainer.load_config(path, []), strategy=one_device())
    assert second.step == 12
    uninterrupted, resumed = exported_weights(result.export_dir), exported_weights(second.export_dir)
    assert uninterrupted.keys() == resumed.keys()
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)


def test_init_checkpoint_loads_the_weights_of_a_model_dir_or_of_a_google_export(tiny_run):
    config, result, _ = tiny_run
    expected = exported_weights(result.export_dir)
    for source in (config.runtime.model_dir, os.path.join(result.export_dir, "bert_model.ckpt")):
        model = bert.BertPretrainingModel(load_bert_config(config.model))
        load_init_checkpoint(model, source)
        for name, variable in bert.google_variables(model).items():
            np.testing.assert_array_equal(variable.numpy(), expected[name], err_msg=name)


def test_init_checkpoint_of_another_model_size_is_a_user_error(tiny_run, tmp_path):
    config, result, _ = tiny_run
    other = bert.BertPretrainingModel(
        bert.BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    for source in (config.runtime.model_dir, result.export_dir):
        with pytest.raises(UserError, match="model.init_checkpoint: cannot load"):
            load_init_checkpoint(other, source)
    with pytest.raises(UserError, match="model.init_checkpoint: no checkpoint at"):
        load_init_checkpoint(other, str(tmp_path / "nothing"))


def test_a_run_with_init_checkpoint_starts_a_fresh_optimizer_from_the_loaded_weights(tiny_run, tmp_path):
    config, result, data_dir = tiny_run
    path = tiny_config_yaml(data_dir, model_dir=str(tmp_path / "phase2"), total_steps=12)
    overrides = [f"model.init_checkpoint={config.runtime.model_dir}", "train.max_steps=2"]
    second = trainer.train(trainer.load_config(path, overrides), strategy=one_device())
    assert second.step == 2  # a fresh step counter
    first_losses = event_values(os.path.join(config.runtime.model_dir, "train"))["loss"]
    # Starting from the trained weights, the first logged loss is the trained model's, not a fresh one's.
    assert second.metrics["loss"] < first_losses[0][1] - 0.1


def test_an_export_to_another_filesystem_is_copied_complete(tmp_path):
    model = bert.BertPretrainingModel(
        bert.BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"t{i}" for i in range(10)) + "\n")
    export_dir = trainer.export_model(model, "ram://exported_model", str(vocab))
    assert export_dir == "ram://exported_model/export"
    local = tmp_path / "copy"
    for directory, _, names in tf.io.gfile.walk(export_dir):
        target = local / directory[len(export_dir) :].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            tf.io.gfile.copy(f"{directory}/{name}", str(target / name))
    loaded = bert.BertPretrainingModel(bert.BertConfig.from_json_file(str(local / "bert_config.json")))
    bert.load_google_checkpoint(loaded, str(local / "bert_model.ckpt"))
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (local / "vocab.txt").read_text() == vocab.read_text()
    serving = tf.saved_model.load(str(local / "saved_model")).signatures["serving_default"]
    ids = tf.constant([[2, 5, 3]], tf.int32)
    served = serving(input_ids=ids, input_mask=tf.ones_like(ids), segment_ids=tf.zeros_like(ids))
    expected = model.encoder(
        {"input_ids": ids, "input_mask": tf.ones_like(ids), "segment_ids": tf.zeros_like(ids)}
    )
    np.testing.assert_allclose(served["pooled_output"], expected["pooled_output"], rtol=0, atol=1e-6)


def test_several_steps_per_host_loop_call_train_the_same_model(tiny_run, tmp_path):
    config, result, data_dir = tiny_run
    path = tiny_config_yaml(data_dir, model_dir=str(tmp_path / "run"), total_steps=12)
    other = trainer.train(trainer.load_config(path, ["train.steps_per_loop=2"]), strategy=one_device())
    assert other.step == 12
    expected, weights = exported_weights(result.export_dir), exported_weights(other.export_dir)
    for name, value in expected.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


def test_the_xla_compiled_step_trains_the_same_model(tiny_run, tmp_path):
    # Without dropout: XLA draws other random bits for the dropout masks.
    _, _, data_dir = tiny_run
    results = []
    for jit_compile in ("false", "true"):
        path = tiny_config_yaml(data_dir, model_dir=str(tmp_path / jit_compile), total_steps=4, dropout=0.0)
        config = trainer.load_config(path, [f"runtime.jit_compile={jit_compile}"])
        results.append(exported_weights(trainer.train(config, strategy=one_device()).export_dir))
    for name, value in results[0].items():
        np.testing.assert_allclose(results[1][name], value, rtol=0, atol=1e-5, err_msg=name)


def test_a_run_with_adamw_trains_without_trust_ratios(tiny_run, tmp_path):
    _, _, data_dir = tiny_run
    path = tiny_config_yaml(data_dir, model_dir=str(tmp_path / "adamw"), total_steps=8)
    overrides = ["optimizer.name=adamw", "schedule.peak_learning_rate=1e-2"]
    result = trainer.train(trainer.load_config(path, overrides), strategy=one_device())
    values = event_values(str(tmp_path / "adamw" / "train"))
    losses = [value for _, value in sorted(values["loss"])]
    assert result.step == 8 and losses[-1] < losses[0] - 0.1
    assert not [tag for tag in values if tag.startswith("trust_ratio")]
    # AdamW keeps two moments per trainable variable (LAMB also keeps a trust ratio: three).
    names = tf.train.load_checkpoint(result.checkpoint).get_variable_to_shape_map()
    slots = [name for name in names if name.startswith("optimizer/_variables/")]
    trainable = load_bert_config(trainer.load_config(path).model)
    model = bert.BertPretrainingModel(trainable)
    assert len(slots) == 2 * len(model.trainable_variables)


def test_mixed_bfloat16_keeps_float32_weights_and_optimizer_state(tiny_run, tmp_path):
    _, _, data_dir = tiny_run
    path = tiny_config_yaml(data_dir, model_dir=str(tmp_path / "bf16"), total_steps=4)
    result = trainer.train(
        trainer.load_config(path, ["runtime.mixed_precision=mixed_bfloat16"]), strategy=one_device()
    )
    assert result.step == 4 and np.isfinite(result.metrics["loss"])
    dtypes = tf.train.load_checkpoint(result.checkpoint).get_variable_to_dtype_map()
    floats = {name: dtype for name, dtype in dtypes.items() if dtype.is_floating}
    assert floats and set(floats.values()) == {tf.float32}


def float16_run(data_dir, model_dir, *overrides):
    path = tiny_config_yaml(data_dir, model_dir=model_dir, total_steps=8)
    # 2^24 is too large a start for float16 gradients: the first steps overflow and are skipped.
    fp16 = ["runtime.mixed_precision=mixed_float16", f"runtime.initial_loss_scale={2.0**24}"]
    return trainer.train(trainer.load_config(path, fp16 + list(overrides)), strategy=one_device())


@pytest.fixture(scope="module")
def float16_result(tiny_run, tmp_path_factory):
    _, _, data_dir = tiny_run
    return float16_run(data_dir, str(tmp_path_factory.mktemp("fp16") / "run"))


def test_mixed_float16_skips_overflowing_steps_and_keeps_float32_state(float16_result):
    result = float16_result
    assert result.step == 8 and np.isfinite(result.metrics["loss"])
    reader = tf.train.load_checkpoint(result.checkpoint)
    # Skipped steps are not optimizer steps: the step counter equals the updates LAMB applied.
    assert reader.get_tensor("optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 8
    assert result.skipped_steps >= 1
    # The scale, in the checkpoint, was halved once per skipped step (no growth within 2000 steps).
    scale = reader.get_tensor("optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE")
    assert scale == 2.0**24 / 2**result.skipped_steps
    # Weights, moments, trust ratios and the scale are float32; only the computation is float16.
    floats = {name: dtype for name, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating}
    assert floats and set(floats.values()) == {tf.float32}
    assert len([name for name in floats if name.startswith("optimizer/inner_optimizer/_variables/")]) == 90


def test_mixed_float16_resumes_with_its_loss_scale(float16_result, tiny_run, tmp_path):
    _, _, data_dir = tiny_run
    model_dir = str(tmp_path / "resumed")
    first = float16_run(data_dir, model_dir, "train.max_steps=4")
    second = float16_run(data_dir, model_dir)
    assert (first.step, second.step) == (4, 8)
    assert first.skipped_steps + second.skipped_steps == float16_result.skipped_steps
    expected, resumed = exported_weights(float16_result.export_dir), exported_weights(second.export_dir)
    for name, value in expected.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
