"""The MNIST table of the first TensorFlow LAMB release, reproduced with this project's LAMB.

The experiment (ymcui/LAMB_Optimizer_TF, 2019): five networks -- an MLP, a CNN, and bidirectional RNN, GRU
and LSTM networks reading the image row by row -- trained with Adam, AdamW and LAMB, all at learning rate
1e-3 (not rescaled with the batch size), at batch sizes 64 .. 16384, each for the same fixed number of
epochs; the test accuracy of every run goes into a table. With a fixed number of epochs a larger batch means
fewer updates, which is where LAMB's layer-wise trust ratio is expected to help.

    python scripts/experiments/mnist_table.py                   # the full table (days on 2 CPU cores)
    python scripts/experiments/mnist_table.py --plan=cpu-hour   # what fits about an hour (PLANS)
    python scripts/experiments/mnist_table.py --quick           # 2 networks x 3 optimizers x 3 batches
    python scripts/experiments/mnist_table.py --data=idx:DIR    # MNIST from its four IDX files in DIR

Data (`--data`). `idx:DIR` reads MNIST's four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each gzip-compressed or not), checked against their magic
numbers and sizes. `tfds` and `keras` read it through tensorflow-datasets or keras.datasets.mnist,
downloading it if needed. `auto`, the default, never downloads: MNIST if either has it on this machine,
otherwise scikit-learn's 8x8 handwritten digits (1797 real scanned digits shipped inside the package), split
80/20 into 1437 training and 360 test images, said so in the output and in the table header. A batch
larger than the training set cannot be drawn from it: such a batch is capped at the training-set size
(full-batch training, one update per epoch) and marked in every output; capped batch sizes share one run.

Runs. Each run (network, optimizer, batch size, epochs) is a line of the CSV, written with the Markdown
report after every run, so a run cut off still leaves a table; `--resume` keeps the lines
already in the CSV and does only the missing runs. `--plan` replaces the full grid by stages of (network,
batch sizes, epochs) for a machine that cannot afford 100 epochs everywhere; every line carries its epochs.

Settings kept from the original: 100 epochs on MNIST (`--epochs`), hidden sizes (MLP 3 x 256 ReLU; CNN
conv5x5x32 - pool - conv5x5x64 - pool - dense 1024 - dropout 0.2; 128 units per direction for the recurrent
networks), N(0, 1) initialisation of the MLP and CNN weights and of the output layers (`--init=normal`), mean
softmax cross-entropy, floor(N / batch) shuffled batches per epoch, seed 12345. Differences: the original
AdamW (Google BERT's AdamWeightDecayOptimizer) ran with its default weight-decay rate 0.0 and no bias
correction; here AdamW is `keras.optimizers.AdamW` and LAMB is `lamb.LAMB`, both with the same decoupled
weight decay (`--weight_decay`, default 0.01, the original LAMB's default, applied to every variable as
there); Adam is `keras.optimizers.Adam`. Every hyperparameter is printed and written into the outputs.

Outputs (in --out_dir, default docs/): mnist_results.csv, mnist_results.md (per network, our runs next to
the published numbers with the differences, and the seconds of every run) and mnist_accuracy.png (test
accuracy against batch size, one panel per network, one line per optimizer and epochs, the published MNIST
numbers dashed).
"""

import argparse
import csv
import datetime
import gzip
import io
import math
import os
import pathlib
import platform
import shlex
import struct
import sys
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scripts.experiments.experiment_common import (  # noqa: E402
    OneLineParser,
    batch_list,
    positive,
    write_atomically,
)

NETWORKS = ("mlp", "cnn", "birnn", "bigru", "bilstm")
NETWORK_TITLES = {"mlp": "MLP", "cnn": "CNN", "birnn": "Bi-RNN", "bigru": "Bi-GRU", "bilstm": "Bi-LSTM"}
OPTIMIZERS = ("adam", "adamw", "lamb")
OPTIMIZER_TITLES = {"adam": "Adam", "adamw": "AdamW", "lamb": "LAMB"}
BATCH_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK = {"networks": ("mlp", "birnn"), "batch_sizes": (64, 512, 16384), "epochs": 12}
FULL_EPOCHS = {"mnist": 100, "digits": 50}
NUM_CLASSES = 10

# Test accuracy (%) on MNIST published with the original release (its FULL_RESULTS.md): 100 epochs,
# learning rate 1e-3, NVIDIA Tesla T4. PUBLISHED[batch][optimizer] = (MLP, CNN, Bi-RNN, Bi-GRU, Bi-LSTM).
PUBLISHED_SOURCE = "ymcui/LAMB_Optimizer_TF, FULL_RESULTS.md (MNIST, 100 epochs, learning rate 1e-3)"
PUBLISHED = {
    64: {
        "adam": (97.03, 98.93, 96.24, 98.92, 99.04),
        "adamw": (97.11, 99.01, 96.50, 99.11, 99.04),
        "lamb": (98.27, 99.33, 97.73, 98.83, 98.94),
    },
    128: {
        "adam": (96.38, 98.76, 97.73, 99.08, 99.09),
        "adamw": (96.57, 98.72, 98.05, 98.96, 99.00),
        "lamb": (97.90, 99.20, 98.04, 98.87, 98.76),
    },
    256: {
        "adam": (95.85, 98.73, 97.05, 99.00, 99.12),
        "adamw": (95.40, 98.67, 97.75, 99.05, 98.92),
        "lamb": (97.88, 99.13, 98.02, 98.88, 98.76),
    },
    512: {
        "adam": (94.49, 98.49, 98.01, 98.99, 98.87),
        "adamw": (94.76, 98.36, 97.92, 99.00, 98.78),
        "lamb": (98.13, 99.11, 98.08, 98.55, 98.47),
    },
    1024: {
        "adam": (93.05, 97.92, 98.10, 98.94, 98.67),
        "adamw": (93.67, 98.00, 98.19, 98.86, 98.82),
        "lamb": (97.68, 98.82, 98.27, 98.61, 98.47),
    },
    2048: {
        "adam": (92.21, 97.63, 98.05, 98.77, 98.54),
        "adamw": (92.46, 97.75, 97.85, 98.47, 98.73),
        "lamb": (96.13, 98.62, 98.10, 98.54, 98.21),
    },
    4096: {
        "adam": (91.66, 97.12, 97.87, 98.72, 98.35),
        "adamw": (92.21, 97.31, 97.64, 98.69, 98.43),
        "lamb": (95.53, 98.37, 97.75, 98.58, 97.74),
    },
    8192: {
        "adam": (90.68, 96.54, 97.04, 98.50, 98.01),
        "adamw": (92.16, 96.98, 97.08, 98.69, 98.36),
        "lamb": (94.22, 98.26, 96.82, 96.73, 94.70),
    },
    16384: {
        "adam": (88.46, 95.06, 95.98, 97.81, 97.74),
        "adamw": (91.46, 96.57, 96.34, 98.45, 98.39),
        "lamb": (93.23, 97.89, 93.76, 87.60, 80.36),
    },
}

CSV_FIELDS = (
    "dataset",
    "network",
    "optimizer",
    "batch_size",
    "effective_batch_size",
    "capped",
    "epochs",
    "updates",
    "learning_rate",
    "weight_decay",
    "init",
    "seed",
    "test_accuracy",
    "train_seconds",
    "published_mnist_accuracy",
)


def published_accuracy(batch_size, optimizer, network):
    row = PUBLISHED.get(batch_size, {}).get(optimizer)
    return None if row is None else row[NETWORKS.index(network)]


# ----------------------------------------------------------------------------------------------------
# Data


class DataError(Exception):
    """A data file that is missing or not what was expected; the message is one line naming the file."""


class Dataset:
    """Images scaled to [0, 1] as float32 [N, H, W], integer labels [N], and a description."""

    def __init__(self, name, description, short, x_train, y_train, x_test, y_test):
        self.name = name
        self.description = description
        self.short = short
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test

    @property
    def image_shape(self):
        return self.x_train.shape[1:]


def mnist_dataset(source, x_train, y_train, x_test, y_test):
    """A Dataset from MNIST's uint8 images [N, 28, 28] and labels [N], wherever they were read from."""
    height, width = x_train.shape[1:]
    description = f"MNIST ({source}): {len(x_train)} training / {len(x_test)} test images, {height}x{width}"
    scale = np.float32(1 / 255)
    return Dataset(
        "mnist",
        description,
        "MNIST",
        x_train.astype(np.float32) * scale,
        y_train.astype(np.int32),
        x_test.astype(np.float32) * scale,
        y_test.astype(np.int32),
    )


IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: 0x0803 = uint8 x 3 dimensions, 0x0801 = uint8 x 1
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path, magic):
    """The uint8 array stored in one IDX file (gzip-compressed or not), checked against `magic` and its sizes.

    IDX: a big-endian int32 magic number (0, 0, type 0x08 = uint8, number of dimensions), one big-endian
    int32 size per dimension, then the values in row-major order.
    """
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip signature
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a readable gzip file ({error})") from None
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise DataError(f"{path}: expected the IDX magic number {magic}, found {found}")
    dimensions = magic & 0xFF
    header = 4 + 4 * dimensions
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    shape = struct.unpack(f">{dimensions}I", raw[4:header])
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise DataError(f"{path}: expected {expected} bytes for shape {shape}, found {len(raw)}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def idx_path(directory, name):
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory}: neither {name}.gz nor {name} found")


def load_idx(directory):
    """MNIST from its four IDX files in `directory` (the files keras and tensorflow-datasets start from)."""
    directory = pathlib.Path(directory)
    arrays = []
    for images_name, labels_name in IDX_FILES.values():
        images_path, labels_path = idx_path(directory, images_name), idx_path(directory, labels_name)
        images, labels = read_idx(images_path, IDX_IMAGES), read_idx(labels_path, IDX_LABELS)
        if len(images) != len(labels):
            raise DataError(
                f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}"
            )
        if labels.size and labels.max() >= NUM_CLASSES:
            raise DataError(f"{labels_path}: expected labels 0..9, found {labels.max()}")
        arrays += [images, labels]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DataError(
            f"{directory}: training images {arrays[0].shape[1:]} but test images {arrays[2].shape[1:]}"
        )
    return mnist_dataset(f"IDX files in {directory}", *arrays)


def load_tfds(download):
    """MNIST through tensorflow-datasets."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist")
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(f"MNIST is not prepared in {builder.data_dir}")
        builder.download_and_prepare()
    arrays = []
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        arrays += [data["image"][..., 0], data["label"]]  # images [N, 28, 28, 1] -> [N, 28, 28]
    return mnist_dataset("tensorflow-datasets", *arrays)


def keras_mnist_file():
    return (
        pathlib.Path(os.environ.get("KERAS_HOME", pathlib.Path.home() / ".keras")) / "datasets" / "mnist.npz"
    )


def load_keras(download):
    """MNIST through keras.datasets.mnist (its file in ~/.keras/datasets, downloaded there if allowed)."""
    if not download and not keras_mnist_file().is_file():
        raise FileNotFoundError(f"{keras_mnist_file()} does not exist")
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return mnist_dataset("keras.datasets.mnist", x_train, y_train, x_test, y_test)


def load_digits(seed):
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped in the package), split 80/20 stratified."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)  # [1797, 8, 8], pixel values 0..16
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    description = (
        f"scikit-learn 8x8 handwritten digits (MNIST not available): {len(x_train)} training / "
        f"{len(x_test)} test images, 8x8"
    )
    short = f"8x8 digits ({len(x_train)} training images)"
    return Dataset("digits", description, short, x_train, y_train, x_test, y_test)


def load_dataset(choice, seed):
    """`choice`: auto, tfds, keras, digits or idx:DIR (see --data)."""
    if choice.startswith("idx:"):
        return load_idx(choice[len("idx:") :])
    if choice == "digits":
        return load_digits(seed)
    if choice == "tfds":
        return load_tfds(download=True)
    if choice == "keras":
        return load_keras(download=True)
    reasons = []
    for name, load in (("tensorflow-datasets", load_tfds), ("keras", load_keras)):
        try:
            return load(download=False)
        except (ImportError, FileNotFoundError) as error:
            reasons.append(f"{name}: {error}")
    print(f"MNIST is not available here ({'; '.join(reasons)}); using the digits set.")
    return load_digits(seed)


# ----------------------------------------------------------------------------------------------------
# Networks and optimizers


def build_network(network, image_shape, init):
    """One of the five networks; `init="normal"` draws the weights the original drew from N(0, 1)."""
    import keras
    from keras import layers

    def initializer():
        return keras.initializers.RandomNormal(stddev=1.0) if init == "normal" else None

    def dense(units, activation=None):
        if init == "normal":
            return layers.Dense(
                units, activation, kernel_initializer=initializer(), bias_initializer=initializer()
            )
        return layers.Dense(units, activation)

    def conv(filters):
        kwargs = {"kernel_initializer": initializer(), "bias_initializer": initializer()}
        return layers.Conv2D(
            filters, 5, padding="same", activation="relu", **(kwargs if init == "normal" else {})
        )

    height, width = image_shape
    inputs = keras.Input((height, width))  # [B, H, W]
    if network == "mlp":
        x = layers.Flatten()(inputs)  # [B, H * W]
        for _ in range(3):
            x = dense(256, "relu")(x)
    elif network == "cnn":
        x = layers.Reshape((height, width, 1))(inputs)  # [B, H, W, 1]
        x = layers.MaxPooling2D(2, padding="same")(conv(32)(x))  # [B, H/2, W/2, 32]
        x = layers.MaxPooling2D(2, padding="same")(conv(64)(x))  # [B, H/4, W/4, 64]
        x = layers.Flatten()(x)
        x = layers.Dropout(0.2)(dense(1024, "relu")(x))
    else:
        cell = {"birnn": layers.SimpleRNN, "bigru": layers.GRU, "bilstm": layers.LSTM}[network]
        x = layers.Bidirectional(cell(128))(inputs)  # rows are time steps: [B, H, W] -> [B, 2 * 128]
    logits = dense(NUM_CLASSES)(x)  # [B, 10]
    return keras.Model(inputs, logits, name=network)


def build_optimizer(optimizer, learning_rate, weight_decay):
    import keras

    if optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    from lamb import LAMB

    return LAMB(learning_rate=learning_rate, weight_decay=weight_decay)


def describe_optimizer(optimizer):
    config = optimizer.get_config()
    keys = ("learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", "bias_correction")
    shown = ", ".join(f"{key}={config[key]}" for key in keys if key in config)
    return f"{type(optimizer).__module__}.{type(optimizer).__name__}({shown})"


# ----------------------------------------------------------------------------------------------------
# Runs

# Plans for machines that cannot afford the published protocol, stage by stage: (network, batch sizes,
# epochs). "cpu-hour" fits about an hour of two CPU cores shared with other work (measured per-epoch costs
# in docs/mnist_table.md): the MLP at 10 epochs at every batch size and at the published 100 epochs at
# batch 16384; the Bi-RNN at 10 epochs at batches 4096 and 16384; the CNN at 1 epoch (an epoch of it
# costs minutes); the Bi-GRU at 10 epochs at batch 16384. Bi-LSTM does not fit.
PLANS = {
    "cpu-hour": (
        ("mlp", BATCH_SIZES, 10),
        ("mlp", (16384,), 100),
        ("birnn", (4096, 16384), 10),
        ("cnn", (512, 4096), 1),
        ("bigru", (16384,), 10),
    ),
}
SETTING_FIELDS = ("dataset", "learning_rate", "weight_decay", "init", "seed")


def planned_cells(args):
    """(network, optimizer, batch, epochs) in the order they run: stage by stage, batch by batch."""
    if args.plan:
        stages = PLANS[args.plan]
    else:
        stages = [(network, args.batch_sizes, args.epochs) for network in args.networks]
    return [
        (network, optimizer, batch, epochs)
        for network, batches, epochs in stages
        for batch in batches
        for optimizer in args.optimizers
    ]


def cell_of(row):
    return row["network"], row["optimizer"], row["batch_size"], row["epochs"]


def train_and_evaluate(dataset, network, optimizer_name, batch_size, epochs, args):
    """Trains one network from scratch for `epochs` epochs; returns (test accuracy, seconds, optimizer)."""
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    model = build_network(network, dataset.image_shape, args.init)
    optimizer = build_optimizer(optimizer_name, args.learning_rate, args.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = (
        tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
        .shuffle(len(dataset.x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)  # floor(N / batch) updates per epoch, as the original
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=1000, verbose=0)
    return float(accuracy), seconds, optimizer


def make_row(dataset, args, cell, accuracy, seconds):
    network, optimizer, batch, epochs = cell
    train_size = len(dataset.x_train)
    effective = min(batch, train_size)
    return {
        "dataset": dataset.name,
        "network": network,
        "optimizer": optimizer,
        "batch_size": batch,
        "effective_batch_size": effective,
        "capped": effective != batch,
        "epochs": epochs,
        "updates": epochs * (train_size // effective),
        "learning_rate": args.learning_rate,
        "weight_decay": 0.0 if optimizer == "adam" else args.weight_decay,
        "init": args.init,
        "seed": args.seed,
        "test_accuracy": round(100 * accuracy, 2),
        "train_seconds": round(seconds, 1),
        "published_mnist_accuracy": published_accuracy(batch, optimizer, network),
    }


def run_experiment(dataset, args, rows, save):
    """Runs the planned cells not already in `rows`, calling save(rows) after each; returns all rows.

    A batch larger than the training set is capped at its size; capped cells share one run.
    """
    rows = list(rows)
    done = {cell_of(row) for row in rows}
    cells = [cell for cell in planned_cells(args) if cell not in done]
    train_size = len(dataset.x_train)
    runs, described = {}, set()
    print(f"{len(cells)} runs to do ({len(done)} already in the table)", flush=True)
    for count, cell in enumerate(cells, 1):
        network, optimizer_name, batch, epochs = cell
        effective = min(batch, train_size)
        key = (network, optimizer_name, effective, epochs)
        if key not in runs:
            accuracy, seconds, optimizer = train_and_evaluate(
                dataset, network, optimizer_name, effective, epochs, args
            )
            runs[key] = accuracy, seconds
            if optimizer_name not in described:
                print(f"  {OPTIMIZER_TITLES[optimizer_name]}: {describe_optimizer(optimizer)}")
                described.add(optimizer_name)
        accuracy, seconds = runs[key]
        rows.append(make_row(dataset, args, cell, accuracy, seconds))
        title = f"{NETWORK_TITLES[network]:8s} {OPTIMIZER_TITLES[optimizer_name]:6s}"
        print(
            f"[{count:3d}/{len(cells)}] {title} batch {batch:5d}, {epochs:3d} epochs "
            f"({rows[-1]['updates']:5d} updates): {100 * accuracy:6.2f}%  {seconds:6.1f} s",
            flush=True,
        )
        save(rows)
    return rows


def read_rows(path, dataset, args):
    """The rows of an earlier run's CSV (for --resume); they must have been made with the same settings."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    reference = {
        key: str(value) for key, value in make_row(dataset, args, ("mlp", "lamb", 1, 1), 0, 0).items()
    }
    typed = []
    for number, row in enumerate(rows, 2):
        if set(row) != set(CSV_FIELDS):
            raise DataError(f"{path}: expected the columns {','.join(CSV_FIELDS)}")
        for key in SETTING_FIELDS:
            expected = "0.0" if key == "weight_decay" and row["optimizer"] == "adam" else reference[key]
            if row[key] != expected:
                raise DataError(f"{path}, line {number}: {key} is {row[key]}, this run's is {expected}")
        try:
            typed.append(
                {
                    **row,
                    **{
                        key: int(row[key])
                        for key in ("batch_size", "effective_batch_size", "epochs", "updates")
                    },
                    **{key: float(row[key]) for key in ("learning_rate", "weight_decay", "test_accuracy")},
                    "seed": int(row["seed"]),
                    "train_seconds": float(row["train_seconds"]),
                    "capped": row["capped"] == "True",
                    "published_mnist_accuracy": published_accuracy(
                        int(row["batch_size"]), row["optimizer"], row["network"]
                    ),
                }
            )
        except ValueError as error:
            raise DataError(f"{path}, line {number}: {error}") from None
    return typed


# ----------------------------------------------------------------------------------------------------
# Outputs


def accuracy_table(values, networks, optimizers, batch_sizes):
    """Markdown table: rows (batch, optimizer), columns networks; the best optimizer of a batch in bold."""
    header = "| Batch | Optimizer | " + " | ".join(NETWORK_TITLES[n] for n in networks) + " |"
    lines = [header, "| ---: | :--- | " + " | ".join(":---:" for _ in networks) + " |"]
    for batch in batch_sizes:
        best = {n: max(values[batch, o, n] for o in optimizers) for n in networks}
        for optimizer in optimizers:
            cells = []
            for network in networks:
                value = values[batch, optimizer, network]
                text = f"{value:.2f}"
                cells.append(f"**{text}**" if value == best[network] else text)
            lines.append(f"| {batch} | {OPTIMIZER_TITLES[optimizer]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def signed(number):
    return "" if number is None else f"{number:+.2f}"


def comparison_table(rows, network, optimizers, with_difference):
    """One network's runs next to the published numbers: a line per (epochs, batch), ours in bold where best.

    Columns: ours per optimizer, published per optimizer, and (on MNIST) ours minus published.
    """
    mine = {(r["epochs"], r["batch_size"], r["optimizer"]): r for r in rows if r["network"] == network}
    titles = [OPTIMIZER_TITLES[o] for o in optimizers]
    columns = ["Epochs", "Batch", "Updates", *titles, *(f"published {t}" for t in titles)]
    columns += [f"Δ {t}" for t in titles] if with_difference else []
    lines = ["| " + " | ".join(columns) + " |", "|" + " ---: |" * len(columns)]
    for epochs, batch in sorted({key[:2] for key in mine}):
        found = [mine.get((epochs, batch, o)) for o in optimizers]
        ours = [None if r is None else r["test_accuracy"] for r in found]
        best = max((a for a in ours if a is not None), default=None)
        published = [published_accuracy(batch, o, network) for o in optimizers]
        done = next(r for r in found if r is not None)
        cells = [str(epochs), f"{batch}†" if done["capped"] else str(batch), str(done["updates"])]
        cells += ["" if a is None else f"**{a:.2f}**" if a == best else f"{a:.2f}" for a in ours]
        cells += ["" if p is None else f"{p:.2f}" for p in published]
        if with_difference:
            cells += [
                signed(None if a is None or p is None else a - p)
                for a, p in zip(ours, published, strict=True)
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing_table(rows, optimizers):
    """Seconds of every run: a line per (network, epochs, batch), a column per optimizer."""
    seconds = {(r["network"], r["epochs"], r["batch_size"], r["optimizer"]): r["train_seconds"] for r in rows}
    titles = [OPTIMIZER_TITLES[o] for o in optimizers]
    lines = [
        "| Network | Epochs | Batch | " + " | ".join(titles) + " |",
        "| :--- |" + " ---: |" * (2 + len(titles)),
    ]
    lines_in_order = sorted({key[:3] for key in seconds}, key=lambda key: (NETWORKS.index(key[0]), *key[1:]))
    for network, epochs, batch in lines_in_order:
        texts = [
            f"{seconds[network, epochs, batch, o]:.1f}" if (network, epochs, batch, o) in seconds else ""
            for o in optimizers
        ]
        lines.append(f"| {NETWORK_TITLES[network]} | {epochs} | {batch} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def markdown_report(rows, dataset, args, command):
    networks = [n for n in NETWORKS if any(r["network"] == n for r in rows)]
    train_size = len(dataset.x_train)
    out = io.StringIO()
    out.write(f"# Test accuracy (%) on {dataset.description}\n\n")
    out.write(f"Data set: **{dataset.name}** -- {dataset.description}.\n\n")
    out.write(
        "Settings: floor(N / batch) shuffled batches per epoch, the epochs of each run in its line; "
        f"learning rate {args.learning_rate} for every optimizer (not rescaled), weight decay "
        f"{args.weight_decay} for AdamW and LAMB (none for Adam), initialisation `{args.init}`, seed "
        f"{args.seed}. Adam = `keras.optimizers.Adam`, AdamW = `keras.optimizers.AdamW`, "
        f"LAMB = `lamb.LAMB`. Published: {PUBLISHED_SOURCE}, NVIDIA Tesla T4"
        + (" (Δ = ours - published)" if dataset.name == "mnist" else "")
        + ".\n\n"
    )
    if any(r["capped"] for r in rows):
        out.write(
            f"† batch larger than the {train_size} training images: capped at {train_size} (full-batch "
            "training, one update per epoch); the † lines of a network and optimizer are the same run.\n\n"
        )
    for network in networks:
        out.write(f"## {NETWORK_TITLES[network]}\n\n")
        out.write(comparison_table(rows, network, args.optimizers, dataset.name == "mnist") + "\n\n")
    out.write("## Training time (seconds per run, model.fit only)\n\n")
    out.write(timing_table(rows, args.optimizers) + "\n\n")
    published = {
        (b, o, n): published_accuracy(b, o, n) for b in PUBLISHED for o in OPTIMIZERS for n in NETWORKS
    }
    out.write(f"## Published table (MNIST, 100 epochs)\n\n{PUBLISHED_SOURCE}; NVIDIA Tesla T4.\n\n")
    out.write(accuracy_table(published, NETWORKS, OPTIMIZERS, sorted(PUBLISHED)) + "\n\n")
    runs = {(r["network"], r["optimizer"], r["effective_batch_size"], r["epochs"]): r for r in rows}
    minutes = sum(r["train_seconds"] for r in runs.values()) / 60  # capped lines share one run
    out.write(
        f"Produced by `{command}`: {len(rows)} lines, {minutes:.1f} minutes of training in all "
        f"({datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPU cores).\n"
    )
    return out.getvalue()


def csv_text(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in CSV_FIELDS})
    return out.getvalue()


def compact(number):
    return f"{number // 1024}k" if number >= 1024 and number % 1024 == 0 else str(number)


def plot_accuracy(rows, dataset, args, path):
    """Test accuracy against batch size: one panel per network, one line per optimizer and epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Adam's larger circles stay visible where AdamW gives the same accuracy.
    style = {"adam": ("tab:blue", "o", 8), "adamw": ("tab:orange", "s", 5), "lamb": ("tab:green", "^", 6)}
    networks = [n for n in NETWORKS if any(r["network"] == n for r in rows)]
    train_size = len(dataset.x_train)
    figure, axes = plt.subplots(1, len(networks), figsize=(3.4 * len(networks) + 0.6, 4.2), squeeze=False)
    for axis, network in zip(axes[0], networks, strict=True):
        all_epochs = sorted({r["epochs"] for r in rows if r["network"] == network})
        for optimizer in args.optimizers:
            color, marker, size = style[optimizer]
            for epochs, line in zip(all_epochs, ("-", ":", "-."), strict=False):
                mine = [
                    r
                    for r in rows
                    if (r["network"], r["optimizer"], r["epochs"]) == (network, optimizer, epochs)
                ]
                if mine:
                    mine.sort(key=lambda r: r["batch_size"])
                    axis.plot([r["batch_size"] for r in mine], [r["test_accuracy"] for r in mine], line,
                              marker=marker, markersize=size, color=color,
                              label=f"{OPTIMIZER_TITLES[optimizer]}, {epochs} ep")  # fmt: skip
            published = [(b, published_accuracy(b, optimizer, network)) for b in BATCH_SIZES]
            axis.plot(*zip(*published, strict=True), "--", color=color, alpha=0.4, linewidth=1,
                      label=f"{OPTIMIZER_TITLES[optimizer]}, published")  # fmt: skip
        if any(r["capped"] for r in rows):
            axis.axvspan(train_size, max(BATCH_SIZES) * 1.3, color="0.92", zorder=0)
            axis.text(train_size * 1.1, 0.03, f"capped at\n{train_size}",
                      transform=axis.get_xaxis_transform(), fontsize=7, color="0.35")  # fmt: skip
        axis.set_xscale("log", base=2)
        axis.set_xticks(BATCH_SIZES, [compact(b) for b in BATCH_SIZES], fontsize=7)
        axis.minorticks_off()
        axis.set_ylim(0, 100)
        axis.set_title(NETWORK_TITLES[network])
        axis.set_xlabel("batch size")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6, loc="lower left")
    axes[0][0].set_ylabel("test accuracy (%)")
    figure.suptitle(
        f"{dataset.short}: learning rate {args.learning_rate}; published (MNIST, 100 epochs) dashed",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)


def output_paths(args):
    out_dir = pathlib.Path(args.out_dir)
    return {
        "table": out_dir / f"{args.prefix}_results.md",
        "csv": out_dir / f"{args.prefix}_results.csv",
        "plot": out_dir / f"{args.prefix}_accuracy.png",
    }


def write_outputs(rows, dataset, args, command, plot=True):
    """The CSV, the Markdown report and (if `plot`) the figure, each written whole (see write_atomically)."""
    paths = output_paths(args)
    paths["csv"].parent.mkdir(parents=True, exist_ok=True)
    write_atomically(paths["csv"], lambda p: p.write_text(csv_text(rows)))
    write_atomically(paths["table"], lambda p: p.write_text(markdown_report(rows, dataset, args, command)))
    if plot:
        write_atomically(paths["plot"], lambda p: plot_accuracy(rows, dataset, args, p))
    return paths


# ----------------------------------------------------------------------------------------------------
# Command line


def comma_list(allowed):
    def parse(text):
        items = tuple(item.strip() for item in text.split(",") if item.strip())
        unknown = [item for item in items if item not in allowed]
        if not items or unknown:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return items

    return parse


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def data_choice(text):
    if text in ("auto", "tfds", "keras", "digits") or (text.startswith("idx:") and len(text) > len("idx:")):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, tfds, keras, digits or idx:DIR, got {text!r}")


DATA_HELP = (
    "auto (default): MNIST if tensorflow-datasets has it prepared or keras has downloaded it, else the "
    "digits set; tfds / keras: MNIST through them, downloading it if needed; idx:DIR: MNIST's four IDX "
    "files (gzip or not) in DIR; digits: the scikit-learn digits"
)


def parse_args(argv):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    quick_batches = ",".join(map(str, QUICK["batch_sizes"]))
    quick = f"networks {','.join(QUICK['networks'])}, batch sizes {quick_batches}, {QUICK['epochs']} epochs"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--data", type=data_choice, default="auto", help=DATA_HELP)
    parser.add_argument(
        "--plan", choices=tuple(PLANS), help="a staged plan instead of the full table (PLANS)"
    )
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in the output CSV, do only the missing ones")  # fmt: skip
    parser.add_argument("--networks", type=comma_list(NETWORKS), help=f"default {','.join(NETWORKS)}")
    parser.add_argument("--optimizers", type=comma_list(OPTIMIZERS), default=OPTIMIZERS)
    parser.add_argument("--batch_sizes", type=batch_list, help=f"default {','.join(map(str, BATCH_SIZES))}")
    epochs = f"default {FULL_EPOCHS['mnist']} on MNIST, {FULL_EPOCHS['digits']} on the digits"
    parser.add_argument("--epochs", type=positive(int), help=epochs)
    parser.add_argument("--learning_rate", type=positive(float), default=1e-3)
    parser.add_argument("--weight_decay", type=non_negative_float, default=0.01, help="AdamW and LAMB")
    parser.add_argument("--init", choices=("normal", "keras"), default="normal",
                        help="normal: N(0, 1) weights as the original; keras: Keras' defaults")  # fmt: skip
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out_dir", default=str(ROOT / "docs"))
    parser.add_argument(
        "--prefix", default="mnist", help="output files <prefix>_results.md/.csv, <prefix>_accuracy.png"
    )
    args = parser.parse_args(argv)
    if args.plan and (args.quick or args.networks or args.batch_sizes or args.epochs):
        parser.error(
            "--plan sets the networks, batch sizes and epochs: drop --quick/--networks/--batch_sizes/--epochs"
        )
    args.networks = args.networks or (QUICK["networks"] if args.quick else NETWORKS)
    args.batch_sizes = args.batch_sizes or (QUICK["batch_sizes"] if args.quick else BATCH_SIZES)
    return args


def describe_cells(args):
    if args.plan:
        stages = [f"{n} at {','.join(map(str, b))} for {e} epochs" for n, b, e in PLANS[args.plan]]
        return f"plan {args.plan}: " + "; ".join(stages)
    batches = ",".join(map(str, args.batch_sizes))
    return f"networks {','.join(args.networks)}; batch sizes {batches}; {args.epochs} epochs"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        dataset = load_dataset(args.data, args.seed)
        if args.epochs is None:
            args.epochs = QUICK["epochs"] if args.quick else FULL_EPOCHS[dataset.name]
        csv_path = output_paths(args)["csv"]
        rows = read_rows(csv_path, dataset, args) if args.resume and csv_path.is_file() else []
    except (DataError, OSError) as error:
        print(f"mnist_table.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    command = shlex.join(["python", "scripts/experiments/mnist_table.py", *argv])
    print(f"Data set: {dataset.description}")
    print(
        f"{describe_cells(args)}; optimizers {','.join(args.optimizers)}; "
        f"learning rate {args.learning_rate}; "
        f"weight decay {args.weight_decay} (AdamW, LAMB); init {args.init}; seed {args.seed}"
    )
    capped = [b for b in args.batch_sizes if b > len(dataset.x_train)]
    if capped:
        print(
            f"Batch sizes {','.join(map(str, capped))} exceed the {len(dataset.x_train)} training images: "
            f"capped at {len(dataset.x_train)} (full batch) and marked in the outputs."
        )
    # The CSV and the report after every run (a cut-off run still leaves them; --resume with nothing left
    # to do redraws the figure), the figure at the end.
    rows = run_experiment(
        dataset, args, rows, lambda rows: write_outputs(rows, dataset, args, command, plot=False)
    )
    paths = write_outputs(rows, dataset, args, command)
    print(markdown_report(rows, dataset, args, command))
    print("Wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
