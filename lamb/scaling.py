"""The LAMB paper's rules for moving a recipe to another batch size at a fixed number of epochs."""

import math
import numbers
from typing import NamedTuple


class ScaledHyperparameters(NamedTuple):
    batch_size: int
    learning_rate: float
    warmup_steps: int
    total_steps: int


def scale_for_batch_size(
    reference_batch_size,
    reference_learning_rate,
    reference_warmup_steps,
    reference_total_steps,
    batch_size,
):
    """Scales a reference recipe to `batch_size`, training for the same number of epochs.

    The rules of You et al. (arXiv 1904.00962), for batch ratio k = batch_size / reference_batch_size:

    - square-root learning-rate scaling: learning_rate = reference_learning_rate · √k;
    - same number of epochs: total_steps = ceil(reference_total_steps / k) (a few more examples rather
      than fewer when the division is not exact);
    - linear-epoch warmup: the warmup lasts k times more epochs. An epoch has k times fewer steps, so the
      warmup keeps its step count: warmup_steps = reference_warmup_steps, and the warmup proportion
      warmup_steps / total_steps grows k times.

    Worked example: BERT's reference recipe is batch 512 for 1,000,000 steps; with a peak learning rate
    of 6.25e-4 and 3,125 warmup steps (proportion 1/320), moving to batch 32,768 (k = 64) gives
    learning_rate = 6.25e-4 · 8 = 5e-3, total_steps = 1,000,000 / 64 = 15,625 and warmup_steps = 3,125
    (proportion 1/5):

        >>> scale_for_batch_size(512, 6.25e-4, 3125, 1_000_000, 32768)
        ScaledHyperparameters(batch_size=32768, learning_rate=0.005, warmup_steps=3125, total_steps=15625)

    Raises ValueError when an argument is not a positive number (warmup may be 0) or when the warmup
    would be longer than the whole run at the new batch size.
    """
    reference_batch_size = _positive_integer("reference_batch_size", reference_batch_size)
    batch_size = _positive_integer("batch_size", batch_size)
    reference_total_steps = _positive_integer("reference_total_steps", reference_total_steps)
    warmup_steps = _positive_integer("reference_warmup_steps", reference_warmup_steps, minimum=0)
    if isinstance(reference_learning_rate, bool) or not isinstance(reference_learning_rate, numbers.Real):
        raise ValueError(f"reference_learning_rate must be a number > 0; got {reference_learning_rate!r}.")
    if not reference_learning_rate > 0:
        raise ValueError(f"reference_learning_rate must be a number > 0; got {reference_learning_rate!r}.")
    if warmup_steps > reference_total_steps:
        raise ValueError(
            f"reference_warmup_steps ({warmup_steps}) exceeds "
            f"reference_total_steps ({reference_total_steps})."
        )

    learning_rate = float(reference_learning_rate) * math.sqrt(batch_size / reference_batch_size)
    total_steps = -(-reference_total_steps * reference_batch_size // batch_size)  # ceil, in integers
    if warmup_steps > total_steps:
        raise ValueError(
            f"At batch size {batch_size} the run has {total_steps} steps, fewer than the "
            f"{warmup_steps} warmup steps that linear-epoch warmup keeps; the batch is too large for "
            f"this reference recipe."
        )
    return ScaledHyperparameters(batch_size, learning_rate, warmup_steps, total_steps)


def _positive_integer(argument, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
