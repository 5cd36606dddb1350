"""The log of a fine-tuning command: this project's INFO lines (progress, metrics) and every warning, with a
short time stamp; the libraries' INFO chatter is dropped. (run_pretraining.py sets up the same filter.)"""

import logging as python_logging

from absl import logging


class _ProjectInfoOnly(python_logging.Filter):
    def filter(self, record):
        return record.levelno >= python_logging.WARNING or "site-packages" not in record.pathname


def show_progress_only():
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    handler.setFormatter(python_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_ProjectInfoOnly())
    python_logging.getLogger("tensorflow").setLevel(python_logging.WARNING)
