"""Model FLOPs against a count worked by hand for a tiny BERT, and the peak-FLOP/s table."""

import pytest

import bert

# L=2 layers, H=4, F=8, V=10, S=3 tokens, P=2 masked positions.
TINY = bert.BertConfig(
    vocab_size=10, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8
)


def test_model_flops_of_a_tiny_bert_match_the_hand_count():
    # One layer, forward, 2 FLOPs per multiply-add:
    #   Q, K, V, output projections: 4 matmuls [3x4]@[4x4]  = 4 * 2*3*4*4 = 384
    #   feed-forward: [3x4]@[4x8] and [3x8]@[8x4]           = 2 * 2*3*4*8 = 384
    #   scores [3x4]@[4x3] and context [3x3]@[3x4]          = 2 * 2*3*3*4 = 144   (heads split H, same sum)
    #   = 912 per layer, 1824 for two layers.
    # Masked-LM head at 2 positions: transform [2x4]@[4x4] = 64, decoder [2x4]@[4x10] = 160.
    # Pooler [1x4]@[4x4] = 32, next-sentence [1x4]@[4x2] = 16.
    forward = 1824 + 64 + 160 + 32 + 16
    assert bert.model_flops_per_sequence(TINY, seq_length=3, predictions=2) == 3 * forward
    without_nsp = 1824 + 64 + 160
    assert bert.model_flops_per_sequence(TINY, 3, 2, next_sentence=False) == 3 * without_nsp


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("TPU v4", 275e12),
        ("TPU v5p", 459e12),
        ("TPU v5e", 197e12),
        ("TPU v3", 61.5e12),
    ],
)
def test_known_accelerators_have_a_peak(name, expected):
    flops, precision = bert.known_peak(name)
    assert flops == expected and "bfloat16" in precision


def test_an_unknown_device_has_no_peak():
    assert bert.known_peak("Tesla K80") is None


def test_the_measured_cpu_peak_is_a_plausible_rate():
    flops = bert.measured_matmul_peak(n=256, seconds=0.05)
    assert 1e8 < flops < 1e14


@pytest.mark.parametrize(
    ("accelerator_type", "expected"),
    [
        ("v3-1024", "TPU v3"),
        ("v4-128", "TPU v4"),
        ("v5litepod-256", "TPU v5e"),
        ("v5p-64", "TPU v5p"),
        ("v6e-8", "TPU v6e"),
        ("v9-8", None),
        ("v4", None),
        ("", None),
    ],
)
def test_a_cloud_tpu_accelerator_type_names_its_device(accelerator_type, expected):
    assert bert.tpu_device_name(accelerator_type) == expected
    if expected:
        assert bert.known_peak(expected) is not None
