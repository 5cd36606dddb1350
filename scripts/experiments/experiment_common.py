"""Command-line argument types, the one-line argument parser and atomic output writing shared by the
experiment scripts (batch_scaling.py, mnist_table.py, library_gap.py)."""

import argparse
import math
import os
import pathlib


def write_atomically(path, write):
    """write(temporary path), then rename: a file under its final name is always complete."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def positive(kind):
    """An argparse type: a finite number of `kind` (int, float) greater than 0."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def batch_list(text):
    """An argparse type: comma-separated positive integers, returned sorted without repeats."""
    try:
        sizes = tuple(int(item) for item in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return tuple(sorted(set(sizes)))


def learning_rate_list(text):
    """An argparse type: comma-separated positive numbers, in the order given."""
    try:
        rates = tuple(float(item) for item in text.split(","))
    except ValueError:
        rates = ()
    if not rates or not all(0 < rate < math.inf for rate in rates):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}")
    return rates


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")
