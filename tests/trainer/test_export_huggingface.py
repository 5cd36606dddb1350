"""The Hugging Face part of the export: transformers' names and shapes, a directory keras-hub (and, when
installed, transformers) loads as it is, tokenizer_config.json from meta.json, a log that says what is there.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

import bert
import trainer
from bert import huggingface
from trainer.export import find_do_lower_case

TINY = bert.BertConfig(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=32,
    type_vocab_size=2,
)


def random_model(config=TINY, seed=0):
    """A model whose every weight is random (LayerNorm and biases too, so a swapped name shows)."""
    model = bert.BertPretrainingModel(config)
    rng = np.random.default_rng(seed)
    for variable in bert.google_variables(model).values():
        variable.assign(rng.normal(0.0, 0.2, variable.shape).astype(np.float32))
    return model


def write_vocab(path, size=TINY.vocab_size):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(size - 5)]
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


# transformers' BertForPreTraining state dict for one layer, as `model.state_dict()` lists it (torch shapes
# [out, in]), without the tied decoder; H=16, F=24, V=40, 32 positions, 2 token types.
EXPECTED_LAYER_0 = {
    "bert.encoder.layer.0.attention.self.query.weight": (16, 16),
    "bert.encoder.layer.0.attention.self.query.bias": (16,),
    "bert.encoder.layer.0.attention.self.key.weight": (16, 16),
    "bert.encoder.layer.0.attention.self.key.bias": (16,),
    "bert.encoder.layer.0.attention.self.value.weight": (16, 16),
    "bert.encoder.layer.0.attention.self.value.bias": (16,),
    "bert.encoder.layer.0.attention.output.dense.weight": (16, 16),
    "bert.encoder.layer.0.attention.output.dense.bias": (16,),
    "bert.encoder.layer.0.attention.output.LayerNorm.weight": (16,),
    "bert.encoder.layer.0.attention.output.LayerNorm.bias": (16,),
    "bert.encoder.layer.0.intermediate.dense.weight": (24, 16),
    "bert.encoder.layer.0.intermediate.dense.bias": (24,),
    "bert.encoder.layer.0.output.dense.weight": (16, 24),
    "bert.encoder.layer.0.output.dense.bias": (16,),
    "bert.encoder.layer.0.output.LayerNorm.weight": (16,),
    "bert.encoder.layer.0.output.LayerNorm.bias": (16,),
}
EXPECTED_OTHERS = {
    "bert.embeddings.word_embeddings.weight": (40, 16),
    "bert.embeddings.position_embeddings.weight": (32, 16),
    "bert.embeddings.token_type_embeddings.weight": (2, 16),
    "bert.embeddings.LayerNorm.weight": (16,),
    "bert.embeddings.LayerNorm.bias": (16,),
    "bert.pooler.dense.weight": (16, 16),
    "bert.pooler.dense.bias": (16,),
    "cls.predictions.bias": (40,),
    "cls.predictions.transform.dense.weight": (16, 16),
    "cls.predictions.transform.dense.bias": (16,),
    "cls.predictions.transform.LayerNorm.weight": (16,),
    "cls.predictions.transform.LayerNorm.bias": (16,),
    "cls.seq_relationship.weight": (2, 16),
    "cls.seq_relationship.bias": (2,),
}


def test_the_safetensors_hold_transformers_names_and_torch_shapes(tmp_path):
    model = random_model()
    huggingface.save_huggingface(model, str(tmp_path))
    state = load_file(str(tmp_path / "model.safetensors"))
    expected = {**EXPECTED_OTHERS, **EXPECTED_LAYER_0}
    expected.update({name.replace("layer.0.", "layer.1."): shape for name, shape in EXPECTED_LAYER_0.items()})
    assert {name: value.shape for name, value in state.items()} == expected
    assert all(value.dtype == np.float32 for value in state.values())
    layer = model.encoder.transformer_layers[1]
    # A torch Linear computes x @ weight.T: the weight is the Keras kernel transposed.
    np.testing.assert_array_equal(
        state["bert.encoder.layer.1.intermediate.dense.weight"], layer.intermediate.kernel.numpy().T
    )
    np.testing.assert_array_equal(
        state["bert.encoder.layer.1.attention.output.LayerNorm.weight"],
        layer.attention_layer_norm.gamma.numpy(),
    )
    np.testing.assert_array_equal(state["cls.predictions.bias"], model.masked_lm.output_bias.numpy())
    np.testing.assert_array_equal(
        state["cls.seq_relationship.weight"], model.next_sentence.output_weights.numpy()
    )


def test_config_json_has_every_field_with_transformers_activation_names(tmp_path):
    huggingface.save_huggingface(random_model(), str(tmp_path), do_lower_case=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    for field, value in TINY.to_dict().items():
        if field != "hidden_act":
            assert config[field] == value, field
    assert config["hidden_act"] == "gelu_new"  # Google's tanh GELU; transformers' "gelu" is the erf form
    assert config["layer_norm_eps"] == 1e-12
    tokenizer = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer["do_lower_case"] is False and tokenizer["tokenizer_class"] == "BertTokenizer"


def test_do_lower_case_comes_from_the_data_meta_json(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"settings": {"do_lower_case": False}}))
    assert find_do_lower_case([str(tmp_path / "pretraining-*.tfrecord")]) is False
    (tmp_path / "meta.json").write_text(json.dumps({"settings": {"do_lower_case": True}}))
    assert find_do_lower_case([str(tmp_path / "pretraining-*.tfrecord")]) is True


def test_the_export_log_says_what_was_written(tmp_path, caplog):
    model = random_model()
    with caplog.at_level("INFO", logger="absl"):
        export_dir = trainer.export_model(model, str(tmp_path / "run"), None, saved_model=False)
    written = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exported the model")]
    assert len(written) == 1 and "vocab.txt" not in written[0]
    assert "model.safetensors" in written[0] and "SavedModel" not in written[0]
    assert any("the export has no vocab.txt" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in (tmp_path / "run" / "export").iterdir()) == sorted(
        [
            "bert_config.json",
            "bert_model.ckpt.data-00000-of-00001",
            "bert_model.ckpt.index",
            "config.json",
            "model.safetensors",
            "tokenizer_config.json",
        ]
    )
    assert export_dir == str(tmp_path / "run" / "export")


def encoder_inputs():
    ids = np.array([[2, 7, 9, 11, 3, 0, 0], [2, 30, 31, 3, 12, 13, 3]], np.int32)
    mask = (ids != 0).astype(np.int32)
    segments = np.array([[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]], np.int32)
    return ids, mask, segments


def test_keras_hub_loads_the_export_and_computes_the_same_encoder(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    model = random_model()
    vocab = write_vocab(tmp_path / "vocab.txt")
    export_dir = trainer.export_model(model, str(tmp_path / "run"), vocab, saved_model=False)
    backbone = keras_hub.models.BertBackbone.from_preset(export_dir)
    ids, mask, segments = encoder_inputs()
    theirs = backbone({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})
    ours = model.encoder({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    keep = mask.astype(bool)  # padded positions are not outputs either model defines the same way
    np.testing.assert_allclose(
        np.asarray(theirs["sequence_output"])[keep], ours["sequence_output"].numpy()[keep], rtol=0, atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(theirs["pooled_output"]), ours["pooled_output"].numpy(), rtol=0, atol=1e-4
    )


def test_transformers_loads_the_export_and_computes_the_same_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    model = random_model()
    vocab = write_vocab(tmp_path / "vocab.txt")
    export_dir = trainer.export_model(model, str(tmp_path / "run"), vocab, saved_model=False)
    theirs = transformers.BertForPreTraining.from_pretrained(export_dir).eval()
    ids, mask, segments = encoder_inputs()
    with torch.no_grad():
        out = theirs(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            token_type_ids=torch.tensor(segments, dtype=torch.long),
            output_hidden_states=True,
        )
    positions = np.tile(np.arange(ids.shape[1], dtype=np.int32), [2, 1])
    ours = model(
        {"input_ids": ids, "input_mask": mask, "segment_ids": segments, "masked_lm_positions": positions}
    )
    keep = mask.astype(bool)
    np.testing.assert_allclose(
        out.hidden_states[-1].numpy()[keep],
        model.encoder({"input_ids": ids, "input_mask": mask, "segment_ids": segments})[
            "sequence_output"
        ].numpy()[keep],
        rtol=0,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        out.prediction_logits.numpy()[keep], ours["masked_lm_logits"].numpy()[keep], rtol=0, atol=1e-4
    )
    np.testing.assert_allclose(
        out.seq_relationship_logits.numpy(), ours["next_sentence_logits"].numpy(), rtol=0, atol=1e-4
    )
    tokenizer = transformers.BertTokenizer.from_pretrained(export_dir)
    assert tokenizer.convert_tokens_to_ids(["[CLS]", "w0"]) == [2, 5]


def test_an_export_on_another_filesystem_holds_the_huggingface_files(tmp_path):
    model = random_model()
    export_dir = trainer.export_model(model, "ram://hf_export", None, saved_model=False)
    for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
        assert tf.io.gfile.exists(f"{export_dir}/{name}"), name
