"""What a user watches: the progress line of pretraining and of fine-tuning, tokens/s and model FLOP
utilisation from hand-computed figures, the peak FLOP/s of the run's devices (named TPUs through the
accelerator type), and the trust-ratio histogram."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.step import PRETRAINING_LOSS
from trainer.summaries import (
    TPU_TYPE_VARIABLE,
    Throughput,
    device_name,
    histogram_proto,
    peak_flops,
    progress_line,
)


def test_tokens_per_second_and_model_flop_utilisation_from_sequences_per_second():
    # 100 sequences/s of 128 tokens, 1e9 model FLOPs each, on devices with a 4e11 FLOP/s peak: 25 %.
    metrics = Throughput(seq_length=128, flops_per_sequence=1e9, peak_flops=4e11).add_to(
        {"sequences_per_second": 100.0}
    )
    assert metrics["tokens_per_second"] == 12800.0
    assert metrics["model_flops_utilization"] == pytest.approx(0.25)
    unknown_peak = Throughput(128, 1e9, None).add_to({"sequences_per_second": 100.0})
    assert "model_flops_utilization" not in unknown_peak


def test_a_tpu_without_a_name_from_tensorflow_is_named_by_its_accelerator_type(monkeypatch):
    monkeypatch.setenv(TPU_TYPE_VARIABLE, "v5litepod-256")
    assert device_name("TPU") == "TPU v5e"
    monkeypatch.setenv(TPU_TYPE_VARIABLE, "not-a-type")
    assert device_name("TPU") is None
    monkeypatch.delenv(TPU_TYPE_VARIABLE)
    assert device_name("TPU") is None
    assert device_name("GPU") is None  # no GPU here, and the variable names only TPUs


def test_the_cpu_peak_is_measured_once_per_worker_for_all_its_logical_devices():
    one, how = peak_flops(tf.distribute.OneDeviceStrategy("/cpu:0"))
    four, _ = peak_flops(
        tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(4)], cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    )
    assert how.startswith("CPU: measured matmul peak")
    # The four logical devices share the process' cores: the same peak, not four times it (timing noise).
    assert 0.3 < four / one < 3.0


def test_the_trust_ratio_histogram_counts_every_value_in_equal_buckets():
    values = [0.5, 1.0, 1.0, 2.0, 4.5]
    histogram = histogram_proto(values, num_buckets=4)  # edges 0.5, 1.5, 2.5, 3.5, 4.5
    assert (histogram.min, histogram.max, histogram.num) == (0.5, 4.5, 5.0)
    assert list(histogram.bucket_limit) == [1.5, 2.5, 3.5, 4.5]
    assert list(histogram.bucket) == [3.0, 1.0, 0.0, 1.0]
    assert histogram.sum == 9.0 and histogram.sum_squares == pytest.approx(np.sum(np.square(values)))


def test_the_progress_line_shows_the_loss_definitions_numbers_in_the_runs_unit():
    metrics = {
        "gradient_norm": 0.8741,
        "tokens_per_second": 17539.2,
        "seconds_per_step": 0.5,
        "skipped_steps": 1.0,
    }
    pretraining = {
        **metrics,
        "loss": 6.46461,
        "masked_lm_accuracy": 0.14171,
        "next_sentence_accuracy": 0.61019,
        "sequences_per_second": 274.04,
        "model_flops_utilization": 0.33,
    }
    line = progress_line(300, 300, pretraining, 8.442e-4, fields=PRETRAINING_LOSS.progress, unit="seq")
    assert line == (
        "step 300/300  loss 6.4646  mlm_acc 0.1417  nsp_acc 0.6102  lr 8.442e-04  grad_norm 0.874  "
        "274.0 seq/s  17539 tok/s  MFU 33.0%  ETA 0s"
    )
    classification = {**metrics, "loss": 0.69314, "accuracy": 0.5, "sequences_per_second": 64.0}
    fields = (("loss", "loss"), ("acc", "accuracy"))
    line = progress_line(6, 10, classification, 2e-5, fields=fields, unit="examples", loss_scale=16384.0)
    assert line == (
        "step 6/10  loss 0.6931  acc 0.5000  lr 2.000e-05  grad_norm 0.874  64.0 examples/s  17539 tok/s  "
        "ETA 2s  loss_scale 16384  skipped 1"
    )
