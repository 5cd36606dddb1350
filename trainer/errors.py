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
