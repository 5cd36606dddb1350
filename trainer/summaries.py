"""Progress lines and TensorBoard summaries of a run.

Every logged number is over the steps since the previous line (or summary): the losses and accuracies are
the loss definition's formulas (trainer/step.py: Google's for pretraining, the task's mean for fine-tuning)
applied to the sums of all those steps' sequences, the gradient norm is the mean of the steps' global norms
before clipping, and the learning rate is the one of the last step. The speed is given as sequences/s (a
fine-tuning example is one sequence), tokens/s (sequences x max_seq_length: padding counts) and model FLOP
utilisation (MFU: the model's matmul FLOPs per second, bert/flops.py, over the peak FLOP/s of all the run's
devices).
"""

import functools
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

import bert


class IntervalMetrics:
    """Sums of the loss/accuracy terms (the `sum_keys` of the step's loss definition) and gradient norms over
    the steps of an interval.

    Steps a LossScaleOptimizer skipped (non-finite gradients) count for the speed, not for the numbers.
    """

    def __init__(self, loss):
        self.loss = loss  # the step's loss definition (trainer/step.py)
        self.reset()

    def reset(self):
        self.sums = dict.fromkeys(self.loss.sum_keys, 0.0)
        self.gradient_norm_sum = 0.0
        self.steps = 0  # optimizer updates applied
        self.attempted = 0  # steps run, skipped ones included
        self.start_time = time.perf_counter()

    def add(self, sums, gradient_norm_sum, steps, attempted=None):
        for name in self.loss.sum_keys:
            self.sums[name] += float(sums[name])
        self.gradient_norm_sum += float(gradient_norm_sum)
        self.steps += steps
        self.attempted += steps if attempted is None else attempted

    def result(self, global_batch_size):
        """The loss definition's metrics (pretraining: loss, masked_lm_loss, masked_lm_accuracy,
        next_sentence_loss, next_sentence_accuracy), gradient_norm, sequences_per_second, seconds_per_step and
        skipped_steps; the losses, accuracies and gradient norm are NaN when every step of the interval was
        skipped."""
        if self.steps:
            metrics = {name: float(value) for name, value in self.loss.metrics(self.sums).items()}
        else:
            metrics = dict.fromkeys(self.loss.metrics(self.sums), float("nan"))
        elapsed = time.perf_counter() - self.start_time
        metrics["gradient_norm"] = self.gradient_norm_sum / self.steps if self.steps else float("nan")
        metrics["sequences_per_second"] = global_batch_size * self.attempted / max(elapsed, 1e-9)
        metrics["seconds_per_step"] = elapsed / max(self.attempted, 1)
        metrics["skipped_steps"] = float(self.attempted - self.steps)
        return metrics


class Throughput:
    """Adds tokens/s and model FLOP utilisation to an interval's metrics (`peak_flops` None: no MFU);
    `unit` names the sequences in the progress line ("seq" in pretraining, "examples" in fine-tuning)."""

    def __init__(self, seq_length, flops_per_sequence, peak_flops, unit="seq"):
        self.seq_length, self.flops_per_sequence, self.peak_flops = seq_length, flops_per_sequence, peak_flops
        self.unit = unit

    def add_to(self, metrics):
        sequences = metrics["sequences_per_second"]
        metrics = {**metrics, "tokens_per_second": sequences * self.seq_length}
        if self.peak_flops:
            metrics["model_flops_utilization"] = sequences * self.flops_per_sequence / self.peak_flops
        return metrics


TPU_TYPE_VARIABLE = "TPU_ACCELERATOR_TYPE"  # a Cloud TPU accelerator type: v3-1024, v4-128, v5litepod-256


def peak_flops(strategy):
    """(peak FLOP/s of all the strategy's devices, how it was found) or (None, why not).

    GPUs: the table of bert/flops.py by the device name; CPUs: this process' measured matmul peak (the
    logical CPU devices of one process share its cores), once per worker; TPUs: the table by the name
    TensorFlow gives the device, else by the accelerator type in $TPU_ACCELERATOR_TYPE (the TPU launcher
    sets it).
    """
    devices = list(strategy.extended.worker_devices)
    kind = tf.DeviceSpec.from_string(devices[0]).device_type
    workers = strategy.num_replicas_in_sync // len(devices)
    if kind == "CPU":
        measured = cpu_matmul_peak()
        how = f"CPU: measured matmul peak {measured / 1e9:.1f} GFLOP/s float32 per worker"
        return measured * workers, how
    name = device_name(kind)
    known = bert.known_peak(name) if name else None
    if known is None:
        why = "set TPU_ACCELERATOR_TYPE (v4-128) to name it" if kind == "TPU" and not name else ""
        why = why or "not in bert.flops.PEAK_FLOPS"
        return None, f"{kind} {name or '(unnamed)'}: {why}, no model FLOP utilisation"
    flops, precision = known
    total = flops * strategy.num_replicas_in_sync
    return total, f"{name}: {flops / 1e12:g} TFLOP/s {precision} per device (bert.flops.PEAK_FLOPS)"


@functools.cache
def cpu_matmul_peak():
    """This process' measured CPU matmul peak (bert.measured_matmul_peak), measured at its first run only:
    a second run in the process (a fine-tuning demo, the tests) reuses it."""
    return bert.measured_matmul_peak()


def device_name(kind):
    """The name of this host's devices of `kind`: TensorFlow's name for its first physical device ("NVIDIA
    A100-SXM4-80GB"); for TPUs, when TensorFlow gives none, the name of $TPU_ACCELERATOR_TYPE ("TPU v4")."""
    physical = tf.config.list_physical_devices(kind)
    name = tf.config.experimental.get_device_details(physical[0]).get("device_name") if physical else None
    if not name and kind == "TPU":
        name = bert.tpu_device_name(os.environ.get(TPU_TYPE_VARIABLE, ""))
    return name


def log_peak_flops(peak, how):
    if peak:
        logging.info("model FLOP utilisation against %s", how)
    else:
        logging.info("%s", how)


def format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def progress_line(step, train_steps, metrics, learning_rate, *, fields, unit, loss_scale=None):
    """One line of the interval's `metrics`: the loss definition's `fields` ((label, metric name) pairs),
    the learning rate, the gradient norm and the speed (`unit`/s: sequences, or examples in fine-tuning)."""
    eta = metrics["seconds_per_step"] * (train_steps - step)
    numbers = "  ".join(f"{label} {metrics[name]:.4f}" for label, name in fields)
    line = (
        f"step {step}/{train_steps}  {numbers}  "
        f"lr {learning_rate:.3e}  grad_norm {metrics['gradient_norm']:.3f}  "
        f"{metrics['sequences_per_second']:.1f} {unit}/s  {metrics['tokens_per_second']:.0f} tok/s"
    )
    if "model_flops_utilization" in metrics:
        line += f"  MFU {metrics['model_flops_utilization']:.1%}"
    line += f"  ETA {format_duration(eta)}"
    if loss_scale is not None:
        line += f"  loss_scale {loss_scale:g}  skipped {int(metrics['skipped_steps'])}"
    return line


def trust_ratio_statistics(ratios):
    """min, median and max of the trust ratios {variable path: value} (an empty dict gives no statistics)."""
    values = np.array(list(ratios.values()), dtype=np.float64)
    if values.size == 0:
        return {}
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}


def histogram_proto(values, num_buckets=30):
    """A TensorBoard histogram of `values`: `num_buckets` equal buckets from min to max (right edges)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    edges = np.linspace(low, high, num_buckets + 1) if high > low else np.array([low, low])
    counts, _ = np.histogram(values, bins=edges)
    return tf.compat.v1.HistogramProto(
        min=low,
        max=high,
        num=float(values.size),
        sum=float(values.sum()),
        sum_squares=float(np.square(values).sum()),
        bucket_limit=[float(edge) for edge in edges[1:]],
        bucket=[float(count) for count in counts],
    )


class Summaries:
    """TensorBoard event files in `log_dir` (only in the chief task; elsewhere every call does nothing).

    The events are written as raw `Summary` protos (scalars as simple values, histograms as
    HistogramProto), which TensorBoard reads; writing them needs no TensorBoard package.
    """

    def __init__(self, log_dir, enabled=True):
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None

    def _write(self, step, values):
        with self.writer.as_default():
            summary = tf.compat.v1.Summary(value=values)
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

    def scalars(self, step, values, prefix=""):
        if self.writer is None:
            return
        Value = tf.compat.v1.Summary.Value
        self._write(step, [Value(tag=f"{prefix}{name}", simple_value=float(v)) for name, v in values.items()])

    def trust_ratios(self, step, ratios):
        """The LAMB trust ratios of the last update: min/median/max scalars and a histogram."""
        if self.writer is None or not ratios:
            return
        self.scalars(step, trust_ratio_statistics(ratios), prefix="trust_ratio/")
        histogram = histogram_proto(list(ratios.values()))
        self._write(step, [tf.compat.v1.Summary.Value(tag="trust_ratio/histogram", histo=histogram)])

    def flush(self):
        if self.writer is not None:
            self.writer.flush()
