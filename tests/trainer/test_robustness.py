"""A run survives being stopped: SIGTERM saves and exits cleanly, SIGKILL loses at most the steps since the
last complete checkpoint, and a non-finite loss stops the run without overwriting the last good checkpoint.

The interrupted run is one chain of runs on the same model_dir: a run_pretraining.py process that gets
SIGTERM, two that get SIGKILL at different moments (one as a checkpoint is about to be written), then a run
that finishes (in this process). Each assertion below reads its part of that chain; the final weights must
equal, bit for bit, those of a run that was never interrupted (CPU, dropout on: the dropout RNG state and
the input position resume too).
"""

import dataclasses
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tiny_setup import tiny_config_yaml

import data
import trainer
from trainer.errors import NonFiniteError

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOTAL_STEPS = 30
CHECKPOINT_EVERY = 2

# (signal, the progress line that triggers it, seconds to wait after that line)
INTERRUPTIONS = [
    (signal.SIGTERM, 5, 0.0),
    (signal.SIGKILL, 11, 0.0),  # the line of step 11 is logged just before the step-12 host loop call...
    (signal.SIGKILL, 16, 0.0),  # ...and of step 16 just before its checkpoint is written
]


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def exported_weights(export_dir):
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "bert_model.ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def interruptible_config(tmp_path, model_dir):
    return tiny_config_yaml(
        tmp_path,
        model_dir=model_dir,
        total_steps=TOTAL_STEPS,
        log_every_steps=1,
        checkpoint_every_steps=CHECKPOINT_EVERY,
        keep_checkpoints=2,
    )


def run_until(config_path, stop_signal, trigger_step, delay):
    """Starts run_pretraining.py; sends `stop_signal` `delay` s after it logged step `trigger_step`."""
    command = [
        sys.executable,
        str(ROOT / "run_pretraining.py"),
        f"--config={config_path}",
        "--strategy=one_device",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in process.stderr:  # reading paces the process: it blocks when the pipe is full
            lines.append(line)
            if stop_signal is not None and f" step {trigger_step}/{TOTAL_STEPS} " in line:
                time.sleep(delay)
                process.send_signal(stop_signal)
                break
        lines.extend(process.communicate(timeout=180)[1].splitlines(keepends=True))
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, "".join(lines)


def logged_steps(log):
    return [int(step) for step in re.findall(rf" step (\d+)/{TOTAL_STEPS} ", log)]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The interrupted chain: [(signal, return code, log)] of each stopped process, and the TrainResult of
    the run that finished."""
    tmp_path = tmp_path_factory.mktemp("interrupted")
    config_path = interruptible_config(tmp_path, str(tmp_path / "run"))
    stopped = []
    for stop_signal, trigger_step, delay in INTERRUPTIONS:
        stopped.append((stop_signal, *run_until(config_path, stop_signal, trigger_step, delay)))
    finished = trainer.train(trainer.load_config(config_path), strategy=one_device())
    return tmp_path, stopped, finished


@pytest.fixture(scope="module")
def uninterrupted(chain):
    tmp_path = chain[0]
    config = trainer.load_config(interruptible_config(tmp_path, str(tmp_path / "uninterrupted")))
    return trainer.train(config, strategy=one_device())


def resumed_from(log):
    match = re.search(r"resumed from \S+ at step (\d+), with the data position of that step", log)
    return int(match.group(1)) if match else None


def test_sigterm_saves_a_checkpoint_at_the_current_step_and_exits_cleanly(chain):
    tmp_path, runs, _ = chain
    _, returncode, log = runs[0]
    assert returncode == trainer.PREEMPTED_EXIT_CODE == 143, log[-2000:]
    assert "Traceback" not in log
    stopped_at = logged_steps(log)[-1]
    assert stopped_at >= INTERRUPTIONS[0][1]
    checkpoint = str(tmp_path / "run" / f"ckpt-{stopped_at}")
    assert f"preempted (SIGTERM) at step {stopped_at}: saved {checkpoint}; run the same command again" in log
    # The next process resumes exactly there, input position included.
    assert resumed_from(runs[1][2]) == stopped_at


def test_sigkill_loses_at_most_the_steps_since_the_last_complete_checkpoint(chain):
    _, runs, finished = chain
    next_starts = [resumed_from(log) for _, _, log in runs[2:]] + [finished.start_step]
    for (stop_signal, returncode, log), resumed in zip(runs[1:], next_starts, strict=True):
        assert stop_signal == signal.SIGKILL and returncode == -signal.SIGKILL
        last_logged = logged_steps(log)[-1]
        # The checkpoint of the last logged step may or may not have been complete; the one before was.
        assert resumed is not None and last_logged - CHECKPOINT_EVERY <= resumed <= last_logged, log[-2000:]
    assert finished.step == TOTAL_STEPS


def test_the_interrupted_run_ends_with_the_weights_of_an_uninterrupted_run(chain, uninterrupted):
    _, _, finished = chain
    expected = exported_weights(uninterrupted.export_dir)
    interrupted = exported_weights(finished.export_dir)
    assert interrupted.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(interrupted[name], value, err_msg=name)


def test_a_checkpoint_whose_writing_was_cut_short_is_ignored(tmp_path, caplog):
    # What SIGKILL leaves when it comes while step 6 is being saved: the data position of step 6 is
    # complete, the model checkpoint's files are half-written, the `checkpoint` list still ends at ckpt-4.
    model_dir = tmp_path / "run"
    config = trainer.load_config(
        tiny_config_yaml(tmp_path, model_dir=str(model_dir), checkpoint_every_steps=2, max_steps=6)
    )
    trainer.train(config, strategy=one_device())
    state = tf.train.get_checkpoint_state(str(model_dir))
    tf.compat.v1.train.update_checkpoint_state(
        str(model_dir), str(model_dir / "ckpt-4"), [str(model_dir / "ckpt-2"), str(model_dir / "ckpt-4")]
    )
    assert state.model_checkpoint_path == str(model_dir / "ckpt-6")
    for path in model_dir.glob("ckpt-6.*"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        resumed = trainer.train(
            dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=8)),
            strategy=one_device(),
        )
    assert (resumed.start_step, resumed.step) == (4, 8)
    assert resumed_from(caplog.text) == 4  # with the data position of step 4, kept for this case
    # Written again, complete, at step 6 of the resumed run.
    assert (
        tf.train.load_checkpoint(str(model_dir / "ckpt-6")).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6
    )


# ------------------------------------------------------------------------------------------------------
# Non-finite values


POISONED_STEP = 7  # its batch gets a NaN masked_lm_weight


def poisoned_dataset_fn(config, first=POISONED_STEP, last=POISONED_STEP):
    """The tiny training data, with NaN in the batches of the attempted steps first..last (counted from 1;
    POISONED_STEP alone by default)."""
    data_config = config.data

    def dataset_fn(input_context, batch_size):
        dataset = data.pretraining_dataset(
            data_config.train_files,
            batch_size,
            data_config.max_seq_length,
            data_config.max_predictions_per_seq,
            input_context=input_context,
            seed=data_config.seed,
            shuffle_buffer=data_config.shuffle_buffer,
            cycle_length=data_config.cycle_length,
        )

        def poison(index, batch):
            nan = tf.where((index >= first - 1) & (index <= last - 1), np.nan, 1.0)
            return {**batch, "masked_lm_weights": batch["masked_lm_weights"] * nan}

        return dataset.enumerate().map(poison)

    return dataset_fn


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = trainer.load_config(tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "run"), total_steps=12))
    with pytest.raises(NonFiniteError) as error:
        trainer.train(config, strategy=one_device(), dataset_fn=poisoned_dataset_fn(config))
    message = str(error.value)
    assert "\n" not in message
    assert (
        f"training diverged at step {POISONED_STEP}: the loss or the gradient norm is not finite" in message
    )
    last_good = str(tmp_path / "run" / "ckpt-4")
    assert f"stopped without saving, the last checkpoint ({last_good}) is intact" in message
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == last_good
    # ckpt-4 holds the weights of step 4 of the same run without poison, finite.
    clean_config = dataclasses.replace(
        config, runtime=dataclasses.replace(config.runtime, model_dir=str(tmp_path / "clean"))
    )
    clean_config = dataclasses.replace(clean_config, train=dataclasses.replace(config.train, max_steps=4))
    trainer.train(clean_config, strategy=one_device(), dataset_fn=poisoned_dataset_fn(clean_config))
    kept, clean = (
        tf.train.load_checkpoint(last_good),
        tf.train.load_checkpoint(str(tmp_path / "clean/ckpt-4")),
    )
    for name, dtype in kept.get_variable_to_dtype_map().items():
        if name.startswith("model_variables/") and dtype.is_floating:
            assert np.all(np.isfinite(kept.get_tensor(name))), name
            np.testing.assert_array_equal(kept.get_tensor(name), clean.get_tensor(name), err_msg=name)


def train_events(model_dir):
    """{tag: [(step, value), ...]} of the scalars in model_dir/train."""
    scalars = {}
    for path in sorted((pathlib.Path(model_dir) / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_with_loss_scaling_a_non_finite_step_is_skipped_counted_and_logged(tmp_path, caplog):
    config = trainer.load_config(
        tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "run"), total_steps=12),
        # A small starting scale: no overflow, so the poisoned step is the only one skipped.
        ["runtime.mixed_precision=mixed_float16", "runtime.initial_loss_scale=16"],
    )
    with caplog.at_level("INFO", logger="absl"):  # whatever verbosity an earlier test left
        result = trainer.train(config, strategy=one_device(), dataset_fn=poisoned_dataset_fn(config))
    # The skipped attempt is not a step: 12 updates were applied, in 13 attempts.
    assert result.step == 12 and result.skipped_steps == 1
    assert np.isfinite(result.metrics["loss"])
    reader = tf.train.load_checkpoint(result.checkpoint)
    assert reader.get_tensor("optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE") == 8.0
    assert reader.get_tensor("optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 12
    # Logged: in the progress line of the interval that skipped it, and in a warning at the end.
    assert "1 step(s) skipped by the loss scaling (non-finite gradients) in this run" in caplog.text
    assert "loss_scale 8  skipped 1" in caplog.text
    # In TensorBoard: the skipped steps of each summary interval, and the loss scale.
    events = train_events(config.runtime.model_dir)
    assert sum(value for _, value in events["skipped_steps"]) == 1
    assert dict(events["loss_scale"])[2] == 16 and events["loss_scale"][-1] == (12, 8)


def test_with_loss_scaling_a_run_whose_gradients_stay_non_finite_stops_when_the_scale_falls_below_1(tmp_path):
    config = trainer.load_config(
        tiny_config_yaml(tmp_path, model_dir=str(tmp_path / "run"), total_steps=12, checkpoint_every_steps=2),
        ["runtime.mixed_precision=mixed_float16", "runtime.initial_loss_scale=2"],
    )
    # Every batch from the third on is NaN: the scale halves at each attempt, 2 -> 1 -> 0.5.
    with pytest.raises(NonFiniteError) as error:
        trainer.train(config, strategy=one_device(), dataset_fn=poisoned_dataset_fn(config, 3, 1000))
    last_good = str(tmp_path / "run" / "ckpt-2")
    assert str(error.value) == (
        "training diverged: the loss scale fell to 0.5 (the gradients are not finite even unscaled); stopped "
        f"without saving, the last checkpoint ({last_good}) is intact; lower schedule.peak_learning_rate or "
        "check the data"
    )
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == last_good
