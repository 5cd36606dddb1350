"""Export and import of TF checkpoints with Google BERT's variable names and shapes."""

import json

import numpy as np
import pytest
import tensorflow as tf
from bert_examples import make_features
from numpy_bert import pretraining_logits, random_weights

import bert
from bert import BertConfig, BertEncoder, BertPretrainingModel, load_google_checkpoint, save_google_checkpoint


def googles_names_and_shapes(layers, vocab, hidden, intermediate, positions, types):
    """The variable list of Google's pretraining checkpoints, written out from its documentation."""
    H = hidden
    expected = {
        "bert/embeddings/word_embeddings": [vocab, H],
        "bert/embeddings/token_type_embeddings": [types, H],
        "bert/embeddings/position_embeddings": [positions, H],
        "bert/embeddings/LayerNorm/gamma": [H],
        "bert/embeddings/LayerNorm/beta": [H],
        "bert/pooler/dense/kernel": [H, H],
        "bert/pooler/dense/bias": [H],
        "cls/predictions/transform/dense/kernel": [H, H],
        "cls/predictions/transform/dense/bias": [H],
        "cls/predictions/transform/LayerNorm/gamma": [H],
        "cls/predictions/transform/LayerNorm/beta": [H],
        "cls/predictions/output_bias": [vocab],
        "cls/seq_relationship/output_weights": [2, H],
        "cls/seq_relationship/output_bias": [2],
    }
    for n in range(layers):
        layer = f"bert/encoder/layer_{n}"
        for part in ("query", "key", "value"):
            expected[f"{layer}/attention/self/{part}/kernel"] = [H, H]
            expected[f"{layer}/attention/self/{part}/bias"] = [H]
        expected[f"{layer}/attention/output/dense/kernel"] = [H, H]
        expected[f"{layer}/attention/output/dense/bias"] = [H]
        expected[f"{layer}/attention/output/LayerNorm/gamma"] = [H]
        expected[f"{layer}/attention/output/LayerNorm/beta"] = [H]
        expected[f"{layer}/intermediate/dense/kernel"] = [H, intermediate]
        expected[f"{layer}/intermediate/dense/bias"] = [intermediate]
        expected[f"{layer}/output/dense/kernel"] = [intermediate, H]
        expected[f"{layer}/output/dense/bias"] = [H]
        expected[f"{layer}/output/LayerNorm/gamma"] = [H]
        expected[f"{layer}/output/LayerNorm/beta"] = [H]
    return expected


def write_by_hand(prefix, tensors):
    """Writes a checkpoint with the raw SaveV2 op only, the way any TF1 BERT checkpoint looks on disk."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[name]) for name in names],
    )


def test_export_holds_exactly_googles_names_and_shapes(tmp_path, tiny_config, tiny_dict):
    prefix = str(tmp_path / "export" / "bert_model.ckpt")
    save_google_checkpoint(BertPretrainingModel(tiny_config), prefix)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert shapes == googles_names_and_shapes(2, 57, 16, 32, 12, 2)
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    assert set(dtypes.values()) == {tf.float32}
    assert json.loads((tmp_path / "export" / "bert_config.json").read_text()) == tiny_dict
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "bert_config.json",
        "bert_model.ckpt.data-00000-of-00001",
        "bert_model.ckpt.index",
    ]


def test_export_then_import_reproduces_outputs_exactly(tmp_path, tiny_config, tiny_dict):
    features = make_features(tiny_dict, seed=1)
    source = BertPretrainingModel(tiny_config)
    prefix = save_google_checkpoint(source, str(tmp_path / "bert_model.ckpt"))
    target = BertPretrainingModel(BertConfig.from_json_file(tmp_path / "bert_config.json"))
    before = target(features)["masked_lm_logits"].numpy()
    load_google_checkpoint(target, prefix)
    expected, loaded = source(features), target(features)
    assert not np.allclose(before, expected["masked_lm_logits"])
    for key in expected:
        np.testing.assert_array_equal(loaded[key], expected[key])


def test_hand_written_google_checkpoint_gives_the_numpy_forward_pass(tmp_path, tiny_dict):
    weights = random_weights(tiny_dict, seed=5)
    extras = {"global_step": np.int64(1000)}
    for name in list(weights)[:4]:  # Adam slots as Google's AdamWeightDecayOptimizer names them
        extras[f"{name}/adam_m"] = np.zeros_like(weights[name])
        extras[f"{name}/adam_v"] = np.zeros_like(weights[name])
    prefix = tmp_path / "model.ckpt-1000"
    write_by_hand(prefix, {**weights, **extras})

    model = load_google_checkpoint(BertPretrainingModel(BertConfig.from_dict(tiny_dict)), str(prefix))
    features = make_features(tiny_dict, seed=6)
    outputs = model(features)
    mlm, nsp = pretraining_logits(weights, tiny_dict, features)
    np.testing.assert_allclose(outputs["masked_lm_logits"], mlm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["next_sentence_logits"], nsp, rtol=1e-4, atol=1e-4)


def test_encoder_alone_loads_the_bert_part_and_exports_only_it(tmp_path, tiny_config, tiny_dict):
    weights = random_weights(tiny_dict, seed=7)
    write_by_hand(tmp_path / "full.ckpt", weights)
    encoder = load_google_checkpoint(BertEncoder(tiny_config), str(tmp_path / "full.ckpt"))
    pretraining = load_google_checkpoint(BertPretrainingModel(tiny_config), str(tmp_path / "full.ckpt"))
    features = make_features(tiny_dict, seed=8)
    np.testing.assert_array_equal(
        encoder(features)["pooled_output"], pretraining.encoder(features)["pooled_output"]
    )

    save_google_checkpoint(encoder, str(tmp_path / "encoder" / "bert_model.ckpt"))
    names = set(
        tf.train.load_checkpoint(str(tmp_path / "encoder" / "bert_model.ckpt")).get_variable_to_shape_map()
    )
    assert names == {name for name in weights if name.startswith("bert/")}


def test_loads_into_a_mixed_precision_model(tmp_path, tiny_dict):
    weights = random_weights(tiny_dict, seed=9)
    write_by_hand(tmp_path / "model.ckpt", weights)
    model = BertPretrainingModel(BertConfig.from_dict(tiny_dict), dtype="mixed_bfloat16")
    load_google_checkpoint(model, str(tmp_path / "model.ckpt"))
    for name, variable in bert.google_variables(model).items():
        np.testing.assert_array_equal(variable.numpy(), weights[name])


@pytest.mark.parametrize(
    "change, message",
    [
        ("drop", "checkpoint lacks variable(s) the model needs: bert/encoder/layer_1/output/dense/bias"),
        ("extra", "checkpoint has variable(s) this model does not: bert/encoder/layer_2/output/dense/bias"),
        ("reshape", "variable bert/encoder/layer_1/output/dense/bias has shape [17] in the checkpoint, "),
        ("unknown slot", "checkpoint has variable(s) this model does not: bert/pooler/dense/kernel/momentum"),
    ],
)
def test_mismatched_checkpoint_is_refused_naming_the_variable(
    tmp_path, tiny_config, tiny_dict, change, message
):
    weights = random_weights(tiny_dict, seed=10)
    name = "bert/encoder/layer_1/output/dense/bias"
    if change == "drop":
        del weights[name]
    elif change == "extra":
        weights["bert/encoder/layer_2/output/dense/bias"] = weights[name]
    elif change == "reshape":
        weights[name] = np.zeros(17, np.float32)
    else:
        weights["bert/pooler/dense/kernel/momentum"] = weights["bert/pooler/dense/kernel"]
    write_by_hand(tmp_path / "bad.ckpt", weights)
    model = BertPretrainingModel(tiny_config)
    before = [v.numpy() for v in model.trainable_variables]
    with pytest.raises(ValueError, match="bad.ckpt: ") as error:
        load_google_checkpoint(model, str(tmp_path / "bad.ckpt"))
    assert message in str(error.value)
    for old, variable in zip(before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old)  # nothing half-loaded


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="nowhere.ckpt: cannot read a TF checkpoint"):
        load_google_checkpoint(BertPretrainingModel(tiny_config), str(tmp_path / "nowhere.ckpt"))


def test_training_checkpoints_with_tf_train_checkpoint_hold_every_variable(tmp_path, tiny_config, tiny_dict):
    source, target = BertPretrainingModel(tiny_config), BertPretrainingModel(tiny_config)
    path = tf.train.Checkpoint(model=source).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(source.trainable_variables) == len(bert.google_variables(source))
    tf.train.Checkpoint(model=target).read(path).assert_consumed()
    features = make_features(tiny_dict, seed=11)
    np.testing.assert_array_equal(target(features)["masked_lm_logits"], source(features)["masked_lm_logits"])
