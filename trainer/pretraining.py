"""The pretraining run: from a Config to a trained, checkpointed and exported BERT.

strategy ─► plan (accumulation, schedule) ─► in the strategy scope: model, LAMB or AdamW (built), step
         ─► per-host input iterators ─► resume (or init_checkpoint) ─► the controller (trainer/controller.py)
            calls the device loop (trainer/loop.py: steps_per_loop optimizer steps per call) and runs the
            periodic actions between calls
         ─► final checkpoint ─► export (Google BERT format, Hugging Face directory), held-out evaluation

Nothing is written to model_dir before the config, the data and init_checkpoint have passed their checks.
"""

import dataclasses
import os

import keras
import tensorflow as tf
from absl import logging

import bert
import data
from trainer import config as config_lib
from trainer import typed_yaml
from trainer.checkpoints import Checkpoints, load_init_checkpoint
from trainer.controller import SUMMARY_DIR_NAME, LoopRun, TrainResult, train_until_the_end
from trainer.errors import ConfigError
from trainer.evaluation import evaluate
from trainer.export import export_run_model
from trainer.inputs import DistributedInput
from trainer.loop import LoopTotals
from trainer.model import load_bert_config
from trainer.optimizers import log_optimizer, make_optimizer
from trainer.plan import BatchPlan, SchedulePlan, plan_batches, plan_schedule
from trainer.step import PRETRAINING_LOSS, TrainStep
from trainer.strategy import is_chief, strategy_for
from trainer.summaries import Throughput, log_peak_flops, peak_flops

__all__ = ["SUMMARY_DIR_NAME", "TrainResult", "Training", "build_training", "make_dataset_fn", "train"]


def make_dataset_fn(config, vocab_size, data_files):
    """dataset_fn(input_context, batch_size) for DistributedInput: the training TFRecords of data/
    (`data_files`, checked by `check_training_data`)."""
    data_config = config.data
    masking = dynamic_masking_config(data_config) if data_config.dynamic_masking else None

    def dataset_fn(input_context, batch_size):
        dataset = data.pretraining_dataset(
            data_files,
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
        return data.with_token_id_check(dataset, vocab_size)

    return dataset_fn


def check_training_data(data_config, vocab_size):
    """The files of data.train_files, checked once before anything is built (data.check_data)."""
    try:
        data_files = data.check_data(
            data_config.train_files,
            data_config.max_seq_length,
            data_config.max_predictions_per_seq,
            vocab_size=vocab_size,
            verify=data_config.verify,
        )
    except data.DataConfigError as e:
        raise data.DataConfigError(f"data.train_files: {e}") from None
    logging.info("checked the %d training files (data.verify: %s)", len(data_files.files), data_config.verify)
    return data_files


def dynamic_masking_config(data_config):
    """The masking settings of data.dynamic_masking: the data's meta.json, or the data.* keys."""
    try:
        config = data.dynamic_masking_config(
            data_config.train_files[0],
            data_config.max_predictions_per_seq,
            masked_lm_prob=data_config.masked_lm_prob,
            whole_word_mask=data_config.whole_word_mask,
            vocab_file=data_config.vocab_file,
        )
    except data.MaskingSettingsError as e:
        keys = " and ".join(f"data.{name}" for name in e.missing)
        raise data.DataConfigError(f"data.dynamic_masking: {e}; set {keys}") from None
    except data.DataConfigError as e:
        raise data.DataConfigError(f"data.dynamic_masking: {e}") from None
    logging.info(
        "dynamic masking: masked_lm_prob %s, whole_word_mask %s, vocabulary of %d tokens",
        config.masked_lm_prob,
        config.whole_word_mask,
        config.vocab_size,
    )
    return config


def write_config(config, model_dir):
    """Writes the resolved config to model_dir/config.yaml (atomically), warning about changed keys."""
    path = os.path.join(model_dir, config_lib.CONFIG_FILE_NAME)
    text = typed_yaml.to_yaml(config)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            try:
                previous = typed_yaml.flatten(typed_yaml.parse_yaml(f.read(), path) or {})
            except ConfigError:
                previous = {}
        current = typed_yaml.flatten(typed_yaml.to_dict(config))
        changed = sorted(
            key for key in current.keys() | previous.keys() if current.get(key) != previous.get(key)
        )
        if changed:
            logging.warning("the config differs from the previous run's in %s: %s", path, ", ".join(changed))
    tf.io.gfile.makedirs(model_dir)
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


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
    step: tf.Variable  # optimizer updates applied; checkpointed with the model and the optimizer
    totals: LoopTotals  # the device loop's running totals
    data_files: data.DataFiles | None  # the checked training files; None with a custom dataset_fn


def train(config, strategy=None, dataset_fn=None):
    """Trains (or resumes training) as `config` says; returns a TrainResult.

    `strategy` defaults to the one runtime.strategy names; `dataset_fn(input_context, batch_size)` to the
    training TFRecords of data.train_files (a dataset_fn yields at least one batch more than the steps:
    the input reads one step ahead, trainer/inputs.py).

    Raises a UserError (bad config, data or checkpoint; NonFiniteError when the loss or the gradient norm
    is not finite) or Preempted (a SIGTERM, SIGINT or SIGHUP came: a checkpoint was saved).
    """
    if not config.runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if strategy is None:
        strategy = strategy_for(config)
    training = build_training(config, strategy, check_files=dataset_fn is None)
    jit_compile = compiles_the_step(strategy, config.runtime.jit_compile)
    vocab_size = training.model.config.vocab_size
    try:
        inputs = DistributedInput(
            strategy,
            dataset_fn or make_dataset_fn(config, vocab_size, training.data_files),
            training.batches.replica_batch_size,
        )
    except data.DataConfigError as e:
        raise data.DataConfigError(f"data.train_files: {e}") from None
    checkpoints = Checkpoints(
        config.runtime.model_dir,
        strategy,
        model=training.model,
        optimizer=training.optimizer,
        step=training.step,
        inputs=inputs,
        keep=config.train.keep_checkpoints,
    )
    if checkpoints.restore_latest() is None and config.model.init_checkpoint:
        load_init_checkpoint(training.model, config.model.init_checkpoint)
    if training.chief:  # written once the data and the checkpoints have passed their checks
        write_config(config, config.runtime.model_dir)

    train_step = TrainStep(
        training.model,
        training.optimizer,
        global_batch_size=training.batches.global_batch_size,
        accumulation_steps=training.batches.accumulation_steps,
        clip_global_norm=config.optimizer.clip_global_norm,
        loss=PRETRAINING_LOSS,
        jit_compile=jit_compile,
    )
    # A stop signal during the last steps raises Preempted here: no export, no evaluation.
    result = train_until_the_end(
        strategy, loop_run(training), train_step, inputs, training.totals, checkpoints
    )
    if training.chief:
        finish(training, result)
    return result


def compiles_the_step(strategy, jit_compile):
    """Whether TrainStep wraps the replica step in one XLA function (runtime.jit_compile).

    Under TPUStrategy the replica function is one XLA program anyway. With several replicas on CPUs or
    GPUs, MirroredStrategy updates the optimizer's step counter (a variable aggregated ONLY_FIRST_REPLICA)
    through `merge_call`, which TensorFlow cannot trace inside a nested XLA function, on GPUs as on CPUs
    (tests/trainer/test_loop.py traces it with the GPU decision forced): refused. Keras disables XLA under
    tf.distribute for the same reason.
    """
    if not jit_compile:
        return False
    if isinstance(strategy, tf.distribute.TPUStrategy):
        logging.info("runtime.jit_compile: on TPUs the whole replica step is one XLA program in any case")
        return False
    if strategy.num_replicas_in_sync > 1:
        kinds = {tf.DeviceSpec.from_string(d).device_type for d in strategy.extended.worker_devices}
        raise ConfigError(
            f"runtime.jit_compile: the whole step compiles as one XLA program on one device and on TPUs, not "
            f"over {strategy.num_replicas_in_sync} {'/'.join(sorted(kinds))} replicas (MirroredStrategy "
            "updates the optimizer's step counter with a merge_call, which XLA cannot hold); set it to false"
        )
    logging.info("runtime.jit_compile: the whole replica step is one XLA program")
    return True


def loop_run(training):
    """What the controller reads of this run (trainer/controller.py)."""
    return LoopRun(
        step=training.step,
        train_steps=training.schedule.train_steps,
        train=training.config.train,
        batches=training.batches,
        optimizer=training.optimizer,
        variables=training.model.trainable_variables,
        learning_rate=training.learning_rate,
        loss=PRETRAINING_LOSS,
        throughput=make_throughput(training),
        model_dir=training.config.runtime.model_dir,
        chief=training.chief,
        vocab_size=training.model.config.vocab_size,
        data_files=training.data_files,
    )


def make_throughput(training):
    """tokens/s and model FLOP utilisation of the run's model and devices (logged once)."""
    data_config = training.config.data
    flops = bert.model_flops_per_sequence(
        training.model.config, data_config.max_seq_length, data_config.max_predictions_per_seq
    )
    peak, how = peak_flops(training.strategy)
    logging.info("model FLOPs per sequence (forward + backward matmuls): %.4g", flops)
    log_peak_flops(peak, how)
    return Throughput(data_config.max_seq_length, flops, peak)


def build_training(config, strategy, check_files=True):
    """Logs the config, plans batches and schedule, checks the data, builds the model, the optimizer (built),
    the step counter and the loop's totals in the strategy's scope."""
    chief = is_chief(strategy)
    logging.info("config:\n  %s", "\n  ".join(typed_yaml.format_config(config)))

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
    bert_config = load_bert_config(config.model)
    data_files = check_training_data(config.data, bert_config.vocab_size) if check_files else None

    keras.utils.set_random_seed(config.train.seed)
    runtime = config.runtime
    with strategy.scope():
        model = bert.BertPretrainingModel(bert_config, dtype=runtime.mixed_precision)
        learning_rate = schedule.make_schedule()
        optimizer = make_optimizer(
            config.optimizer,
            learning_rate,
            model.trainable_variables,
            mixed_precision=runtime.mixed_precision,
            initial_loss_scale=runtime.initial_loss_scale,
            loss_scale_growth_steps=runtime.loss_scale_growth_steps,
        )
        step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        totals = LoopTotals(PRETRAINING_LOSS.sum_keys)
    log_optimizer(config.optimizer, optimizer, model.trainable_variables)
    return Training(
        config, strategy, chief, batches, schedule, model, optimizer, learning_rate, step, totals, data_files
    )


def finish(training, result):
    """The chief's last work: the export, and the held-out evaluation when data.eval_files is set."""
    config = training.config
    result.export_dir = export_run_model(training.model, config)
    if config.data.eval_files:
        result.eval_metrics = evaluate(config, checkpoint=result.checkpoint, strategy=training.strategy)
    model_dir = config.runtime.model_dir
    logging.info(
        "done at step %d: checkpoints in %s, TensorBoard logs in %s (tensorboard --logdir %s), export in %s",
        result.step,
        model_dir,
        os.path.join(model_dir, SUMMARY_DIR_NAME),
        model_dir,
        result.export_dir,
    )
