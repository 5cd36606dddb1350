"""scripts/experiments/mnist_table.py: the first TensorFlow LAMB release's MNIST table, --quick.

The quick run trains an MLP and a bidirectional RNN with Adam, AdamW and LAMB at batch sizes 64, 512 and
16384 for 12 epochs on the scikit-learn digits (MNIST cannot be downloaded here); 16384 exceeds the 1437
training images and must be capped and marked.
"""

import csv
import importlib.util
import pathlib
import struct
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "experiments" / "mnist_table.py"
DIGITS_TRAIN, DIGITS_TEST = 1437, 360  # 1797 digits split 80/20


def load_script():
    spec = importlib.util.spec_from_file_location("mnist_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mnist")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--data=digits", f"--out_dir={out_dir}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out_dir / "mnist_table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return out_dir, result.stdout, rows


def test_quick_run_covers_every_network_optimizer_and_batch(quick_run):
    _, _, rows = quick_run
    cells = {(r["network"], r["optimizer"], int(r["batch_size"])) for r in rows}
    expected = {
        (n, o, b) for n in ("mlp", "birnn") for o in ("adam", "adamw", "lamb") for b in (64, 512, 16384)
    }
    assert cells == expected and len(rows) == len(expected)
    assert {r["dataset"] for r in rows} == {"digits"}
    assert {r["epochs"] for r in rows} == {"12"}
    assert {float(r["learning_rate"]) for r in rows} == {1e-3}
    assert {(r["optimizer"], float(r["weight_decay"])) for r in rows} == {
        ("adam", 0.0),
        ("adamw", 0.01),
        ("lamb", 0.01),
    }


def test_batches_larger_than_the_training_set_are_capped_and_marked(quick_run):
    _, stdout, rows = quick_run
    for row in rows:
        batch, effective = int(row["batch_size"]), int(row["effective_batch_size"])
        assert effective == min(batch, DIGITS_TRAIN)
        assert row["capped"] == str(batch > DIGITS_TRAIN)
        assert int(row["updates"]) == 12 * (DIGITS_TRAIN // effective)  # floor(N / batch) per epoch
    assert f"capped at {DIGITS_TRAIN}" in stdout


def test_accuracies_are_well_above_chance(quick_run):
    _, _, rows = quick_run
    accuracy = {(r["network"], r["optimizer"], int(r["batch_size"])): float(r["test_accuracy"]) for r in rows}
    assert all(0.0 <= a <= 100.0 for a in accuracy.values())
    # 264 updates at batch 64: every network and optimizer learns the ten digits (chance is 10%).
    for network in ("mlp", "birnn"):
        for optimizer in ("adam", "adamw", "lamb"):
            assert accuracy[network, optimizer, 64] > 70.0, (network, optimizer)
        assert max(accuracy[network, o, 64] for o in ("adam", "adamw", "lamb")) > 90.0


def test_table_names_the_data_set_and_shows_the_published_numbers(quick_run):
    out_dir, stdout, rows = quick_run
    table = (out_dir / "mnist_table.md").read_text()
    first_line = table.splitlines()[0]
    assert "digits" in first_line and "MNIST not available" in first_line
    assert f"{DIGITS_TRAIN} training / {DIGITS_TEST} test" in table
    assert "digits" in stdout.splitlines()[0]
    ours, published = table.split("## Published")
    for row in rows:
        batch = row["batch_size"] + ("†" if row["capped"] == "True" else "")
        optimizer = {"adam": "Adam", "adamw": "AdamW", "lamb": "LAMB"}[row["optimizer"]]
        assert f"| {batch} | {optimizer} |" in ours
        assert row["test_accuracy"] in ours
    assert "| 16384 | LAMB | 98.27 |" not in published  # rows are per batch size
    assert "| 64 | LAMB | **98.27** |" in published


def test_plot_is_a_png(quick_run):
    out_dir, _, _ = quick_run
    data = (out_dir / "mnist_accuracy.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 1.5 * height > 450  # two panels (networks) side by side
    assert not list(out_dir.glob("*.tmp"))


def test_published_numbers_match_the_ones_quoted_in_the_issue():
    published = load_script().PUBLISHED
    mlp, cnn = 0, 1
    assert [published[1024][o][mlp] for o in ("adam", "adamw", "lamb")] == [93.05, 93.67, 97.68]
    assert [published[16384][o][cnn] for o in ("adam", "adamw", "lamb")] == [95.06, 96.57, 97.89]
    for recurrent in (2, 3, 4):
        assert published[16384]["lamb"][recurrent] < published[16384]["adam"][recurrent]


def test_auto_falls_back_to_the_digits_when_mnist_is_not_prepared(monkeypatch, capsys):
    script = load_script()

    def not_prepared(download):
        assert download is False  # auto never downloads
        raise FileNotFoundError("MNIST is not prepared in /nowhere")

    monkeypatch.setattr(script, "load_mnist", not_prepared)
    dataset = script.load_dataset("auto", seed=12345)
    assert dataset.name == "digits"
    assert dataset.x_train.shape == (DIGITS_TRAIN, 8, 8) and dataset.x_test.shape == (DIGITS_TEST, 8, 8)
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    assert sorted(set(dataset.y_test.tolist())) == list(range(10))  # stratified split
    assert "using the digits set" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argument",
    ["--batch_sizes=0,64", "--batch_sizes=abc", "--networks=mlp,resnet", "--epochs=-3", "--weight_decay=-1"],
)
def test_bad_arguments_are_one_line_and_exit_code_2(argument):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), argument], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and argument.split("=")[0] in lines[0]
