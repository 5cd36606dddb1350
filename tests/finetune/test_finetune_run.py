"""run_finetuning end to end on small files the tests write: it learns, resumes exactly (after max_steps or a
SIGTERM, on one and two replicas), splits the batch into replicas or micro-batches alike, starts from an
export, runs LAMB, evaluates a checkpoint, reports bad input as one line; the demo's task and comparison."""

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from finetune_setup import SST2_TRAIN, TINY_BERT, config_yaml, write_model_files, write_squad, write_sst2

import bert
import finetune
import trainer
from finetune import demo, library_task
from finetune.train import plan_finetune_batches

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def sst2(tmp_path):
    vocab, bert_config = write_model_files(tmp_path / "model")
    data_dir = write_sst2(tmp_path / "sst2", dev=SST2_TRAIN)
    task = f"  name: sst2\n  data_dir: {data_dir}\n  max_seq_length: 8"

    def make(model_dir, overrides=(), extra=""):
        path = config_yaml(tmp_path / "config.yaml", task, tmp_path / model_dir, vocab, bert_config, extra)
        return finetune.load_config(path, list(overrides))

    return make


def weights(model_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(model_dir)))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model_variables/")
    }


def test_a_classifier_learns_the_training_sentences(sst2, tmp_path, caplog):
    config = sst2(
        "run",
        [
            "schedule.epochs=40",
            "schedule.peak_learning_rate=3e-3",
            "train.steps_per_loop=4",
            "train.log_every_steps=4",
            "train.checkpoint_every_steps=4",
        ],
    )
    with caplog.at_level("INFO", logger="absl"):
        result = finetune.finetune(config)
    assert result.step == result.total_steps == 80  # int(8 examples / 4 x 40 epochs)
    assert result.eval_metrics["accuracy"] == 1.0  # dev = train here: the 8 sentences are learned
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert results["80"] == result.eval_metrics
    assert (tmp_path / "run" / "config.yaml").is_file()
    # The progress line (every 4 steps, one device-loop call each) and TensorBoard, as in pretraining.
    lines = re.findall(
        r"step (\d+)/80  loss \S+  acc \S+  lr \S+  grad_norm \S+  \S+ examples/s  \d+ tok/s", caplog.text
    )
    assert [int(step) for step in lines] == list(range(4, 81, 4))
    assert list((tmp_path / "run" / "train").glob("events.out.tfevents.*"))


def strategy_of(devices):
    if devices == 1:
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    cpus = [f"/cpu:{i}" for i in range(devices)]
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


class SignalAfterStep(logging.Handler):
    """Sends SIGTERM to this process when the progress line of `step` is logged, as a scheduler would."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def emit(self, record):
        if record.getMessage().startswith(f"step {self.step}/"):
            os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def sigterm_after_step(step):
    handler = SignalAfterStep(step)
    logging.getLogger("absl").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("absl").removeHandler(handler)


@pytest.mark.parametrize(
    ("devices", "stop"),
    [(1, "max_steps"), (2, "sigterm")],
    ids=["one-device-max-steps", "mirrored-2-sigterm"],
)
def test_a_stopped_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(sst2, caplog, devices, stop):
    lamb = ["optimizer.name=lamb"]  # dropout on: its random state resumes too
    caplog.set_level("INFO", logger="absl")
    straight = finetune.finetune(sst2("straight", lamb), strategy=strategy_of(devices))
    assert straight.step == 4
    if stop == "max_steps":
        assert (
            finetune.finetune(
                sst2("stopped", [*lamb, "train.max_steps=2"]), strategy=strategy_of(devices)
            ).step
            == 2
        )
    else:
        with sigterm_after_step(2), pytest.raises(trainer.Preempted) as stopped:
            finetune.finetune(sst2("stopped", lamb), strategy=strategy_of(devices))
        assert (stopped.value.step, stopped.value.exit_code) == (2, 143)
        assert stopped.value.checkpoint.endswith("ckpt-2")
    resumed = finetune.finetune(sst2("stopped", lamb), strategy=strategy_of(devices))
    assert re.search(r"resumed from \S+ckpt-2 at step 2, with the data position of that step", caplog.text)
    assert resumed.step == 4
    expected, found = (
        weights(os.path.dirname(straight.checkpoint)),
        weights(os.path.dirname(resumed.checkpoint)),
    )
    assert expected.keys() == found.keys() and len(expected) > 20
    for name, value in expected.items():
        np.testing.assert_array_equal(found[name], value, err_msg=name)  # dropout and data order included


def test_fine_tuning_starts_from_an_export_with_its_config_and_vocab(sst2, tmp_path):
    pretrained = bert.BertPretrainingModel(
        bert.BertConfig.from_json_file(str(tmp_path / "model/bert_config.json"))
    )
    rng = np.random.default_rng(1)
    for variable in bert.google_variables(pretrained).values():
        variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))
    export_dir = trainer.export_model(
        pretrained, str(tmp_path / "pretraining"), str(tmp_path / "model/vocab.txt")
    )
    config = sst2(
        "from_export",
        [
            f"model.init_checkpoint={export_dir}",
            "model.bert_config=null",
            "model.vocab_file=null",
            "train.max_steps=1",
            "schedule.peak_learning_rate=1e-12",  # one step that moves nothing measurable
        ],
    )
    result = finetune.finetune(config)
    found = weights(os.path.dirname(result.checkpoint))
    vocab_size = pretrained.config.vocab_size
    word_embeddings = [v for v in found.values() if v.shape == (vocab_size, 16)]
    assert len(word_embeddings) == 1
    np.testing.assert_allclose(
        word_embeddings[0], pretrained.encoder.embeddings.word_embeddings.numpy(), atol=1e-6
    )


def test_a_frozen_encoder_keeps_its_weights_and_only_the_head_learns(sst2):
    config = sst2("frozen", ["model.freeze_encoder=true", "train.max_steps=3"])
    keras.utils.set_random_seed(config.train.seed)  # the initial weights finetune() starts from
    run = finetune.train.Run(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    initial = {v.path: v.numpy() for v in run.model.variables if v.dtype == "float32"}
    finetune.finetune(config)
    final = weights(config.runtime.model_dir)
    changed = {
        path for path, value in initial.items() if not any(np.array_equal(value, w) for w in final.values())
    }
    assert changed == {"output/output_weights", "output/output_bias"}  # the head alone


def test_eval_mode_scores_a_chosen_checkpoint(sst2):
    result = finetune.finetune(sst2("run", ["train.max_steps=4"]))
    metrics = finetune.run(sst2("run", ["runtime.checkpoint=ckpt-2"]), mode="eval")
    assert set(metrics) == {"accuracy"} and metrics != {}
    assert finetune.run(sst2("run"), mode="eval") == result.eval_metrics  # the latest: the same weights


def test_squad_fine_tunes_and_scores_with_the_official_metric(tmp_path):
    vocab, bert_config = write_model_files(tmp_path / "model")
    context = "the denver broncos won the super bowl in the city ."
    paragraphs = [(context, [("q1", "who won the super bowl ?", "denver broncos", 4)])] * 4
    write_squad(tmp_path / "train-v1.1.json", paragraphs)
    write_squad(tmp_path / "dev-v1.1.json", paragraphs[:1])
    task = f"  name: squad_v1.1\n  data_dir: {tmp_path}\n  max_seq_length: 24\n  doc_stride: 4"
    path = config_yaml(tmp_path / "squad.yaml", task, tmp_path / "run", vocab, bert_config)
    result = finetune.finetune(
        finetune.load_config(path, ["schedule.epochs=60", "schedule.peak_learning_rate=3e-3"])
    )
    assert result.eval_metrics == {"exact_match": 100.0, "f1": 100.0}


def run_cli(*args):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "run_finetuning.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    vocab, bert_config = write_model_files(tmp_path / "model")
    task = f"  name: sst2\n  data_dir: {tmp_path / 'missing'}"
    path = config_yaml(tmp_path / "c.yaml", task, tmp_path / "run", vocab, bert_config)
    result = run_cli(f"--config={path}", "--set=schedule.epochs=1")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("run_finetuning.py: error: task.data_dir: no file") and "train.tsv" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing written before the input passed its checks
    with pytest.raises(trainer.ConfigError, match="task.nmae: unknown key; did you mean name"):
        finetune.load_config(path, ["task.nmae=sst2"])
    with pytest.raises(
        trainer.ConfigError, match="model.bert_config: needed when model.init_checkpoint is null"
    ):
        finetune.load_config(path, ["model.bert_config=null"])
    data_dir = write_sst2(tmp_path / "sst2")
    small = finetune.load_config(path, [f"task.data_dir={data_dir}", "model.vocab_size=20"])
    expected = r"model.vocab_file: 48 tokens, more than the model's vocab_size \(20\)"
    with pytest.raises(trainer.ConfigError, match=expected):
        finetune.finetune(small)


def test_the_library_task_holds_out_whole_modules_and_balances_the_libraries():
    sentence = "this sentence has six words {}"
    documents = {
        "stdlib": [[sentence.format(f"s{d}{i}") for i in range(3)] for d in range(6)],
        "numpy": [
            [sentence.format(f"n{d}{i}") for i in range(2)] + ["numpy arrays are the thing here"]
            for d in range(6)
        ],
        "tensorflow": [[sentence.format(f"t{d}{i}") for i in range(4)] + ["too short"] for d in range(6)],
    }
    train, held = library_task.split_by_document(documents, train_per_library=100, eval_per_library=100)
    # modules 0 and 5 of each library are held out; numpy has the fewest usable sentences: 4 x 2 and 2 x 2
    for library in ("stdlib", "numpy", "tensorflow"):
        assert [label for _, label in train].count(library) == 8
        assert [label for _, label in held].count(library) == 4
    assert len(train) == 3 * 8 and len(held) == 3 * 4
    for text, _ in held:
        assert text.split()[-1][1] in "05"
    for text, _ in train:
        assert text.split()[-1][1] not in "05" and "numpy" not in text and text != "too short"
    # A seed draws the labelled sentences; the held-out ones are the same for every seed.
    train_0, held_0 = library_task.split_by_document(documents, train_per_library=3, eval_per_library=2)
    train_1, held_1 = library_task.split_by_document(documents, 3, 2, seed=1)
    assert sorted(held_0) == sorted(held_1) and sorted(train_0) != sorted(train_1)
    for rows in (train_0, train_1):
        assert sorted(label for _, label in rows) == ["numpy"] * 3 + ["stdlib"] * 3 + ["tensorflow"] * 3


def test_the_demo_compares_pretrained_and_random_encoders_end_to_end(tmp_path):
    vocab, bert_config = write_model_files(tmp_path / "model")
    pretrained = bert.BertPretrainingModel(bert.BertConfig.from_json_file(bert_config))
    export_dir = trainer.export_model(pretrained, str(tmp_path / "pretraining"), vocab, saved_model=False)
    overrides = [
        f"model.init_checkpoint={export_dir}",
        "task.max_seq_length=16",
        "train.max_steps=3",
        "train.eval_batch_size=8",
    ]
    kwargs = {"train_per_library": 8, "eval_per_library": 4, "max_documents": 10}
    work_dir = tmp_path / "library"
    results = demo.compare(overrides=overrides, seeds=(0, 1), work_dir=str(work_dir), library_kwargs=kwargs)
    assert set(results) == {(start, seed) for start in ("pretrained", "random") for seed in (0, 1)}
    for (start, seed), accuracy in results.items():
        assert 0.0 <= accuracy <= 1.0
        # the config's 24 sentences x 16 epochs / 16 = 24 steps, cut at max_steps 3, for every run
        assert tf.train.latest_checkpoint(str(work_dir / f"seed-{seed}" / start)).endswith("ckpt-3")
    dev = [(work_dir / f"seed-{seed}" / "dev.tsv").read_text().splitlines() for seed in (0, 1)]
    assert dev[0][0] == "sentence\tlabel" and len(dev[0]) == 1 + 3 * 4 and dev[0] == dev[1]
    train = [(work_dir / f"seed-{seed}" / "train.tsv").read_text().splitlines() for seed in (0, 1)]
    assert len(train[0]) == 1 + 3 * 8 and train[0] != train[1]


def test_the_demo_table_gives_every_seed_the_means_and_the_difference():
    results = {("pretrained", 0): 0.5, ("random", 0): 0.4, ("pretrained", 1): 0.45, ("random", 1): 0.47}
    assert demo.table(results).splitlines() == [
        "| encoder at the start | seed 0 | seed 1 | mean |",
        "|---|---|---|---|",
        "| pretrained (make demo) | 0.5000 | 0.4500 | 0.4750 |",
        "| random initialisation | 0.4000 | 0.4700 | 0.4350 |",
        "| difference | +0.1000 | -0.0200 | +0.0400 |",
    ]


def test_one_replica_with_four_micro_batches_trains_as_two_replicas_with_two(sst2, tmp_path):
    # Without dropout (each replica draws its own masks), the same global batch split into four micro-batches
    # or over two replicas with two each gives the same loss and update: the loss is the global mean, the
    # gradient is all-reduced once. (One step of 1 x 4 against 4 x 1: tests/finetune/test_finetune_step.py.)
    no_dropout = tmp_path / "no_dropout.json"
    values = {**TINY_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    bert.BertConfig.from_dict(values).to_json_file(str(no_dropout))
    overrides = [f"model.bert_config={no_dropout}", "train.max_steps=3", "train.log_every_steps=3"]
    one = finetune.finetune(sst2("one", [*overrides, "train.micro_batch_size=1"]), strategy=strategy_of(1))
    two = finetune.finetune(sst2("two", [*overrides, "train.micro_batch_size=1"]), strategy=strategy_of(2))
    assert two.train_loss == pytest.approx(one.train_loss, rel=1e-5)
    expected, found = weights(os.path.dirname(one.checkpoint)), weights(os.path.dirname(two.checkpoint))
    for name, value in expected.items():
        np.testing.assert_allclose(found[name], value, rtol=0, atol=2e-6, err_msg=name)


def test_the_batch_plan_is_pretrainings_with_the_fine_tuning_keys(sst2):
    with pytest.raises(
        trainer.ConfigError,
        match=r"config.yaml: train.batch_size: expected a multiple of train.micro_batch_size \(3\), got 4$",
    ):
        sst2("run", ["train.micro_batch_size=3"])
    train = sst2("run", ["train.micro_batch_size=2"]).train
    assert (
        plan_finetune_batches(train, strategy_of(1))
        .describe()
        .startswith("global batch 4 = micro-batch 2 x 1 replica(s) x 2 accumulation step(s)")
    )
    with pytest.raises(
        trainer.ConfigError,
        match=r"^train.batch_size \(4\) is not divisible by train.micro_batch_size \(2\) x 4 replica",
    ):
        plan_finetune_batches(train, strategy_of(4))
    with pytest.raises(
        trainer.ConfigError, match=r"^train.batch_size: expected a multiple of the 4 replicas, got 6$"
    ):
        plan_finetune_batches(sst2("run", ["train.batch_size=6"]).train, strategy_of(4))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_fine_tuning_keeps_float32_weights(sst2, precision):
    result = finetune.finetune(sst2(precision, [f"runtime.mixed_precision={precision}", "train.max_steps=2"]))
    floats = [v for v in weights(os.path.dirname(result.checkpoint)).values() if v.dtype.kind not in "iu"]
    assert len(floats) > 20 and all(v.dtype == np.float32 for v in floats)  # not one 16-bit weight
    assert np.isfinite(result.train_loss)
