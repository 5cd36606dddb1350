"""Speed of the full pretraining step (forward, backward, accumulation, LAMB update) against keras-hub.

Ours: the application's own step, as `run_pretraining.py` runs it on one CPU: `trainer.TrainStep`
(micro-batch gradient accumulation, the all-reduce, global-norm clipping, one `lamb.LAMB` update with the
phase config's weight-decay and layer-adaptation exclusions) inside the trainer's device loop
(`trainer.loop.make_device_loop`: `steps_per_loop` optimizer steps per tf.function call) under
OneDeviceStrategy, on `bert.BertPretrainingModel` (masked-LM and next-sentence heads), reading a repeated
in-memory batch through the trainer's input iterator. Settings: float32 / mixed_bfloat16, 1 or 2
accumulation micro-steps for the same global batch, and the whole step as one XLA program
(`runtime.jit_compile`; with 1 micro-step unless --xla_accumulation).

The peer: keras-hub's `keras_hub.models.BertMaskedLM` on a `BertBackbone` of the same size (no preprocessor,
no download) trained with `model.fit` and `keras.optimizers.Lamb` (same learning-rate schedule, betas,
epsilon, weight decay with LayerNorm and bias excluded, `global_clipnorm`), in all four settings
float32 / mixed_bfloat16 x `jit_compile` on / off, with `steps_per_execution` equal to our steps per call;
its best setting of each size is the reference. BertMaskedLM has no next-sentence head (and its pooler
output is unused): it does slightly less work per sequence, which the FLOP counts below state.

Every candidate of a size, plus a matmul-peak chain per dtype, runs once per turn in a shuffled order and
its best turn is kept (the machine is shared; absolute speeds vary from run to run, the same-run ratios are
the result). Each candidate's global batch per optimizer update is the same. Reported: sequences/s, model
FLOP/s (matmul FLOPs counted analytically, forward + 2x backward: bert.model_flops_per_sequence; the
peer's count leaves out the pooler and next-sentence head it does not train), the fraction of this machine's
matmul peak in the same dtype (a chain of --peak_size^3 matmuls without XLA, oneDNN's, the fastest here),
and the speed relative to the peer's best setting of that size, overall and in the same precision, against
the targets (our best >= 2x the peer's best; ours >= 1.2x the peer in the same precision).

    python scripts/benchmarks/bench_train.py                                   # tiny, small, base
    python scripts/benchmarks/bench_train.py --sizes=small --repeats=8         # steadier numbers for one size
    python scripts/benchmarks/bench_train.py --sizes=tiny --xla=off,on --xla_accumulation
    python scripts/benchmarks/bench_train.py --sizes=base --batch_sizes=base=16 --accumulation=1,2,4

`--host_overhead` measures instead what the device loop adds to the replica function, on 1 and on 4 logical
CPU devices: BERT-tiny (vocabulary 4000, as the demo's), a 2-sequence micro-batch per replica, sequence
length 64 with 10 masked positions, float32, no XLA. "Replica function alone" is a tf.function running the
train step under `strategy.run` 10 times over (unrolled, on a batch already on the devices: no loop, no
input); "in the loop" is the device loop at steps_per_loop 1 and 50, reading the trainer's input iterator,
with the input's look-ahead (the next step's rows waiting on the devices, as the trainer runs) and without
it (each step's rows copied to the devices at the start of the step). All are timed in turns; reported: ms
per optimizer step (best turn), the loop's overhead over the replica function, and the time with the
look-ahead over the time without it (the median over the turns of that ratio within a turn, which a load
spike in one turn does not move). "The input alone" is the device loop with a stand-in step that only reads
its rows: the input's own work per step (iterator read, slicing, copy to the devices, and the look-ahead's
read and write when on), the most the look-ahead can hide behind a step.

    python scripts/benchmarks/bench_train.py --host_overhead --repeats=7
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_common import (  # noqa: E402
    block,
    peak_matmul,
    random_features,
    timed_call,
    timed_in_turns,
)

import bert  # noqa: E402
import trainer  # noqa: E402
from trainer.inputs import DistributedInput  # noqa: E402
from trainer.loop import LoopTotals, make_device_loop  # noqa: E402

ROWS_MARK = "rows of one size: "  # how a size's process hands its rows to the main one
DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}
MAX_PEAK_FLOPS = 2e11
TARGET_SAME_PRECISION = 1.2  # ours over the peer's best setting in the same precision
TARGET_BEST = 2.0  # our best setting over the peer's best setting


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="tiny,small,base", help="configs/bert/<size>.json names")
    parser.add_argument(
        "--batch_sizes", default="tiny=32,small=32,base=8", help="global batch per update, per size"
    )
    parser.add_argument("--policies", default="float32,mixed_bfloat16", help="precisions (both sides)")
    parser.add_argument(
        "--accumulation",
        default="1,2",
        help="our accumulation micro-steps per update (each divides the batch)",
    )
    parser.add_argument("--xla", default="off,on", help="our runtime.jit_compile settings: off, on or off,on")
    parser.add_argument(
        "--peer_xla", default="off,on", help="the peer's jit_compile settings: off, on or off,on"
    )
    parser.add_argument(
        "--xla_accumulation",
        action="store_true",
        help="also time our XLA step with more than one micro-step (default: XLA with 1 micro-step only)",
    )
    parser.add_argument("--steps_per_call", default="tiny=4,small=1,base=1", help="optimizer steps per call")
    parser.add_argument("--repeats", type=int, default=5, help="timed turns (best kept)")
    parser.add_argument("--base_repeats", type=int, default=2, help="timed turns for 12 layers and more")
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20, help="masked positions per sequence")
    parser.add_argument("--config", default="phase1.yaml", help="run config whose optimizer section is used")
    parser.add_argument("--peak_size", type=int, default=2048, help="n of the n x n x n peak matmuls")
    parser.add_argument("--no_peer", action="store_true", help="time our settings only")
    parser.add_argument(
        "--host_overhead", action="store_true", help="measure the device loop's overhead (see above)"
    )
    parser.add_argument("--one_size", action="store_true", help=argparse.SUPPRESS)  # a size's own process
    return parser.parse_args()


def parse_switch(text, flag):
    """ "off,on" -> [False, True]."""
    values = {"off": False, "on": True}
    if any(item not in values for item in text.split(",")):
        raise SystemExit(f"{flag}: expected off, on or off,on, got {text!r}")
    return [values[item] for item in text.split(",")]


def per_size(text, size, default):
    values = dict(item.split("=") for item in text.split(",") if item)
    return int(values.get(size, default))


class OurTraining:
    """One model + LAMB of one precision; every step variant (XLA, accumulation) trains these variables."""

    def __init__(self, bert_config, policy, run_config, strategy):
        self.strategy, self.run_config = strategy, run_config
        with strategy.scope():
            self.model = bert.BertPretrainingModel(bert_config, dtype=policy)
            schedule = trainer.plan_schedule(run_config.schedule, run_config.train).make_schedule()
            self.optimizer = trainer.make_optimizer(run_config.optimizer, schedule)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(
                0, dtype=tf.int64, trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
            )
            self.totals = LoopTotals()

    def train_step(self, global_batch, accumulation, xla):
        return trainer.TrainStep(
            self.model,
            self.optimizer,
            global_batch_size=global_batch,
            accumulation_steps=accumulation,
            clip_global_norm=self.run_config.optimizer.clip_global_norm,
            jit_compile=xla,
        )

    def inputs(self, features, lookahead=True):
        """The trainer's input over a repeated batch (`features` holds one replica's rows)."""
        return DistributedInput(
            self.strategy,
            lambda context, size: (
                tf.data.Dataset.from_tensors(features).repeat().unbatch().batch(size, drop_remainder=True)
            ),
            int(features["input_ids"].shape[0]),
            lookahead=lookahead,
        )

    def device_loop(self, features, accumulation, xla, lookahead=True):
        """The trainer's device loop over a repeated batch (`features` holds one replica's rows)."""
        inputs = self.inputs(features, lookahead)
        global_batch = inputs.replica_batch_size * self.strategy.num_replicas_in_sync
        train_step = self.train_step(global_batch, accumulation, xla)
        return make_device_loop(self.strategy, train_step, inputs, self.step, self.totals)

    def candidate(self, features, accumulation, xla, steps):
        """A zero-argument callable: `steps` optimizer steps in one device-loop call; returns its seconds."""
        return timed_call(self.device_loop(features, accumulation, xla), tf.constant(steps))


class PeerTraining:
    """keras-hub's BertMaskedLM of the same size, compiled with keras.optimizers.Lamb, run by model.fit."""

    def __init__(self, bert_config, policy, xla, features, steps, run_config):
        try:
            import keras_hub  # benchmark-only dependency (requirements-bench.txt)
        except ImportError:
            sys.exit("bench_train.py: error: keras-hub is not installed: `make bench` installs it "
                     "(requirements-bench.txt), or pass --no_peer")  # fmt: skip

        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=bert_config.vocab_size,
            num_layers=bert_config.num_hidden_layers,
            num_heads=bert_config.num_attention_heads,
            hidden_dim=bert_config.hidden_size,
            intermediate_dim=bert_config.intermediate_size,
            dropout=bert_config.hidden_dropout_prob,
            max_sequence_length=bert_config.max_position_embeddings,
            num_segments=bert_config.type_vocab_size,
            dtype=policy,
        )
        self.model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
        optimizer_config = run_config.optimizer
        optimizer = keras.optimizers.Lamb(
            learning_rate=trainer.plan_schedule(run_config.schedule, run_config.train).make_schedule(),
            beta_1=optimizer_config.beta_1,
            beta_2=optimizer_config.beta_2,
            epsilon=optimizer_config.epsilon,
            weight_decay=optimizer_config.weight_decay,
            global_clipnorm=optimizer_config.clip_global_norm,
        )
        # Keras matches these names in variable.name: LayerNorm's gamma/beta and every bias.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        self.model.compile(optimizer=optimizer, jit_compile=xla, steps_per_execution=steps)
        x = {
            "token_ids": features["input_ids"],
            "segment_ids": features["segment_ids"],
            "padding_mask": features["input_mask"],
            "mask_positions": features["masked_lm_positions"],
        }
        example = (x, features["masked_lm_ids"], features["masked_lm_weights"])
        self.dataset = tf.data.Dataset.from_tensors(example).repeat()
        self.steps = steps
        self.timer = _ExecutionTimer()

    def __call__(self):
        """`steps` optimizer steps (one execution of the compiled train function); returns its seconds."""
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=self.steps, verbose=0, callbacks=[self.timer])
        return self.timer.seconds


class _ExecutionTimer(keras.callbacks.Callback):
    """Wall time of one `fit` execution, from the start of its batch to its results (not fit's set-up)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        block(logs)  # the loss and metrics: the step is done
        self.seconds = time.perf_counter() - self.start


def build_candidates(size, bert_config, args, run_config, strategy):
    """[(row description, zero-argument candidate)] for one size: ours, then the peer's settings."""
    batch = per_size(args.batch_sizes, size, 8)
    steps = per_size(args.steps_per_call, size, 1)
    features = random_features(bert_config, batch, args.seq_length, args.predictions)
    xla_settings = parse_switch(args.xla, "--xla")
    candidates = []
    for policy in args.policies.split(","):
        ours = OurTraining(bert_config, policy, run_config, strategy)
        for xla in xla_settings:
            for accumulation in (int(a) for a in args.accumulation.split(",")):
                if xla and accumulation > 1 and not args.xla_accumulation:
                    continue
                if batch % accumulation:
                    raise SystemExit(
                        f"batch {batch} of {size} is not divisible by {accumulation} micro-steps"
                    )
                row = dict(side="ours", policy=policy, xla=xla, accumulation=accumulation)
                candidates.append((row, ours.candidate(features, accumulation, xla, steps)))
    if not args.no_peer:
        for policy in args.policies.split(","):
            for xla in parse_switch(args.peer_xla, "--peer_xla"):
                row = dict(side="keras-hub", policy=policy, xla=xla, accumulation=1)
                candidates.append((row, PeerTraining(bert_config, policy, xla, features, steps, run_config)))
    for row, _ in candidates:
        row.update(size=size, batch=batch, steps_per_call=steps)
    return candidates


def main():
    """Each size is measured in a process of its own (its models and compiled steps freed before the next
    size starts: the base size alone peaks at about 18 GB); this process prints the combined table."""
    args = parse_args()
    if args.host_overhead:
        measure_host_overhead(args)
        return
    if args.one_size:
        rows = measure_size(args)
        print(ROWS_MARK + json.dumps(rows), flush=True)
        # Without the interpreter's teardown: freeing a base run's models and XLA executables took minutes.
        os._exit(0)
    run_config = trainer.load_config(args.config)
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; seq {args.seq_length}, "
        f"{args.predictions} masked positions; optimizer from {args.config}: {run_config.optimizer}",
        flush=True,
    )
    rows = []
    for size in args.sizes.split(","):
        command = [sys.executable, __file__, *sys.argv[1:], f"--sizes={size}", "--one_size"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            if line.startswith(ROWS_MARK):
                rows.extend(json.loads(line[len(ROWS_MARK) :]))
            else:
                print(line, end="", flush=True)
        if process.wait():
            raise SystemExit(f"measuring {size} failed (exit code {process.returncode})")
    print_table(rows)
    print_summary(rows)
    print(json.dumps({"seq_length": args.seq_length, "predictions": args.predictions, "rows": rows}))


def measure_size(args):
    """The rows of the one size in args.sizes: every candidate timed in turns with the matmul peaks."""
    size = args.sizes
    run_config = trainer.load_config(args.config)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    bert_config = bert.BertConfig.from_json_file(ROOT / "configs" / "bert" / f"{size}.json")
    repeats = args.repeats if bert_config.num_hidden_layers < 12 else args.base_repeats
    candidates = build_candidates(size, bert_config, args, run_config, strategy)
    ours_flops = bert.model_flops_per_sequence(bert_config, args.seq_length, args.predictions)
    peer_flops = bert.model_flops_per_sequence(
        bert_config, args.seq_length, args.predictions, next_sentence=False
    )
    first = candidates[0][0]
    # Sized like one of our calls (capped: a few seconds of matmuls measure the peak well enough).
    call_flops = min(ours_flops * first["batch"] * first["steps_per_call"], MAX_PEAK_FLOPS)
    peaks = {}
    for policy in args.policies.split(","):
        chain, chain_args, peaks[policy] = peak_matmul(DTYPES[policy], False, args.peak_size, call_flops)
        candidates.append((dict(side="peak", policy=policy), timed_call(chain, *chain_args)))

    started = time.perf_counter()

    def report(turn, seconds):
        times = " ".join(f"{s:.2f}" for s in seconds)
        elapsed = time.perf_counter() - started
        print(f"  {size} turn {turn + 1}/{repeats} ({elapsed:.0f} s): {times}", flush=True)

    print(f"{size}: {len(candidates)} candidates; warming up (tracing, compiling)", flush=True)
    best = timed_in_turns([c for _, c in candidates], repeats, warmup=1, on_turn=report)
    peak_rate = {}
    for (row, _), seconds in zip(candidates, best, strict=True):
        if row["side"] == "peak":
            peak_rate[row["policy"]] = peaks[row["policy"]] / seconds
    rows = []
    for (row, _), seconds in zip(candidates, best, strict=True):
        if row["side"] == "peak":
            continue
        flops = ours_flops if row["side"] == "ours" else peer_flops
        row["sequences_per_second"] = row["batch"] * row["steps_per_call"] / seconds
        row["model_flops_per_second"] = flops * row["sequences_per_second"]
        row["peak_flops_per_second"] = peak_rate[row["policy"]]
        rows.append(row)
    add_ratios(rows)
    return rows


def add_ratios(rows):
    """Each row's speed over the peer's best setting of the size, overall and in the row's precision."""
    peer = [row for row in rows if row["side"] != "ours"]
    if not peer:
        return
    best = max(row["sequences_per_second"] for row in peer)
    for row in rows:
        same = [p["sequences_per_second"] for p in peer if p["policy"] == row["policy"]]
        row["vs_peer_best"] = row["sequences_per_second"] / best
        row["vs_peer_best_same_precision"] = row["sequences_per_second"] / max(same) if same else None


def describe(row):
    xla = "XLA" if row["xla"] else "no XLA"
    steps = row["accumulation"]
    accumulation = f", {steps} micro-step{'s' if steps > 1 else ''}" if row["side"] == "ours" else ""
    return f"{row['side']} {row['policy']} {xla}{accumulation}"


def print_table(rows):
    header = (
        f"| {'size':5} | {'model':9} | {'precision':14} | {'XLA':3} | {'accum':5} | {'batch':5} "
        f"| {'seq/s':>7} | {'model TFLOP/s':>13} | {'of peak':>7} | {'vs peer best':>12} "
        f"| {'vs peer same prec.':>18} |"
    )
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        ratio = row.get("vs_peer_best")
        same = row.get("vs_peer_best_same_precision")
        accumulation = str(row["accumulation"]) if row["side"] == "ours" else "-"
        print(
            f"| {row['size']:5} | {row['side']:9} | {row['policy']:14} | {'yes' if row['xla'] else 'no':3} "
            f"| {accumulation:>5} | {row['batch']:5d} | {row['sequences_per_second']:7.2f} "
            f"| {row['model_flops_per_second'] / 1e12:13.3f} "
            f"| {row['model_flops_per_second'] / row['peak_flops_per_second']:7.1%} "
            f"| {_ratio(ratio):>12} | {_ratio(same):>18} |"
        )


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def fastest(rows):
    return max(rows, key=lambda row: row["sequences_per_second"])


def print_summary(rows):
    """Per size: the peer's best setting, our best as a ratio to it, and our best in each precision as a
    ratio to the peer's best in that precision, each against its target."""
    for size in dict.fromkeys(row["size"] for row in rows):
        size_rows = [row for row in rows if row["size"] == size]
        peer = [row for row in size_rows if row["side"] != "ours"]
        ours = [row for row in size_rows if row["side"] == "ours"]
        if not peer or not ours:
            continue
        peer_best, our_best = fastest(peer), fastest(ours)
        ratio = our_best["vs_peer_best"]
        print(
            f"{size}: the peer's best is {describe(peer_best)} "
            f"({peer_best['sequences_per_second']:.2f} seq/s); "
            f"our best, {describe(our_best)}, is {ratio:.2f}x it (target {TARGET_BEST:.1f}x: "
            f"{_verdict(ratio, TARGET_BEST)})"
        )
        for policy in dict.fromkeys(row["policy"] for row in ours):
            peer_policy = [row for row in peer if row["policy"] == policy]
            if peer_policy:
                a, b = fastest([row for row in ours if row["policy"] == policy]), fastest(peer_policy)
                ratio = a["sequences_per_second"] / b["sequences_per_second"]
                print(
                    f"  {policy}: {describe(a)} is {ratio:.2f}x {describe(b)} "
                    f"(target {TARGET_SAME_PRECISION:.1f}x: {_verdict(ratio, TARGET_SAME_PRECISION)})"
                )


HOST_DEVICES = (1, 4)
HOST_STEPS_PER_LOOP = (1, 50)
UNROLLED = 10  # replica-function calls per timed call of the "alone" candidate
INPUT_STEPS = 200  # steps per timed call of the "input alone" candidate


def replica_alone(training, features, strategy):
    """A zero-argument candidate: UNROLLED train steps under strategy.run, on batches already on the
    devices."""
    train_step = training.train_step(
        int(features["input_ids"].shape[0]) * strategy.num_replicas_in_sync, 1, False
    )
    on_devices = strategy.experimental_distribute_values_from_function(
        lambda context: {name: tf.identity(t) for name, t in features.items()}
    )

    @tf.function
    def unrolled():
        for _ in range(UNROLLED):
            out = strategy.run(train_step, args=(on_devices,))
        return strategy.experimental_local_results(out["gradient_norm"])[0]

    return timed_call(unrolled)


def consume_rows(rows):
    """A stand-in for the train step that only reads its rows: in the device loop, it leaves the input's
    work per step (iterator read, slicing, copy to the device, the look-ahead's read and write)."""
    total = tf.add_n([tf.reduce_sum(tf.cast(t, tf.float32)) for t in rows.values()])
    return {"sums": tf.fill([len(bert.SUM_KEYS)], total), "gradient_norm": total, "applied": tf.constant(1.0)}


def measure_host_overhead(args):
    """ms per step of the device loop at each steps_per_loop, with and without the input's look-ahead,
    against the replica function alone, on 1 and 4 logical CPU devices, all timed in turns in this process."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * max(HOST_DEVICES)
    )
    run_config = trainer.load_config(args.config)
    bert_config = bert.BertConfig.from_json_file(ROOT / "configs" / "bert" / "tiny.json")
    bert_config = bert.BertConfig(**{**bert_config.to_dict(), "vocab_size": 4000})
    features = random_features(bert_config, 2, 64, 10)
    # (devices, steps_per_loop, None for the replica function alone or "input" for the input alone,
    # look-ahead) -> (steps per call, candidate)
    candidates = {}
    for devices in HOST_DEVICES:
        strategy = (
            tf.distribute.OneDeviceStrategy("/cpu:0")
            if devices == 1
            else tf.distribute.MirroredStrategy(
                [f"/cpu:{i}" for i in range(devices)], cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
        )
        training = OurTraining(bert_config, "float32", run_config, strategy)
        candidates[devices, None, None] = UNROLLED, replica_alone(training, features, strategy)
        for lookahead in (False, True):
            loop = training.device_loop(features, 1, False, lookahead)
            for steps in HOST_STEPS_PER_LOOP:
                candidates[devices, steps, lookahead] = steps, timed_call(loop, tf.constant(steps))
            inputs = training.inputs(features, lookahead)
            loop = make_device_loop(strategy, consume_rows, inputs, training.step, training.totals)
            candidates[devices, "input", lookahead] = INPUT_STEPS, timed_call(loop, tf.constant(INPUT_STEPS))
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs; warming up", flush=True)
    turns = []  # the seconds of every candidate, per turn

    def report(turn, seconds):
        turns.append(dict(zip(candidates, seconds, strict=True)))
        print(f"  turn {turn + 1}/{args.repeats}: " + " ".join(f"{s:.2f}" for s in seconds), flush=True)

    timings = [candidate for _, candidate in candidates.values()]
    best = timed_in_turns(timings, args.repeats, warmup=1, on_turn=report)
    per_step = {
        key: seconds / steps for (key, (steps, _)), seconds in zip(candidates.items(), best, strict=True)
    }

    def on_over_off(devices, steps):
        return statistics.median(turn[devices, steps, True] / turn[devices, steps, False] for turn in turns)

    print("| devices | what | ms / step | seq/s | over the replica function alone | look-ahead on / off |")
    print("|---|---|---|---|---|---|")
    for devices, steps, lookahead in candidates:
        if steps == "input":
            continue
        seconds = per_step[devices, steps, lookahead]
        if steps is None:
            what, overhead = "replica function alone", "-"
        else:
            what = f"device loop, steps_per_loop {steps}, look-ahead {'on' if lookahead else 'off'}"
            overhead = f"{seconds / per_step[devices, None, None] - 1:+.1%}"
        on_off = f"{on_over_off(devices, steps):.3f}" if lookahead else "-"
        speed = f"{seconds * 1e3:.2f} | {2 * devices / seconds:.0f}"
        print(f"| {devices} | {what} | {speed} | {overhead} | {on_off} |")
    print()
    print(f"The input alone: the device loop at steps_per_loop {INPUT_STEPS}, its step only reads its rows")
    print("| devices | look-ahead off: µs / step | look-ahead on: µs / step | off / replica function alone |")
    print("|---|---|---|---|")
    for devices in HOST_DEVICES:
        off, on = per_step[devices, "input", False], per_step[devices, "input", True]
        share = off / per_step[devices, None, None]
        print(f"| {devices} | {off * 1e6:.0f} | {on * 1e6:.0f} | {share:.1%} |")


def _verdict(ratio, target):
    return "met" if ratio >= target else "not met"


if __name__ == "__main__":
    main()
