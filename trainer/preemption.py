"""Preemption: on SIGTERM (a cluster scheduler, Cloud TPU maintenance), SIGINT (Ctrl-C) or SIGHUP (the ssh
session or terminal went away) the run saves a checkpoint and stops.

The notice is acted on between two calls of the device loop (after at most `train.steps_per_loop` more
steps), never inside one, so the checkpoint holds a whole step. Then `Preempted` is raised;
run_pretraining.py logs it and exits with code 128 + the signal's number (143 for SIGTERM, 130 for SIGINT,
129 for SIGHUP: what schedulers and shells expect of a process stopped by that signal). Running the same
command again resumes from that checkpoint. A second Ctrl-C while the checkpoint is written does not
interrupt the save.

- MultiWorkerMirroredStrategy: TensorFlow's `tf.distribute.experimental.PreemptionCheckpointHandler`. The
  worker that gets the signal agrees a step with the others through the coordination service, and all of
  them save at that step (saving is collective) before stopping. On Google Cloud GPU VMs it also watches the
  VM's maintenance notice; on Google Cloud CPU VMs TensorFlow's handler does nothing (SIGTERM then stops the
  process; the last regular checkpoint is what remains).
  SIGINT and SIGHUP are turned into a SIGTERM to the process itself, so they take the same agreed path.
- Every other strategy (one device, mirrored GPUs, TPUStrategy): a handler of this process for the three
  signals sets a flag that the training loop checks before each host-loop call.
"""

import os
import shutil
import signal
import tempfile
import threading

import tensorflow as tf
from absl import logging

PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Preempted(Exception):  # noqa: N818 (a stop on request, not an error)
    """The run stopped on a preemption notice (signal `signum`) after saving `checkpoint` at `step`."""

    def __init__(self, step, checkpoint, signum=signal.SIGTERM):
        self.step, self.checkpoint, self.signum = step, checkpoint, signum
        self.exit_code = 128 + signum
        super().__init__(
            f"preempted ({signal.Signals(signum).name}) at step {step}: saved {checkpoint}; run the same "
            "command again to resume"
        )


def watch_preemption(strategy, save):
    """The preemption watch for `strategy`; `save()` writes a checkpoint and returns its path."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.cluster_resolver:
        return ClusterPreemptionWatch(strategy, save)
    return SignalWatch(save)


class SignalWatch:
    """SIGTERM, SIGINT and SIGHUP (`signals`) set a flag; `run` checks it before calling the device loop. Use
    it as a context manager: the previous handlers come back on exit. (Outside the main thread no handler can
    be installed: the signals keep their previous meaning.)"""

    def __init__(self, save, signals=STOP_SIGNALS):
        self.save = save
        self.signals = signals
        self.received = None  # the number of the first stop signal received
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._on_signal) for signum in self.signals}
        else:
            logging.warning("not in the main thread: SIGTERM, SIGINT and SIGHUP will not save a checkpoint")
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum, frame):
        del frame
        if self.received is None:
            self.received = signum

    def stop_if_requested(self, step):
        """Saves and raises Preempted when a stop signal came."""
        if self.received is not None:
            name = signal.Signals(self.received).name
            logging.warning("%s received: saving a checkpoint at step %d, then stopping", name, step)
            raise Preempted(step, self.save(), self.received)

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
        # TensorFlow's handler watches SIGTERM only: SIGINT and SIGHUP are passed on to it as a SIGTERM
        # (a worker saving alone would wait forever for the others in the collective save).
        self._forwarded = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGHUP):
                self._forwarded[signum] = signal.signal(signum, _send_sigterm_to_self)
        return self

    def __exit__(self, *exc_info):
        for signum, previous in self._forwarded.items():
            signal.signal(signum, previous)
        # The handler installs a SIGTERM handler and never removes it: put the previous one back.
        if threading.current_thread() is threading.main_thread() and self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        shutil.rmtree(self._scratch, ignore_errors=True)

    def stop_if_requested(self, step):
        """Nothing to do outside `run`: the handler saves at an agreed call of `run`."""

    def run(self, host_loop, *args, step):
        self._step = step
        return self.handler.run(host_loop, *args)


def _send_sigterm_to_self(signum, frame):
    del signum, frame
    os.kill(os.getpid(), signal.SIGTERM)
