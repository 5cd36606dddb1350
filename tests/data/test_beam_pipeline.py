"""The Beam pipeline writes the same shards, vocab.txt and meta.json as the local tool, byte for byte."""

import json
import random

import pytest
import tensorflow as tf

from data.create_pretraining_data import CreationConfig, create_pretraining_data, main

LEXICON = [f"w{i}" for i in range(120)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("beam_corpus")
    rng = random.Random(3)
    for name in ("a.jsonl", "b.jsonl"):
        records = [
            {"text": "\n".join(" ".join(rng.choice(LEXICON) for _ in range(rng.randrange(3, 10))) + ". "
                               + "W1 w2 w3." for _ in range(rng.randrange(1, 4)))}
            for _ in range(25)
        ]  # fmt: skip
        (directory / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(directory)


def files_of(directory):
    return {
        name: tf.io.gfile.GFile(f"{directory}/{name}", "rb").read() for name in tf.io.gfile.listdir(directory)
    }


def test_the_direct_runner_writes_the_same_bytes_as_the_local_tool(corpus, tmp_path):
    options = dict(input=corpus, learn_vocab=True, vocab_size=150, max_seq_length=24,
                   max_predictions_per_seq=4, dupe_factor=2, num_shards=3,
                   do_whole_word_mask=True)  # fmt: skip
    local = create_pretraining_data(
        CreationConfig(output_dir=str(tmp_path / "local"), num_workers=1, quiet=True, **options)
    )
    arguments = [f"--{name}={value}" for name, value in options.items()]
    code = main([*arguments, f"--output_dir={tmp_path / 'beam'}", "--runner=DirectRunner", "--quiet"])
    assert code == 0
    beam_files, local_files = files_of(tmp_path / "beam"), files_of(tmp_path / "local")
    assert (
        sorted(beam_files)
        == sorted(local_files)
        == [
            "meta.json",
            "pretraining-00000-of-00003.tfrecord",
            "pretraining-00001-of-00003.tfrecord",
            "pretraining-00002-of-00003.tfrecord",
            "vocab.txt",
        ]
    )
    assert beam_files == local_files
    assert local["num_instances"] > 50


def test_beam_options_need_a_runner(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                f"--input={corpus}",
                f"--output_dir={tmp_path}",
                "--learn_vocab",
                "--vocab_size=150",
                "--project=p",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "create_pretraining_data: error: unrecognized arguments: --project=p (Beam options need --runner)\n"
    )
