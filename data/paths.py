"""Paths on any file system TensorFlow knows: local, `gs://`, `ram://` (what the tests use), ...

Every file of data/ is read and written through `tf.io.gfile`, so a corpus, a vocabulary or an output
directory may live in a bucket. A path is joined and split with '/' unless it is local (no `scheme://`).
"""

import os
import uuid

import tensorflow as tf


def is_local(path):
    return "://" not in str(path)


def join(directory, name):
    directory = str(directory)
    return os.path.join(directory, name) if is_local(directory) else f"{directory.rstrip('/')}/{name}"


def dirname(path):
    path = str(path)
    return os.path.dirname(path) if is_local(path) else path.rstrip("/").rsplit("/", 1)[0]


def basename(path):
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def temporary_path(path, tag):
    """A hidden name beside `path` for writing it before the rename: `.<name>.<tag>-<random>`."""
    return join(dirname(path) or ".", f".{basename(path)}.{tag}-{uuid.uuid4().hex[:8]}")


def write_atomically(path, data, tag="tmp"):
    """Writes `data` (str or bytes) to `path` through a temporary file and one rename, so a reader sees the
    previous file or the complete new one, never a partial file."""
    temp_path = temporary_path(path, tag)
    try:
        with tf.io.gfile.GFile(temp_path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        tf.io.gfile.rename(temp_path, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temp_path):
            tf.io.gfile.remove(temp_path)
    return path
