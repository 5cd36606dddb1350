"""An independent float64 numpy transcription of the LAMB update (arXiv 1904.00962), used as the reference.

Written from the equations, not from lamb/optimizer.py:

    m = β1·m + (1 − β1)·g
    v = β2·v + (1 − β2)·g²
    m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t)      (m̂ = m, v̂ = v without bias correction)
    r = m̂ / (√v̂ + ε)
    u = r + λ·w                                  (u = r for variables excluded from weight decay)
    ratio = ‖w‖ / ‖u‖, 1 if either norm is 0, clipped to the bounds (1 if excluded from adaptation)
    w ← w − η·ratio·u
"""

import re

import numpy as np


def lamb_step(w, m, v, g, t, lr, *, beta_1, beta_2, epsilon, weight_decay, bias_correction, bounds):
    """One update of one variable; returns (new w, new m, new v, ratio). weight_decay=0 means no decay;
    bounds="excluded" means the variable is excluded from layer adaptation."""
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * g * g
    if bias_correction:
        m_hat = m / (1.0 - beta_1**t)
        v_hat = v / (1.0 - beta_2**t)
    else:
        m_hat, v_hat = m, v
    r = m_hat / (np.sqrt(v_hat) + epsilon)
    u = r + weight_decay * w
    if bounds == "excluded":
        ratio = 1.0
    else:
        w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(u)
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        if bounds is not None:
            ratio = min(max(ratio, bounds[0]), bounds[1])
    return w - lr * ratio * u, m, v, ratio


class NumpyLamb:
    """LAMB over a dict {path: float64 array}, with exclusions matched by re.search on the path."""

    def __init__(
        self,
        weights,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.0,
        exclude_from_weight_decay=(),
        exclude_from_layer_adaptation=(),
        bias_correction=True,
        trust_ratio_bounds=None,
        global_clipnorm=None,
    ):
        self.weights = {path: np.array(value, np.float64) for path, value in weights.items()}
        self.m = {path: np.zeros_like(value) for path, value in self.weights.items()}
        self.v = {path: np.zeros_like(value) for path, value in self.weights.items()}
        self.hyper = dict(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, bias_correction=bias_correction)
        self.decay = {
            path: 0.0 if any(re.search(p, path) for p in exclude_from_weight_decay) else weight_decay
            for path in self.weights
        }
        self.bounds = {
            path: "excluded"
            if any(re.search(p, path) for p in exclude_from_layer_adaptation)
            else trust_ratio_bounds
            for path in self.weights
        }
        self.global_clipnorm = global_clipnorm
        self.t = 0
        self.ratios = {}

    def step(self, gradients, lr):
        gradients = {path: np.asarray(g, np.float64) for path, g in gradients.items()}
        if self.global_clipnorm is not None:
            norm = np.sqrt(sum(np.sum(g * g) for g in gradients.values()))
            scale = self.global_clipnorm / max(norm, self.global_clipnorm)
            gradients = {path: g * scale for path, g in gradients.items()}
        self.t += 1
        for path, g in gradients.items():
            w, m, v, ratio = lamb_step(
                self.weights[path],
                self.m[path],
                self.v[path],
                g,
                self.t,
                lr,
                weight_decay=self.decay[path],
                bounds=self.bounds[path],
                **self.hyper,
            )
            self.weights[path], self.m[path], self.v[path], self.ratios[path] = w, m, v, ratio


def warmup_polynomial_decay(step, peak, total_steps, warmup_steps, power, end):
    """The schedule's definition, in float64: linear warmup, polynomial decay, end value held."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    if step >= total_steps:
        return end
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return (peak - end) * (1.0 - progress) ** power + end
