"""Export of a trained model: Google BERT's format (what Google's code loads), a Hugging Face directory
(what transformers and keras-hub load) and a SavedModel of the encoder for serving, all in one directory.

model_dir/export/bert_model.ckpt.index, .data-00000-of-00001   Google's variable names and shapes
model_dir/export/bert_config.json
model_dir/export/vocab.txt                                     the vocabulary of the training data
model_dir/export/config.json, model.safetensors,               transformers' BertForPreTraining (see
                 tokenizer_config.json                         bert/huggingface.py); lower-casing as the
                                                               data was made (meta.json)
model_dir/export/saved_model/                                  the encoder, signature "serving_default":
    int32 input_ids, input_mask, segment_ids [batch, length] -> float32 sequence_output [batch, length,
    hidden], pooled_output [batch, hidden]

An export is never half-written where it looks complete: it is written into a temporary directory beside
model_dir/export, which then replaces the old export (two renames). On another filesystem (gs://), where
directories cannot be renamed, the files are copied with the checkpoint index, model.safetensors and
saved_model.pb last (a checkpoint without its index, a Hugging Face directory without its weights, or a
SavedModel without its .pb, is not loadable).
"""

import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

import bert
import data
from bert import huggingface

EXPORT_DIR_NAME = "export"
CHECKPOINT_PREFIX = "bert_model.ckpt"
VOCAB_FILE_NAME = "vocab.txt"
SAVED_MODEL_DIR_NAME = "saved_model"
SERVING_SIGNATURE = "serving_default"
_WRITTEN_LAST = (".index", huggingface.WEIGHTS_FILE_NAME, "saved_model.pb")


def find_vocab_file(vocab_file, train_files):
    """`vocab_file` if given, else the vocab file named by the training data's meta.json, else None."""
    if vocab_file:
        return vocab_file
    first_pattern = train_files[0]
    meta = data.read_meta(first_pattern)
    if not meta or not meta.get("vocab_file"):
        return None
    return os.path.join(data.meta_directory(first_pattern), meta["vocab_file"])


def find_do_lower_case(train_files):
    """Whether the training data (a list of patterns) was lower-cased, as the meta.json of the first says;
    True, Google's default, when unknown."""
    meta = data.read_meta(train_files[0]) or {}
    value = meta.get("do_lower_case", meta.get("settings", {}).get("do_lower_case"))
    if value is None:
        logging.warning("the training data's meta.json does not say do_lower_case: the export says true")
        return True
    return bool(value)


class ServingEncoder(tf.Module):
    """The BERT encoder behind a serving signature with Google's input names."""

    def __init__(self, encoder):
        super().__init__(name="bert_encoder")
        self.encoder = encoder

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="input_ids"),
            tf.TensorSpec([None, None], tf.int32, name="input_mask"),
            tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        ]
    )
    def serve(self, input_ids, input_mask, segment_ids):
        features = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
        outputs = self.encoder(features, training=False)
        return {name: tf.cast(outputs[name], tf.float32) for name in ("sequence_output", "pooled_output")}


def float32_copy(model):
    """`model` itself when it computes in float32, else a float32 model holding its weights."""
    if model.dtype_policy.compute_dtype == "float32":
        return model
    copy = bert.BertPretrainingModel(model.config)
    copy.set_weights([v.numpy() for v in model.weights])
    return copy


def export_model(model, model_dir, vocab_file=None, saved_model=True, do_lower_case=True):
    """Writes the Google-format checkpoint, bert_config.json, vocab.txt (when `vocab_file` is known), the
    Hugging Face files and (if `saved_model`) the serving SavedModel of `model` to model_dir/export;
    returns that directory. `do_lower_case` goes to tokenizer_config.json."""
    export_dir = os.path.join(model_dir, EXPORT_DIR_NAME)
    if "://" in export_dir:
        with tempfile.TemporaryDirectory() as local_dir:
            written = _write_export(model, local_dir, vocab_file, saved_model, do_lower_case)
            _copy_tree(local_dir, export_dir)
    else:
        os.makedirs(model_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{EXPORT_DIR_NAME}.tmp-", dir=model_dir)
        try:
            written = _write_export(model, staging, vocab_file, saved_model, do_lower_case)
            _replace_directory(staging, export_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logging.info("exported the model to %s (%s)", export_dir, ", ".join(written))
    if not vocab_file:
        logging.warning("no vocabulary file known (set data.vocab_file): the export has no vocab.txt")
    return export_dir


def export_run_model(model, config):
    """Exports `model` of the pretraining run `config` (a trainer.Config): the vocabulary and the
    lower-casing of its training data, the SavedModel when train.export_saved_model."""
    data_config = config.data
    return export_model(
        model,
        config.runtime.model_dir,
        find_vocab_file(data_config.vocab_file, data_config.train_files),
        saved_model=config.train.export_saved_model,
        do_lower_case=find_do_lower_case(data_config.train_files),
    )


def _write_export(model, export_dir, vocab_file, saved_model, do_lower_case):
    """Writes the export's files; returns what was written, for the log."""
    os.makedirs(export_dir, exist_ok=True)
    written = ["Google BERT checkpoint", bert.CONFIG_FILE_NAME]
    if vocab_file:
        tf.io.gfile.copy(vocab_file, os.path.join(export_dir, VOCAB_FILE_NAME), overwrite=True)
        written.append(VOCAB_FILE_NAME)
    bert.save_google_checkpoint(model, os.path.join(export_dir, CHECKPOINT_PREFIX))
    huggingface.save_huggingface(model, export_dir, do_lower_case)
    written.append(f"Hugging Face {', '.join(huggingface.EXPORTED_FILE_NAMES)}")
    if saved_model:
        module = ServingEncoder(float32_copy(model).encoder)
        tf.saved_model.save(
            module,
            os.path.join(export_dir, SAVED_MODEL_DIR_NAME),
            signatures={SERVING_SIGNATURE: module.serve},
        )
        written.append("SavedModel")
    return written


def _replace_directory(staging, export_dir):
    """Puts the finished `staging` directory in place of `export_dir` (an old export is removed after)."""
    old = None
    if os.path.exists(export_dir):
        old = f"{staging}.old"
        os.rename(export_dir, old)
    os.rename(staging, export_dir)
    if old is not None:
        shutil.rmtree(old)


def _copy_tree(local_dir, remote_dir):
    """Copies every file of `local_dir` to `remote_dir`, the files that make an export loadable last."""
    files = []
    for root, _, names in os.walk(local_dir):
        files.extend(os.path.relpath(os.path.join(root, name), local_dir) for name in names)
    files.sort(key=lambda name: name.endswith(_WRITTEN_LAST))
    for name in files:
        target = f"{remote_dir}/{name}"
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(os.path.join(local_dir, name), target, overwrite=True)
