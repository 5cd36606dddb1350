"""What the two command lines (run_pretraining.py, run_finetuning.py) share: the help of `--set` and the log
they show. Neither reads flags nor exits: the entry points do."""

import logging as python_logging

from absl import logging


def keys_help(key_table):
    """The help of `--set`: every key of a schema's `key_table()` rows, with its form and default."""
    lines = ["override one config key, typed by the schema (repeatable): --set section.key=value. Keys:"]
    for name, form, default, help in key_table:
        lines.append(f"  {name} ({form}; default {default}): {help}")
    return "\n".join(lines)


class _ProjectInfoOnly(python_logging.Filter):
    """Keeps the INFO lines of this project (progress) and all warnings; drops the libraries' INFO chatter."""

    def filter(self, record):
        return record.levelno >= python_logging.WARNING or "site-packages" not in record.pathname


def show_progress_only():
    """absl's log at INFO with a short time stamp, this project's lines and every library's warnings."""
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    handler.setFormatter(python_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_ProjectInfoOnly())
    python_logging.getLogger("tensorflow").setLevel(python_logging.WARNING)
