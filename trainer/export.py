"""Export of a trained model in Google BERT's format: what Google's and Hugging Face's code load.

model_dir/export/bert_model.ckpt.index, .data-00000-of-00001   Google's variable names and shapes
model_dir/export/bert_config.json
model_dir/export/vocab.txt                                     the vocabulary of the training data
"""

import os
import tempfile

import tensorflow as tf
from absl import logging

import bert
import data

EXPORT_DIR_NAME = "export"
CHECKPOINT_PREFIX = "bert_model.ckpt"
VOCAB_FILE_NAME = "vocab.txt"


def find_vocab_file(vocab_file, train_files):
    """`vocab_file` if given, else the vocab file named by the training data's meta.json, else None."""
    if vocab_file:
        return vocab_file
    first_pattern = train_files.split(",")[0].strip()
    meta = data.read_meta(first_pattern)
    if not meta or not meta.get("vocab_file"):
        return None
    return os.path.join(data.meta_directory(first_pattern), meta["vocab_file"])


def export_model(model, model_dir, vocab_file=None):
    """Writes the Google-format checkpoint, bert_config.json and vocab.txt; returns the export directory.

    bert.save_google_checkpoint writes local files; for a model_dir on another filesystem (gs://) the export
    is written to a local temporary directory and copied over, the checkpoint index last (a checkpoint
    without its index is not a checkpoint, so an interrupted copy never looks complete).
    """
    export_dir = os.path.join(model_dir, EXPORT_DIR_NAME)
    if "://" in export_dir:
        with tempfile.TemporaryDirectory() as local_dir:
            _write_export(model, local_dir, vocab_file)
            tf.io.gfile.makedirs(export_dir)
            names = sorted(os.listdir(local_dir), key=lambda name: name.endswith(".index"))
            for name in names:
                tf.io.gfile.copy(os.path.join(local_dir, name), f"{export_dir}/{name}", overwrite=True)
    else:
        _write_export(model, export_dir, vocab_file)
    logging.info("exported the model to %s (Google BERT checkpoint, bert_config.json, vocab.txt)", export_dir)
    return export_dir


def _write_export(model, export_dir, vocab_file):
    os.makedirs(export_dir, exist_ok=True)
    if vocab_file:
        tf.io.gfile.copy(vocab_file, os.path.join(export_dir, VOCAB_FILE_NAME), overwrite=True)
    else:
        logging.warning("no vocabulary file known (set data.vocab_file): the export has no vocab.txt")
    bert.save_google_checkpoint(model, os.path.join(export_dir, CHECKPOINT_PREFIX))
