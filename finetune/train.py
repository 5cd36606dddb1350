"""The fine-tuning run: from a FinetuneConfig to a fine-tuned, checkpointed and evaluated model.

strategy ─► tokenizer, task features ─► plan (accumulation, schedule) ─► in the strategy scope: BERT, task
head, AdamW or LAMB, step counter, loop totals ─► per-host input iterators ─► resume from model_dir (or
init_checkpoint) ─► pretraining's controller (trainer/controller.py) calls pretraining's device loop
(trainer/loop.py: steps_per_loop steps of trainer/step.py's TrainStep per call, with the task's loss
definition) and runs the periodic actions between calls: preemption check, NaN guard, progress line,
TensorBoard summaries, checkpoint, evaluation ─► final checkpoint and evaluation.

The example order is a function of (train.seed, epoch) alone: the batch of step s is examples
[s x B, (s + 1) x B) of that order, and each input host reads its consecutive share of every step's batch.
The input iterators are checkpointed with the model (trainer/checkpoints.py), so a resumed run reads exactly
the batches an uninterrupted one would.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import bert
import data
from finetune.tasks import concatenate_outputs, make_task, model_inputs, num_examples
from trainer import typed_yaml
from trainer.checkpoints import Checkpoints, load_init_checkpoint, resolve_init_checkpoint, restore_model
from trainer.controller import LoopRun, train_until_the_end
from trainer.errors import ConfigError, UserError
from trainer.inputs import DistributedInput
from trainer.loop import LoopTotals
from trainer.model import load_bert_config
from trainer.optimizers import log_optimizer, make_optimizer
from trainer.plan import BatchPlan, SchedulePlan, plan_batches
from trainer.pretraining import compiles_the_step, write_config
from trainer.step import TrainStep
from trainer.strategy import is_chief, make_strategy
from trainer.summaries import Throughput, log_peak_flops, peak_flops

RESULTS_FILE_NAME = "eval_results.json"
TOKENIZER_CONFIG_FILE_NAME = "tokenizer_config.json"


@dataclasses.dataclass
class FinetuneResult:
    step: int
    total_steps: int
    train_loss: float | None  # mean loss of the last logging interval
    eval_metrics: dict
    checkpoint: str | None


# ---------------------------------------------------------------------------------------------------------
# The model's files: bert_config.json, vocab.txt and lower-casing beside init_checkpoint unless given.


def _beside_init_checkpoint(model_config, file_name):
    """`file_name` in the directory of init_checkpoint (or in its export/ subdirectory), else None."""
    if not model_config.init_checkpoint:
        return None
    prefix = resolve_init_checkpoint(model_config.init_checkpoint)
    directory = os.path.dirname(prefix)
    for candidate in (os.path.join(directory, file_name), os.path.join(directory, "export", file_name)):
        if tf.io.gfile.exists(candidate):
            return candidate
    return None


def resolve_bert_config(model_config):
    if model_config.bert_config:
        return load_bert_config(model_config)
    path = _beside_init_checkpoint(model_config, bert.CONFIG_FILE_NAME)
    if path is None:
        raise ConfigError(
            f"model.bert_config: null, and no {bert.CONFIG_FILE_NAME} beside {model_config.init_checkpoint}"
        )
    return load_bert_config(dataclasses.replace(model_config, bert_config=path))


def resolve_tokenizer(model_config):
    """The WordPiece tokenizer of model.vocab_file (else the vocab.txt beside init_checkpoint), lower-casing
    as model.do_lower_case says, else as tokenizer_config.json beside the vocab says, else lower-cased."""
    vocab_file = model_config.vocab_file or _beside_init_checkpoint(model_config, "vocab.txt")
    if vocab_file is None:
        raise ConfigError(f"model.vocab_file: null, and no vocab.txt beside {model_config.init_checkpoint}")
    try:
        vocab = data.load_vocab(vocab_file)
    except ValueError as e:
        raise ConfigError(f"model.vocab_file: {e}") from None
    do_lower_case = model_config.do_lower_case
    if do_lower_case is None:
        tokenizer_config = os.path.join(os.path.dirname(vocab_file), TOKENIZER_CONFIG_FILE_NAME)
        do_lower_case = True
        if os.path.isfile(tokenizer_config):
            with open(tokenizer_config) as f:
                do_lower_case = bool(json.load(f).get("do_lower_case", True))
    logging.info("vocabulary %s (%d tokens), do_lower_case %s", vocab_file, len(vocab), do_lower_case)
    return data.WordPieceTokenizer(vocab, do_lower_case)


# ---------------------------------------------------------------------------------------------------------
# Plan, data, model


def plan_steps(config, count):
    """(total steps, warmup steps) of Google's recipe: int(examples / batch x epochs), a proportion warm."""
    total = int(count / config.train.batch_size * config.schedule.epochs)
    if total < 1:
        raise ConfigError(
            f"schedule.epochs: {config.schedule.epochs} epoch(s) of {count} examples at train.batch_size "
            f"{config.train.batch_size} is no step"
        )
    return total, int(total * config.schedule.warmup_proportion)


def plan_schedule(config, count):
    """The learning-rate schedule of the run: warmup, then power decay to 0 at the end of the epochs."""
    total, warmup = plan_steps(config, count)
    return SchedulePlan(
        peak_learning_rate=config.schedule.peak_learning_rate,
        warmup_steps=warmup,
        total_steps=total,
        power=config.schedule.power,
        end_learning_rate=0.0,
        train_steps=min(total, config.train.max_steps or total),
    )


def plan_finetune_batches(train, strategy):
    """Pretraining's batch plan for train.batch_size; train.micro_batch_size null: a replica's whole share."""
    replicas = strategy.num_replicas_in_sync
    micro_batch_size = train.micro_batch_size
    if micro_batch_size is None:
        if train.batch_size % replicas:
            raise ConfigError(
                f"train.batch_size: expected a multiple of the {replicas} replicas, got {train.batch_size}"
            )
        micro_batch_size = train.batch_size // replicas
    num_workers = replicas // len(strategy.extended.worker_devices)
    return plan_batches(train.batch_size, micro_batch_size, replicas, num_workers, batch_key="batch_size")


def example_order(count, seed, num_examples_needed):
    """The example indices of the whole run: epoch e is a permutation drawn from (seed, e)."""
    epochs = math.ceil(num_examples_needed / count)
    return np.concatenate([np.random.default_rng([seed, e]).permutation(count) for e in range(epochs)])


def make_dataset_fn(features, batch_size, seed, steps):
    """dataset_fn(input_context, host_batch_size) for trainer.inputs.DistributedInput: `steps` batches of
    `batch_size` examples in the run's order, each input host reading its consecutive share of each."""
    order = example_order(num_examples(features), seed, steps * batch_size)[: steps * batch_size]
    order = order.astype(np.int32).reshape(steps, batch_size)  # [steps, B]: the batch of each step

    def dataset_fn(input_context, host_batch_size):
        first = input_context.input_pipeline_id * host_batch_size
        rows = order[:, first : first + host_batch_size]  # [steps, host batch]
        table = {name: tf.constant(value) for name, value in features.items()}
        # Repeated: the input's look-ahead reads one batch past the last step (trainer/inputs.py), unused.
        dataset = tf.data.Dataset.from_tensor_slices(rows).repeat()
        return dataset.map(lambda indices: {name: tf.gather(t, indices) for name, t in table.items()})

    return dataset_fn


def build(config, task, strategy):
    """In the strategy scope: the pretraining model (whose encoder the task model holds; init_checkpoint
    loads into it) and the task model."""
    bert_config = resolve_bert_config(config.model)
    vocab_size = len(task.tokenizer.vocab)
    if vocab_size > bert_config.vocab_size:
        raise ConfigError(
            f"model.vocab_file: {vocab_size} tokens, more than the model's vocab_size "
            f"({bert_config.vocab_size})"
        )
    with strategy.scope():
        pretraining = bert.BertPretrainingModel(bert_config, dtype=config.runtime.mixed_precision)
        model = task.make_model(pretraining.encoder)
    pretraining.encoder.trainable = not config.model.freeze_encoder  # frozen: not in trainable_variables
    return pretraining, model


def flops_per_example(config, bert_config, task):
    """Forward + backward matmul FLOPs of one training example (bert/flops.py): the encoder's (forward only
    when it is frozen: no gradient flows into it) and the task head's."""
    length = config.task.max_seq_length
    encoder_forward = bert.model_flops_per_sequence(bert_config, length, 0, next_sentence=False) // 3
    encoder = encoder_forward if config.model.freeze_encoder else 3 * encoder_forward
    return encoder + 3 * task.head_flops(bert_config.hidden_size, length)


def make_throughput(config, bert_config, task, strategy):
    """examples/s, tokens/s and model FLOP utilisation of the run (logged once)."""
    flops = flops_per_example(config, bert_config, task)
    peak, how = peak_flops(strategy)
    logging.info("model FLOPs per example (forward + backward matmuls): %.4g", flops)
    log_peak_flops(peak, how)
    return Throughput(config.task.max_seq_length, flops, peak, unit="examples")


def predict(model, features, batch_size):
    """The model's outputs (numpy) on every example of `features`, in order."""
    inputs = model_inputs(features)
    count = num_examples(features)
    call = tf.function(lambda batch: model(batch, training=False))
    outputs = []
    for start in range(0, count, batch_size):
        batch = {name: value[start : start + batch_size] for name, value in inputs.items()}
        size = len(batch["input_ids"])
        padded = {
            name: np.pad(v, [(0, batch_size - size)] + [(0, 0)] * (v.ndim - 1)) for name, v in batch.items()
        }
        result = call(padded)  # every batch padded to one shape: one trace
        outputs.append(tf.nest.map_structure(lambda t, size=size: t.numpy()[:size], result))
    return concatenate_outputs(outputs)


# ---------------------------------------------------------------------------------------------------------
# The run


class Run:
    """The task and the model of a fine-tuning run, and its evaluation."""

    def __init__(self, config, strategy):
        self.config = config
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.model_dir = config.runtime.model_dir
        self.task = make_task(config.task, resolve_tokenizer(config.model))
        self.pretraining, self.model = build(config, self.task, strategy)

    def evaluate(self, step):
        started = time.time()
        outputs = predict(self.model, self.task.eval_features(), self.config.train.eval_batch_size)
        metrics = self.task.evaluate(outputs)
        logging.info(
            "eval at step %d on %d examples (%.0f s): %s",
            step,
            num_examples(self.task.eval_features()),
            time.time() - started,
            "  ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
        )
        if self.chief:
            _append_results(os.path.join(self.model_dir, RESULTS_FILE_NAME), step, metrics)
        return metrics


def _append_results(path, step, metrics):
    """model_dir/eval_results.json: {step: metrics}, rewritten atomically."""
    results = {}
    if os.path.isfile(path):
        with open(path) as f:
            results = json.load(f)
    results[str(step)] = metrics
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(temporary, path)


@dataclasses.dataclass
class Training:
    """What a fine-tuning run builds before its first step, beside its task and model (Run)."""

    schedule: SchedulePlan
    batches: BatchPlan
    learning_rate: keras.optimizers.schedules.LearningRateSchedule
    optimizer: keras.optimizers.Optimizer  # AdamW or LAMB (in a LossScaleOptimizer under mixed_float16)
    step: tf.Variable  # optimizer updates applied; checkpointed with the model and the optimizer
    totals: LoopTotals  # the device loop's running totals of the task's sums


def build_training(config, run, count, strategy):
    """Plans the schedule and the batches (logged), builds the optimizer, the step counter and the loop's
    totals in the strategy's scope."""
    schedule = plan_schedule(config, count)
    batches = plan_finetune_batches(config.train, strategy)
    logging.info(
        "%s: %d training examples, %g epoch(s) = %d steps, warmup %d; lr %g, power-%g decay to 0; this run "
        "stops at step %d",
        config.task.name, count, config.schedule.epochs, schedule.total_steps, schedule.warmup_steps,
        schedule.peak_learning_rate, schedule.power, schedule.train_steps,
    )  # fmt: skip
    logging.info("batches: %s", batches.describe())
    runtime, variables = config.runtime, run.model.trainable_variables
    with strategy.scope():
        learning_rate = schedule.make_schedule()
        optimizer = make_optimizer(
            config.optimizer,
            learning_rate,
            variables,
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
        totals = LoopTotals(run.task.loss.sum_keys)
    log_optimizer(config.optimizer, optimizer, variables)
    return Training(schedule, batches, learning_rate, optimizer, step, totals)


def restore_or_initialise(config, run, checkpoints):
    """Resumes from the latest checkpoint of model_dir, else loads model.init_checkpoint into the encoder."""
    if checkpoints.restore_latest() is not None:
        return
    if config.model.init_checkpoint:
        load_init_checkpoint(run.pretraining, config.model.init_checkpoint)
    else:
        logging.info("no model.init_checkpoint: the encoder starts from random weights")


def loop_run(config, run, training, strategy):
    """What the controller reads of this run (trainer/controller.py): the task's loss and evaluation."""
    return LoopRun(
        step=training.step,
        train_steps=training.schedule.train_steps,
        train=config.train,
        batches=training.batches,
        optimizer=training.optimizer,
        variables=run.model.trainable_variables,
        learning_rate=training.learning_rate,
        loss=run.task.loss,
        throughput=make_throughput(config, run.pretraining.config, run.task, strategy),
        model_dir=config.runtime.model_dir,
        chief=run.chief,
        vocab_size=run.pretraining.config.vocab_size,
        evaluate=run.evaluate,
        eval_every_steps=config.train.eval_every_steps,
    )


def finetune(config, strategy=None):
    """Fine-tunes (or resumes fine-tuning) as `config` says; returns a FinetuneResult.

    Raises a UserError (bad config, data or checkpoint; NonFiniteError when the loss or the gradient norm
    is not finite) or trainer.Preempted (a SIGTERM, SIGINT or SIGHUP came: a checkpoint was saved).
    """
    runtime, train = config.runtime, config.train
    if not runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    strategy = strategy or make_strategy(runtime.strategy, runtime.tpu, runtime.num_gpus)
    keras.utils.set_random_seed(train.seed)
    run = Run(config, strategy)
    train_features = run.task.train_features()
    for line in typed_yaml.format_config(config):  # once the inputs have passed their checks
        logging.info("config %s", line)
    training = build_training(config, run, num_examples(train_features), strategy)
    dataset_fn = make_dataset_fn(train_features, train.batch_size, train.seed, training.schedule.total_steps)
    inputs = DistributedInput(strategy, dataset_fn, training.batches.replica_batch_size)
    checkpoints = Checkpoints(
        runtime.model_dir,
        strategy,
        model=run.model,
        optimizer=training.optimizer,
        step=training.step,
        inputs=inputs,
        keep=train.keep_checkpoints,
    )
    restore_or_initialise(config, run, checkpoints)
    if run.chief:  # written once the data and the checkpoints have passed their checks
        write_config(config, runtime.model_dir)

    train_step = TrainStep(
        run.model,
        training.optimizer,
        global_batch_size=training.batches.global_batch_size,
        accumulation_steps=training.batches.accumulation_steps,
        clip_global_norm=config.optimizer.clip_global_norm,
        loss=run.task.loss,
        jit_compile=compiles_the_step(strategy, runtime.jit_compile),
    )
    run_for_controller = loop_run(config, run, training, strategy)
    result = train_until_the_end(
        strategy, run_for_controller, train_step, inputs, training.totals, checkpoints
    )
    eval_metrics = result.eval_metrics
    if eval_metrics is None:  # resumed at the last step: nothing trained, evaluated once
        eval_metrics = run.evaluate(result.step)
    total_steps = training.schedule.total_steps
    return FinetuneResult(
        result.step, total_steps, result.metrics.get("loss"), eval_metrics, checkpoints.latest()
    )


def evaluate_checkpoint(config, strategy=None):
    """Evaluates runtime.checkpoint (a name in model_dir or a prefix; else the latest) of a fine-tuning
    run."""
    runtime = config.runtime
    if not runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    strategy = strategy or make_strategy(runtime.strategy, runtime.tpu, runtime.num_gpus)
    run = Run(config, strategy)
    _, step = restore_model(run.model, runtime.model_dir, runtime.checkpoint)
    return run.evaluate(step)


MODES = ("train", "eval")


def run(config, mode="train", strategy=None):
    if mode == "train":
        return finetune(config, strategy)
    if mode == "eval":
        return evaluate_checkpoint(config, strategy)
    raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
