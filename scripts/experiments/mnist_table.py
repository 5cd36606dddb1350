"""The MNIST table of the first TensorFlow LAMB release, reproduced with this project's LAMB.

The experiment (ymcui/LAMB_Optimizer_TF, 2019): five networks -- an MLP, a CNN, and bidirectional RNN, GRU
and LSTM networks reading the image row by row -- trained with Adam, AdamW and LAMB, all at learning rate
1e-3 (not rescaled with the batch size), at batch sizes 64 .. 16384, each for the same fixed number of
epochs; the test accuracy of every run goes into a table. With a fixed number of epochs a larger batch means
fewer updates, which is where LAMB's layer-wise trust ratio is expected to help.

    python scripts/experiments/mnist_table.py          # the full table (about 20 minutes on 2 CPU cores)
    python scripts/experiments/mnist_table.py --quick  # 2 networks x 3 optimizers x 3 batch sizes, a minute
    python scripts/experiments/mnist_table.py --data=mnist # download MNIST through tensorflow-datasets first

Data. MNIST is read through tensorflow-datasets when it is prepared on this machine (`--data=auto`, the
default, never downloads; `--data=mnist` downloads it). Otherwise the script runs on scikit-learn's 8x8
handwritten digits (1797 real scanned digits shipped inside the package), split 80/20 into 1437 training and
360 test images, and says so in its output and in the table header. A batch larger than the training set
cannot be drawn from it: such a batch is capped at the training-set size (full-batch training, one update per
epoch) and marked in every output; all capped batch sizes are the same experiment, so it runs once.

Settings kept from the original: 100 epochs on MNIST (`--epochs`), hidden sizes (MLP 3 x 256 ReLU; CNN
conv5x5x32 - pool - conv5x5x64 - pool - dense 1024 - dropout 0.2; 128 units per direction for the recurrent
networks), N(0, 1) initialisation of the MLP and CNN weights and of the output layers (`--init=normal`), mean
softmax cross-entropy, floor(N / batch) shuffled batches per epoch, seed 12345. Differences: the original
AdamW (Google BERT's AdamWeightDecayOptimizer) ran with its default weight-decay rate 0.0 and no bias
correction; here AdamW is `keras.optimizers.AdamW` and LAMB is `lamb.LAMB`, both with the same decoupled
weight decay (`--weight_decay`, default 0.01, the original LAMB's default, applied to every variable as
there); Adam is `keras.optimizers.Adam`. Every hyperparameter is printed and written into the outputs.

Outputs (in --out_dir, default docs/): mnist_table.md, mnist_table.csv and mnist_accuracy.png (test accuracy
against batch size, one panel per network, one line per optimizer, the published MNIST numbers dashed).
"""

import argparse
import csv
import datetime
import io
import os
import pathlib
import platform
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scripts.experiments.experiment_common import batch_list, positive, write_atomically  # noqa: E402

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


def load_mnist(download):
    """MNIST's 60000 training and 10000 test images through tensorflow-datasets."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist")
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(f"MNIST is not prepared in {builder.data_dir}")
        builder.download_and_prepare()
    arrays = {}
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        images = data["image"][..., 0].astype(np.float32) / 255.0  # [N, 28, 28]
        arrays[split] = (images, data["label"].astype(np.int32))
    description = "MNIST (tensorflow-datasets): 60000 training / 10000 test images, 28x28"
    return Dataset("mnist", description, "MNIST", *arrays["train"], *arrays["test"])


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
    if choice == "digits":
        return load_digits(seed)
    if choice == "mnist":
        return load_mnist(download=True)
    try:
        return load_mnist(download=False)
    except (ImportError, FileNotFoundError) as error:
        print(f"MNIST through tensorflow-datasets is not available here ({error}); using the digits set.")
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
# One run


def train_and_evaluate(dataset, network, optimizer_name, batch_size, args):
    """Trains one network from scratch for args.epochs epochs; returns (test accuracy, seconds, optimizer)."""
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
    model.fit(train, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=1000, verbose=0)
    return float(accuracy), seconds, optimizer


def run_experiment(dataset, args):
    """All runs; returns CSV rows (dicts). Capped batch sizes share one run per network and optimizer."""
    train_size = len(dataset.x_train)
    effective = {batch: min(batch, train_size) for batch in args.batch_sizes}
    unique_batches = sorted(set(effective.values()))
    total = len(args.networks) * len(args.optimizers) * len(unique_batches)
    results, count, described = {}, 0, set()
    for network in args.networks:
        for optimizer_name in args.optimizers:
            for batch in unique_batches:
                count += 1
                accuracy, seconds, optimizer = train_and_evaluate(
                    dataset, network, optimizer_name, batch, args
                )
                if optimizer_name not in described:
                    print(f"  {OPTIMIZER_TITLES[optimizer_name]}: {describe_optimizer(optimizer)}")
                    described.add(optimizer_name)
                results[network, optimizer_name, batch] = (accuracy, seconds)
                updates = args.epochs * (train_size // batch)
                title = f"{NETWORK_TITLES[network]:8s} {OPTIMIZER_TITLES[optimizer_name]:6s}"
                print(
                    f"[{count:3d}/{total}] {title} "
                    f"batch {batch:5d} ({updates:5d} updates): {100 * accuracy:6.2f}%  {seconds:6.1f} s",
                    flush=True,
                )
    rows = []
    for network in args.networks:
        for optimizer_name in args.optimizers:
            for batch in args.batch_sizes:
                accuracy, seconds = results[network, optimizer_name, effective[batch]]
                rows.append(
                    {
                        "dataset": dataset.name,
                        "network": network,
                        "optimizer": optimizer_name,
                        "batch_size": batch,
                        "effective_batch_size": effective[batch],
                        "capped": effective[batch] != batch,
                        "epochs": args.epochs,
                        "updates": args.epochs * (train_size // effective[batch]),
                        "learning_rate": args.learning_rate,
                        "weight_decay": 0.0 if optimizer_name == "adam" else args.weight_decay,
                        "init": args.init,
                        "seed": args.seed,
                        "test_accuracy": round(100 * accuracy, 2),
                        "train_seconds": round(seconds, 1),
                        "published_mnist_accuracy": published_accuracy(batch, optimizer_name, network),
                    }
                )
    return rows


# ----------------------------------------------------------------------------------------------------
# Outputs


def accuracy_table(values, networks, optimizers, batch_sizes, capped_batches=()):
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
            label = f"{batch}†" if batch in capped_batches else str(batch)
            lines.append(f"| {label} | {OPTIMIZER_TITLES[optimizer]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(rows, dataset, args, command, elapsed):
    networks, optimizers, batch_sizes = args.networks, args.optimizers, args.batch_sizes
    ours = {(r["batch_size"], r["optimizer"], r["network"]): r["test_accuracy"] for r in rows}
    capped = sorted({r["batch_size"] for r in rows if r["capped"]})
    train_size = len(dataset.x_train)
    out = io.StringIO()
    out.write(f"# Test accuracy (%) on {dataset.description}\n\n")
    out.write(f"Data set: **{dataset.name}** -- {dataset.description}.\n\n")
    out.write(
        f"Settings: {args.epochs} epochs for every batch size (floor(N / batch) shuffled batches per epoch), "
        f"learning rate {args.learning_rate} for every optimizer (not rescaled), weight decay "
        f"{args.weight_decay} for AdamW and LAMB (none for Adam), initialisation `{args.init}`, seed "
        f"{args.seed}. Adam = `keras.optimizers.Adam`, AdamW = `keras.optimizers.AdamW`, "
        "LAMB = `lamb.LAMB`.\n\n"
    )
    if capped:
        out.write(
            f"† batch larger than the {train_size} training images: capped at {train_size} (full-batch "
            f"training, {args.epochs} updates in all); every † row of a network and optimizer is the "
            "same run.\n\n"
        )
    out.write(accuracy_table(ours, networks, optimizers, batch_sizes, capped) + "\n\n")
    published_batches = [b for b in batch_sizes if b in PUBLISHED]
    if published_batches:
        published = {
            (b, o, n): published_accuracy(b, o, n)
            for b in published_batches
            for o in optimizers
            for n in networks
        }
        out.write(f"## Published (MNIST, for comparison)\n\n{PUBLISHED_SOURCE}; NVIDIA Tesla T4.\n\n")
        out.write(accuracy_table(published, networks, optimizers, published_batches) + "\n\n")
    out.write(
        f"Produced by `{command}` in {elapsed / 60:.1f} minutes "
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
    """Test accuracy against batch size: one panel per network, one line per optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Adam's larger circles stay visible where AdamW gives the same accuracy.
    style = {"adam": ("tab:blue", "o", 8), "adamw": ("tab:orange", "s", 5), "lamb": ("tab:green", "^", 6)}
    networks, train_size = args.networks, len(dataset.x_train)
    figure, axes = plt.subplots(1, len(networks), figsize=(3.2 * len(networks) + 0.6, 3.8), squeeze=False)
    for axis, network in zip(axes[0], networks, strict=True):
        for optimizer in args.optimizers:
            color, marker, size = style[optimizer]
            mine = [r for r in rows if r["network"] == network and r["optimizer"] == optimizer]
            batches = [r["batch_size"] for r in mine]
            accuracies = [r["test_accuracy"] for r in mine]
            axis.plot(batches, accuracies, marker=marker, markersize=size, color=color,
                      label=f"{OPTIMIZER_TITLES[optimizer]}, {dataset.name}")  # fmt: skip
            published = [(b, published_accuracy(b, optimizer, network)) for b in batches if b in PUBLISHED]
            if published:
                axis.plot(*zip(*published, strict=True), "--", color=color, alpha=0.5,
                          label=f"{OPTIMIZER_TITLES[optimizer]}, published (MNIST)")  # fmt: skip
        if max(args.batch_sizes) > train_size:
            axis.axvspan(train_size, max(args.batch_sizes) * 1.3, color="0.92", zorder=0)
            axis.text(train_size * 1.1, 0.03, f"capped at\n{train_size}",
                      transform=axis.get_xaxis_transform(), fontsize=7, color="0.35")  # fmt: skip
        axis.set_xscale("log", base=2)
        axis.set_xticks(args.batch_sizes, [compact(b) for b in args.batch_sizes], fontsize=7)
        axis.minorticks_off()
        axis.set_ylim(0, 100)
        axis.set_title(NETWORK_TITLES[network])
        axis.set_xlabel("batch size")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="lower center", ncol=6 if len(networks) > 2 else 3, fontsize=7, frameon=False
    )
    figure.suptitle(
        f"{dataset.short}: {args.epochs} epochs at every batch size, learning rate {args.learning_rate}",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0.06 if len(networks) > 2 else 0.12, 1, 1))
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)


def write_outputs(rows, dataset, args, report):
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / f"{args.prefix}_table.md",
        "csv": out_dir / f"{args.prefix}_table.csv",
        "plot": out_dir / f"{args.prefix}_accuracy.png",
    }
    write_atomically(paths["csv"], lambda p: p.write_text(csv_text(rows)))
    write_atomically(paths["plot"], lambda p: plot_accuracy(rows, dataset, args, p))
    write_atomically(paths["table"], lambda p: p.write_text(report))
    return paths


# ----------------------------------------------------------------------------------------------------
# Command line


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def parse_args(argv):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    quick_batches = ",".join(map(str, QUICK["batch_sizes"]))
    quick = f"networks {','.join(QUICK['networks'])}, batch sizes {quick_batches}, {QUICK['epochs']} epochs"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--data", choices=("auto", "mnist", "digits"), default="auto",
                        help="auto: MNIST if tensorflow-datasets has it prepared, else the digits set; "
                        "mnist: download it if needed; digits: the scikit-learn digits")  # fmt: skip
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
        "--prefix", default="mnist", help="output files <prefix>_table.md/.csv, <prefix>_accuracy.png"
    )
    args = parser.parse_args(argv)
    args.networks = args.networks or (QUICK["networks"] if args.quick else NETWORKS)
    args.batch_sizes = args.batch_sizes or (QUICK["batch_sizes"] if args.quick else BATCH_SIZES)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    dataset = load_dataset(args.data, args.seed)
    if args.epochs is None:
        args.epochs = QUICK["epochs"] if args.quick else FULL_EPOCHS[dataset.name]
    command = shlex.join(["python", "scripts/experiments/mnist_table.py", *argv])
    print(f"Data set: {dataset.description}")
    print(
        f"Networks {','.join(args.networks)}; optimizers {','.join(args.optimizers)}; batch sizes "
        f"{','.join(map(str, args.batch_sizes))}; {args.epochs} epochs; learning rate {args.learning_rate}; "
        f"weight decay {args.weight_decay} (AdamW, LAMB); init {args.init}; seed {args.seed}"
    )
    capped = [b for b in args.batch_sizes if b > len(dataset.x_train)]
    if capped:
        print(
            f"Batch sizes {','.join(map(str, capped))} exceed the {len(dataset.x_train)} training images: "
            f"capped at {len(dataset.x_train)} (full batch) and marked in the outputs."
        )
    start = time.perf_counter()
    rows = run_experiment(dataset, args)
    report = markdown_report(rows, dataset, args, command, time.perf_counter() - start)
    paths = write_outputs(rows, dataset, args, report)
    print(report)
    print("Wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
