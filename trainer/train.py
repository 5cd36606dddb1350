"""The pretraining run: from a Config to a trained, checkpointed and exported BERT.

strategy ─► plan (accumulation, schedule) ─► in the strategy scope: model, LAMB (built), step counter
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
import lamb
from trainer import config as config_lib
from trainer.checkpoints import Checkpoints, load_init_checkpoint
from trainer.errors import ConfigError, UserError
from trainer.export import export_model, find_vocab_file
from trainer.inputs import DistributedInput
from trainer.plan import plan_batches, plan_schedule
from trainer.step import TrainStep
from trainer.strategy import is_chief, make_strategy
from trainer.summaries import IntervalMetrics, Summaries, progress_line

BERT_SIZES_DIR = config_lib.CONFIG_DIR / "bert"
SUMMARY_DIR_NAME = "train"


@dataclasses.dataclass
class TrainResult:
    step: int  # optimizer steps done when the run ended
    metrics: dict  # of the last logging interval ({} if this run did no step)
    checkpoint: str | None  # the last checkpoint in model_dir
    export_dir: str | None


def load_bert_config(model_config):
    """The BertConfig of `model.bert_config` (a size name or a path), with `model.vocab_size` applied."""
    name = model_config.bert_config
    path = BERT_SIZES_DIR / f"{name}.json" if os.sep not in name and not name.endswith(".json") else name
    if not os.path.isfile(path):
        sizes = ", ".join(sorted(p.stem for p in BERT_SIZES_DIR.glob("*.json")))
        raise ConfigError(
            f"model.bert_config: no file {path} (a size name is one of {sizes}, or give a path)"
        )
    try:
        bert_config = bert.BertConfig.from_json_file(str(path))
        if model_config.vocab_size is not None:
            bert_config = dataclasses.replace(bert_config, vocab_size=model_config.vocab_size)
    except ValueError as e:
        raise ConfigError(f"model.bert_config: {e}") from None
    return bert_config


def make_optimizer(optimizer_config, schedule):
    return lamb.LAMB(
        learning_rate=schedule,
        beta_1=optimizer_config.beta_1,
        beta_2=optimizer_config.beta_2,
        epsilon=optimizer_config.epsilon,
        weight_decay=optimizer_config.weight_decay,
        exclude_from_weight_decay=optimizer_config.exclude_from_weight_decay,
        exclude_from_layer_adaptation=optimizer_config.exclude_from_layer_adaptation,
        bias_correction=optimizer_config.bias_correction,
        trust_ratio_bounds=optimizer_config.trust_ratio_bounds,
    )


def model_dtype_policy(mixed_precision):
    if mixed_precision == "mixed_float16":
        raise UserError(
            "runtime.mixed_precision: mixed_float16 needs dynamic loss scaling, which this version does not "
            "have yet; use mixed_bfloat16 or float32"
        )
    return mixed_precision


def make_dataset_fn(config, vocab_size):
    """dataset_fn(input_context, batch_size) for DistributedInput: the training TFRecords of data/."""
    data_config = config.data
    patterns = [pattern.strip() for pattern in data_config.train_files.split(",") if pattern.strip()]

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


def log_variable_groups(model, optimizer):
    variables = model.trainable_variables
    decayed = sum(optimizer.applies_weight_decay(v) for v in variables)
    adapted = sum(optimizer.applies_layer_adaptation(v) for v in variables)
    logging.info(
        "model: %d trainable variables, %d parameters; weight decay on %d variables, trust ratio on %d",
        len(variables),
        sum(int(tf.size(v)) for v in variables),
        decayed,
        adapted,
    )


def adapted_trust_ratios(optimizer, model):
    """The last update's trust ratios of the variables LAMB adapts (the excluded ones are always 1)."""
    adapted = {v.path for v in model.trainable_variables if optimizer.applies_layer_adaptation(v)}
    return {path: float(ratio) for path, ratio in optimizer.trust_ratios().items() if path in adapted}


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


def train(config, strategy=None, dataset_fn=None):
    """Trains (or resumes training) as `config` says; returns a TrainResult.

    `strategy` defaults to the one runtime.strategy names; `dataset_fn(input_context, batch_size)` to the
    training TFRecords of data.train_files.
    """
    model_dir = config.runtime.model_dir
    if not model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    if strategy is None:
        strategy = make_strategy(config.runtime.strategy, config.runtime.tpu, config.runtime.num_gpus)
    chief = is_chief(strategy)
    tf.io.gfile.makedirs(model_dir)
    logging.info("config:\n  %s", "\n  ".join(config_lib.format_config(config)))
    if chief:
        write_config(config, model_dir)

    bert_config = load_bert_config(config.model)
    batches = plan_batches(
        config.train.global_batch_size,
        config.train.micro_batch_size,
        strategy.num_replicas_in_sync,
        num_workers=max(1, strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)),
    )
    schedule = plan_schedule(config.schedule, config.train)
    logging.info("batches: %s", batches.describe())
    for line in schedule.describe():
        logging.info("%s", line)
    policy = model_dtype_policy(config.runtime.mixed_precision)

    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = bert.BertPretrainingModel(bert_config, dtype=policy)
        learning_rate = schedule.make_schedule()
        optimizer = make_optimizer(config.optimizer, learning_rate)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="step",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
    log_variable_groups(model, optimizer)

    inputs = DistributedInput(
        strategy, dataset_fn or make_dataset_fn(config, bert_config.vocab_size), batches.replica_batch_size
    )
    checkpoints = Checkpoints(
        model_dir,
        strategy,
        model=model,
        optimizer=optimizer,
        step=step,
        input_checkpoint=inputs.checkpoint,
        keep=config.train.keep_checkpoints,
    )
    if checkpoints.restore_latest() is None and config.model.init_checkpoint:
        load_init_checkpoint(model, config.model.init_checkpoint)

    train_step = TrainStep(
        model,
        optimizer,
        global_batch_size=batches.global_batch_size,
        accumulation_steps=batches.accumulation_steps,
        clip_global_norm=config.optimizer.clip_global_norm,
        jit_compile=config.runtime.jit_compile,
    )
    host_loop = make_host_loop(strategy, train_step, inputs, step)
    summaries = Summaries(os.path.join(model_dir, SUMMARY_DIR_NAME), enabled=chief)
    result = run_loop(
        config.train,
        schedule.train_steps,
        batches,
        host_loop,
        step,
        learning_rate,
        checkpoints,
        summaries,
        trust_ratios=lambda: adapted_trust_ratios(optimizer, model),
    )

    if chief:
        vocab_file = find_vocab_file(config.data.vocab_file, config.data.train_files)
        result.export_dir = export_model(model, model_dir, vocab_file)
    return result


def run_loop(
    train_config,
    train_steps,
    batches,
    host_loop,
    step,
    learning_rate,
    checkpoints,
    summaries,
    *,
    trust_ratios,
):
    """Calls the host loop until train_steps, with logs, summaries and checkpoints at their intervals."""
    current = int(step.numpy())
    logging.info("training from step %d to step %d", current, train_steps)
    interval, summary_interval = IntervalMetrics(), IntervalMetrics()
    metrics = {}
    last_checkpoint = checkpoints.latest()
    while current < train_steps:
        num_steps = min(train_config.steps_per_loop, train_steps - current)
        sums, gradient_norm_sum = host_loop(tf.constant(num_steps))
        current = int(step.numpy())
        interval.add(sums, gradient_norm_sum, num_steps)
        summary_interval.add(sums, gradient_norm_sum, num_steps)
        rate = float(learning_rate(current - 1))  # the rate of the last update (step numbers start at 0)
        finished = current >= train_steps
        if current % train_config.log_every_steps == 0 or finished:
            metrics = interval.result(batches.global_batch_size)
            logging.info("%s", progress_line(current, train_steps, metrics, rate))
            interval.reset()
        if current % train_config.summary_every_steps == 0 or finished:
            summary_metrics = summary_interval.result(batches.global_batch_size)
            summaries.scalars(current, {**summary_metrics, "learning_rate": rate})
            summaries.trust_ratios(current, trust_ratios())
            summaries.flush()
            summary_interval.reset()
        if current % train_config.checkpoint_every_steps == 0 or finished:
            last_checkpoint = checkpoints.save() or last_checkpoint
    return TrainResult(step=current, metrics=metrics, checkpoint=last_checkpoint, export_dir=None)
