"""The real MNIST IDX files through scripts/experiments/mnist_table.py's reader, when they are at hand.

They lie beside the repository in CI (ROOT.parent / "shared" / "mnist", or the folder named by MNIST_IDX_DIR);
users do not have them, so the tests skip without them. The reference numbers are the ones published for
MNIST and recorded in that folder's README: SHA-256 of each uncompressed file, the images per digit and the
mean pixel value of the training images.
"""

import gzip
import hashlib
import importlib.util
import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MNIST_DIR = pathlib.Path(os.environ.get("MNIST_IDX_DIR", ROOT.parent / "shared" / "mnist"))
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TRAIN_PER_DIGIT = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_PER_DIGIT = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

pytestmark = pytest.mark.skipif(
    not all((MNIST_DIR / name).is_file() for name in SHA256), reason=f"no MNIST IDX files in {MNIST_DIR}"
)


def load_script():
    spec = importlib.util.spec_from_file_location(
        "mnist_table", ROOT / "scripts" / "experiments" / "mnist_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(SHA256))
def test_the_files_are_the_published_ones(name):
    assert hashlib.sha256(gzip.decompress((MNIST_DIR / name).read_bytes())).hexdigest() == SHA256[name]


def test_the_reader_gives_mnists_counts_digits_and_mean_pixel():
    script = load_script()
    images = script.read_idx(MNIST_DIR / "train-images-idx3-ubyte.gz", script.IDX_IMAGES)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert round(float(images.mean(dtype=np.float64)), 3) == 33.318

    dataset = script.load_dataset(f"idx:{MNIST_DIR}", seed=12345)
    assert dataset.name == "mnist" and "60000 training / 10000 test images, 28x28" in dataset.description
    assert dataset.x_test.shape == (10000, 28, 28)
    assert np.bincount(dataset.y_train, minlength=10).tolist() == TRAIN_PER_DIGIT
    assert np.bincount(dataset.y_test, minlength=10).tolist() == TEST_PER_DIGIT
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
