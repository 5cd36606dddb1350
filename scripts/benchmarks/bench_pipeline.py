"""Input-pipeline speed: sequences/s delivered by data.pretraining_dataset against a Google-style pipeline.

For each sequence length it writes synthetic shards in Google's format (random token ids, 90% full-length
sequences, 10% shorter, zero padding, `max_predictions_per_seq` masked positions) into a temporary directory,
then times, in alternating rounds so machine load hits all of them alike:

  - google-style: google-research/bert's run_pretraining.py input_fn in TF2 terms: shuffled repeated files,
    parallel interleave, shuffle(100), then parse each record with `tf.io.parse_single_example`
    (int64 -> int32 per record) and batch;
  - ours, unseeded: `data.pretraining_dataset(...)` with its defaults (batch first, one vectorised
    `tf.io.parse_example` per batch, non-deterministic parallel stages);
  - ours, seeded: the same with `seed=0` (deterministic order, exact resume from an iterator checkpoint);
  - ours, seeded, with dynamic masking: every batch unmasked and masked afresh (data.masking).

A Python loop pulls batches as a training loop does. The table gives sequences/s (median over rounds) and the
ratio to the Google-style pipeline. Then it times the training step that consumes the batches: a forward +
backward pass of bert.BertPretrainingModel (configs/bert/base.json, seq 128) and reports how many times
faster the pipeline delivers sequences than that step consumes them.

    python scripts/benchmarks/bench_pipeline.py                          # a few minutes
    python scripts/benchmarks/bench_pipeline.py --rounds=7 --batches=400 # steadier numbers
    python scripts/benchmarks/bench_pipeline.py --skip_model             # pipelines only
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import data  # noqa: E402

VOCAB_SIZE = 30522
CLS, SEP, MASK = 101, 102, 103  # Google's uncased vocabulary


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq_lengths", default="128,512")
    parser.add_argument("--predictions", default="128=20,512=80", help="max_predictions_per_seq per length")
    parser.add_argument("--records", default="128=40000,512=12000", help="synthetic records per length")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=256, help="per-pipeline (per-replica) batch")
    parser.add_argument("--batches", type=int, default=200, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per pipeline (median reported)")
    parser.add_argument("--skip_model", action="store_true", help="do not time the BERT-base train step")
    parser.add_argument("--model_config", default=str(ROOT / "configs" / "bert" / "base.json"))
    parser.add_argument("--model_policy", default="mixed_bfloat16", help="keras dtype policy of the model")
    parser.add_argument("--model_batch_size", type=int, default=8)
    parser.add_argument("--model_steps", type=int, default=3, help="timed train steps (median reported)")
    parser.add_argument("--work_dir", default=None, help="where to write the shards (default: a temp dir)")
    return parser.parse_args()


def per_length(text):
    return {int(k): int(v) for k, v in (item.split("=") for item in text.split(","))}


# ----------------------------------------------------------------------------------------------------------
# Synthetic data in Google's format.


def synthetic_example(rng, seq_length, max_predictions):
    length = seq_length if rng.random() < 0.9 else int(rng.integers(8, seq_length))
    split = int(rng.integers(2, length - 2))
    ids = rng.integers(1000, VOCAB_SIZE, size=length)
    ids[0], ids[split], ids[length - 1] = CLS, SEP, SEP
    segment_ids = np.zeros(length, np.int64)
    segment_ids[split + 1 :] = 1
    num_predictions = min(max_predictions, max(1, round(length * 0.15)))
    candidates = [i for i in range(1, length - 1) if i != split]
    positions = np.sort(rng.choice(candidates, size=num_predictions, replace=False))
    padding = seq_length - length
    prediction_padding = max_predictions - num_predictions

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "input_ids": ints(list(ids) + [0] * padding),
        "input_mask": ints([1] * length + [0] * padding),
        "segment_ids": ints(list(segment_ids) + [0] * padding),
        "masked_lm_positions": ints(list(positions) + [0] * prediction_padding),
        "masked_lm_ids": ints(list(ids[positions]) + [0] * prediction_padding),
        "masked_lm_weights": tf.train.Feature(
            float_list=tf.train.FloatList(value=[1.0] * num_predictions + [0.0] * prediction_padding)
        ),
        "next_sentence_labels": ints([int(rng.random() < 0.5)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_synthetic_shards(directory, seq_length, max_predictions, num_records, num_shards):
    rng = np.random.default_rng(seq_length)
    os.makedirs(directory, exist_ok=True)
    total_bytes = 0
    for shard in range(num_shards):
        path = os.path.join(directory, f"part-{shard:05d}-of-{num_shards:05d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(shard, num_records, num_shards):
                writer.write(synthetic_example(rng, seq_length, max_predictions))
        total_bytes += os.path.getsize(path)
    return os.path.join(directory, "part-*.tfrecord"), total_bytes


# ----------------------------------------------------------------------------------------------------------
# The pipelines.


def google_style_dataset(file_pattern, batch_size, seq_length, max_predictions):
    """google-research/bert run_pretraining.input_fn (training branch), written for tf.data in TF2."""
    name_to_features = {
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }

    def decode_record(record):
        example = tf.io.parse_single_example(record, name_to_features)
        return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in example.items()}

    input_files = tf.io.gfile.glob(file_pattern)
    d = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
    d = d.repeat().shuffle(buffer_size=len(input_files))
    d = d.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(4, len(input_files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,  # sloppy=True
    )
    d = d.shuffle(buffer_size=100)
    d = d.map(decode_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    d = d.batch(batch_size, drop_remainder=True)
    return d.prefetch(tf.data.AUTOTUNE)


def pipelines(file_pattern, batch_size, seq_length, max_predictions):
    """{name: a function building that dataset}; the first one is the baseline."""

    masking = data.MaskingConfig(
        vocab_size=VOCAB_SIZE, cls_id=CLS, sep_id=SEP, mask_id=MASK, max_predictions_per_seq=max_predictions
    )

    def ours(seed, dynamic_masking=None):
        return lambda: data.pretraining_dataset(
            file_pattern, batch_size, seq_length, max_predictions, seed=seed, dynamic_masking=dynamic_masking
        )

    return {
        "google-style (parse_single_example, then batch)": lambda: google_style_dataset(
            file_pattern, batch_size, seq_length, max_predictions
        ),
        "data.pretraining_dataset, unseeded": ours(None),
        "data.pretraining_dataset, seed=0": ours(0),
        "data.pretraining_dataset, seed=0, dynamic masking": ours(0, masking),
    }


def time_batches(iterator, num_batches):
    """(wall seconds, CPU seconds of this process over all its threads) to pull `num_batches` batches."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(num_batches):
        batch = next(iterator)
    tf.nest.flatten(batch)[0].numpy()  # make sure the last batch is really there
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_pipelines(factories, batch_size, num_batches, rounds):
    """{name: (sequences per wall second, sequences per CPU second)}, medians over `rounds`.

    Rounds alternate between the pipelines so that load from other processes hits all of them alike; each
    measurement uses a fresh iterator (warmed up: shuffle buffer filled, threads started, autotuning
    settled) and drops it afterwards, so no pipeline keeps working in the background of another's turn.
    """
    samples = {name: [] for name in factories}
    for _ in range(rounds):
        for name, make_dataset in factories.items():
            iterator = iter(make_dataset())
            time_batches(iterator, max(20, num_batches // 4))
            wall, cpu = time_batches(iterator, num_batches)
            samples[name].append((num_batches * batch_size / wall, num_batches * batch_size / cpu))
            del iterator
    return {
        name: tuple(statistics.median(column) for column in zip(*values, strict=True))
        for name, values in samples.items()
    }


# ----------------------------------------------------------------------------------------------------------
# What a BERT-base training step consumes.


def measure_train_step(args, file_pattern, seq_length, max_predictions):
    """Sequences/s of a forward + backward pass of the pretraining model (no optimizer update)."""
    import keras

    import bert

    keras.mixed_precision.set_global_policy(args.model_policy)
    config = bert.BertConfig.from_json_file(args.model_config)
    model = bert.BertPretrainingModel(config)
    batch = next(
        iter(data.pretraining_dataset(file_pattern, args.model_batch_size, seq_length, max_predictions))
    )

    @tf.function
    def step(features):
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            loss = bert.pretraining_loss(bert.pretraining_sums(outputs, features))
        gradients = tape.gradient(loss, model.trainable_variables)
        return tf.linalg.global_norm(gradients)  # depends on every gradient

    step(batch).numpy()  # build and trace
    times = []
    for _ in range(args.model_steps):
        start = time.perf_counter()
        step(batch).numpy()
        times.append(time.perf_counter() - start)
    keras.mixed_precision.set_global_policy("float32")
    return args.model_batch_size / statistics.median(times)


# ----------------------------------------------------------------------------------------------------------


def main():
    args = parse_args()
    seq_lengths = [int(s) for s in args.seq_lengths.split(",")]
    predictions, records = per_length(args.predictions), per_length(args.records)
    print(
        f"batch_size={args.batch_size} batches/round={args.batches} rounds={args.rounds} "
        f"shards={args.shards} cpus={os.cpu_count()} tensorflow={tf.__version__}"
    )
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work_dir:
        results, patterns = {}, {}
        for seq_length in seq_lengths:
            directory = os.path.join(work_dir, f"seq{seq_length}")
            start = time.perf_counter()
            pattern, size = write_synthetic_shards(
                directory, seq_length, predictions[seq_length], records[seq_length], args.shards
            )
            patterns[seq_length] = pattern
            print(
                f"seq {seq_length}: wrote {records[seq_length]} records, {size / 2**20:.0f} MiB "
                f"in {args.shards} shards ({time.perf_counter() - start:.0f} s)"
            )
            factories = pipelines(pattern, args.batch_size, seq_length, predictions[seq_length])
            results[seq_length] = measure_pipelines(factories, args.batch_size, args.batches, args.rounds)

        print()
        print(
            "| seq | pipeline | sequences/s | vs google-style | sequences per CPU-second | vs google-style |"
        )
        print("|---:|---|---:|---:|---:|---:|")
        for seq_length, rates in results.items():
            base_wall, base_cpu = next(iter(rates.values()))
            for name, (wall, cpu) in rates.items():
                print(
                    f"| {seq_length} | {name} | {wall:,.0f} | {wall / base_wall:.2f}x "
                    f"| {cpu:,.0f} | {cpu / base_cpu:.2f}x |"
                )

        if args.skip_model or 128 not in patterns:
            return
        consumed = measure_train_step(args, patterns[128], 128, predictions[128])
        delivered = results[128]["data.pretraining_dataset, unseeded"][0]
        print()
        print(
            f"BERT-base forward+backward at seq 128 ({args.model_policy}, batch {args.model_batch_size}): "
            f"{consumed:.2f} sequences/s; data.pretraining_dataset delivers {delivered:,.0f} sequences/s "
            f"= {delivered / consumed:,.0f}x what the step consumes"
        )


if __name__ == "__main__":
    main()
