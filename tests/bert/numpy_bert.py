"""An independent float64 numpy transcription of Google's BERT (google-research/bert modeling.py and
run_pretraining.py), used as the reference in the tests. Weights are a dict keyed by Google's checkpoint
names; nothing here touches the Keras code.
"""

import math

import numpy as np


def gelu(x):
    """modeling.gelu: the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * np.power(x, 3))))


def gelu_exact(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


ACTIVATIONS = {
    "gelu": gelu,
    "gelu_exact": gelu_exact,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "linear": lambda x: x,
}


def layer_norm(x, weights, name):
    """tf.contrib.layers.layer_norm over the last axis, epsilon 1e-12."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * weights[f"{name}/gamma"] + weights[f"{name}/beta"]


def dense(x, weights, name):
    return x @ weights[f"{name}/kernel"] + weights[f"{name}/bias"]


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def bert_model(weights, config, input_ids, input_mask, segment_ids):
    """BertModel in inference mode: returns (sequence_output [B, S, H], pooled_output [B, H])."""
    w = {name: np.asarray(value, np.float64) for name, value in weights.items()}
    act = ACTIVATIONS[config["hidden_act"]]
    batch, seq = input_ids.shape
    heads = config["num_attention_heads"]
    head_size = config["hidden_size"] // heads

    x = w["bert/embeddings/word_embeddings"][input_ids]
    x = x + w["bert/embeddings/token_type_embeddings"][segment_ids]
    x = x + w["bert/embeddings/position_embeddings"][:seq][None]
    x = layer_norm(x, w, "bert/embeddings/LayerNorm")

    # create_attention_mask_from_input_mask + the adder in attention_layer
    adder = (1.0 - input_mask[:, None, None, :].astype(np.float64)) * -10000.0

    def split_heads(t):  # [B, S, H] -> [B, N, S, D]
        return t.reshape(batch, seq, heads, head_size).transpose(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{i}"
        q = split_heads(dense(x, w, f"{p}/attention/self/query"))
        k = split_heads(dense(x, w, f"{p}/attention/self/key"))
        v = split_heads(dense(x, w, f"{p}/attention/self/value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_size) + adder
        context = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        attention = layer_norm(
            dense(context, w, f"{p}/attention/output/dense") + x, w, f"{p}/attention/output/LayerNorm"
        )
        intermediate = act(dense(attention, w, f"{p}/intermediate/dense"))
        x = layer_norm(dense(intermediate, w, f"{p}/output/dense") + attention, w, f"{p}/output/LayerNorm")

    pooled = np.tanh(dense(x[:, 0], w, "bert/pooler/dense"))
    return x, pooled


def pretraining_logits(weights, config, features):
    """get_masked_lm_output / get_next_sentence_output logits: ([B, P, V], [B, 2])."""
    w = {name: np.asarray(value, np.float64) for name, value in weights.items()}
    sequence, pooled = bert_model(
        w, config, features["input_ids"], features["input_mask"], features["segment_ids"]
    )
    positions = features["masked_lm_positions"]
    gathered = sequence[np.arange(positions.shape[0])[:, None], positions]  # [B, P, H]
    h = ACTIVATIONS[config["hidden_act"]](dense(gathered, w, "cls/predictions/transform/dense"))
    h = layer_norm(h, w, "cls/predictions/transform/LayerNorm")
    mlm_logits = h @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
    nsp_logits = pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]
    return mlm_logits, nsp_logits


def pretraining_losses(mlm_logits, nsp_logits, masked_lm_ids, masked_lm_weights, next_sentence_labels):
    """Google's formulas with one-hot labels: (mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy)."""
    mlm_logits = np.asarray(mlm_logits, np.float64)
    vocab = mlm_logits.shape[-1]
    one_hot = np.eye(vocab)[masked_lm_ids]  # [B, P, V]
    per_example = -(log_softmax(mlm_logits) * one_hot).sum(axis=-1)  # [B, P]
    weights = np.asarray(masked_lm_weights, np.float64)
    mlm_loss = (weights * per_example).sum() / (weights.sum() + 1e-5)
    mlm_accuracy = (weights * (mlm_logits.argmax(-1) == masked_lm_ids)).sum() / weights.sum()

    labels = np.reshape(next_sentence_labels, [-1])
    nsp_logits = np.asarray(nsp_logits, np.float64)
    nsp_nll = -(log_softmax(nsp_logits) * np.eye(2)[labels]).sum(axis=-1)
    nsp_accuracy = (nsp_logits.argmax(-1) == labels).mean()
    return mlm_loss, nsp_nll.mean(), mlm_accuracy, nsp_accuracy


def random_weights(config, seed, scale=0.5):
    """Random numpy float32 weights under Google's names (gammas around 1) for a config dict."""
    rng = np.random.default_rng(seed)
    H, F = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "bert/embeddings/word_embeddings": (config["vocab_size"], H),
        "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], H),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], H),
        "bert/embeddings/LayerNorm/gamma": (H,),
        "bert/embeddings/LayerNorm/beta": (H,),
        "bert/pooler/dense/kernel": (H, H),
        "bert/pooler/dense/bias": (H,),
        "cls/predictions/transform/dense/kernel": (H, H),
        "cls/predictions/transform/dense/bias": (H,),
        "cls/predictions/transform/LayerNorm/gamma": (H,),
        "cls/predictions/transform/LayerNorm/beta": (H,),
        "cls/predictions/output_bias": (config["vocab_size"],),
        "cls/seq_relationship/output_weights": (2, H),
        "cls/seq_relationship/output_bias": (2,),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{i}"
        for name in (
            "attention/self/query",
            "attention/self/key",
            "attention/self/value",
            "attention/output/dense",
        ):
            shapes[f"{p}/{name}/kernel"] = (H, H)
            shapes[f"{p}/{name}/bias"] = (H,)
        shapes[f"{p}/intermediate/dense/kernel"] = (H, F)
        shapes[f"{p}/intermediate/dense/bias"] = (F,)
        shapes[f"{p}/output/dense/kernel"] = (F, H)
        shapes[f"{p}/output/dense/bias"] = (H,)
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[f"{p}/{name}/gamma"] = (H,)
            shapes[f"{p}/{name}/beta"] = (H,)
    weights = {}
    for name, shape in shapes.items():
        value = rng.normal(0.0, scale / math.sqrt(shape[0]) if len(shape) == 2 else 0.1, size=shape)
        if name.endswith("gamma"):
            value += 1.0
        weights[name] = value.astype(np.float32)
    return weights
