"""Helpers shared by the model and training-step benchmarks (bench_model.py, bench_train.py).

- `random_features`: a batch of Google-format pretraining features with random tokens;
- `timed_in_turns`: best wall time of several candidates timed in interleaved turns;
- `peak_matmul`: a chain of large square matmuls, the measure of this machine's matmul peak.

Several jobs share the benchmark machine, so candidates are never timed one after the other: every turn runs
each candidate once (in a shuffled order), and each candidate's best turn is kept.
"""

import random
import time

import numpy as np
import tensorflow as tf

import bert


def random_features(config, batch, seq_length, predictions, seed=0):
    """Google's pretraining features (int32, float32 weights) for `batch` full-length random sequences."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": tf.constant(rng.integers(0, config.vocab_size, (batch, seq_length)), tf.int32),
        "input_mask": tf.ones((batch, seq_length), tf.int32),
        "segment_ids": tf.constant(np.arange(seq_length)[None].repeat(batch, 0) >= seq_length // 2, tf.int32),
        "masked_lm_positions": tf.constant(
            np.sort(np.stack([rng.choice(seq_length, predictions, replace=False) for _ in range(batch)])),
            tf.int32,
        ),
        "masked_lm_ids": tf.constant(rng.integers(0, config.vocab_size, (batch, predictions)), tf.int32),
        "masked_lm_weights": tf.ones((batch, predictions), tf.float32),
        "next_sentence_labels": tf.constant(rng.integers(0, 2, (batch,)), tf.int32),
    }


def timed_in_turns(candidates, repeats, warmup=1, shuffle=True, seed=0, on_turn=None):
    """Best seconds of each candidate over `repeats` turns; every turn runs every candidate once.

    `candidates`: zero-argument callables returning the seconds they took (each times its own work, so that
    set-up outside the measured part is excluded). They first run `warmup` times each, untimed. With
    `shuffle`, each turn runs them in a new random order, so slow spells of a shared machine spread evenly.
    `on_turn(turn, seconds)` is called after every turn with that turn's times.
    """
    for candidate in candidates:
        for _ in range(warmup):
            candidate()
    order = list(range(len(candidates)))
    rng = random.Random(seed)
    best = [float("inf")] * len(candidates)
    for turn in range(repeats):
        if shuffle:
            rng.shuffle(order)
        seconds = [0.0] * len(candidates)
        for i in order:
            seconds[i] = candidates[i]()
            best[i] = min(best[i], seconds[i])
        if on_turn:
            on_turn(turn, seconds)
    return best


def timed_call(function, *args):
    """A zero-argument candidate for `timed_in_turns`: calls `function(*args)`, waits for every output."""

    def run():
        start = time.perf_counter()
        block(function(*args))
        return time.perf_counter() - start

    return run


def block(outputs):
    """Waits for every tensor of a nested structure (composites included)."""
    for tensor in tf.nest.flatten(outputs, expand_composites=True):
        if hasattr(tensor, "numpy"):
            tensor.numpy()


def peak_matmul(dtype, jit_compile, n, flops):
    """(function, args, FLOPs per call): bert.matmul_chain doing about `flops` FLOPs, sized like the step it
    is compared with, so that both are timed over equally long stretches of a shared machine."""
    return bert.matmul_chain(dtype, n, max(1, round(flops / (2 * n**3))), jit_compile)
