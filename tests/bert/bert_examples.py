"""Small configs and random Google-format features for the bert/ tests."""

import numpy as np

TINY = {
    "vocab_size": 57,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 32,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 12,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}


def make_features(config, batch=3, seq=10, predictions=4, seed=0):
    """Random Google-format features; the sequences have different amounts of padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq // 2, seq + 1, size=batch)
    lengths[0] = seq
    input_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    input_ids = rng.integers(0, config["vocab_size"], size=(batch, seq)).astype(np.int32) * input_mask
    segment_ids = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * input_mask).astype(np.int32)
    positions = np.stack([rng.choice(np.arange(1, length), predictions, replace=False) for length in lengths])
    weights = np.ones((batch, predictions), np.float32)
    weights[1:, -1] = 0.0  # padding predictions
    positions = np.where(weights > 0, positions, 0).astype(np.int32)
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(0, config["vocab_size"], size=(batch, predictions)).astype(np.int32),
        "masked_lm_weights": weights,
        "next_sentence_labels": rng.integers(0, 2, size=(batch,)).astype(np.int32),
    }
