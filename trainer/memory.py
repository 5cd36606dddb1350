"""How much device memory a replica needs, estimated before the run, and how large a checkpoint is.

A replica holds, in bytes (P parameters, d = 4 in float32 and 2 under mixed precision):

    weights                4P    float32 variables (mixed precision keeps them float32)
    weight copies          dP    only under mixed precision: each weight cast to the compute dtype, kept
                                 for the backward pass
    gradients              4P    of one micro-batch
    accumulated gradients  4P    only with more than one accumulation step
    LAMB / AdamW slots     8P    the two moments m and v
    input batch                  the replica's whole step: micro_batch_size x accumulation_steps sequences
                                 of int32 ids, mask, segments, masked positions and ids, float32 weights
    activations                  of one micro-batch, the tensors the forward pass keeps for the backward

The activations are counted tensor by tensor for this project's BERT (bert/layers.py: LayerNorm and the
attention softmax in float32, dropout masks in the compute dtype), for a micro-batch of B sequences of S
tokens, hidden size H, A heads, intermediate size I, P_m masked positions, vocabulary V:

    per layer    (7d + 8)·BSH + 2d·BSI + (4 + 2d)·BAS²
                   BSH: the query/key/value input, Q, K, V, the context, two dropout masks, the FFN input
                        (d each) and the two LayerNorm inputs (float32, 4 each)
                   BSI: the GELU input and output
                   BAS²: the softmax output (float32), the attention dropout mask, the dropped
                         probabilities
    embeddings   (4 + d)·BSH             the float32 LayerNorm input and the dropout mask
    masked-LM    (3d + 4)·B·P_m·H + 8·B·P_m·V   transform input and output, LayerNorm input, decoder input;
                                         float32 logits and their log-softmax

This is what the graph keeps, before XLA fuses or rematerialises anything (on TPU and GPU it often keeps
less). Not counted: the workspace of the kernels, the all-reduce buffers and the allocator's fragmentation;
the plan therefore asks for a margin (MEMORY_MARGIN) below the device's memory. The checkpoint holds the
weights and the two moments in float32: 12P bytes (plus the step counters and the input position).
"""

import dataclasses

GIB = 2**30
MEMORY_MARGIN = 0.9  # an estimate above this fraction of the device memory does not count as fitting


def parameter_count(bert_config):
    """Trainable parameters of bert.BertPretrainingModel: encoder, pooler, masked-LM and next-sentence heads
    (the masked-LM decoder shares the word embeddings)."""
    H, I, L = bert_config.hidden_size, bert_config.intermediate_size, bert_config.num_hidden_layers  # noqa: E741
    V = bert_config.vocab_size
    embeddings = (V + bert_config.max_position_embeddings + bert_config.type_vocab_size) * H + 2 * H
    layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H  # attention, LN, FFN, LN
    pooler = H * H + H
    masked_lm = H * H + H + 2 * H + V  # transform dense, LayerNorm, output bias
    next_sentence = 2 * H + 2
    return embeddings + L * layer + pooler + masked_lm + next_sentence


def activation_bytes(bert_config, micro_batch_size, seq_length, max_predictions, compute_bytes):
    """Bytes of the activations one micro-batch keeps for its backward pass (the module docstring)."""
    B, S, P = micro_batch_size, seq_length, max_predictions
    H, I, A = bert_config.hidden_size, bert_config.intermediate_size, bert_config.num_attention_heads  # noqa: E741
    V, L, d = bert_config.vocab_size, bert_config.num_hidden_layers, compute_bytes
    per_layer = (7 * d + 8) * B * S * H + 2 * d * B * S * I + (4 + 2 * d) * B * A * S * S
    embeddings = (4 + d) * B * S * H
    masked_lm = (3 * d + 4) * B * P * H + 8 * B * P * V
    return L * per_layer + embeddings + masked_lm


def input_bytes(sequences, seq_length, max_predictions):
    """The features of `sequences` sequences: 3 int32 of length S, 2 int32 and 1 float32 of length P_m, 1
    int32 label."""
    return sequences * 4 * (3 * seq_length + 3 * max_predictions + 1)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    weights: int  # bytes: float32 weights, plus their compute-dtype copies under mixed precision
    gradients: int  # bytes: one micro-batch's and, with accumulation, the running sum
    optimizer_slots: int
    inputs: int
    activations: int

    @property
    def total(self):
        return self.weights + self.gradients + self.optimizer_slots + self.inputs + self.activations

    @property
    def checkpoint_bytes(self):
        """Weights and the two moments in float32."""
        return 12 * self.parameters

    def describe(self):
        parts = [
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer moments", self.optimizer_slots),
            ("input batch", self.inputs),
            ("activations of one micro-batch", self.activations),
        ]
        return f"{self.total / GIB:.2f} GiB = " + " + ".join(f"{b / GIB:.2f} {name}" for name, b in parts)


def estimate_memory(
    bert_config, micro_batch_size, accumulation_steps, seq_length, max_predictions, mixed_precision
):
    """The MemoryEstimate of one replica (the module docstring); `mixed_precision` is runtime's."""
    d = 4 if mixed_precision == "float32" else 2
    P = parameter_count(bert_config)
    return MemoryEstimate(
        parameters=P,
        weights=4 * P + (d * P if d < 4 else 0),
        gradients=4 * P + (4 * P if accumulation_steps > 1 else 0),
        optimizer_slots=8 * P,
        inputs=input_bytes(micro_batch_size * accumulation_steps, seq_length, max_predictions),
        activations=activation_bytes(bert_config, micro_batch_size, seq_length, max_predictions, d),
    )
