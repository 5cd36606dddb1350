"""Command-line argument types and atomic output writing shared by the experiment scripts
(batch_scaling.py, mnist_table.py)."""

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
