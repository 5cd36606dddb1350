"""JSON Lines and Parquet corpora, and paths on other file systems (TensorFlow's `ram://`, as gs:// would be).

A record is one document: its text field is cut into paragraphs at newlines and the paragraphs into
sentences. The same documents as JSON Lines (plain or gzipped) and as Parquet are cut into the same parts,
so they give the same shards byte for byte.
"""

import gzip
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from data.corpus import RecordFiles, open_corpus
from data.create_pretraining_data import CreationConfig, create_pretraining_data
from data.meta import read_meta

GOOGLE_TOKENS = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LEXICON = [f"w{i}" for i in range(200)]


def random_articles(count, seed=0):
    """Wikipedia-like records: paragraphs separated by newlines (sometimes blank lines), several sentences
    each, plus an empty text, as extractors leave for redirects."""
    rng = random.Random(seed)
    articles = []
    for i in range(count):
        paragraphs = [
            " ".join(
                (" ".join(rng.choice(LEXICON) for _ in range(rng.randrange(3, 12))) + ".").capitalize()
                for _ in range(rng.randrange(1, 5))
            )
            for _ in range(rng.randrange(1, 4))
        ]
        articles.append({"id": str(i), "title": f"T{i}", "text": rng.choice(["\n", "\n\n"]).join(paragraphs)})
    articles[3]["text"] = ""
    return articles


def write_jsonl(path, records, compress=False):
    text = "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")
    with open(path, "wb") as f:
        f.write(gzip.compress(text) if compress else text)
    return str(path)


def write_parquet(path, records, row_group_size):
    table = pa.table({key: [record[key] for record in records] for key in ("id", "title", "text")})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in [*GOOGLE_TOKENS, ".", *LEXICON]), encoding="utf-8")
    return str(path)


def shard_bytes(directory):
    names = sorted(n for n in tf.io.gfile.listdir(directory) if n.endswith(".tfrecord"))
    return {name: tf.io.gfile.GFile(f"{directory}/{name}", "rb").read() for name in names}


def build(input, output_dir, vocab, **overrides):
    settings = dict(input=input, output_dir=output_dir, vocab_file=vocab, max_seq_length=32,
                    max_predictions_per_seq=5, dupe_factor=2, num_shards=3, num_workers=1,
                    quiet=True)  # fmt: skip
    return create_pretraining_data(CreationConfig(**{**settings, **overrides}))


def test_a_record_is_one_document_of_paragraphs_and_sentences(tmp_path):
    records = [
        {"text": "The cat sat. It was Mr. Smith's cat.\nA new paragraph!\n\nAnd 3 more words."},
        {"text": ""},
        {"text": None},
        {"title": "ignored", "text": "One sentence only"},
    ]
    path = write_jsonl(tmp_path / "a.jsonl", records)
    (part,) = open_corpus(path).partition(1)
    assert list(part.documents()) == [
        ["The cat sat.", "It was Mr. Smith's cat.", "A new paragraph!", "And 3 more words."],
        ["One sentence only"],
    ]


@pytest.mark.parametrize("num_parts", [1, 2, 5, 13])
def test_parts_are_consecutive_record_ranges_covering_each_document_once(tmp_path, num_parts):
    articles = random_articles(40)
    files = [write_parquet(tmp_path / f"{i}.parquet", articles[20 * i : 20 * i + 20], 7) for i in range(2)]
    corpus = RecordFiles("parquet", tuple(files))
    read = [document for part in corpus.partition(num_parts) for document in part.documents()]
    expected = [RecordFiles("jsonl", (write_jsonl(tmp_path / "all.jsonl", articles),)).partition(1)[0]]
    assert read == list(expected[0].documents())
    assert len(read) == 39  # the empty article is no document


def test_json_lines_gzip_and_parquet_give_the_same_shards(tmp_path):
    articles = random_articles(60, seed=1)
    vocab = vocab_file(tmp_path)
    (tmp_path / "jsonl").mkdir()
    (tmp_path / "parquet").mkdir()
    write_jsonl(tmp_path / "jsonl" / "wiki_00", articles[:25])  # WikiExtractor's names have no suffix
    write_jsonl(tmp_path / "jsonl" / "wiki_01.jsonl.gz", articles[25:], compress=True)
    write_parquet(tmp_path / "parquet" / "train-0.parquet", articles[:41], row_group_size=10)
    write_parquet(tmp_path / "parquet" / "train-1.parquet", articles[41:], row_group_size=10)
    from_json = build(str(tmp_path / "jsonl"), str(tmp_path / "out1"), vocab, input_format="jsonl")
    from_parquet = build(str(tmp_path / "parquet"), str(tmp_path / "out2"), vocab)
    assert from_json["num_documents"] == from_parquet["num_documents"] == 59
    assert from_json["shards"] == from_parquet["shards"]  # sizes and checksums too
    assert shard_bytes(str(tmp_path / "out1")) == shard_bytes(str(tmp_path / "out2"))
    assert from_json["corpus"].startswith("JSON Lines files (2)")
    assert from_parquet["corpus"].startswith("Parquet files (2)")


def test_paths_on_another_file_system_give_the_same_data(tmp_path):
    articles = random_articles(30, seed=2)
    root = "ram://test_creation_formats"
    tf.io.gfile.makedirs(f"{root}/corpus")
    for name, part in (("a.jsonl", articles[:12]), ("b.jsonl", articles[12:])):
        with tf.io.gfile.GFile(f"{root}/corpus/{name}", "w") as f:
            f.write("".join(json.dumps(record) + "\n" for record in part))
    local_vocab = vocab_file(tmp_path)
    tf.io.gfile.copy(local_vocab, f"{root}/vocab.txt", overwrite=True)
    os.mkdir(tmp_path / "corpus")
    write_jsonl(tmp_path / "corpus" / "a.jsonl", articles[:12])
    write_jsonl(tmp_path / "corpus" / "b.jsonl", articles[12:])

    remote = build(f"{root}/corpus/*.jsonl", f"{root}/out", f"{root}/vocab.txt")
    local = build(str(tmp_path / "corpus" / "*.jsonl"), str(tmp_path / "out"), local_vocab)
    assert shard_bytes(f"{root}/out") == shard_bytes(str(tmp_path / "out"))
    assert read_meta(f"{root}/out") == remote
    assert remote["shards"] == local["shards"] and remote["vocab_sha256"] == local["vocab_sha256"]
    assert sorted(tf.io.gfile.listdir(f"{root}/out")) == [
        "meta.json",
        *[f"pretraining-0000{i}-of-00003.tfrecord" for i in range(3)],
        "vocab.txt",
    ]
    with pytest.raises(ValueError, match=r"--output_dir ram://test_creation_formats/out: already holds meta"):
        build(f"{root}/corpus/*.jsonl", f"{root}/out", f"{root}/vocab.txt")


@pytest.mark.parametrize(
    "files,options,message",
    [
        ({"a.jsonl": '{"text": "A b."}\n{"body": "C d."}\n'}, {},
         r"a.jsonl:2: no field 'text' \(found: body\); set --text_feature"),
        ({"a.jsonl": '{"text": "A b."}\nnot json\n'}, {}, r"a.jsonl:2: not a JSON object"),
        ({"a.jsonl": '{"text": 7}\n'}, {}, r"a.jsonl:1: field 'text' is a int, expected a string"),
        ({"a.parquet": None}, {"text_feature": "body"},
         r"a.parquet: no column 'body' \(found: id, title, text\)"),
        ({"a.parquet": b"not parquet"}, {}, r"a.parquet: not a Parquet file"),
        ({"a.jsonl": '{"text": "A b."}\n', "b.txt": "A b.\n"}, {}, r"mixes jsonl and text files"),
        ({"a.txt": "A b.\n"}, {"input_format": "csv"}, r"--input_format=csv: expected one of auto, text"),
    ],
)  # fmt: skip
def test_bad_records_are_named_by_file_and_line(tmp_path, files, options, message):
    (tmp_path / "in").mkdir()
    for name, content in files.items():
        if content is None:
            write_parquet(tmp_path / "in" / name, random_articles(5), row_group_size=5)
        else:
            (tmp_path / "in" / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        build(str(tmp_path / "in"), str(tmp_path / "out"), vocab_file(tmp_path), **options)
    assert not tf.io.gfile.exists(str(tmp_path / "out" / "meta.json"))
