"""Builds the training data on first use when the config says how (`data.create`; the demo does this).

The data goes into the directory of the first `data.train_files` pattern, only when that directory has no
meta.json: a directory with a meta.json holds finished data (data/ writes meta.json last), so a pattern that
matches nothing there is a mistake to report, never a reason to write over it.
"""

import os

import tensorflow as tf
from absl import logging

import data
from data.create_pretraining_data import create_pretraining_data
from trainer.errors import ConfigError, UserError


def _has_glob_characters(path):
    return any(character in path for character in "*?[")


def data_directory(train_files):
    """The directory of the first train_files pattern (which must not hold wildcards itself)."""
    first = train_files.split(",")[0].strip()
    directory = os.path.dirname(first) or "."
    if _has_glob_characters(directory):
        raise ConfigError(
            f"data.create: the directory of data.train_files ({directory}) must not hold wildcards"
        )
    return directory


def ensure_training_data(config, single_worker):
    """Creates the data of `data.create` if `data.train_files` matches no file and no meta.json is there.

    Returns the meta dict of the created data, or None when nothing was created.
    """
    data_config, create = config.data, config.data.create
    if create is None:
        return None
    patterns = [pattern.strip() for pattern in data_config.train_files.split(",") if pattern.strip()]
    if any(tf.io.gfile.glob(pattern) for pattern in patterns):
        return None
    directory = data_directory(data_config.train_files)
    if tf.io.gfile.exists(os.path.join(directory, data.META_FILENAME)):
        return None  # finished data that the pattern does not match: the input pipeline reports it
    if not single_worker:
        raise UserError(
            f"data.create: {data_config.train_files} matches no file; create the data before a multi-worker "
            f"run (python -m data.create_pretraining_data)"
        )
    logging.info(
        "no training data at %s: creating it from %s (data.create)", data_config.train_files, create.corpus
    )
    try:
        meta = create_pretraining_data(
            create.corpus,
            directory,
            vocab_size=create.vocab_size,
            max_seq_length=data_config.max_seq_length,
            max_predictions_per_seq=data_config.max_predictions_per_seq,
            masked_lm_prob=create.masked_lm_prob,
            short_seq_prob=create.short_seq_prob,
            dupe_factor=create.dupe_factor,
            random_seed=create.seed,
            do_lower_case=create.do_lower_case,
            do_whole_word_mask=create.whole_word_mask,
            num_shards=create.num_shards,
            num_workers=create.num_workers,
            overwrite=True,  # only partial output of an interrupted creation can be there (no meta.json)
        )
    except ValueError as e:
        raise ConfigError(f"data.create: {e}") from None
    if not any(tf.io.gfile.glob(pattern) for pattern in patterns):
        raise ConfigError(
            f"data.train_files: {data_config.train_files} matches none of the {create.num_shards} shards "
            f"created in {directory}"
        )
    return meta
