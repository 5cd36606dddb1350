"""Forward + backward speed of the BERT pretraining model on this machine.

For each model size, precision (float32 / mixed_bfloat16) and compiler (TF graph / XLA) it times one
training-mode forward + backward pass (gradients of Google's pretraining loss with respect to every variable,
no optimizer update) and reports sequences/s, model FLOP/s, the fraction of this machine's matmul peak
(a chain of 2048^3 matmuls in the same dtype and with the same compiler, with as many FLOPs as the model
step and timed in turns with it, best of N for both, so both see the same load on a shared machine) and the
speed-up over float32 without XLA of the same size.

Model FLOPs are counted analytically from the matmuls (2 FLOPs per multiply-add; backward = 2 x forward):
per sequence, forward = L*S*(8H^2 + 4HF + 4SH) + P*(2H^2 + 2HV) + 2H^2 + 4H
(Q, K, V, attention-output and FFN projections; attention scores and context; masked-LM transform and
tied decoder at P positions; pooler; next-sentence head).

    python scripts/benchmarks/bench_model.py         # tiny, small, base at seq 128 (a few minutes)
    python scripts/benchmarks/bench_model.py --sizes=base --repeats=10
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_common import (  # noqa: E402
    peak_matmul,
    random_features,
    timed_call,
    timed_in_turns,
)

import bert  # noqa: E402

DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,small,base", help="configs/bert/<size>.json names")
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20, help="masked positions per sequence")
    parser.add_argument("--batch_sizes", default="tiny=32,small=16,base=8", help="per size; default 8")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per row (best reported)")
    parser.add_argument("--base_repeats", type=int, default=3, help="timed steps for base and larger")
    parser.add_argument("--peak_size", type=int, default=2048, help="n of the n x n x n peak matmul")
    return parser.parse_args()


def training_step(config, policy, jit_compile, batch, seq_length, predictions):
    """(function, args): gradients of Google's pretraining loss for one batch, dropout on."""
    model = bert.BertPretrainingModel(config, dtype=policy)
    features = random_features(config, batch, seq_length, predictions)

    @tf.function(jit_compile=jit_compile)
    def step(features):
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            loss = bert.pretraining_loss(bert.pretraining_sums(outputs, features))
        return loss, tape.gradient(loss, model.trainable_variables)

    return step, (features,)


def main():
    args = parse_args()
    batch_sizes = dict(item.split("=") for item in args.batch_sizes.split(",") if item)
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; seq {args.seq_length}, "
        f"{args.predictions} masked positions, training mode (dropout on), forward + backward, no optimizer",
        flush=True,
    )
    rows = []
    for size in args.sizes.split(","):
        config = bert.BertConfig.from_json_file(ROOT / "configs" / "bert" / f"{size}.json")
        batch = int(batch_sizes.get(size, 8))
        repeats = args.repeats if config.num_hidden_layers < 12 else args.base_repeats
        flops = bert.model_flops_per_sequence(config, args.seq_length, args.predictions)
        for policy in args.policies.split(","):
            for xla in (False, True):
                step, step_args = training_step(config, policy, xla, batch, args.seq_length, args.predictions)
                peak, peak_args, peak_flops = peak_matmul(DTYPES[policy], xla, args.peak_size, flops * batch)
                seconds, peak_seconds = timed_in_turns(
                    [timed_call(step, *step_args), timed_call(peak, *peak_args)],
                    repeats,
                    warmup=2,
                    shuffle=False,
                )
                row = {"size": size, "policy": policy, "xla": xla, "batch": batch}
                row["sequences_per_second"] = batch / seconds
                row["model_flops_per_second"] = flops * row["sequences_per_second"]
                row["peak_flops_per_second"] = peak_flops / peak_seconds
                rows.append(row)
                print(f"  {size} {policy} xla={xla}: {row['sequences_per_second']:.2f} seq/s", flush=True)
    print_table(rows)
    print(json.dumps({"seq_length": args.seq_length, "predictions": args.predictions, "rows": rows}))


def print_table(rows):
    """Markdown table of the rows; "vs f32 graph" is relative to the size's first row."""
    header = (
        f"| {'size':6} | {'policy':14} | {'XLA':3} | {'batch':5} | {'seq/s':>7} | {'model TFLOP/s':>13} "
        f"| {'peak TFLOP/s':>12} | {'of peak':>7} | {'vs f32 graph':>12} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    baseline = {}
    for row in rows:
        speed, model, peak = (
            row["sequences_per_second"],
            row["model_flops_per_second"],
            row["peak_flops_per_second"],
        )
        baseline.setdefault(row["size"], speed)
        print(
            f"| {row['size']:6} | {row['policy']:14} | {'yes' if row['xla'] else 'no':3} | {row['batch']:5d} "
            f"| {speed:7.2f} | {model / 1e12:13.3f} | {peak / 1e12:12.3f} | {model / peak:7.1%} "
            f"| {speed / baseline[row['size']]:11.2f}x |"
        )


if __name__ == "__main__":
    main()
