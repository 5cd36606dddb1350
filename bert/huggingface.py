"""Hugging Face's BERT format: `config.json`, `model.safetensors` in transformers' `BertForPreTraining`
names, `tokenizer_config.json`; what `transformers.BertForPreTraining.from_pretrained(dir)` and
`keras_hub.models.BertBackbone.from_preset(dir)` load with no conversion step.

Each Google name maps to one transformers name (written with the safetensors package's numpy API, so no
PyTorch is needed to write):

    bert/embeddings/word_embeddings                    bert.embeddings.word_embeddings.weight
    bert/embeddings/LayerNorm/gamma, beta              bert.embeddings.LayerNorm.weight, .bias
    bert/encoder/layer_N/attention/self/query/kernel   bert.encoder.layer.N.attention.self.query.weight  (T)
    bert/pooler/dense/bias                             bert.pooler.dense.bias
    cls/predictions/output_bias                        cls.predictions.bias
    cls/seq_relationship/output_weights               cls.seq_relationship.weight   ([2, H] in both)

(T): a Dense kernel is [in, out] here and a torch Linear weight is [out, in], so kernels are transposed.
The masked-LM decoder (`cls.predictions.decoder.weight`, `.bias`) is tied to the word embeddings and to
`cls.predictions.bias` in transformers, so it is not written, as transformers' own `save_pretrained` does.
"""

import json
import os
import re

import numpy as np
from safetensors.numpy import save_file

from bert.checkpoint import google_variables

CONFIG_FILE_NAME = "config.json"
WEIGHTS_FILE_NAME = "model.safetensors"
TOKENIZER_CONFIG_FILE_NAME = "tokenizer_config.json"
EXPORTED_FILE_NAMES = (CONFIG_FILE_NAME, TOKENIZER_CONFIG_FILE_NAME, WEIGHTS_FILE_NAME)
LAYER_NORM_EPS = 1e-12  # bert.layers.LAYER_NORM_EPSILON

# bert.BertConfig.hidden_act -> transformers' name of the same function. Google's "gelu" is the tanh
# approximation, which transformers calls "gelu_new"; transformers' "gelu" is the exact erf form.
HIDDEN_ACT_NAMES = {
    "gelu": "gelu_new",
    "gelu_exact": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}


def huggingface_name(google_name):
    """(transformers name, whether the tensor is transposed) of a Google BERT checkpoint name."""
    name = google_name.replace("/", ".")
    name = re.sub(r"\.layer_(\d+)\.", r".layer.\1.", name)
    if name == "cls.predictions.output_bias":
        return "cls.predictions.bias", False
    if name.startswith("cls.seq_relationship.output_"):
        return name.replace(".output_weights", ".weight").replace(".output_bias", ".bias"), False
    if name.endswith("_embeddings"):
        return f"{name}.weight", False
    for google_suffix, suffix in ((".gamma", ".weight"), (".beta", ".bias"), (".kernel", ".weight")):
        if name.endswith(google_suffix):
            return name.removesuffix(google_suffix) + suffix, google_suffix == ".kernel"
    return name, False  # a Dense bias: the same name


def huggingface_state(model):
    """{transformers name: float32 numpy array} of a BertPretrainingModel (or of a BertEncoder: bert.*)."""
    state = {}
    for google_name, variable in google_variables(model).items():
        name, transpose = huggingface_name(google_name)
        value = np.asarray(variable.numpy(), dtype=np.float32)
        state[name] = np.ascontiguousarray(value.T if transpose else value)
    return state


def huggingface_config(config):
    """transformers' `config.json` of a bert.BertConfig: every field, and BertForPreTraining to build."""
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": HIDDEN_ACT_NAMES[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": LAYER_NORM_EPS,
        "pad_token_id": 0,  # [PAD] is id 0 in Google's vocabularies and in the learned ones
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }


def tokenizer_config(do_lower_case, model_max_length):
    """transformers' `tokenizer_config.json` for the WordPiece vocab.txt beside it."""
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": do_lower_case,
        "strip_accents": None,  # None: follow do_lower_case, as the data creation does
        "tokenize_chinese_chars": True,
        "model_max_length": model_max_length,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }


def save_huggingface(model, directory, do_lower_case=True):
    """Writes config.json, tokenizer_config.json and model.safetensors (last, under a temporary name
    renamed into place) of a BertPretrainingModel into `directory`; vocab.txt is the caller's."""
    os.makedirs(directory, exist_ok=True)
    _write_json(os.path.join(directory, CONFIG_FILE_NAME), huggingface_config(model.config))
    _write_json(
        os.path.join(directory, TOKENIZER_CONFIG_FILE_NAME),
        tokenizer_config(do_lower_case, model.config.max_position_embeddings),
    )
    path = os.path.join(directory, WEIGHTS_FILE_NAME)
    temporary = f"{path}.tmp-{os.getpid()}"
    save_file(huggingface_state(model), temporary, metadata={"format": "pt"})  # transformers wants "pt"
    os.replace(temporary, path)


def _write_json(path, values):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        f.write(json.dumps(values, indent=2) + "\n")
    os.replace(temporary, path)
