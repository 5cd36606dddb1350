"""create_pretraining_data end to end: text -> shards, vocab.txt, meta.json, read back with Google's spec."""

import concurrent.futures
import glob
import hashlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data.corpus import TextFiles
from data.create_pretraining_data import (
    CreationConfig,
    Progress,
    ShardTask,
    _Workers,
    create_pretraining_data,
    main,
    options_table,
)
from data.masking import unmask
from data.records import shard_file_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def google_spec(seq_length, max_predictions):
    return {
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def read_records(directory, seq_length, max_predictions):
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "*.tfrecord"))):
        for serialized in tf.data.TFRecordDataset(path):
            parsed = tf.io.parse_single_example(serialized, google_spec(seq_length, max_predictions))
            records.append({k: v.numpy() for k, v in parsed.items()})
    return records


def original_tokens(record):
    restored = unmask(
        record["input_ids"],
        record["masked_lm_positions"],
        record["masked_lm_ids"],
        record["masked_lm_weights"],
    )
    return restored.numpy()[: record["input_mask"].sum()].tolist()


def records_sha256(path):
    """meta.json's checksum, transcribed from its definition: SHA-256 over each record's length (uint64,
    little-endian) then its bytes, the records read back with TensorFlow's reader."""
    digest = hashlib.sha256()
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        digest.update(len(record).to_bytes(8, "little") + record)
    return digest.hexdigest()


def write_vocab_file(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------ hand-worked example

# Google's layout for the special tokens (ids 0 and 100-103), then the words.
GOOGLE_TOKENS = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", ".", "on", "a", "mat", "dog", "ran"]
TOKENS = GOOGLE_TOKENS + WORDS
ID = {t: i for i, t in enumerate(TOKENS)}
CLS, SEP = ID["[CLS]"], ID["[SEP]"]

# Doc X = "The cat sat." "On a mat."   Doc Y = "A dog ran."   (max_seq_length 20: 17 tokens for A + B)
# From X, either [CLS] s1 [SEP] s2 [SEP] with label 0, or B is Y's sentence (label 1) and "On a mat." is put
# back to form the next chunk, a single sentence, hence also random next. From Y (one sentence), always
# random next: B starts at a random sentence of X and takes sentences until 14 tokens or the end of X.
S1, S2, S3 = ["the", "cat", "sat", "."], ["on", "a", "mat", "."], ["a", "dog", "ran", "."]


def pair(a, b):
    return [CLS] + [ID[w] for w in a] + [SEP] + [ID[w] for w in b] + [SEP]


ALLOWED = {
    (tuple(pair(S1, S2)), 0),
    (tuple(pair(S1, S3)), 1),
    (tuple(pair(S2, S3)), 1),
    (tuple(pair(S3, S1 + S2)), 1),
    (tuple(pair(S3, S2)), 1),
}


@pytest.fixture(scope="module")
def hand_worked(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hand_worked")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat.\nOn a mat.\n\nA dog ran.\n", encoding="utf-8")
    vocab = write_vocab_file(tmp_path / "google_vocab.txt", TOKENS)
    out = str(tmp_path / "out")
    meta = create_pretraining_data(CreationConfig(
        input=str(corpus), output_dir=out, vocab_file=vocab, max_seq_length=20, max_predictions_per_seq=3,
        short_seq_prob=0.0, dupe_factor=30, num_shards=1, num_workers=1, quiet=True,
    ))  # fmt: skip
    return out, meta


def test_hand_worked_instances(hand_worked):
    out, _ = hand_worked
    records = read_records(out, 20, 3)
    seen = set()
    for record in records:
        tokens = original_tokens(record)
        label = int(record["next_sentence_labels"][0])
        assert (tuple(tokens), label) in ALLOWED
        seen.add((tuple(tokens), label))
        sep = tokens.index(SEP)
        assert record["segment_ids"].tolist() == [0] * (sep + 1) + [1] * (len(tokens) - sep - 1) + [0] * (
            20 - len(tokens)
        )
        assert record["input_mask"].tolist() == [1] * len(tokens) + [0] * (20 - len(tokens))
        assert record["input_ids"][len(tokens) :].tolist() == [0] * (20 - len(tokens))
        # Masking: min(3, max(1, round(len * 0.15))) predictions, never [CLS] or [SEP].
        n = int(record["masked_lm_weights"].sum())
        assert n == min(3, max(1, round(len(tokens) * 0.15)))
        positions = record["masked_lm_positions"][:n]
        assert all(tokens[p] not in (CLS, SEP) for p in positions)
    assert seen == ALLOWED  # 30 passes show every hand-worked outcome


def test_meta_json_describes_the_data(hand_worked):
    out, meta = hand_worked
    with open(os.path.join(out, "meta.json")) as f:
        assert json.load(f) == meta
    records = read_records(out, 20, 3)
    assert meta["format"] == "bert-pretraining-tfrecord" and meta["format_version"] == 1
    assert meta["tool_version"].startswith("data.create_pretraining_data")
    settings = {
        "max_seq_length": 20, "max_predictions_per_seq": 3, "masked_lm_prob": 0.15, "short_seq_prob": 0.0,
        "dupe_factor": 30, "random_seed": 12345, "do_lower_case": True, "do_whole_word_mask": False,
    }  # fmt: skip
    assert {k: meta[k] for k in settings} == settings
    assert meta["vocab_file"] == "vocab.txt" and meta["vocab_size"] == len(TOKENS)
    with open(os.path.join(out, "vocab.txt")) as f:
        assert f.read().split("\n")[:-1] == TOKENS  # the vocabulary is copied beside the shards
    with open(os.path.join(out, "vocab.txt"), "rb") as f:
        assert meta["vocab_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert meta["special_token_ids"] == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    assert meta["num_documents"] == 2 and meta["num_sentences"] == 3
    assert meta["num_instances"] == len(records)
    assert meta["num_tokens"] == sum(int(r["input_mask"].sum()) for r in records)
    assert meta["num_masked_lm_predictions"] == sum(int(r["masked_lm_weights"].sum()) for r in records)
    shard = os.path.join(out, "pretraining-00000-of-00001.tfrecord")
    assert meta["shards"] == [
        {
            "file": "pretraining-00000-of-00001.tfrecord",
            "num_instances": len(records),
            "num_documents": 2,
            "size_bytes": os.path.getsize(shard),
            "records_sha256": records_sha256(shard),
        }
    ]
    assert "corpus.txt" in meta["corpus"]
    assert sorted(os.listdir(out)) == ["meta.json", "pretraining-00000-of-00001.tfrecord", "vocab.txt"]


# ------------------------------------------------------------------------------ a larger synthetic corpus

LEXICON = [f"w{i}" for i in range(300)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two files of random documents, and a vocab with the words, some split into "##" pieces."""
    directory = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for name in ("a.txt", "b.txt"):
        docs = []
        for _ in range(60):
            sentences = [" ".join(rng.choice(LEXICON) for _ in range(rng.randrange(3, 15))) + "."
                         for _ in range(rng.randrange(1, 12))]  # fmt: skip
            docs.append("\n".join(sentences))
        (directory / name).write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    # Words w0, w3, w6, ... are not in the vocab: they become "w" "##3" "##0" pieces.
    tokens = (
        GOOGLE_TOKENS
        + ["."]
        + [w for w in LEXICON if int(w[1:]) % 3]
        + ["w"]
        + [f"##{d}" for d in "0123456789"]
    )
    vocab = write_vocab_file(tmp_path_factory.mktemp("vocab") / "vocab.txt", tokens)
    return str(directory), vocab


def build(corpus, out, **overrides):
    return create_pretraining_data(corpus_config(corpus, out, **overrides))


def corpus_config(corpus, out, **overrides):
    directory, vocab = corpus
    settings = dict(input=directory, output_dir=str(out), vocab_file=vocab, max_seq_length=32,
                    max_predictions_per_seq=5, dupe_factor=3, num_shards=3, num_workers=1,
                    quiet=True)  # fmt: skip
    return CreationConfig(**{**settings, **overrides})


def shard_bytes(directory):
    return {
        os.path.basename(p): open(p, "rb").read()
        for p in sorted(glob.glob(os.path.join(directory, "*.tfrecord")))
    }


def test_same_seed_same_bytes_other_seed_other_bytes(corpus, tmp_path):
    one = build(corpus, tmp_path / "one")
    again = build(corpus, tmp_path / "again")
    other_seed = build(corpus, tmp_path / "other", random_seed=7)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "again") and one == again
    assert shard_bytes(tmp_path / "one").keys() == shard_bytes(tmp_path / "other").keys()
    assert shard_bytes(tmp_path / "one") != shard_bytes(tmp_path / "other")
    assert other_seed["num_documents"] == one["num_documents"] == 120


def test_shards_built_by_spawned_workers_are_the_same_bytes(corpus, tmp_path):
    build(corpus, tmp_path / "one")
    settings = corpus_config(corpus, tmp_path / "two")
    (tmp_path / "two").mkdir()
    parts = TextFiles.from_spec(corpus[0]).partition(3)
    tasks = [
        ShardTask(
            i, 3, part, str(tmp_path / "two" / shard_file_name("pretraining", i, 3)), corpus[1], settings
        )
        for i, part in enumerate(parts)
    ]
    workers = _Workers(num_workers=2)  # this process and one spawned worker
    try:
        workers.warm_up(corpus[1], settings)
        concurrent.futures.wait(workers.ready)  # the spawned worker is ready: it gets the first shard
        stats = workers.run(tasks, Progress(3, enabled=False))
    finally:
        workers.close()
    assert stats[0].process_id != os.getpid()
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


def test_two_workers_from_the_top(corpus, tmp_path):
    meta = build(corpus, tmp_path / "two", num_workers=2)
    assert meta == build(corpus, tmp_path / "one")
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")


def test_records_restore_to_runs_of_the_tokenized_corpus(corpus, tmp_path):
    meta = build(corpus, tmp_path / "out", do_whole_word_mask=True)
    records = read_records(str(tmp_path / "out"), 32, 5)
    assert len(records) == meta["num_instances"] > 200
    assert sum(meta["shards"][i]["num_instances"] for i in range(3)) == len(records)
    labels = [int(r["next_sentence_labels"][0]) for r in records]
    assert 0.35 < np.mean(labels) < 0.65
    for record in records:
        tokens = original_tokens(record)
        assert tokens[0] == CLS and tokens[-1] == SEP and tokens.count(SEP) == 2
        positions = record["masked_lm_positions"][: int(record["masked_lm_weights"].sum())]
        assert 0 not in positions and all(tokens[p] != SEP for p in positions)


def test_refuses_to_overwrite_unless_asked_and_then_replaces_everything(corpus, tmp_path):
    out = tmp_path / "out"
    build(corpus, out, num_shards=4)
    before = shard_bytes(out)
    with pytest.raises(ValueError, match=r"--output_dir .*out: already holds meta.json, pretraining-00000"):
        build(corpus, out, num_shards=2)
    assert shard_bytes(out) == before
    meta = build(corpus, out, num_shards=2, overwrite=True)
    shards = ["pretraining-00000-of-00002.tfrecord", "pretraining-00001-of-00002.tfrecord"]
    assert sorted(os.listdir(out)) == ["meta.json", *shards, "vocab.txt"]
    assert meta["num_shards"] == 2


class FailingPart:
    """A corpus part that fails after yielding some documents (a disk error, a bad file...)."""

    def __init__(self, fail):
        self.fail = fail

    def documents(self):
        yield ["w1 w2 w3.", "w4 w5."]
        yield ["w7 w8."]
        if self.fail:
            raise OSError("disk went away")


class FailingCorpus:
    description = "a corpus whose second part fails"

    def partition(self, num_parts):
        return [FailingPart(fail=i == 1) for i in range(num_parts)]


def test_a_failed_run_leaves_no_meta_json_and_no_partial_shard(corpus, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk went away"):
        create_pretraining_data(corpus_config(corpus, out), corpus=FailingCorpus())
    names = sorted(os.listdir(out))
    assert "meta.json" not in names
    assert names == ["pretraining-00000-of-00003.tfrecord", "vocab.txt"]  # shard 0 complete, 1 never renamed


def test_a_killed_run_leaves_no_meta_json(corpus, tmp_path):
    out = str(tmp_path / "out")
    command = [sys.executable, "-m", "data.create_pretraining_data", f"--input={corpus[0]}",
               f"--output_dir={out}", f"--vocab_file={corpus[1]}", "--dupe_factor=40", "--num_shards=40",
               "--num_workers=1", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(os.path.join(out, "pretraining-*.tfrecord")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert glob.glob(os.path.join(out, "pretraining-*.tfrecord"))
    assert not os.path.exists(os.path.join(out, "meta.json"))


# ------------------------------------------------------------------------------ command line


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--input=/no/such/dir/*.txt", "--vocab_file=VOCAB"], r"--input /no/such/dir/\*.txt: no such file"),
        (["--input=CORPUS", "--vocab_file=/no/vocab.txt"], r"--vocab_file /no/vocab.txt: no such file"),
        (["--input=CORPUS", "--vocab_file=VOCAB", "--masked_lm_prob=1.5"], r"--masked_lm_prob=1.5: expected"),
        (["--input=CORPUS", "--vocab_file=VOCAB", "--max_seq_length=abc"], r"--max_seq_length: invalid int"),
        (["--input=CORPUS"], r"--vocab_file: required \(or --learn_vocab --vocab_size=N\)"),
        (["--input=CORPUS", "--learn_vocab"], r"--learn_vocab: needs --vocab_size"),
        (["--input=CORPUS", "--vocab_file=VOCAB", "--do_lower_case=maybe"], r"expected true or false"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(corpus, tmp_path, capsys, arguments, message):
    arguments = [a.replace("CORPUS", corpus[0]).replace("VOCAB", corpus[1]) for a in arguments]
    code, err = run_main(arguments + [f"--output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("create_pretraining_data: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()  # nothing written


def test_command_line_learns_a_vocab_and_builds_the_data(corpus, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    code = main([f"--input={corpus[0]}/a.txt", f"--output_dir={out}", "--learn_vocab", "--vocab_size=200",
                 "--max_seq_length=24", "--max_predictions_per_seq=4", "--dupe_factor=1", "--num_shards=2",
                 "--nodo_lower_case", "--do_whole_word_mask", "--num_workers=1"])  # fmt: skip
    assert code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_size"] == 200 and meta["do_lower_case"] is False and meta["do_whole_word_mask"] is True
    assert meta["vocab_source"].startswith("learned from the corpus")
    assert meta["special_token_ids"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert len(read_records(str(out), 24, 4)) == meta["num_instances"] > 0
    assert (
        "settings: {'max_seq_length': 24, 'max_predictions_per_seq': 4" in caplog.text
    )  # every setting logged
    err = capsys.readouterr().err
    assert "docs/s" in err and "ETA" in err  # the progress bar


def test_the_options_table_of_the_docs_is_the_one_the_code_makes():
    with open(os.path.join(ROOT, "docs", "data.md"), encoding="utf-8") as f:
        page = f.read()
    documented = page.split("<!-- options table: begin -->\n")[1].split("<!-- options table: end -->")[0]
    assert documented == options_table()
