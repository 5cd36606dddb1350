"""Google's BERT in Keras 3: config, encoder, pretraining heads, losses, Google-checkpoint import/export."""

from bert.activations import ACTIVATIONS, gelu, gelu_exact
from bert.checkpoint import (
    CONFIG_FILE_NAME,
    IGNORED_CHECKPOINT_NAMES,
    google_variables,
    load_google_checkpoint,
    save_google_checkpoint,
)
from bert.config import BertConfig
from bert.flops import (
    PEAK_FLOPS,
    known_peak,
    matmul_chain,
    measured_matmul_peak,
    model_flops_per_sequence,
    tpu_device_name,
)
from bert.losses import (
    SUM_KEYS,
    add_sums,
    masked_lm_loss,
    next_sentence_loss,
    pretraining_loss,
    pretraining_metrics,
    pretraining_sums,
)
from bert.model import (
    WEIGHT_DECAY_EXCLUSIONS,
    BertEncoder,
    BertPretrainingModel,
    MaskedLMHead,
    NextSentenceHead,
)

__all__ = [
    "ACTIVATIONS",
    "CONFIG_FILE_NAME",
    "IGNORED_CHECKPOINT_NAMES",
    "PEAK_FLOPS",
    "SUM_KEYS",
    "WEIGHT_DECAY_EXCLUSIONS",
    "BertConfig",
    "BertEncoder",
    "BertPretrainingModel",
    "MaskedLMHead",
    "NextSentenceHead",
    "add_sums",
    "gelu",
    "gelu_exact",
    "google_variables",
    "known_peak",
    "tpu_device_name",
    "load_google_checkpoint",
    "masked_lm_loss",
    "matmul_chain",
    "measured_matmul_peak",
    "model_flops_per_sequence",
    "next_sentence_loss",
    "pretraining_loss",
    "pretraining_metrics",
    "pretraining_sums",
    "save_google_checkpoint",
]
