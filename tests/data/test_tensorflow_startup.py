"""TensorFlow's C++ start-up lines are kept off stderr; every other line stays.

The lines below are copied from TensorFlow 2.21 runs on a CPU machine without a GPU driver.
"""

import os
import pathlib
import re
import subprocess
import sys

from data.tensorflow_startup import is_startup_line, without_startup_lines

ROOT = pathlib.Path(__file__).resolve().parents[2]

T = "00:00:1795629188.135638   17304"
STARTUP_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    f"I0000 {T} port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    f"I0000 {T} cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda "
    "drivers on your machine, GPU will not be used.",
    f"I0000 {T} cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in other "
    "operations, rebuild TensorFlow with the appropriate compiler flags.",
    f"E0000 {T} cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
]

OTHER_LINES = [
    "create_pretraining_data: error: --input x: no such file, directory or matching glob",
    "/x/site-packages/keras/src/x.py:8: FutureWarning: In the future `np.object` will be ...",
    f"W0000 {T} gpu_device.cc:2342] Cannot dlopen some GPU libraries.",
    f"E0000 {T} cuda_dnn.cc:8579] Unable to register cuDNN factory",
    "Traceback (most recent call last):",
]


def test_only_the_known_startup_lines_are_recognised():
    assert [line for line in STARTUP_LINES if not is_startup_line(line)] == []
    assert [line for line in OTHER_LINES if is_startup_line(line)] == []


def test_the_other_lines_are_kept_in_order():
    mixed = [STARTUP_LINES[0], OTHER_LINES[1], *STARTUP_LINES[1:4], OTHER_LINES[2], *STARTUP_LINES[4:]]
    assert without_startup_lines("\n".join(mixed) + "\n") == f"{OTHER_LINES[1]}\n{OTHER_LINES[2]}\n"


def user_environment():
    """The environment of a user's shell: no TF_CPP_MIN_LOG_LEVEL (the test session sets one)."""
    return {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}


def test_the_command_line_error_for_a_missing_corpus_is_the_only_line_on_stderr(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data.create_pretraining_data",
            f"--input={tmp_path}/corpus/*.txt",
            f"--output_dir={tmp_path}/out",
            "--learn_vocab",
            "--vocab_size=100",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=user_environment(),
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"create_pretraining_data: error: --input {tmp_path}/corpus/*.txt: no such file, directory or "
        "matching glob\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_data_run_with_a_spawned_worker_prints_only_its_own_lines(tmp_path):
    # The spawned worker imports TensorFlow too, and the first use of the devices loads the GPU driver
    # (cuInit): neither may add TensorFlow's lines to the tool's own.
    words = " ".join(f"word{i} of the corpus" for i in range(60))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"{words} in document {d}.\nAnd a second sentence {d}." for d in range(8)))
    result = subprocess.run(
        [sys.executable, "-m", "data.create_pretraining_data", f"--input={corpus}",
         f"--output_dir={tmp_path}/out", "--learn_vocab", "--vocab_size=120", "--max_seq_length=32",
         "--num_shards=2", "--num_workers=2", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=user_environment(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "meta.json").exists()
    cpp_lines = [line for line in result.stderr.splitlines() if re.match(r"[IWEF]\d{4} ", line)]
    assert cpp_lines == []


def test_importing_the_package_works_with_stderr_closed():
    # `2>&-`: there is no file descriptor 2 to point elsewhere; TensorFlow is imported as it is.
    code = "import data; print(data.pretraining_dataset.__name__)"
    result = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "{code}" 2>&-'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (result.returncode, result.stdout) == (0, "pretraining_dataset\n")


def test_importing_the_library_changes_nothing_global():
    # `import data` imports no TensorFlow; importing its modules never points file descriptor 2 elsewhere
    # (os.dup2 fails here) and leaves TensorFlow's start-up lines to TensorFlow: only the command-line
    # entry points call import_tensorflow_quietly.
    code = (
        "import os, sys\n"
        "import data\n"
        "print('tensorflow' in sys.modules)\n"
        "def refuse(*args): raise AssertionError('os.dup2 called on import')\n"
        "os.dup2 = refuse\n"
        "import data.pipeline, data.checks, data.create_pretraining_data, data.beam_pipeline\n"
        "print(data.pretraining_dataset.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\ndata.pipeline\n"
