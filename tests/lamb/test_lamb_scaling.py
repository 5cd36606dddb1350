"""scale_for_batch_size: square-root learning-rate scaling and linear-epoch warmup, hand-computed."""

import math

import pytest

import lamb


def test_bert_batch_512_to_32k():
    # k = 64: learning rate x 8, 64 times fewer steps, the same 3125 warmup steps (1/320 -> 1/5 of the run).
    scaled = lamb.scale_for_batch_size(512, 6.25e-4, 3125, 1_000_000, 32768)
    assert scaled == lamb.ScaledHyperparameters(
        batch_size=32768, learning_rate=pytest.approx(5e-3), warmup_steps=3125, total_steps=15625
    )
    assert scaled.warmup_steps / scaled.total_steps == pytest.approx(64 * 3125 / 1_000_000)


def test_inexact_step_count_is_rounded_up():
    scaled = lamb.scale_for_batch_size(256, 1e-4, 10_000, 1_000_000, 768)  # k = 3
    assert scaled.learning_rate == pytest.approx(1e-4 * math.sqrt(3))
    assert scaled.total_steps == 333_334  # ceil(1e6 / 3): at least the reference's number of examples
    assert scaled.warmup_steps == 10_000


def test_smaller_batch_scales_down():
    scaled = lamb.scale_for_batch_size(1024, 2e-3, 100, 1000, 256)  # k = 1/4
    assert scaled == (256, pytest.approx(1e-3), 100, 4000)


def test_same_batch_is_unchanged():
    assert lamb.scale_for_batch_size(4096, 3e-3, 500, 20_000, 4096) == (4096, 3e-3, 500, 20_000)


def test_warmup_longer_than_the_new_run_is_refused():
    # 100000 * 512 / 65536 = 781.25 -> 782 steps, fewer than the 3125 warmup steps.
    with pytest.raises(ValueError, match="782 steps, fewer than the 3125 warmup steps"):
        lamb.scale_for_batch_size(512, 1e-3, 3125, 100_000, 65536)


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 1e-3, 10, 100, 64), "reference_batch_size"),
        ((32, 0.0, 10, 100, 64), "reference_learning_rate"),
        ((32, 1e-3, -1, 100, 64), "reference_warmup_steps"),
        ((32, 1e-3, 10, 0, 64), "reference_total_steps"),
        ((32, 1e-3, 10, 100, 64.0), "batch_size"),
        ((32, 1e-3, 200, 100, 64), "exceeds reference_total_steps"),
    ],
)
def test_invalid_arguments_name_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        lamb.scale_for_batch_size(*args)
