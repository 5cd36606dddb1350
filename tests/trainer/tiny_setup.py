"""Tiny pretraining data and configs for the trainer tests, written directly in Google's TFRecord schema.

The sequences are random WordPiece-like ids with a skewed (Zipf) frequency, so a model can lower its
masked-LM loss quickly by learning which ids are frequent; the next-sentence label follows the segment
layout (the second segment of a "random next" pair is longer), so it is learnable too.
"""

import json
import pathlib

import numpy as np
import tensorflow as tf

VOCAB_SIZE = 64
SEQ_LENGTH = 16
PREDICTIONS = 3
SPECIAL = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}


def _int64(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def make_example(rng):
    """One tf.train.Example with Google's seven features."""
    is_random_next = int(rng.integers(0, 2))
    first = int(rng.integers(3, 6))
    second = SEQ_LENGTH - 3 - first - (0 if is_random_next else int(rng.integers(2, 5)))
    ranks = np.arange(1, VOCAB_SIZE - len(SPECIAL) + 1)
    zipf = (1.0 / ranks) / np.sum(1.0 / ranks)
    tokens = rng.choice(np.arange(len(SPECIAL), VOCAB_SIZE), size=first + second, p=zipf)
    ids = [SPECIAL["[CLS]"], *tokens[:first], SPECIAL["[SEP]"], *tokens[first:], SPECIAL["[SEP]"]]
    segments = [0] * (first + 2) + [1] * (second + 1)
    length = len(ids)
    candidates = [i for i in range(1, length) if ids[i] != SPECIAL["[SEP]"]]
    positions = sorted(rng.choice(candidates, size=PREDICTIONS, replace=False))
    masked_ids = [ids[p] for p in positions]
    for p in positions:
        ids[p] = SPECIAL["[MASK]"]
    pad = SEQ_LENGTH - length
    features = {
        "input_ids": _int64(ids + [0] * pad),
        "input_mask": _int64([1] * length + [0] * pad),
        "segment_ids": _int64(segments + [0] * pad),
        "masked_lm_positions": _int64(positions),
        "masked_lm_ids": _int64(masked_ids),
        "masked_lm_weights": _float([1.0] * PREDICTIONS),
        "next_sentence_labels": _int64([is_random_next]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_tiny_data(directory, num_examples=512, num_shards=2, seed=0):
    """Shards + vocab.txt + meta.json in `directory`; returns the glob of the shards."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [directory / f"tiny-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(str(path)) for path in paths]
    for index in range(num_examples):
        writers[index % num_shards].write(make_example(rng).SerializeToString())
    for writer in writers:
        writer.close()
    vocab = list(SPECIAL) + [f"w{i}" for i in range(VOCAB_SIZE - len(SPECIAL))]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    meta = {
        "format": "bert-pretraining-tfrecord",
        "format_version": 1,
        "max_seq_length": SEQ_LENGTH,
        "max_predictions_per_seq": PREDICTIONS,
        "vocab_file": "vocab.txt",
        "vocab_size": VOCAB_SIZE,
        "num_instances": num_examples,
        "shards": [{"file": path.name, "num_instances": num_examples // num_shards} for path in paths],
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    return str(directory / "tiny-*.tfrecord")


def write_tiny_bert_config(path, dropout=0.1):
    config = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "hidden_act": "gelu",
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": SEQ_LENGTH,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
    }
    pathlib.Path(path).write_text(json.dumps(config))
    return str(path)


def tiny_config_yaml(
    tmp_path, *, model_dir, global_batch_size=16, micro_batch_size=4, total_steps=8, dropout=0.1, **train
):
    """A config file for a tiny run in tmp_path; returns its path. `train` sets keys of the train section."""
    data_glob = (
        write_tiny_data(tmp_path / "data")
        if not (tmp_path / "data").exists()
        else str(tmp_path / "data" / "tiny-*.tfrecord")
    )
    bert_config = write_tiny_bert_config(tmp_path / f"bert_config_dropout{dropout}.json", dropout)
    train = {
        "global_batch_size": global_batch_size,
        "micro_batch_size": micro_batch_size,
        "log_every_steps": 2,
        "summary_every_steps": 2,
        "checkpoint_every_steps": 4,
        "export_saved_model": "false",
        **train,
    }
    train_lines = "".join(f"  {key}: {value}\n" for key, value in train.items())
    text = f"""
model:
  bert_config: {bert_config}
data:
  train_files: {data_glob}
  max_seq_length: {SEQ_LENGTH}
  max_predictions_per_seq: {PREDICTIONS}
  shuffle_buffer: 64
  cycle_length: 2
optimizer:
  weight_decay: 0.01
schedule:
  peak_learning_rate: 2.0e-2
  warmup_steps: 2
  total_steps: {total_steps}
  power: 0.5
train:
{train_lines}runtime:
  model_dir: {model_dir}
"""
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return str(path)
