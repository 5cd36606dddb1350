"""One worker of the MultiWorkerMirroredStrategy test: trains the shared run, writes its result as .npz.

    TF_CONFIG=... python lamb_multi_worker.py <output.npz>

Started twice (task 0 and 1 on 127.0.0.1) by test_lamb_distributed.py, with the repository root and this
directory on PYTHONPATH.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(output_path):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG; must come first
    from lamb_distributed_setup import train

    weights, ratios = train(strategy)
    arrays = {f"weight:{path}": value for path, value in weights.items()}
    arrays.update({f"ratio:{path}": np.float32(value) for path, value in ratios.items()})
    arrays["replicas"] = np.int32(strategy.num_replicas_in_sync)
    np.savez(output_path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
