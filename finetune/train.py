"""The fine-tuning run: from a FinetuneConfig to a fine-tuned, checkpointed and evaluated model.

strategy ─► tokenizer, task features ─► in the strategy scope: BERT (from init_checkpoint), task head,
AdamW or LAMB, step ─► resume from model_dir if it holds a checkpoint ─► host loop: steps_per_loop optimizer
steps per tf.function call (each step under strategy.run: one all-reduce of the gradient, global-norm clip,
update), then the named actions: log, checkpoint, evaluate ─► final checkpoint and evaluation.

The example order is a function of (train.seed, epoch) alone, and the batch of step s is examples
[s x B, (s + 1) x B) of that order, so a resumed run reads exactly the batches an uninterrupted one would:
the step counter in the checkpoint is the data position.
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
import lamb
from finetune.tasks import concatenate_outputs, make_task, model_inputs, num_examples
from trainer import typed_yaml
from trainer.checkpoints import load_init_checkpoint, resolve_init_checkpoint
from trainer.errors import ConfigError, NonFiniteError, UserError
from trainer.model import load_bert_config
from trainer.optimizers import log_optimizer, make_optimizer
from trainer.step import dense, is_loss_scaling, use_reduced_gradients
from trainer.strategy import is_chief, make_strategy, task_name

CHECKPOINT_NAME = "ckpt"
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


def example_order(count, seed, num_examples_needed):
    """The example indices of the whole run: epoch e is a permutation drawn from (seed, e)."""
    epochs = math.ceil(num_examples_needed / count)
    return np.concatenate([np.random.default_rng([seed, e]).permutation(count) for e in range(epochs)])


def training_dataset(features, batch_size, seed, start_step, end_step):
    """Batches of steps [start_step, end_step) (see the module docstring)."""
    order = example_order(num_examples(features), seed, end_step * batch_size)
    order = order[start_step * batch_size : end_step * batch_size].astype(np.int32)
    table = {name: tf.constant(value) for name, value in features.items()}
    dataset = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)
    return dataset.map(lambda indices: {name: tf.gather(t, indices) for name, t in table.items()})


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


# ---------------------------------------------------------------------------------------------------------
# The compiled loop


def make_train_loop(
    strategy, model, optimizer, loss_sum_fn, global_batch_size, clip_global_norm, jit_compile
):
    """A tf.function running `num_steps` optimizer steps; returns the summed loss of their examples."""
    use_reduced_gradients(optimizer)
    loss_scaling = is_loss_scaling(optimizer)
    variables = model.trainable_variables

    def gradients(batch, scale):
        with tf.GradientTape() as tape:
            loss_sum = loss_sum_fn(model(batch, training=True), batch)
            loss = loss_sum / global_batch_size * scale  # this replica's share of the global mean
        grads = tape.gradient(loss, variables)
        # A variable the task does not use (the pooler, for SQuAD) has no gradient: zero.
        grads = [
            tf.zeros(v.shape, v.dtype) if g is None else dense(g, v)
            for g, v in zip(grads, variables, strict=True)
        ]
        return grads, loss_sum

    if jit_compile:
        gradients = tf.function(gradients, jit_compile=True)

    def replica_step(batch):
        scale = tf.identity(optimizer.dynamic_scale) if loss_scaling else tf.constant(1.0)
        grads, loss_sum = gradients(batch, scale)
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if loss_scaling:
            grads = [g / scale for g in grads]
        if clip_global_norm:
            grads, _ = tf.clip_by_global_norm(grads, clip_global_norm)
        if loss_scaling:
            grads = [
                g * scale for g in grads
            ]  # the LossScaleOptimizer divides by S (and skips if not finite)
        optimizer.apply(grads, variables)
        return loss_sum

    @tf.function
    def train_loop(iterator, num_steps):
        total = tf.constant(0.0)
        for _ in tf.range(num_steps):
            losses = strategy.run(replica_step, args=(next(iterator),))
            total += strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return total

    return train_loop


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
    """The state of a fine-tuning run and its named actions (log, checkpoint, evaluate)."""

    def __init__(self, config, strategy):
        self.config = config
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.model_dir = config.runtime.model_dir
        self.task = make_task(config.task, resolve_tokenizer(config.model))
        self.pretraining, self.model = build(config, self.task, strategy)

    def checkpoint_manager(self, optimizer=None, step=None):
        items = {"model_variables": list(self.model.variables)}
        if optimizer is not None:
            items.update(optimizer=optimizer, step=step)
        directory = (
            self.model_dir
            if self.chief
            else os.path.join(self.model_dir, f".scratch-{task_name(self.strategy)}")
        )
        return tf.train.CheckpointManager(
            tf.train.Checkpoint(**items),
            directory,
            max_to_keep=self.config.train.keep_checkpoints,
            step_counter=step,
            checkpoint_name=CHECKPOINT_NAME,
        )

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


def _write_config(config, model_dir):
    path = os.path.join(model_dir, "config.yaml")
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        f.write(typed_yaml.to_yaml(config))
    os.replace(temporary, path)


def finetune(config, strategy=None):
    """Fine-tunes (or resumes fine-tuning) as `config` says; returns a FinetuneResult."""
    runtime, train = config.runtime, config.train
    if not runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    strategy = strategy or make_strategy(runtime.strategy, runtime.tpu, runtime.num_gpus)
    keras.utils.set_random_seed(train.seed)
    run = Run(config, strategy)
    train_features = run.task.train_features()
    for line in typed_yaml.format_config(config):  # once the inputs have passed their checks
        logging.info("config %s", line)
    count = num_examples(train_features)
    total_steps, warmup_steps = plan_steps(config, count)
    last_step = min(total_steps, train.max_steps or total_steps)
    replicas = strategy.num_replicas_in_sync
    if train.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size: expected a multiple of the {replicas} replicas, got {train.batch_size}"
        )
    logging.info(
        "%s: %d training examples, batch %d (%d replica(s)), %g epoch(s) = %d steps, warmup %d; lr %g, "
        "power-%g decay to 0; this run stops at step %d",
        config.task.name, count, train.batch_size, replicas, config.schedule.epochs, total_steps,
        warmup_steps, config.schedule.peak_learning_rate, config.schedule.power, last_step,
    )  # fmt: skip

    with strategy.scope():
        schedule = lamb.WarmupPolynomialDecay(
            config.schedule.peak_learning_rate, total_steps, warmup_steps, config.schedule.power
        )
        variables = run.model.trainable_variables
        optimizer = make_optimizer(
            config.optimizer,
            schedule,
            variables,
            mixed_precision=runtime.mixed_precision,
            initial_loss_scale=runtime.initial_loss_scale,
            loss_scale_growth_steps=runtime.loss_scale_growth_steps,
        )
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    log_optimizer(config.optimizer, optimizer, variables)
    manager = run.checkpoint_manager(optimizer, step)
    if tf.train.latest_checkpoint(run.model_dir):
        path = tf.train.latest_checkpoint(run.model_dir)
        try:
            manager.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise UserError(
                f"{path} does not fit this run (another task or model?): {str(e).splitlines()[0]}"
            ) from None
        logging.info("resumed from %s at step %d", path, int(step.numpy()))
    elif config.model.init_checkpoint:
        load_init_checkpoint(run.pretraining, config.model.init_checkpoint)
    else:
        logging.info("no model.init_checkpoint: the encoder starts from random weights")
    if run.chief:
        os.makedirs(run.model_dir, exist_ok=True)
        _write_config(config, run.model_dir)

    start_step = int(step.numpy())
    dataset = training_dataset(train_features, train.batch_size, train.seed, start_step, last_step)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    train_loop = make_train_loop(
        strategy, run.model, optimizer, run.task.loss_sum, train.batch_size,
        config.optimizer.clip_global_norm, runtime.jit_compile,
    )  # fmt: skip
    loss_sum, loss_steps, started = 0.0, 0, time.time()
    train_loss, metrics = None, {}
    while int(step.numpy()) < last_step:
        num_steps = min(train.steps_per_loop, last_step - int(step.numpy()))
        loss_sum += float(train_loop(iterator, tf.constant(num_steps)))
        step.assign_add(num_steps)
        loss_steps += num_steps
        current = int(step.numpy())
        if not math.isfinite(loss_sum):
            raise NonFiniteError(
                f"the training loss is not finite at step {current}; lower schedule.peak_learning_rate"
            )
        if current % train.log_every_steps == 0 or current == last_step:
            train_loss = loss_sum / (loss_steps * train.batch_size)
            logging.info(
                "step %d/%d  loss %.4f  lr %.3e  %.1f examples/s",
                current, last_step, train_loss, float(schedule(current)),
                loss_steps * train.batch_size / (time.time() - started),
            )  # fmt: skip
            loss_sum, loss_steps, started = 0.0, 0, time.time()
        if current % train.checkpoint_every_steps == 0 or current == last_step:
            manager.save(checkpoint_number=current)
        if (train.eval_every_steps and current % train.eval_every_steps == 0) or current == last_step:
            metrics = run.evaluate(current)
    if start_step >= last_step:
        metrics = run.evaluate(start_step)
    return FinetuneResult(
        int(step.numpy()), total_steps, train_loss, metrics, tf.train.latest_checkpoint(run.model_dir)
    )


def evaluate_checkpoint(config, strategy=None):
    """Evaluates runtime.checkpoint (a name in model_dir or a prefix; else the latest) of a fine-tuning
    run."""
    runtime = config.runtime
    if not runtime.model_dir:
        raise ConfigError("runtime.model_dir: missing (give --model_dir or set runtime.model_dir)")
    strategy = strategy or make_strategy(runtime.strategy, runtime.tpu, runtime.num_gpus)
    run = Run(config, strategy)
    path = tf.train.latest_checkpoint(runtime.model_dir)
    if runtime.checkpoint:
        candidates = [os.path.join(runtime.model_dir, runtime.checkpoint), runtime.checkpoint]
        path = next((p for p in candidates if tf.io.gfile.exists(f"{p}.index")), None)
    if path is None:
        raise UserError(f"runtime.model_dir: no checkpoint {runtime.checkpoint or ''} in {runtime.model_dir}")
    step = tf.Variable(0, dtype=tf.int64)
    status = tf.train.Checkpoint(model_variables=list(run.model.variables), step=step).read(path)
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise UserError(
            f"{path}: not a checkpoint of this task and model: {str(e).splitlines()[0]}"
        ) from None
    return run.evaluate(int(step.numpy()))


MODES = ("train", "eval")


def run(config, mode="train", strategy=None):
    if mode == "train":
        return finetune(config, strategy)
    if mode == "eval":
        return evaluate_checkpoint(config, strategy)
    raise UserError(f"--mode: expected one of {', '.join(MODES)}, got {mode!r}")
