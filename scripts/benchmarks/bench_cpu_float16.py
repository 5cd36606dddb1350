"""Why mixed_float16 is refused on a CPU: a BERT training step in each precision on the CPU, timed in one run.

    python scripts/benchmarks/bench_cpu_float16.py                  # BERT-tiny, 32 sequences of 64 tokens
    python scripts/benchmarks/bench_cpu_float16.py --repeats=10

The step is the forward pass, the pretraining loss and the gradient of every weight, in one `tf.function`,
on fixed random features (BERT-tiny: configs/bert/tiny.json with a 4000-token vocabulary, as the demo).
The precisions take turns within each repeat, so that a busy machine slows them alike; the table gives the
median sequences/s and the median ratio to float32 in the same repeat.
"""

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tensorflow as tf  # noqa: E402

import bert  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # float32 is the baseline


def random_features(batch, seq_length, predictions, vocab_size):
    uniform = tf.random.stateless_uniform
    return {
        "input_ids": uniform([batch, seq_length], [1, 2], 0, vocab_size, tf.int32),
        "input_mask": tf.ones([batch, seq_length], tf.int32),
        "segment_ids": tf.zeros([batch, seq_length], tf.int32),
        "masked_lm_positions": uniform([batch, predictions], [3, 4], 0, seq_length, tf.int32),
        "masked_lm_ids": uniform([batch, predictions], [5, 6], 0, vocab_size, tf.int32),
        "masked_lm_weights": tf.ones([batch, predictions]),
        "next_sentence_labels": tf.zeros([batch], tf.int32),
    }


def make_step(config, precision, features):
    model = bert.BertPretrainingModel(config, dtype=precision)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = bert.pretraining_loss(bert.pretraining_sums(model(features, training=True), features))
        return tape.gradient(loss, model.trainable_variables)

    step()  # trace
    return step


def seconds_per_step(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=64)
    args = parser.parse_args()
    config = bert.BertConfig.from_json_file(str(ROOT / "configs" / "bert" / "tiny.json"))
    config = bert.BertConfig(**{**config.__dict__, "vocab_size": 4000})
    features = random_features(args.batch, args.seq_length, 10, config.vocab_size)
    steps = {precision: make_step(config, precision, features) for precision in PRECISIONS}
    # float16 on a CPU is slow: time one step of it, ten of the others.
    counts = {precision: 1 if precision == "mixed_float16" else 10 for precision in PRECISIONS}
    rates = {precision: [] for precision in PRECISIONS}
    for _ in range(args.repeats):
        for precision in PRECISIONS:
            seconds = seconds_per_step(steps[precision], counts[precision])
            rates[precision].append(args.batch / seconds)
    print(
        f"BERT-tiny training step, {args.batch} sequences of {args.seq_length} tokens, "
        f"{args.repeats} repeats; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), TensorFlow {tf.__version__}"
    )
    print(f"{'precision':<16} {'sequences/s':>12} {'vs float32':>11}")
    for precision in PRECISIONS:
        ratio = statistics.median(r / f for r, f in zip(rates[precision], rates["float32"], strict=True))
        print(f"{precision:<16} {statistics.median(rates[precision]):>12.1f} {ratio:>10.3f}x")


if __name__ == "__main__":
    main()
