"""Checkpoints: save every N steps and at the end, resume from the latest, start from init_checkpoint.

model_dir/
    ckpt-<step>.index, ckpt-<step>.data-*     model variables, optimizer (moments, iterations, loss scale),
                                              step counter
    checkpoint                                the CheckpointManager's list of the kept ones
    data/<task>/data-<step>.*, checkpoint     the input of each task (one per worker process): its iterators
                                              and the look-ahead rows on its replicas, so a resumed run
                                              reads on from the same position (trainer/inputs.py)

A checkpoint is complete or ignored, whatever moment the process is killed at. TensorFlow writes a
checkpoint's files first and then the `checkpoint` list file (atomically: a temporary file renamed), and
only what that list names is ever restored. The data position of a step is written, with its own list,
before the model checkpoint of that step, and one more data position than model checkpoints is kept, so
the newest listed model checkpoint always has its listed data position, even when the process was killed
between the two saves.

In a multi-worker run every worker takes part in saving (as MultiWorkerMirroredStrategy requires), but only
the chief's copy goes to model_dir; the others write to a scratch directory that is deleted. model_dir must
then be storage all workers share (GCS, NFS).
"""

import os

import tensorflow as tf
from absl import logging

import bert
from trainer.errors import UserError
from trainer.strategy import is_chief, task_name

CHECKPOINT_NAME = "ckpt"
MODEL_KEY = "model_variables"


def model_variables(model):
    """Every variable of the model in creation order (weights, then dropout RNG states), as checkpointed.

    Saving this list instead of the Keras model object makes the checkpoint independent of how the model's
    attributes nest its layers (tf.train.Checkpoint only follows attributes it can track), and it holds the
    dropout RNG states, so a resumed run draws the masks an uninterrupted one would. The order is fixed by
    the architecture; shapes are checked on restore.
    """
    return list(model.variables)


DATA_CHECKPOINT_NAME = "data"


class Checkpoints:
    def __init__(self, model_dir, strategy, *, model, optimizer, step, inputs, keep):
        """`inputs`: the run's trainer.inputs.DistributedInput, whose position is saved beside the model."""
        self.model_dir = model_dir
        self.model = model
        self.step = step
        self.last_saved_step = None
        self.chief = is_chief(strategy)
        self.checkpoint = tf.train.Checkpoint(
            **{MODEL_KEY: model_variables(model)}, optimizer=optimizer, step=step
        )
        directory = model_dir if self.chief else os.path.join(model_dir, f".scratch-{task_name(strategy)}")
        self._scratch = None if self.chief else directory
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=keep, step_counter=step, checkpoint_name=CHECKPOINT_NAME
        )
        self.inputs = inputs
        self.data_manager = tf.train.CheckpointManager(
            inputs.checkpoint,
            os.path.join(model_dir, DATA_CHECKPOINT_NAME, task_name(strategy)),
            max_to_keep=keep + 1,  # see the module docstring
            checkpoint_name=DATA_CHECKPOINT_NAME,
        )

    def latest(self):
        """The prefix of the newest complete checkpoint in model_dir, or None."""
        return tf.train.latest_checkpoint(self.model_dir)

    def restore_latest(self):
        """Restores model, optimizer, step and data position from model_dir; returns the step or None."""
        path = self.latest()
        if path is None:
            return None
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            message = str(e).strip().splitlines()[0]
            raise UserError(
                f"{path} does not fit this run (another model.bert_config, optimizer.name or "
                f"runtime.mixed_precision than the run that wrote it?): {message}"
            ) from None
        step = self.last_saved_step = int(self.step.numpy())
        data_path = os.path.join(self.data_manager.directory, f"{DATA_CHECKPOINT_NAME}-{step}")
        if data_path in self.data_manager.checkpoints:  # listed: complete
            try:
                self.inputs.restore(data_path)
            except ValueError as e:
                raise UserError(
                    f"{data_path}: {e}; delete {self.data_manager.directory} to restart the input from the "
                    "beginning"
                ) from None
            logging.info("resumed from %s at step %d, with the data position of that step", path, step)
        else:
            logging.warning(
                "resumed from %s at step %d, but %s has no data position of that step: the input starts "
                "again from the beginning of its (shuffled) data",
                path,
                step,
                self.data_manager.directory,
            )
        return step

    def save(self):
        """Saves the data position, then model/optimizer/step, at the current step (once per step).

        Returns the path of the model checkpoint in model_dir (written by the chief).
        """
        step = int(self.step.numpy())
        path = os.path.join(self.model_dir, f"{CHECKPOINT_NAME}-{step}")
        if step == self.last_saved_step:
            return path
        self.data_manager.save(checkpoint_number=step)
        self.manager.save(checkpoint_number=step)
        if self._scratch is not None:
            tf.io.gfile.rmtree(self._scratch)
        self.last_saved_step = step
        return path


def is_google_checkpoint(path):
    """True when the checkpoint at prefix `path` holds Google BERT names (bert/embeddings/...)."""
    names = {name for name, _ in tf.train.list_variables(path)}
    return "bert/embeddings/word_embeddings" in names


def resolve_init_checkpoint(path):
    """The prefix `model.init_checkpoint` names: a prefix, a model_dir (its latest) or an export dir."""
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is not None:
            return latest
        exported = os.path.join(path, "bert_model.ckpt")
        if tf.io.gfile.exists(f"{exported}.index"):
            return exported
        raise UserError(f"model.init_checkpoint: {path} is a directory without a checkpoint")
    if not tf.io.gfile.exists(f"{path}.index"):
        raise UserError(f"model.init_checkpoint: no checkpoint at {path} (no {path}.index)")
    return path


def checkpoint_step(prefix):
    """The step counter saved in a checkpoint of this trainer ("?" when it has none)."""
    reader = tf.train.load_checkpoint(prefix)
    key = "step/.ATTRIBUTES/VARIABLE_VALUE"
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else "?"


def load_init_checkpoint(model, path):
    """Loads model weights only from a Google BERT checkpoint or a checkpoint of this trainer."""
    prefix = resolve_init_checkpoint(path)
    try:
        if is_google_checkpoint(prefix):
            bert.load_google_checkpoint(model, prefix)
            kind = "Google BERT checkpoint"
        else:
            status = tf.train.Checkpoint(**{MODEL_KEY: model_variables(model)}).read(prefix)
            status.expect_partial()  # the optimizer and step of that run are not wanted
            status.assert_existing_objects_matched()
            kind = f"trainer checkpoint at step {checkpoint_step(prefix)} (model weights only)"
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        message = str(e).strip().splitlines()[0]
        raise UserError(f"model.init_checkpoint: cannot load {prefix} into this model: {message}") from None
    logging.info("initialised the model from %s, a %s", prefix, kind)
    return prefix


def find_checkpoint(model_dir, checkpoint=None):
    """The checkpoint prefix to read: the latest in `model_dir`, or `checkpoint` (a name in model_dir such
    as "ckpt-2000", or a path prefix)."""
    if checkpoint is None:
        path = tf.train.latest_checkpoint(model_dir)
        if path is None:
            raise UserError(f"runtime.model_dir: no checkpoint in {model_dir}")
        return path
    for path in (os.path.join(model_dir, checkpoint), checkpoint):
        if tf.io.gfile.exists(f"{path}.index"):
            return path
    state = tf.train.get_checkpoint_state(model_dir)
    kept = ", ".join(os.path.basename(p) for p in state.all_model_checkpoint_paths) if state else "none"
    raise UserError(f"runtime.checkpoint: no checkpoint {checkpoint} in {model_dir} (kept there: {kept})")


def restore_model(model, model_dir, checkpoint=None):
    """Loads the model weights of a checkpoint (`find_checkpoint`); returns (its path, its step)."""
    path = find_checkpoint(model_dir, checkpoint)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    status = tf.train.Checkpoint(**{MODEL_KEY: model_variables(model)}, step=step).read(path)
    status.expect_partial()  # the optimizer is not needed
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        message = str(e).strip().splitlines()[0]
        raise UserError(
            f"{path}: not a checkpoint of this model (check model.bert_config): {message}"
        ) from None
    return path, int(step.numpy())
