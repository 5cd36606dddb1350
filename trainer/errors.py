"""The errors a user can fix: reported by run_pretraining.py as one line and exit code 2, no traceback.

Everything else (a TensorFlow failure, a bug) keeps its traceback: hiding it would hide the cause.
"""

from data import DataConfigError


class UserError(Exception):
    """A problem in the command line, the config, the data or a checkpoint path; the message says which."""


class ConfigError(UserError, ValueError):
    """A config key is unknown, missing, of the wrong type or has a bad value; the message names the key."""


class NonFiniteError(UserError):
    """The loss or the gradient norm is not finite: the run stopped without saving (the message names the
    step and the checkpoint that stays)."""


# The exception types that mean "bad input": the message alone tells the user what to change.
USER_ERRORS = (UserError, DataConfigError)


class OutOfMemoryError(UserError):
    """A device ran out of memory; the message names the micro-batch and a smaller one (see
    out_of_memory_message)."""


def out_of_memory_message(batches):
    """The line for a tf.errors.ResourceExhaustedError in training with the BatchPlan `batches`: the
    micro-batch, the accumulation it implies, and the largest smaller micro-batch that keeps the global batch
    (global = micro x replicas x accumulation)."""
    micro, replicas, total = batches.micro_batch_size, batches.num_replicas, batches.global_batch_size
    what = (
        f"out of device memory with train.micro_batch_size {micro} ({batches.accumulation_steps} "
        f"accumulation step(s) x {replicas} replica(s) for the global batch {total})"
    )
    smaller = next((m for m in range(micro - 1, 0, -1) if total % (m * replicas) == 0), None)
    if smaller is None:
        return (
            f"{what}; no smaller micro-batch exists: use mixed precision, shorter sequences or devices with "
            "more memory (--mode=plan shows the estimate)"
        )
    return (
        f"{what}; try --set train.micro_batch_size={smaller} ({total // (smaller * replicas)} accumulation "
        "steps, the same global batch; --mode=plan shows the memory estimate)"
    )
