"""Export to and import from TF checkpoints with Google BERT's variable names and shapes.

The files are the ones Google's `run_pretraining.py` / `run_classifier.py` (`init_checkpoint`) and Hugging
Face's `load_tf_weights_in_bert` read: `<prefix>.index`, `<prefix>.data-00000-of-00001` and
`bert_config.json` beside them. They are written with the raw `SaveV2` op, so the names in the file are
exactly Google's (no object-graph keys, no optimizer slots).
"""

import os
import re

import numpy as np
import tensorflow as tf

from bert.model import BertEncoder, BertPretrainingModel

CONFIG_FILE_NAME = "bert_config.json"

# Names a Google (or NVIDIA) pretraining checkpoint may carry besides the model's variables: the step
# counter and the optimizer's moment slots (`<variable>/adam_m`, `<variable>/adam_v`). Loading skips them.
IGNORED_CHECKPOINT_NAMES = (r"^global_step$", r"/adam_[mv]$")


def google_variables(model):
    """{Google checkpoint name: variable} of a `BertPretrainingModel`, or a `BertEncoder` (`bert/` only)."""
    if isinstance(model, BertPretrainingModel):
        encoder = model.encoder
    elif isinstance(model, BertEncoder):
        encoder = model
    else:
        raise ValueError(f"expected a BertPretrainingModel or a BertEncoder, got {type(model).__name__}")

    names = {}

    def add_dense(name, dense):
        names[f"{name}/kernel"] = dense.kernel
        names[f"{name}/bias"] = dense.bias

    def add_layer_norm(name, layer_norm):
        names[f"{name}/gamma"] = layer_norm.gamma
        names[f"{name}/beta"] = layer_norm.beta

    embeddings = encoder.embeddings
    names["bert/embeddings/word_embeddings"] = embeddings.word_embeddings
    names["bert/embeddings/token_type_embeddings"] = embeddings.token_type_embeddings
    names["bert/embeddings/position_embeddings"] = embeddings.position_embeddings
    add_layer_norm("bert/embeddings/LayerNorm", embeddings.layer_norm)
    for i, layer in enumerate(encoder.transformer_layers):
        prefix = f"bert/encoder/layer_{i}"
        add_dense(f"{prefix}/attention/self/query", layer.query)
        add_dense(f"{prefix}/attention/self/key", layer.key)
        add_dense(f"{prefix}/attention/self/value", layer.value)
        add_dense(f"{prefix}/attention/output/dense", layer.attention_output)
        add_layer_norm(f"{prefix}/attention/output/LayerNorm", layer.attention_layer_norm)
        add_dense(f"{prefix}/intermediate/dense", layer.intermediate)
        add_dense(f"{prefix}/output/dense", layer.output_dense)
        add_layer_norm(f"{prefix}/output/LayerNorm", layer.output_layer_norm)
    add_dense("bert/pooler/dense", encoder.pooler)

    if isinstance(model, BertPretrainingModel):
        add_dense("cls/predictions/transform/dense", model.masked_lm.transform)
        add_layer_norm("cls/predictions/transform/LayerNorm", model.masked_lm.layer_norm)
        names["cls/predictions/output_bias"] = model.masked_lm.output_bias
        names["cls/seq_relationship/output_weights"] = model.next_sentence.output_weights
        names["cls/seq_relationship/output_bias"] = model.next_sentence.output_bias
    return names


def save_google_checkpoint(model, path):
    """Writes the model's variables (float32) under Google's names at checkpoint prefix `path`.

    Also writes `bert_config.json` in the same directory. Files are written under temporary names and
    renamed into place, the index last, so an interrupted export never looks like a complete checkpoint.
    Returns `path`.
    """
    variables = google_variables(model)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    names = sorted(variables)
    tensors = [tf.cast(tf.convert_to_tensor(variables[name]), tf.float32) for name in names]
    tf.raw_ops.SaveV2(
        prefix=temporary, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    os.replace(f"{temporary}.data-00000-of-00001", f"{path}.data-00000-of-00001")
    model.config.to_json_file(os.path.join(directory, CONFIG_FILE_NAME))
    os.replace(f"{temporary}.index", f"{path}.index")
    return path


def load_google_checkpoint(model, path):
    """Loads a checkpoint with Google BERT names (Google's released ones included) into `model`.

    Every model variable must be present with its exact shape. Names matching `IGNORED_CHECKPOINT_NAMES`
    (global_step, Adam slots) are skipped; a `BertEncoder` also skips `cls/...`. Anything else in the
    checkpoint that the model does not have is an error: it would mean the config does not match.
    """
    variables = google_variables(model)
    try:
        reader = tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"{path}: cannot read a TF checkpoint there ({error})") from error
    shapes = reader.get_variable_to_shape_map()

    missing = sorted(set(variables) - set(shapes))
    if missing:
        raise ValueError(f"{path}: checkpoint lacks variable(s) the model needs: {_short_list(missing)}")
    extra = sorted(name for name in set(shapes) - set(variables) if not _is_ignored(name, model))
    if extra:
        raise ValueError(
            f"{path}: checkpoint has variable(s) this model does not: {_short_list(extra)} "
            "(does the BertConfig match the checkpoint's bert_config.json?)"
        )
    for name, variable in variables.items():
        if tuple(shapes[name]) != tuple(variable.shape):
            raise ValueError(
                f"{path}: variable {name} has shape {list(shapes[name])} in the checkpoint, "
                f"the model expects {list(variable.shape)}"
            )
    for name, variable in variables.items():
        variable.assign(np.asarray(reader.get_tensor(name), dtype=variable.dtype))
    return model


def _is_ignored(name, model):
    if isinstance(model, BertEncoder) and name.startswith("cls/"):
        return True
    return any(re.search(pattern, name) for pattern in IGNORED_CHECKPOINT_NAMES)


def _short_list(names, limit=8):
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} ... ({len(names)} in all)"
