"""Pretraining data: WordPiece vocabularies, masked-LM masking, Google-schema TFRecord shards with meta.json,
and the input pipeline that reads them."""

from data.masking import MaskingConfig, mask_tokens, unmask
from data.meta import (
    META_FILENAME,
    META_FORMAT,
    META_FORMAT_VERSION,
    DataConfigError,
    check_meta,
    meta_directory,
    read_meta,
    write_meta,
)
from data.pipeline import feature_spec, masking_config_from_meta, parse_batch, pretraining_dataset
from data.vocab import Vocab, continuation_ids, file_sha256, learn_vocab, load_vocab, write_vocab

__all__ = [
    # meta.json
    "META_FILENAME",
    "META_FORMAT",
    "META_FORMAT_VERSION",
    "DataConfigError",
    "check_meta",
    "meta_directory",
    "read_meta",
    "write_meta",
    # vocabulary
    "Vocab",
    "continuation_ids",
    "file_sha256",
    "learn_vocab",
    "load_vocab",
    "write_vocab",
    # masking
    "MaskingConfig",
    "mask_tokens",
    "unmask",
    # input pipeline
    "feature_spec",
    "masking_config_from_meta",
    "parse_batch",
    "pretraining_dataset",
]
