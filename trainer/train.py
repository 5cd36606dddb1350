"""The pretraining run: from a Config to a trained, checkpointed and exported BERT.

strategy ─► plan (accumulation, schedule) ─► in the strategy scope: model, LAMB or AdamW (built), step
         ─► per-host input iterators ─► resume (or init_checkpoint) ─► host loop:
                steps_per_loop optimizer steps per tf.function call, then logs / summaries / checkpoints
         ─► final checkpoint ─► export (Google BERT format)
"""

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

import bert
import data
from trainer import config as config_lib
from trainer.checkpoints import Checkpoints, load_init_checkpoint
from trainer.create_data import ensure_training_data
from trainer.errors import ConfigError
from trainer.evaluate import evaluate
from trainer.export import export_model, find_vocab_file
from trainer.inputs import DistributedInput
from trainer.model import load_bert_config, model_dtype_policy
from trainer.optimizers import log_optimizer, make_optimizer, trust_ratios
from trainer.plan import BatchPlan, SchedulePlan, plan_batches, plan_schedule
from trainer.step import TrainStep
from trainer.strategy import is_chief, make_strategy
from trainer.summaries import IntervalMetrics, Summaries, progress_line

SUMMARY_DIR_NAME = "train"


@dataclasses.dataclass
class TrainResult:
    step: int  # optimizer steps done when the run ended
    metrics: dict  # of the last logging interval ({} if this run did no step)
    checkpoint: str | None  # the last checkpoint in model_dir
    export_dir: str | None
    eval_metrics: dict | None = None  # held-out metrics at the end, when data.eval_files is set


def make_dataset_fn(config, vocab_size):
    """dataset_fn(input_context, batch_size) for DistributedInput: the training TFRecords of data/."""
    data_config = config.data
    patterns = [pattern.strip() for pattern in data_config.train_files.split(",") if pattern.strip()]

    masking = data.masking_config_from_meta(patterns[0]) if data_config.dynamic_masking else None

    def dataset_fn(input_context, batch_size):
        return data.pretraining_dataset(
            patterns,
            batch_size,
            data_config.max_seq_length,
            data_config.max_predictions_per_seq,
            is_training=True,
            input_context=input_context,
            seed=data_config.seed,
            vocab_size=vocab_size,
            shuffle_buffer=data_config.shuffle_buffer,
            cycle_length=data_config.cycle_length,
            dynamic_masking=masking,
        )

    return dataset_fn


def make_host_loop(strategy, train_step, inputs, step):
    """A tf.function running `num_steps` optimizer steps; returns the summed metrics of those steps."""

    def replica_step(batch):
        out = train_step(batch)
        sums = tf.stack([out["sums"][name] for name in bert.SUM_KEYS])  # [len(SUM_KEYS)]: one reduction
        return sums, out["gradient_norm"]

    @tf.function
    def host_loop(num_steps):
        sums = tf.zeros([len(bert.SUM_KEYS)])
        gradient_norm_sum = tf.constant(0.0)
        for _ in tf.range(num_steps):
            replica_sums, gradient_norm = strategy.run(replica_step, args=(inputs.next(),))
            sums += strategy.reduce(tf.distribute.ReduceOp.SUM, replica_sums, axis=None)
            # The norm of the all-reduced gradient is the same on every replica: take this task's first.
            gradient_norm_sum += strategy.experimental_local_results(gradient_norm)[0]
            step.assign_add(1)
        return dict(zip(bert.SUM_KEYS, tf.unstack(sums), strict=True)), gradient_norm_sum

    return host_loop


def write_config(config, model_dir):
    path = os.path.join(model_dir, config_lib.CONFIG_FILE_NAME)
    text = config_lib.to_yaml(config)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            previous = config_lib.flatten(config_lib.parse_yaml(f.read(), path) or {})
        current = config_lib.flatten(config_lib.to_dict(config))
        changed = sorted(
            key for key in current.keys() | previous.keys() if current.get(key) != previous.get(key)
        )
        if changed:
            logging.warning("the config differs from the previous run's in %s: %s", path, ", ".join(changed))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


@dataclasses.dataclass
class Training:
    """Everything a run builds before its first step."""

    config: config_lib.Config
    strategy: tf.distribute.Strategy
    chief: bool
    batches: BatchPlan
    schedule: SchedulePlan
    model: bert.BertPretrainingModel
    optimizer: keras.optimizers.Optimizer  # LAMB or AdamW (in a LossScaleOptimizer under mixed_float16)
    learning_rate: keras.optimizers.schedules.LearningRateSchedule
    step: tf.Variable  # optimizer steps done; checkpointed with the model and the optimizer


def train(config, strategy=None, dataset_fn=None):
    """Trains (or resumes training) as `config` says; returns a TrainResult.

    `strategy` defaults to the one runtime.strategy names; `dataset_fn(input_context, batch_size)` to the
    training TFRecords of data.train_files.
    """
    if not config.runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if strategy is None:
        strategy = make_strategy(config.runtime.strategy, config.runtime.tpu, config.runtime.num_gpus)
    training = build_training(config, strategy)
    try:
        inputs = DistributedInput(
            strategy,
            dataset_fn or make_dataset_fn(config, training.model.config.vocab_size),
            training.batches.replica_batch_size,
        )
    except data.DataConfigError as e:
        raise data.DataConfigError(f"data.train_files: {e}") from None
    if training.chief:  # written once the data has passed its checks
        write_config(config, config.runtime.model_dir)
    checkpoints = Checkpoints(
        config.runtime.model_dir,
        strategy,
        model=training.model,
        optimizer=training.optimizer,
        step=training.step,
        input_checkpoint=inputs.checkpoint,
        keep=config.train.keep_checkpoints,
    )
    if checkpoints.restore_latest() is None and config.model.init_checkpoint:
        load_init_checkpoint(training.model, config.model.init_checkpoint)

    train_step = TrainStep(
        training.model,
        training.optimizer,
        global_batch_size=training.batches.global_batch_size,
        accumulation_steps=training.batches.accumulation_steps,
        clip_global_norm=config.optimizer.clip_global_norm,
        jit_compile=config.runtime.jit_compile,
    )
    host_loop = make_host_loop(strategy, train_step, inputs, training.step)
    result = run_loop(training, host_loop, checkpoints)
    if training.chief:
        finish(training, result)
    return result


def build_training(config, strategy):
    """Logs and writes the config, plans batches and schedule, makes the data if asked, builds the model,
    the optimizer (built) and the step counter in the strategy's scope."""
    chief = is_chief(strategy)
    model_dir = config.runtime.model_dir
    tf.io.gfile.makedirs(model_dir)
    logging.info("config:\n  %s", "\n  ".join(config_lib.format_config(config)))

    num_workers = strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)
    batches = plan_batches(
        config.train.global_batch_size,
        config.train.micro_batch_size,
        strategy.num_replicas_in_sync,
        num_workers,
    )
    schedule = plan_schedule(config.schedule, config.train)
    logging.info("batches: %s", batches.describe())
    for line in schedule.describe():
        logging.info("%s", line)
    policy = model_dtype_policy(config.runtime.mixed_precision)
    bert_config = load_bert_config(config.model)
    ensure_training_data(config, single_worker=num_workers == 1)

    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = bert.BertPretrainingModel(bert_config, dtype=policy)
        learning_rate = schedule.make_schedule()
        optimizer = make_optimizer(config.optimizer, learning_rate, model.trainable_variables)
        step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
    log_optimizer(config.optimizer, optimizer, model.trainable_variables)
    return Training(config, strategy, chief, batches, schedule, model, optimizer, learning_rate, step)


def run_loop(training, host_loop, checkpoints):
    """Calls the host loop until the last step, with logs, summaries and checkpoints at their intervals."""
    train_config, global_batch = training.config.train, training.batches.global_batch_size
    train_steps = training.schedule.train_steps
    summaries = Summaries(os.path.join(training.config.runtime.model_dir, SUMMARY_DIR_NAME), training.chief)
    current = int(training.step.numpy())
    logging.info("training from step %d to step %d", current, train_steps)
    log_interval, summary_interval = IntervalMetrics(), IntervalMetrics()
    metrics, last_checkpoint = {}, checkpoints.latest()
    while current < train_steps:
        num_steps = min(train_config.steps_per_loop, train_steps - current)
        sums, gradient_norm_sum = host_loop(tf.constant(num_steps))
        current = int(training.step.numpy())
        log_interval.add(sums, gradient_norm_sum, num_steps)
        summary_interval.add(sums, gradient_norm_sum, num_steps)
        rate = float(training.learning_rate(current - 1))  # the rate of the last update (steps count from 0)
        finished = current >= train_steps
        if current % train_config.log_every_steps == 0 or finished:
            metrics = log_interval.result(global_batch)
            logging.info("%s", progress_line(current, train_steps, metrics, rate))
            log_interval.reset()
        if current % train_config.summary_every_steps == 0 or finished:
            summaries.scalars(current, {**summary_interval.result(global_batch), "learning_rate": rate})
            ratios = trust_ratios(training.optimizer, training.model.trainable_variables)
            summaries.trust_ratios(current, ratios)
            summaries.flush()
            summary_interval.reset()
        if current % train_config.checkpoint_every_steps == 0 or finished:
            last_checkpoint = checkpoints.save() or last_checkpoint
    return TrainResult(step=current, metrics=metrics, checkpoint=last_checkpoint, export_dir=None)


def finish(training, result):
    """The chief's last work: the export, and the held-out evaluation when data.eval_files is set."""
    config = training.config
    vocab_file = find_vocab_file(config.data.vocab_file, config.data.train_files)
    result.export_dir = export_model(training.model, config.runtime.model_dir, vocab_file)
    if config.data.eval_files:
        result.eval_metrics = evaluate(config)
    model_dir = config.runtime.model_dir
    logging.info(
        "done at step %d: checkpoints in %s, TensorBoard logs in %s (tensorboard --logdir %s), export in %s",
        result.step,
        model_dir,
        os.path.join(model_dir, SUMMARY_DIR_NAME),
        model_dir,
        result.export_dir,
    )
