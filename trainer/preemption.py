"""Preemption: on SIGTERM (a cluster scheduler, Cloud TPU maintenance) the run saves a checkpoint and stops.

The notice is acted on between two calls of the host loop (after at most `train.steps_per_loop` more
steps), never inside one, so the checkpoint holds a whole step. Then `Preempted` is raised;
run_pretraining.py logs it and exits with code 143 (128 + SIGTERM, what schedulers expect of a process
stopped by SIGTERM). Running the same command again resumes from that checkpoint.

- MultiWorkerMirroredStrategy: TensorFlow's `tf.distribute.experimental.PreemptionCheckpointHandler`. The
  worker that gets the signal agrees a step with the others through the coordination service, and all of
  them save at that step (saving is collective) before stopping. On Google Cloud GPU VMs it also watches the
  VM's maintenance notice; on Google Cloud CPU VMs TensorFlow's handler does nothing (SIGTERM then stops the
  process; the last regular checkpoint is what remains).
- Every other strategy (one device, mirrored GPUs, TPUStrategy): a SIGTERM handler of this process sets a
  flag that the training loop checks before each host-loop call.
"""

import shutil
import signal
import tempfile
import threading

import tensorflow as tf
from absl import logging

PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM


class Preempted(Exception):  # noqa: N818 (a stop on request, not an error)
    """The run stopped on a preemption notice after saving `checkpoint` at `step`."""

    def __init__(self, step, checkpoint):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(
            f"preempted (SIGTERM) at step {step}: saved {checkpoint}; run the same command again to resume"
        )


def watch_preemption(strategy, save):
    """The preemption watch for `strategy`; `save()` writes a checkpoint and returns its path."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.cluster_resolver:
        return ClusterPreemptionWatch(strategy, save)
    return SignalWatch(save)


class SignalWatch:
    """SIGTERM sets a flag; `run` checks it before calling the host loop. Use it as a context manager: the
    previous SIGTERM handler comes back on exit. (Outside the main thread no handler can be installed:
    SIGTERM keeps its previous meaning.)"""

    def __init__(self, save):
        self.save = save
        self.received = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        else:
            logging.warning("not in the main thread: SIGTERM will not save a checkpoint")
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _on_sigterm(self, signum, frame):
        del signum, frame
        self.received = True

    def stop_if_requested(self, step):
        """Saves and raises Preempted when a SIGTERM came."""
        if self.received:
            logging.warning("SIGTERM received: saving a checkpoint at step %d, then stopping", step)
            raise Preempted(step, self.save())

    def run(self, host_loop, *args, step):
        self.stop_if_requested(step)
        return host_loop(*args)


class ClusterPreemptionWatch:
    """tf.distribute.experimental.PreemptionCheckpointHandler, saving with `save` (see the module docstring).

    The handler keeps its own run counter in a checkpoint of its own; that one is never written (`save`
    writes the run's checkpoints), so it lives in a temporary directory removed on exit.
    """

    def __init__(self, strategy, save):
        self._scratch = tempfile.mkdtemp(prefix="preemption-")
        self._step = None

        def exit_after_save():
            raise Preempted(self._step, self._saved)

        def save_checkpoint():
            logging.warning("preemption notice: saving a checkpoint at step %d, then stopping", self._step)
            self._saved = save()

        self._saved = None
        self._previous = signal.getsignal(signal.SIGTERM)  # the handler replaces it
        self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver,
            tf.train.Checkpoint(),
            checkpoint_dir=f"{self._scratch}/handler",
            termination_config=tf.distribute.experimental.TerminationConfig(
                exit_fn=exit_after_save, save_fn=save_checkpoint
            ),
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # The handler installs a SIGTERM handler and never removes it: put the previous one back.
        if threading.current_thread() is threading.main_thread() and self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def stop_if_requested(self, step):
        """Nothing to do outside `run`: the handler saves at an agreed call of `run`."""

    def run(self, host_loop, *args, step):
        self._step = step
        return self.handler.run(host_loop, *args)
