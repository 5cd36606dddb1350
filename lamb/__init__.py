"""LAMB (You et al., arXiv 1904.00962) for Keras 3 / TensorFlow 2.

    schedule = lamb.WarmupPolynomialDecay(peak_learning_rate=1e-3, total_steps=10_000, warmup_steps=1_000)
    optimizer = lamb.LAMB(
        learning_rate=schedule,
        weight_decay=0.01,
        exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
    )
    model.compile(optimizer=optimizer, loss=...)

The package imports only keras and tensorflow: copy the folder into any Keras 3 project (TensorFlow
backend) and import it.
"""

from .optimizer import LAMB
from .scaling import ScaledHyperparameters, scale_for_batch_size
from .schedules import WarmupPolynomialDecay

__all__ = ["LAMB", "ScaledHyperparameters", "WarmupPolynomialDecay", "scale_for_batch_size"]
