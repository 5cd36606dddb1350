"""trainer/memory.py: the parameter count against the model itself, the activation and state bytes against
sums worked out by hand on small numbers."""

import keras
import pytest

import bert
from trainer import memory

SMALL = bert.BertConfig(
    vocab_size=10,
    hidden_size=8,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=4,
    type_vocab_size=2,
)


@pytest.mark.parametrize("layers", [1, 3])
def test_the_parameter_count_is_the_models(layers):
    config = bert.BertConfig(**{**SMALL.__dict__, "num_hidden_layers": layers})
    keras.utils.set_random_seed(0)
    model = bert.BertPretrainingModel(config)
    assert memory.parameter_count(config) == sum(v.numpy().size for v in model.trainable_variables)


def test_the_parameter_count_by_hand():
    # embeddings (10 + 4 + 2) x 8 + LayerNorm 16 = 144; a layer: Q, K, V, O 4 x 72 = 288, LayerNorms 32,
    # FFN 8x16+16 + 16x8+8 = 280 -> 600; pooler 72; masked-LM transform 72 + LayerNorm 16 + bias 10 = 98;
    # next sentence 8x2+2 = 18.
    assert memory.parameter_count(SMALL) == 144 + 600 + 72 + 98 + 18


def test_bert_large_has_its_published_size():
    large = bert.BertConfig(
        vocab_size=30522,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
    )
    large = bert.BertConfig(**{**large.__dict__, "type_vocab_size": 2})
    assert 334e6 < memory.parameter_count(large) < 337e6  # "340M" in the BERT paper, 335M with both heads


def test_activation_bytes_by_hand():
    # B=2, S=4, H=8, A=2, I=16, P_m=3, V=10, one layer. BSH = 64, BSI = 128, BAS^2 = 64, BPH = 48, BPV = 60.
    # bfloat16 (d=2): layer 22x64 + 4x128 + 8x64 = 2432; embeddings 6x64 = 384; masked-LM 10x48 + 8x60 = 960.
    assert memory.activation_bytes(SMALL, 2, 4, 3, compute_bytes=2) == 2432 + 384 + 960
    # float32 (d=4): layer 36x64 + 8x128 + 12x64 = 4096; embeddings 8x64 = 512; masked-LM 16x48 + 480 = 1248.
    assert memory.activation_bytes(SMALL, 2, 4, 3, compute_bytes=4) == 4096 + 512 + 1248


def test_the_attention_term_grows_with_the_square_of_the_sequence():
    def attention_part(seq):
        return memory.activation_bytes(SMALL, 1, seq, 1, 2) - 2 * memory.activation_bytes(
            SMALL, 1, seq // 2, 1, 2
        )

    # f(S) - 2 f(S/2): the terms linear in S cancel, the B·A·S² term leaves (4+2d)·A·S²/2 = 8·2·(S/2)²·2,
    # and the masked-LM part (which does not grow with S) is left once with a minus sign.
    masked_lm = (3 * 2 + 4) * 1 * 1 * 8 + 8 * 1 * 1 * 10
    for seq in (4, 8, 16):
        assert attention_part(seq) == 8 * 2 * (seq // 2) ** 2 * 2 - masked_lm


def test_the_estimate_adds_weights_gradients_moments_inputs_and_activations():
    P = memory.parameter_count(SMALL)
    mixed = memory.estimate_memory(SMALL, 2, 3, 4, 3, "mixed_bfloat16")
    assert mixed.weights == 4 * P + 2 * P  # float32 weights and their bfloat16 copies
    assert mixed.gradients == 8 * P  # one micro-batch's and the running sum
    assert mixed.optimizer_slots == 8 * P
    assert mixed.inputs == 6 * 4 * (3 * 4 + 3 * 3 + 1)  # 2 x 3 sequences of 22 four-byte values
    assert mixed.activations == 2432 + 384 + 960
    assert mixed.total == 6 * P + 8 * P + 8 * P + 528 + 3776
    single = memory.estimate_memory(SMALL, 2, 1, 4, 3, "float32")
    assert (single.weights, single.gradients) == (4 * P, 4 * P)
    assert single.checkpoint_bytes == 12 * P
