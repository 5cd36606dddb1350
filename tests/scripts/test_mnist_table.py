"""scripts/experiments/mnist_table.py: the first TensorFlow LAMB release's MNIST table, --quick.

The quick run trains an MLP and a bidirectional RNN with Adam, AdamW and LAMB at batch sizes 64, 512 and
16384 for 12 epochs on the scikit-learn digits (the test must not need MNIST); 16384 exceeds the 1437
training images and must be capped and marked. The IDX reader is tested on small files the tests write;
the real MNIST files are checked in tests/scripts/test_mnist_idx_files.py when they are at hand.
"""

import csv
import gzip
import importlib.util
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "experiments" / "mnist_table.py"
DIGITS_TRAIN, DIGITS_TEST = 1437, 360  # 1797 digits split 80/20
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_script():
    spec = importlib.util.spec_from_file_location("mnist_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*arguments, timeout=900):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=timeout
    )


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------------
# The quick run on the digits


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mnist")
    result = run_script("--quick", "--data=digits", f"--out_dir={out_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir, result.stdout, read_csv(out_dir / "mnist_results.csv")


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


def test_table_names_the_data_set_and_puts_each_run_next_to_the_published_one(quick_run):
    out_dir, stdout, rows = quick_run
    table = (out_dir / "mnist_results.md").read_text()
    first_line = table.splitlines()[0]
    assert "digits" in first_line and "MNIST not available" in first_line
    assert f"{DIGITS_TRAIN} training / {DIGITS_TEST} test" in table
    assert "Data set: scikit-learn" in stdout
    ours, published = table.split("## Published table")
    lines = ours.splitlines()
    mlp_at_64 = next(line for line in lines[lines.index("## MLP") :] if line.startswith("| 12 | 64 |"))
    accuracies = [r["test_accuracy"] for r in rows if (r["network"], r["batch_size"]) == ("mlp", "64")]
    # Epochs, batch, updates, ours (Adam, AdamW, LAMB), published (Adam, AdamW, LAMB); no differences on
    # the digits, whose numbers are not MNIST's.
    cells = [cell.strip().strip("*") for cell in mlp_at_64.strip("|").split("|")]
    assert cells == ["12", "64", str(12 * (DIGITS_TRAIN // 64)), *accuracies, "97.03", "97.11", "98.27"]
    assert "| 12 | 16384† |" in ours and "Δ" not in ours
    assert "| 64 | LAMB | **98.27** | **99.33** |" in published


def test_plot_is_a_png(quick_run):
    out_dir, _, _ = quick_run
    data = (out_dir / "mnist_accuracy.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 1.5 * height > 450  # two panels (networks) side by side
    assert not list(out_dir.glob("*.tmp"))


# ----------------------------------------------------------------------------------------------------
# The published numbers, the plan and the command line


def test_published_numbers_match_the_ones_quoted_in_the_issue():
    published = load_script().PUBLISHED
    mlp, cnn = 0, 1
    assert [published[1024][o][mlp] for o in ("adam", "adamw", "lamb")] == [93.05, 93.67, 97.68]
    assert [published[16384][o][cnn] for o in ("adam", "adamw", "lamb")] == [95.06, 96.57, 97.89]
    for recurrent in (2, 3, 4):
        assert published[16384]["lamb"][recurrent] < published[16384]["adam"][recurrent]


def test_the_cpu_plan_runs_stage_by_stage_with_every_optimizer_per_batch():
    script = load_script()
    args = script.parse_args(["--plan=cpu-hour"])
    cells = script.planned_cells(args)
    assert cells[:3] == [("mlp", "adam", 64, 10), ("mlp", "adamw", 64, 10), ("mlp", "lamb", 64, 10)]
    assert ("mlp", "lamb", 16384, 100) in cells and len(set(cells)) == len(cells)
    assert all(network in script.NETWORKS and 1 <= epochs <= 100 for network, _, _, epochs in cells)


def test_auto_falls_back_to_the_digits_when_mnist_is_not_on_the_machine(monkeypatch, capsys):
    script = load_script()

    def not_there(download):
        assert download is False  # auto never downloads
        raise FileNotFoundError("not here")

    monkeypatch.setattr(script, "load_tfds", not_there)
    monkeypatch.setattr(script, "load_keras", not_there)
    dataset = script.load_dataset("auto", seed=12345)
    assert dataset.name == "digits"
    assert dataset.x_train.shape == (DIGITS_TRAIN, 8, 8) and dataset.x_test.shape == (DIGITS_TEST, 8, 8)
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    assert sorted(set(dataset.y_test.tolist())) == list(range(10))  # stratified split
    assert "using the digits set" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments",
    [
        ["--batch_sizes=0,64"],
        ["--batch_sizes=abc"],
        ["--networks=mlp,resnet"],
        ["--epochs=-3"],
        ["--weight_decay=-1"],
        ["--data=idx:"],
        ["--data=cifar"],
        ["--plan=cpu-hour", "--epochs=3"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_code_2(arguments):
    result = run_script(*arguments, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and arguments[-1].split("=")[0] in lines[0]


# ----------------------------------------------------------------------------------------------------
# The IDX reader, on small files written here


def idx_bytes(magic, shape, values):
    """An IDX file by hand: big-endian int32 magic, one big-endian int32 per dimension, then uint8 values."""
    return struct.pack(">i", magic) + b"".join(struct.pack(">i", size) for size in shape) + bytes(values)


def write_mnist_like(directory, train=6, test=4, size=(3, 2), compress=True):
    """Four small IDX files with known images and labels; returns them as numpy arrays."""
    rng = np.random.default_rng(0)
    arrays = []
    for name, count in zip(IDX_NAMES, (train, train, test, test), strict=True):
        if "images" in name:
            values = rng.integers(0, 256, (count, *size), dtype=np.uint8)
            data = idx_bytes(2051, values.shape, values.ravel().tolist())
        else:
            values = rng.integers(0, 10, count, dtype=np.uint8)
            data = idx_bytes(2049, values.shape, values.tolist())
        path = directory / (f"{name}.gz" if compress else name)
        path.write_bytes(gzip.compress(data) if compress else data)
        arrays.append(values)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_are_read_with_their_shapes_scaled_to_the_unit_interval(tmp_path, compress):
    x_train, y_train, x_test, y_test = write_mnist_like(tmp_path, compress=compress)
    dataset = load_script().load_dataset(f"idx:{tmp_path}", seed=1)
    assert dataset.name == "mnist" and f"IDX files in {tmp_path}" in dataset.description
    assert "6 training / 4 test images, 3x2" in dataset.description
    assert dataset.x_train.shape == (6, 3, 2) and dataset.x_train.dtype == np.float32
    np.testing.assert_allclose(dataset.x_train, x_train / 255.0, rtol=1e-6)
    np.testing.assert_allclose(dataset.x_test, x_test / 255.0, rtol=1e-6)
    assert dataset.y_train.tolist() == y_train.tolist() and dataset.y_test.tolist() == y_test.tolist()


def test_a_hand_written_idx_file_reads_back_row_major(tmp_path):
    path = tmp_path / "two-images"
    path.write_bytes(idx_bytes(2051, (2, 2, 3), range(12)))
    array = load_script().read_idx(path, 2051)
    assert array.tolist() == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]]


def bad_idx_error(tmp_path, damage):
    """The one-line DataError raised after `damage(directory)` spoils a set of small IDX files."""
    write_mnist_like(tmp_path)
    damage(tmp_path)
    script = load_script()
    with pytest.raises(script.DataError) as error:
        script.load_dataset(f"idx:{tmp_path}", seed=1)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_truncated_idx_file_is_refused_naming_it(tmp_path):
    def truncate(directory):
        path = directory / "t10k-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))

    message = bad_idx_error(tmp_path, truncate)
    assert "t10k-images-idx3-ubyte.gz" in message and "expected 40 bytes" in message and "found 35" in message


def test_a_truncated_gzip_stream_is_refused_naming_the_file(tmp_path):
    def cut(directory):
        path = directory / "train-labels-idx1-ubyte.gz"
        path.write_bytes(path.read_bytes()[:-10])

    message = bad_idx_error(tmp_path, cut)
    assert "train-labels-idx1-ubyte.gz" in message and "gzip" in message


def test_a_wrong_magic_number_is_refused_naming_the_file(tmp_path):
    def swap(directory):  # label data where the images belong
        labels = gzip.decompress((directory / "train-labels-idx1-ubyte.gz").read_bytes())
        (directory / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))

    message = bad_idx_error(tmp_path, swap)
    assert "train-images-idx3-ubyte.gz" in message and "magic number 2051, found 2049" in message


def test_a_missing_file_is_refused_naming_it(tmp_path):
    message = bad_idx_error(tmp_path, lambda directory: (directory / "t10k-labels-idx1-ubyte.gz").unlink())
    assert f"{tmp_path}: neither t10k-labels-idx1-ubyte.gz nor t10k-labels-idx1-ubyte found" == message


def test_fewer_labels_than_images_are_refused(tmp_path):
    def fewer_labels(directory):
        (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(2049, (3,), [1, 2, 3])))

    message = bad_idx_error(tmp_path, fewer_labels)
    assert "t10k-labels-idx1-ubyte.gz: 3 labels for the 4 images" in message


def test_a_bad_idx_directory_is_one_line_and_exit_code_2(tmp_path):
    result = run_script(f"--data=idx:{tmp_path}", f"--out_dir={tmp_path}", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "train-images-idx3-ubyte" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_run_on_idx_files_names_mnist_and_resumes_without_redoing_runs(tmp_path, capsys):
    write_mnist_like(tmp_path, train=200, test=50, size=(28, 28))
    script = load_script()
    common = [
        f"--data=idx:{tmp_path}",
        "--networks=mlp",
        "--optimizers=lamb",
        "--epochs=1",
        f"--out_dir={tmp_path}",
    ]
    script.main([*common, "--batch_sizes=64"])
    table = (tmp_path / "mnist_results.md").read_text()
    assert table.splitlines()[0] == (
        f"# Test accuracy (%) on MNIST (IDX files in {tmp_path}): 200 training / 50 test images, 28x28"
    )
    [row] = read_csv(tmp_path / "mnist_results.csv")
    assert (row["dataset"], row["batch_size"], row["updates"]) == ("mnist", "64", "3")  # floor(200 / 64)

    capsys.readouterr()
    script.main([*common, "--batch_sizes=64,128", "--resume"])
    assert "1 runs to do (1 already in the table)" in capsys.readouterr().out
    rows = read_csv(tmp_path / "mnist_results.csv")
    assert rows[0] == row and [r["batch_size"] for r in rows] == ["64", "128"]
    table = (tmp_path / "mnist_results.md").read_text()
    assert "| 1 | 64 | 3 |" in table and "| Δ LAMB |" in table  # ours minus published, on MNIST

    with pytest.raises(SystemExit) as exit_:
        script.main([*common, "--batch_sizes=64", "--resume", "--seed=7"])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("mnist_results.csv, line 2: seed is 12345, this run's is 7")
