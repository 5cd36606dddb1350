"""BertConfig reads and writes Google's bert_config.json and refuses bad values with a clear message."""

import json
import pathlib

import pytest

from bert import BertConfig

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "bert"
GOOGLE_KEYS = {
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
}


def test_json_round_trip_keeps_every_field(tmp_path, tiny_dict):
    config = BertConfig.from_dict(tiny_dict)
    path = tmp_path / "bert_config.json"
    config.to_json_file(path)
    assert json.loads(path.read_text()) == tiny_dict
    assert BertConfig.from_json_file(path) == config
    assert set(config.to_dict()) == GOOGLE_KEYS


def test_defaults_are_googles():
    config = BertConfig(vocab_size=100)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.hidden_act, config.type_vocab_size) == (3072, "gelu", 16)
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob) == (0.1, 0.1)
    assert (config.max_position_embeddings, config.initializer_range) == (512, 0.02)


@pytest.mark.parametrize(
    "size, layers, hidden, heads",
    [
        ("tiny", 2, 128, 2),
        ("mini", 4, 256, 4),
        ("small", 4, 512, 8),
        ("medium", 8, 512, 8),
        ("base", 12, 768, 12),
        ("large", 24, 1024, 16),
    ],
)
def test_standard_sizes(size, layers, hidden, heads):
    config = BertConfig.from_json_file(CONFIGS / f"{size}.json")
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
        layers,
        hidden,
        heads,
    )
    assert config.intermediate_size == 4 * hidden
    assert (config.vocab_size, config.type_vocab_size, config.max_position_embeddings) == (30522, 2, 512)
    assert (config.hidden_act, config.hidden_dropout_prob, config.initializer_range) == ("gelu", 0.1, 0.02)


def test_base_matches_googles_released_uncased_l12_h768_a12():
    released = {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "type_vocab_size": 2,
        "vocab_size": 30522,
    }
    assert json.loads((CONFIGS / "base.json").read_text()) == released


def test_informational_keys_of_googles_multilingual_configs_are_accepted(tiny_dict):
    values = dict(tiny_dict, directionality="bidi", pooler_type="first_token_transform", pooler_fc_size=768)
    assert BertConfig.from_dict(values) == BertConfig.from_dict(tiny_dict)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_attention_heads": 3}, "hidden_size (16) must be a multiple of num_attention_heads (3)"),
        ({"hidden_act": "swish"}, "hidden_act must be one of"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"num_hidden_layers": 2.0}, "num_hidden_layers must be a positive integer"),
        ({"type_vocab_size": True}, "type_vocab_size must be a positive integer"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob must be in [0, 1)"),
        ({"attention_probs_dropout_prob": "0.1"}, "attention_probs_dropout_prob must be a number"),
        ({"initializer_range": 0.0}, "initializer_range must be > 0"),
        ({"hidden_layers": 2}, "unknown BERT config key(s) ['hidden_layers']"),
    ],
)
def test_invalid_values_name_the_field(tiny_dict, change, message):
    with pytest.raises(ValueError) as error:
        BertConfig.from_dict(dict(tiny_dict, **change))
    assert message in str(error.value)


def test_missing_vocab_size_is_named(tiny_dict):
    del tiny_dict["vocab_size"]
    with pytest.raises(ValueError, match="missing BERT config key 'vocab_size'"):
        BertConfig.from_dict(tiny_dict)


def test_errors_from_a_file_name_the_file(tmp_path, tiny_dict):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(dict(tiny_dict, hidden_size=15)))
    with pytest.raises(ValueError, match=f"^{path}: hidden_size \\(15\\) must be a multiple"):
        BertConfig.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"^{path}: not valid JSON"):
        BertConfig.from_json_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=f"^{path}: a BERT config must be a JSON object"):
        BertConfig.from_json_file(path)
    with pytest.raises(ValueError, match="missing.json: cannot read BERT config"):
        BertConfig.from_json_file(tmp_path / "missing.json")
