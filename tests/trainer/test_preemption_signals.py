"""SIGINT (Ctrl-C) and SIGHUP (a dropped ssh session) save and stop like SIGTERM; the exit code is
128 + the signal's number, and the previous handlers come back afterwards."""

import os
import signal

import pytest

from trainer.preemption import Preempted, SignalWatch


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_saves_once_and_stops_between_loop_calls(signum, exit_code):
    saved = []
    calls = []
    previous = signal.getsignal(signum)
    with SignalWatch(lambda: saved.append("ckpt-7") or "ckpt-7") as watch:
        assert watch.run(lambda n: calls.append(n) or n, 3, step=4) == 3  # no signal yet: the loop runs
        os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal (Ctrl-C again) changes nothing
        with pytest.raises(Preempted) as stopped:
            watch.run(lambda n: calls.append(n), 3, step=7)
    assert calls == [3] and saved == ["ckpt-7"]
    assert (stopped.value.step, stopped.value.checkpoint, stopped.value.exit_code) == (7, "ckpt-7", exit_code)
    name = signal.Signals(signum).name
    assert str(stopped.value) == (
        f"preempted ({name}) at step 7: saved ckpt-7; run the same command again to resume"
    )
    assert signal.getsignal(signum) is previous
