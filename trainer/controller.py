"""The controller: calls the device loop (trainer/loop.py) until the last step, and between two calls runs
the periodic actions, for pretraining (trainer/pretraining.py) and fine-tuning (finetune/train.py) alike.

    until the last step:
        preemption check                 SIGTERM, SIGINT or SIGHUP came: save, stop (trainer/preemption.py)
        run the device loop              up to train.steps_per_loop optimizer steps
        NaN guard                        a non-finite loss or gradient norm: stop, saving nothing
        progress line                    every train.log_every_steps
        TensorBoard summaries            every train.summary_every_steps
        checkpoint                       every train.checkpoint_every_steps and at the end
        evaluation (fine-tuning)         every train.eval_every_steps and at the end

A run describes itself to the controller in a `LoopRun`: its counter, intervals, optimizer, loss definition
(the metrics and the progress line's fields: trainer/step.py) and throughput. Pretraining's held-out
evaluation and export run once, after the last step (trainer/pretraining.py).
"""

import dataclasses
import gc
import os
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import logging

import data
from trainer.errors import NonFiniteError, OutOfMemoryError, out_of_memory_message
from trainer.loop import make_device_loop
from trainer.optimizers import loss_scale, trust_ratios
from trainer.plan import BatchPlan
from trainer.preemption import watch_preemption
from trainer.summaries import IntervalMetrics, Summaries, Throughput, progress_line

SUMMARY_DIR_NAME = "train"

# The smallest dynamic loss scale a run accepts: below it the gradients are not finite even unscaled.
MIN_LOSS_SCALE = 1.0


@dataclasses.dataclass
class TrainResult:
    step: int  # optimizer steps done when the run ended
    metrics: dict  # of the last logging interval ({} if this run did no step)
    checkpoint: str | None  # the last checkpoint in model_dir
    export_dir: str | None
    eval_metrics: dict | None = None  # held-out metrics at the end (pretraining: when data.eval_files is set)
    skipped_steps: int = 0  # steps a LossScaleOptimizer skipped in this run (non-finite gradients)
    start_step: int = 0  # the step this run started (or resumed) from


@dataclasses.dataclass
class LoopRun:
    """What the controller reads of a run."""

    step: tf.Variable  # optimizer updates applied, checkpointed; the device loop advances it
    train_steps: int  # the step this run stops at
    train: object  # the config's train section: steps_per_loop, log/summary/checkpoint_every_steps
    batches: BatchPlan
    optimizer: keras.optimizers.Optimizer
    variables: list  # the trainable variables (their LAMB trust ratios go to TensorBoard)
    learning_rate: Callable  # the schedule: step -> learning rate
    loss: object  # the step's loss definition (trainer/step.py)
    throughput: Throughput
    model_dir: str
    chief: bool
    vocab_size: int  # named when the input holds a token id beyond it
    data_files: data.DataFiles | None = None  # the training files, named when one is damaged
    evaluate: Callable | None = None  # step -> metrics: the evaluation action (fine-tuning)
    eval_every_steps: int | None = None  # None: evaluate at the last step only


def crossed(previous, current, every):
    """True when a multiple of `every` lies in (previous, current]."""
    return current // every > previous // every


def train_until_the_end(strategy, run, train_step, inputs, totals, checkpoints):
    """Trains `run` to its last step: `train_step` (trainer/step.py) in the device loop (trainer/loop.py,
    reading `inputs`, a trainer.inputs.DistributedInput, keeping `totals`, a trainer.loop.LoopTotals), called
    by `run_loop` with the preemption watch on. Returns the TrainResult; raises trainer.preemption.Preempted
    when a stop signal came, also during the last call (a checkpoint was saved)."""
    device_loop = make_device_loop(strategy, train_step, inputs, run.step, totals)
    try:
        with watch_preemption(strategy, checkpoints.save) as watch:
            result = run_loop(run, device_loop, checkpoints, watch)
            watch.stop_if_requested(result.step)
    finally:
        # The loop's graph holds the input iterators; freed later, during interpreter shutdown, a tf.data
        # iterator can wait forever for its threads (tensorflow/tensorflow#21277). Free them now.
        del device_loop
        inputs.free()
        gc.collect()
    return result


def run_loop(run, device_loop, checkpoints, watch):
    """Calls `device_loop` until `run.train_steps`, with the periodic actions (see the module docstring)."""
    controller = Controller(run, device_loop, checkpoints, watch)
    logging.info("training from step %d to step %d", controller.current, controller.train_steps)
    while controller.current < controller.train_steps:
        controller.run_device_loop()
        controller.nan_guard()
        if controller.due(run.train.log_every_steps):
            controller.log_progress()
        if controller.due(run.train.summary_every_steps):
            controller.write_summaries()
        if controller.due(run.train.checkpoint_every_steps):
            controller.save_checkpoint()
        if run.evaluate is not None and controller.due(run.eval_every_steps):
            controller.evaluate()
    return controller.result()


class Controller:
    """The state between device-loop calls, and the named actions of `run_loop`."""

    def __init__(self, run, device_loop, checkpoints, watch):
        self.run, self.device_loop, self.checkpoints, self.watch = run, device_loop, checkpoints, watch
        self.train_steps = run.train_steps
        self.start_step = self.previous = self.current = int(run.step.numpy())
        self.log_interval, self.summary_interval = IntervalMetrics(run.loss), IntervalMetrics(run.loss)
        self.metrics, self.last_checkpoint, self.skipped = {}, checkpoints.latest(), 0
        self.eval_metrics = None
        self.summaries = Summaries(os.path.join(run.model_dir, SUMMARY_DIR_NAME), run.chief)
        self.out, self.scale = None, None

    def run_device_loop(self):
        """One call of at most train.steps_per_loop steps (the preemption check comes first)."""
        num_steps = min(self.run.train.steps_per_loop, self.train_steps - self.current)
        self.out = self.call_with_data_errors(num_steps)
        self.previous, self.current = self.current, int(self.run.step.numpy())
        self.scale = loss_scale(self.run.optimizer)
        applied = int(self.out["applied"])
        self.skipped += num_steps - applied
        for interval in (self.log_interval, self.summary_interval):
            interval.add(self.out["sums"], self.out["gradient_norm_sum"], applied, num_steps)

    def call_with_data_errors(self, num_steps):
        """The device loop, with errors of the input turned into messages naming the data, and running out of
        device memory into one naming the micro-batch."""
        run = self.run
        try:
            return self.watch.run(self.device_loop, tf.constant(num_steps), step=self.current)
        except tf.errors.DataLossError as e:
            files = run.data_files.files if run.data_files else []
            raise data.DataConfigError(data.damaged_record_message(e, files)) from None
        except tf.errors.ResourceExhaustedError:
            raise OutOfMemoryError(out_of_memory_message(run.batches)) from None
        except tf.errors.InvalidArgumentError as e:
            message = data.token_id_error(e, run.vocab_size)
            if message is None:
                raise
            raise data.DataConfigError(message) from None

    def nan_guard(self):
        """Stops the run, saving nothing, when an applied step's loss or gradient norm was not finite, or
        when the loss scale fell below MIN_LOSS_SCALE."""
        bad_step, scale = int(self.out["first_non_finite"]), self.scale
        if bad_step == 0 and (scale is None or scale >= MIN_LOSS_SCALE):
            return
        last = self.checkpoints.latest()
        kept = f"the last checkpoint ({last}) is intact" if last else "no checkpoint was written"
        if bad_step:
            raise NonFiniteError(
                f"training diverged at step {bad_step}: the loss or the gradient norm is not finite; stopped "
                f"without saving, {kept}; lower schedule.peak_learning_rate or check the data"
            )
        raise NonFiniteError(
            f"training diverged: the loss scale fell to {scale:g} (the gradients are not finite even "
            f"unscaled); stopped without saving, {kept}; lower schedule.peak_learning_rate or check the data"
        )

    def due(self, every):
        """True when the last call crossed a multiple of `every` (None: never), or reached the last step."""
        crossed_one = every is not None and crossed(self.previous, self.current, every)
        return crossed_one or self.current >= self.train_steps

    def learning_rate(self):
        return float(self.run.learning_rate(self.current - 1))  # of the last update (steps count from 0)

    def interval_metrics(self, interval):
        return self.run.throughput.add_to(interval.result(self.run.batches.global_batch_size))

    def log_progress(self):
        self.metrics = self.interval_metrics(self.log_interval)
        line = progress_line(
            self.current,
            self.train_steps,
            self.metrics,
            self.learning_rate(),
            fields=self.run.loss.progress,
            unit=self.run.throughput.unit,
            loss_scale=self.scale,
        )
        logging.info("%s", line)
        self.log_interval.reset()

    def write_summaries(self):
        values = self.interval_metrics(self.summary_interval)
        values["learning_rate"] = self.learning_rate()
        if self.scale is not None:
            values["loss_scale"] = self.scale
        self.summaries.scalars(self.current, values)
        self.summaries.trust_ratios(self.current, trust_ratios(self.run.optimizer, self.run.variables))
        self.summaries.flush()
        self.summary_interval.reset()

    def save_checkpoint(self):
        self.last_checkpoint = self.checkpoints.save()

    def evaluate(self):
        """The run's evaluation at the current step; a stop signal that came is acted on first (saving)."""
        self.watch.stop_if_requested(self.current)
        self.eval_metrics = self.run.evaluate(self.current)

    def result(self):
        if self.skipped:
            logging.warning(
                "%d step(s) skipped by the loss scaling (non-finite gradients) in this run", self.skipped
            )
        return TrainResult(
            step=self.current,
            metrics=self.metrics,
            checkpoint=self.last_checkpoint,
            export_dir=None,
            eval_metrics=self.eval_metrics,
            skipped_steps=self.skipped,
            start_step=self.start_step,
        )
