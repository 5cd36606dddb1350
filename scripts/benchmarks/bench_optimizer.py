"""Time per update of lamb.LAMB against Keras' Adam, AdamW and Lamb on BERT-base-shaped variables.

    python scripts/benchmarks/bench_optimizer.py    # 15 timed repeats, a few minutes (mostly XLA compiles)
    python scripts/benchmarks/bench_optimizer.py --repeats=50     # more repeats on a noisy machine

The variables have the shapes of Google's BERT-base pretraining model (110M parameters in 206 variables,
including the 30522 x 768 word embedding); the gradients are fixed random tensors. Each optimizer's whole
`apply` is one `tf.function(jit_compile=True)`. All candidates update the same variables and take turns
within each repeat, in a new random order every time, so that a noisy machine slows them alike. The table
gives the median time per update, and the median over repeats of the time relative to Keras Adam in the
same repeat (with the 25th-75th percentile range).

Memory: "state" is the size of the optimizer's own variables (slots, step counter, telemetry); "update
peak" is how far the process' peak resident memory rises above its resident memory during one warm update
(Linux: VmHWM after resetting it through /proc/self/clear_refs), i.e. the temporaries of the update.

Settings (printed with the table): LAMB and AdamW with weight decay 0.01, LAMB excluding LayerNorm and bias
variables from weight decay (the BERT recipe), Keras Lamb without weight decay (its cheapest setting);
learning rate 1e-4, default betas.
"""

import argparse
import os
import pathlib
import platform
import random
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lamb  # noqa: E402

LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
BERT_EXCLUDE_FROM_WEIGHT_DECAY = ["LayerNorm", "layer_norm", "bias"]

CANDIDATES = {
    "keras Adam": lambda: keras.optimizers.Adam(LEARNING_RATE),
    "keras AdamW": lambda: keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
    "keras Lamb": lambda: keras.optimizers.Lamb(LEARNING_RATE),
    "lamb.LAMB": lambda: lamb.LAMB(
        LEARNING_RATE, weight_decay=WEIGHT_DECAY, exclude_from_weight_decay=BERT_EXCLUDE_FROM_WEIGHT_DECAY
    ),
}


def bert_base_shapes(vocab_size=30522, hidden=768, layers=12, intermediate=3072, max_positions=512):
    """{Google checkpoint name: shape} of BERT-base pretraining (encoder, pooler, MLM and NSP heads)."""
    shapes = {
        "bert/embeddings/word_embeddings": (vocab_size, hidden),
        "bert/embeddings/position_embeddings": (max_positions, hidden),
        "bert/embeddings/token_type_embeddings": (2, hidden),
        "bert/embeddings/LayerNorm/gamma": (hidden,),
        "bert/embeddings/LayerNorm/beta": (hidden,),
    }
    for i in range(layers):
        layer = f"bert/encoder/layer_{i}"
        for dense, (n_in, n_out) in {
            "attention/self/query": (hidden, hidden),
            "attention/self/key": (hidden, hidden),
            "attention/self/value": (hidden, hidden),
            "attention/output/dense": (hidden, hidden),
            "intermediate/dense": (hidden, intermediate),
            "output/dense": (intermediate, hidden),
        }.items():
            shapes[f"{layer}/{dense}/kernel"] = (n_in, n_out)
            shapes[f"{layer}/{dense}/bias"] = (n_out,)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[f"{layer}/{norm}/gamma"] = (hidden,)
            shapes[f"{layer}/{norm}/beta"] = (hidden,)
    shapes.update(
        {
            "bert/pooler/dense/kernel": (hidden, hidden),
            "bert/pooler/dense/bias": (hidden,),
            "cls/predictions/transform/dense/kernel": (hidden, hidden),
            "cls/predictions/transform/dense/bias": (hidden,),
            "cls/predictions/transform/LayerNorm/gamma": (hidden,),
            "cls/predictions/transform/LayerNorm/beta": (hidden,),
            "cls/predictions/output_bias": (vocab_size,),
            "cls/seq_relationship/output_weights": (2, hidden),
            "cls/seq_relationship/output_bias": (2,),
        }
    )
    return shapes


def make_variables_and_gradients(seed=0):
    """Keras variables whose `.path` is the Google name, and one fixed random gradient for each."""
    rng = np.random.default_rng(seed)
    variables, gradients = [], []
    for name, shape in bert_base_shapes().items():
        *scopes, leaf = name.split("/")
        value = (
            (0.02 * rng.standard_normal(shape, dtype=np.float32)) if len(shape) == 2 else np.ones(shape, "f")
        )
        variables.append(_variable_in_scopes(scopes, leaf, value))
        gradients.append(tf.constant(1e-3 * rng.standard_normal(shape, dtype=np.float32)))
    return variables, gradients


def _variable_in_scopes(scopes, leaf, value):
    if not scopes:
        return keras.Variable(value, name=leaf)
    with keras.name_scope(scopes[0]):
        return _variable_in_scopes(scopes[1:], leaf, value)


def compiled_update(optimizer, variables):
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def update(gradients):
        optimizer.apply(gradients, variables)
        return optimizer.iterations

    return update


def update_peak_bytes(update, gradients):
    """Rise of the peak resident memory above the resident memory during one update (None if unknown)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS
        before = _proc_status_bytes("VmRSS")
        update(gradients).numpy()
        return _proc_status_bytes("VmHWM") - before
    except OSError:
        return None


def _proc_status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise OSError(f"{key} not in /proc/self/status")


def state_bytes(optimizer):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in optimizer.variables)


def benchmark(repeats, warmup, seed):
    variables, gradients = make_variables_and_gradients()
    optimizers = {name: make() for name, make in CANDIDATES.items()}
    updates = {}
    for name, optimizer in optimizers.items():
        started = time.perf_counter()
        updates[name] = compiled_update(optimizer, variables)
        for _ in range(warmup):
            updates[name](gradients).numpy()
        print(f"  {name}: compiled and warmed up in {time.perf_counter() - started:.1f} s", flush=True)

    peaks = {name: update_peak_bytes(update, gradients) for name, update in updates.items()}
    times = {name: [] for name in updates}
    order = list(updates)
    shuffler = random.Random(seed)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            started = time.perf_counter()
            updates[name](gradients).numpy()
            times[name].append(time.perf_counter() - started)
    states = {name: state_bytes(optimizer) for name, optimizer in optimizers.items()}
    return times, states, peaks


def print_table(times, states, peaks):
    adam = times["keras Adam"]
    print()
    print("| optimizer | median ms / update | time / keras Adam (25-75%) | state MiB | update peak MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        ratios = [t / a for t, a in zip(values, adam, strict=True)]
        low, median, high = np.percentile(ratios, [25, 50, 75])
        peak = "n/a" if peaks[name] is None else f"{peaks[name] / 2**20:.0f}"
        print(
            f"| {name} | {1e3 * statistics.median(values):.1f} | {median:.2f} ({low:.2f}-{high:.2f}) "
            f"| {states[name] / 2**20:.0f} | {peak} |"
        )
    versus_lamb = [t / k for t, k in zip(times["lamb.LAMB"], times["keras Lamb"], strict=True)]
    print(f"\nlamb.LAMB / keras Lamb: {statistics.median(versus_lamb):.2f} (median over repeats)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed updates per optimizer")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed updates per optimizer (after compiling)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the turn order")
    args = parser.parse_args()

    shapes = bert_base_shapes()
    parameter_count = sum(int(np.prod(shape)) for shape in shapes.values())
    print(
        f"BERT-base-shaped variables: {parameter_count / 1e6:.1f}M parameters in {len(shapes)} "
        f"variables; float32; jit_compile=True; learning rate {LEARNING_RATE}; weight decay {WEIGHT_DECAY} "
        f"(LAMB: excluding {BERT_EXCLUDE_FROM_WEIGHT_DECAY}; keras Lamb: none)"
    )
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {args.repeats} repeats, {args.warmup} warm-up updates",
        flush=True,
    )
    print_table(*benchmark(args.repeats, args.warmup, args.seed))


if __name__ == "__main__":
    main()
