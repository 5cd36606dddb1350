"""TensorFlow imported without its C++ start-up lines, so that a command's one-line error stays one line.

Importing TensorFlow 2.21, and the first look at its devices, print lines like these to stderr, whatever
TF_CPP_MIN_LOG_LEVEL says (they are written before TensorFlow's logging is set up):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795629188.135638   17304 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1795629188.135989   17304 cudart_stub.cc:31] Could not find cuda drivers on your machine...
    I0000 00:00:1795629188.224411   17304 cpu_feature_guard.cc:227] This TensorFlow binary is optimized...
    To enable the following instructions: AVX2 AVX512F ..., rebuild TensorFlow with the appropriate ...
    E0000 00:00:1795629194.577731   17304 cuda_platform.cc:52] failed call to cuInit: INTERNAL: ...

`import_tensorflow_quietly` hides TensorFlow's later C++ INFO lines (TF_CPP_MIN_LOG_LEVEL=1 unless the
environment sets it) and imports TensorFlow with file descriptor 2 (where C++ writes) pointed at a
temporary file, then writes back every captured line except these known ones (`is_startup_line`). If the
import fails, everything captured is written back before the exception goes on. The module itself uses only
the standard library until that call.

Importing this module changes nothing: the command-line entry points (run_pretraining.py, run_finetuning.py,
`python -m data.create_pretraining_data`) call `import_tensorflow_quietly()` before anything imports
TensorFlow. Importing the `data` package does not import TensorFlow, so they can import this module first.
"""

import contextlib
import os
import re
import sys
import tempfile

# A C++ log line's prefix: absl's "I0000 00:00:1795629188.135638   17304 " or TSL's
# "2025-09-17 14:44:05.157831: I ", then the source file (maybe with its path).
_LOG_PREFIX = r"(?:[IWEF]\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )(?:\S*/)?"
_STARTUP_LINES = [
    re.compile(pattern)
    for pattern in (
        r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
        _LOG_PREFIX + r"port\.cc:\d+\] oneDNN custom operations are on\.",
        _LOG_PREFIX + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
        _LOG_PREFIX + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
        r"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$",
        _LOG_PREFIX + r"cuda_(?:platform|driver)\.cc:\d+\] failed call to cuInit: ",
    )
]


def is_startup_line(line):
    """True for one of TensorFlow's known start-up lines (see the module docstring)."""
    return any(pattern.match(line) for pattern in _STARTUP_LINES)


def without_startup_lines(text):
    """`text` without TensorFlow's known start-up lines; every other line is kept, in order."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_startup_line(line.rstrip("\n")))


def _has_stderr_descriptor():
    """False when file descriptor 2 is closed (e.g. `2>&-`): then there is nothing to keep quiet."""
    try:
        os.fstat(2)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _stderr_to(file):
    """Points file descriptor 2 (C++ and Python stderr alike) at `file` inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _write_back(file, keep_everything):
    file.seek(0)
    text = file.read().decode("utf-8", errors="replace")
    text = text if keep_everything else without_startup_lines(text)
    if text:
        sys.stderr.write(text)
        sys.stderr.flush()


def import_tensorflow_quietly(list_devices=False):
    """Imports TensorFlow (and, with `list_devices`, lists its physical devices, which loads the GPU
    driver) without printing its start-up lines; returns the tensorflow module.

    Listing physical devices does not start the TensorFlow runtime: a distribution strategy can still be
    set up afterwards. When TensorFlow is already imported and no device listing is asked, nothing happens.
    """
    if "tensorflow" in sys.modules and not list_devices:
        return sys.modules["tensorflow"]
    # TensorFlow's C++ INFO lines (a dataset op's memory settings, the tokenizer's tables) are not for a
    # command's user; warnings and errors stay. A user's own setting wins (0 shows everything).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if not _has_stderr_descriptor():
        import tensorflow as tf

        return tf
    with tempfile.TemporaryFile() as captured:
        try:
            with _stderr_to(captured):
                import tensorflow as tf

                if list_devices:
                    tf.config.list_physical_devices()
        except BaseException:
            _write_back(captured, keep_everything=True)
            raise
        _write_back(captured, keep_everything=False)
    return tf
