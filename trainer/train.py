"""The pretraining run: from a Config to a trained, checkpointed and exported BERT.

strategy ─► plan (accumulation, schedule) ─► in the strategy scope: model, LAMB or AdamW (built), step
         ─► per-host input iterators ─► resume (or init_checkpoint) ─► host loop:
                steps_per_loop optimizer steps per tf.function call, then the checks (non-finite values,
                preemption), logs / summaries / checkpoints
         ─► final checkpoint ─► export (Google BERT format)

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
from trainer.errors import ConfigError, NonFiniteError, OutOfMemoryError, out_of_memory_message
from trainer.evaluate import evaluate
from trainer.export import export_run_model
from trainer.inputs import DistributedInput
from trainer.model import load_bert_config
from trainer.optimizers import log_optimizer, loss_scale, make_optimizer, trust_ratios
from trainer.plan import BatchPlan, SchedulePlan, plan_batches, plan_schedule
from trainer.preemption import watch_preemption
from trainer.step import TrainStep
from trainer.strategy import is_chief, strategy_for
from trainer.summaries import IntervalMetrics, Summaries, progress_line

SUMMARY_DIR_NAME = "train"


@dataclasses.dataclass
class TrainResult:
    step: int  # optimizer steps done when the run ended
    metrics: dict  # of the last logging interval ({} if this run did no step)
    checkpoint: str | None  # the last checkpoint in model_dir
    export_dir: str | None
    eval_metrics: dict | None = None  # held-out metrics at the end, when data.eval_files is set
    skipped_steps: int = 0  # steps a LossScaleOptimizer skipped in this run (non-finite gradients)
    start_step: int = 0  # the step this run started (or resumed) from


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


# The smallest dynamic loss scale a run accepts: below it the gradients are not finite even unscaled.
MIN_LOSS_SCALE = 1.0


def make_host_loop(strategy, train_step, inputs, step):
    """A tf.function running `num_steps` optimizer steps. Returns the sums over the applied steps
    ({"sums": dict of bert.SUM_KEYS, "gradient_norm_sum"}), "applied" (how many updates were applied:
    fewer than num_steps when a LossScaleOptimizer skipped some) and "first_non_finite" (the step number of
    the first applied step whose loss or gradient norm was not finite; 0 when none was).

    `step` counts the applied updates, so it always equals the optimizer's iteration count.
    """

    def replica_step(batch):
        out = train_step(batch)
        sums = tf.stack([out["sums"][name] for name in bert.SUM_KEYS])  # [len(SUM_KEYS)]: one reduction
        return sums, out["gradient_norm"], out["applied"]

    def first_local(value):
        # The norm and the skip decision come from the all-reduced gradient: equal on every replica.
        return strategy.experimental_local_results(value)[0]

    @tf.function
    def host_loop(num_steps):
        sums = tf.zeros([len(bert.SUM_KEYS)])
        gradient_norm_sum = tf.constant(0.0)
        applied_count = tf.constant(0, tf.int64)
        first_non_finite = tf.constant(0, tf.int64)
        for _ in tf.range(num_steps):
            replica_sums, gradient_norm, applied = strategy.run(replica_step, args=(inputs.next(),))
            step_sums = strategy.reduce(tf.distribute.ReduceOp.SUM, replica_sums, axis=None)
            gradient_norm, applied = first_local(gradient_norm), first_local(applied) > 0.0
            step.assign_add(tf.cast(applied, tf.int64))
            loss = bert.pretraining_loss(dict(zip(bert.SUM_KEYS, tf.unstack(step_sums), strict=True)))
            finite = tf.math.is_finite(loss) & tf.math.is_finite(gradient_norm)
            first_non_finite = tf.where(
                (first_non_finite == 0) & applied & ~finite, step.read_value(), first_non_finite
            )
            sums += tf.where(applied, step_sums, 0.0)
            gradient_norm_sum += tf.where(applied, gradient_norm, 0.0)
            applied_count += tf.cast(applied, tf.int64)
        return {
            "sums": dict(zip(bert.SUM_KEYS, tf.unstack(sums), strict=True)),
            "gradient_norm_sum": gradient_norm_sum,
            "applied": applied_count,
            "first_non_finite": first_non_finite,
        }

    return host_loop


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
    data_files: data.DataFiles | None  # the checked training files; None with a custom dataset_fn


def train(config, strategy=None, dataset_fn=None):
    """Trains (or resumes training) as `config` says; returns a TrainResult.

    `strategy` defaults to the one runtime.strategy names; `dataset_fn(input_context, batch_size)` to the
    training TFRecords of data.train_files.

    Raises a UserError (bad config, data or checkpoint; NonFiniteError when the loss or the gradient norm
    is not finite) or Preempted (a SIGTERM, SIGINT or SIGHUP came: a checkpoint was saved).
    """
    if not config.runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if strategy is None:
        strategy = strategy_for(config)
    training = build_training(config, strategy, check_files=dataset_fn is None)
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
        input_checkpoint=inputs.checkpoint,
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
        jit_compile=config.runtime.jit_compile,
    )
    host_loop = make_host_loop(strategy, train_step, inputs, training.step)
    with watch_preemption(strategy, checkpoints.save) as watch:
        result = run_loop(training, host_loop, checkpoints, watch)
        watch.stop_if_requested(result.step)  # a notice during the last steps: no export, no eval
    if training.chief:
        finish(training, result)
    return result


def build_training(config, strategy, check_files=True):
    """Logs the config, plans batches and schedule, checks the data, builds the model,
    the optimizer (built) and the step counter in the strategy's scope."""
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
    log_optimizer(config.optimizer, optimizer, model.trainable_variables)
    return Training(
        config, strategy, chief, batches, schedule, model, optimizer, learning_rate, step, data_files
    )


def crossed(previous, current, every):
    """True when a multiple of `every` lies in (previous, current]."""
    return current // every > previous // every


def run_host_loop(training, host_loop, num_steps, watch, step):
    """One host-loop call, with errors of the input turned into messages naming the data."""
    try:
        return watch.run(host_loop, tf.constant(num_steps), step=step)
    except tf.errors.DataLossError as e:
        files = training.data_files.files if training.data_files else []
        raise data.DataConfigError(data.damaged_record_message(e, files)) from None
    except tf.errors.ResourceExhaustedError:
        raise OutOfMemoryError(out_of_memory_message(training.batches)) from None
    except tf.errors.InvalidArgumentError as e:
        message = data.token_id_error(e, training.model.config.vocab_size)
        if message is None:
            raise
        raise data.DataConfigError(message) from None


def check_finite(training, out, checkpoints, scale):
    """Stops the run, saving nothing, when an applied step's loss or gradient norm was not finite, or when
    the loss scale fell below MIN_LOSS_SCALE."""
    bad_step = int(out["first_non_finite"])
    if bad_step == 0 and (scale is None or scale >= MIN_LOSS_SCALE):
        return
    last = checkpoints.latest()
    kept = f"the last checkpoint ({last}) is intact" if last else "no checkpoint was written"
    if bad_step:
        raise NonFiniteError(
            f"training diverged at step {bad_step}: the loss or the gradient norm is not finite; stopped "
            f"without saving, {kept}; lower schedule.peak_learning_rate or check the data"
        )
    raise NonFiniteError(
        f"training diverged: the loss scale fell to {scale:g} (the gradients are not finite even unscaled); "
        f"stopped without saving, {kept}; lower schedule.peak_learning_rate or check the data"
    )


def run_loop(training, host_loop, checkpoints, watch):
    """Calls the host loop until the last step, with logs, summaries and checkpoints at their intervals."""
    train_config, global_batch = training.config.train, training.batches.global_batch_size
    train_steps = training.schedule.train_steps
    summaries = Summaries(os.path.join(training.config.runtime.model_dir, SUMMARY_DIR_NAME), training.chief)
    current = start_step = int(training.step.numpy())
    logging.info("training from step %d to step %d", current, train_steps)
    log_interval, summary_interval = IntervalMetrics(), IntervalMetrics()
    metrics, last_checkpoint, skipped = {}, checkpoints.latest(), 0
    while current < train_steps:
        num_steps = min(train_config.steps_per_loop, train_steps - current)
        out = run_host_loop(training, host_loop, num_steps, watch, current)
        previous, current = current, int(training.step.numpy())
        scale = loss_scale(training.optimizer)
        check_finite(training, out, checkpoints, scale)
        applied = int(out["applied"])
        skipped += num_steps - applied
        log_interval.add(out["sums"], out["gradient_norm_sum"], applied, num_steps)
        summary_interval.add(out["sums"], out["gradient_norm_sum"], applied, num_steps)
        rate = float(training.learning_rate(current - 1))  # the rate of the last update (steps count from 0)
        finished = current >= train_steps
        if crossed(previous, current, train_config.log_every_steps) or finished:
            metrics = log_interval.result(global_batch)
            logging.info("%s", progress_line(current, train_steps, metrics, rate, scale))
            log_interval.reset()
        if crossed(previous, current, train_config.summary_every_steps) or finished:
            values = {**summary_interval.result(global_batch), "learning_rate": rate}
            if scale is not None:
                values["loss_scale"] = scale
            summaries.scalars(current, values)
            summaries.trust_ratios(
                current, trust_ratios(training.optimizer, training.model.trainable_variables)
            )
            summaries.flush()
            summary_interval.reset()
        if crossed(previous, current, train_config.checkpoint_every_steps) or finished:
            last_checkpoint = checkpoints.save()
    if skipped:
        logging.warning("%d step(s) skipped by the loss scaling (non-finite gradients) in this run", skipped)
    return TrainResult(
        step=current,
        metrics=metrics,
        checkpoint=last_checkpoint,
        export_dir=None,
        skipped_steps=skipped,
        start_step=start_step,
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
