"""Model FLOPs of BERT pretraining, and the peak FLOP/s they are compared with (model FLOP utilisation).

Model FLOPs count the matrix multiplications of the architecture (2 FLOPs per multiply-add), forward and
backward (backward = 2 x forward), whatever the implementation recomputes: the usual definition of model
FLOP utilisation (MFU), so a run compares with published figures. Elementwise ops, softmax and LayerNorm
are left out (a few percent at BERT sizes).

Peak FLOP/s of known accelerators are the vendors' dense matrix-multiply figures per device, in the
precision that BERT pretraining uses there (bfloat16 / float16 with float32 accumulation); on a CPU, or any
device not in the table, the peak is measured in the same process with a chain of large matmuls
(`measured_matmul_peak`).
"""

import time

import numpy as np
import tensorflow as tf


def model_flops_per_sequence(config, seq_length, predictions, next_sentence=True):
    """Forward + backward matmul FLOPs of one pretraining sequence of `seq_length` tokens with
    `predictions` masked positions, for a BertConfig `config`.

    Per layer (S tokens, hidden H, intermediate F): the Q, K, V and attention-output projections
    4 x 2SH^2, the feed-forward 2 x 2SHF, attention scores and context 2 x 2S^2H. Masked-LM head at the P
    masked positions: transform 2PH^2, tied decoder 2PHV. With `next_sentence`: pooler 2H^2 and the
    next-sentence head 2 x 2H (a model without them, e.g. keras-hub's BertMaskedLM, passes False).
    """
    L, H, F, V = config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.vocab_size
    S, P = seq_length, predictions
    forward = L * S * (8 * H * H + 4 * H * F + 4 * S * H) + P * (2 * H * H + 2 * H * V)
    if next_sentence:
        forward += 2 * H * H + 4 * H
    return 3 * forward


# Dense matmul peak per TensorFlow device, FLOP/s, and the precision of that figure; from the vendors'
# published specifications (Cloud TPU system architecture pages; NVIDIA A100 and H100 SXM data sheets,
# without structured sparsity). A TPU v3 chip (123 TFLOP/s) shows as two devices, one per core; v4 and v5p
# chips as one device (megacore); v5e and v6e chips have one core.
PEAK_FLOPS = {
    "TPU v3": (61.5e12, "bfloat16"),
    "TPU v4": (275e12, "bfloat16"),
    "TPU v5e": (197e12, "bfloat16"),
    "TPU v5p": (459e12, "bfloat16"),
    "TPU v6e": (918e12, "bfloat16"),
    "A100": (312e12, "bfloat16/float16"),
    "H100": (989e12, "bfloat16/float16"),
}


def known_peak(device_name):
    """(FLOP/s, precision) of the table entry whose name appears in `device_name` (a GPU's
    `tf.config.experimental.get_device_details` name such as "NVIDIA A100-SXM4-80GB", or a TPU type such
    as "TPU v4"); None for a device the table does not know. The longest matching name wins."""
    normalised = device_name.upper().replace("-", " ")
    matches = [name for name in PEAK_FLOPS if name.upper().replace("-", " ") in normalised]
    if not matches:
        return None
    return PEAK_FLOPS[max(matches, key=len)]


# Cloud TPU accelerator types (gcloud's --accelerator-type: v3-1024, v4-128, v5litepod-256, v5p-64,
# v6e-256) by their version prefix, as the table above names the device.
TPU_VERSIONS = {"v2": "TPU v2", "v3": "TPU v3", "v4": "TPU v4", "v5litepod": "TPU v5e", "v5p": "TPU v5p",
                "v6e": "TPU v6e"}  # fmt: skip


def tpu_device_name(accelerator_type):
    """The device name of a Cloud TPU accelerator type ("v5litepod-256" -> "TPU v5e"), or None."""
    version, _, size = accelerator_type.strip().lower().rpartition("-")
    return TPU_VERSIONS.get(version) if size.isdigit() else None


def matmul_chain(dtype, n, count, jit_compile=False):
    """(function, args, FLOPs per call): a chain of `count` n x n matmuls in `dtype`. The right factor is
    orthogonal, so the chain stays bounded however long it is."""
    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(n, n)), dtype)
    b = tf.constant(np.linalg.qr(rng.normal(size=(n, n)))[0], dtype)

    @tf.function(jit_compile=jit_compile)
    def chain(a, b):
        for _ in range(count):
            a = tf.matmul(a, b)
        return a

    return chain, (a, b), count * 2 * n**3


def measured_matmul_peak(dtype=tf.float32, n=1024, seconds=0.25):
    """This process' matmul FLOP/s on its default device: the best of several timed chains of n x n
    matmuls in `dtype` (without XLA: TensorFlow's own kernels, oneDNN's on a CPU), over about `seconds`."""
    chain, (a, b), flops = matmul_chain(dtype, n, count=4)
    chain(a, b).numpy()  # traced and warm
    best, deadline = float("inf"), time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return flops / best
