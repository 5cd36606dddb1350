"""Pretraining data: corpus -> WordPiece vocab -> Google-schema TFRecord shards with meta.json, and the input
pipeline that reads them.

The creation entry point is `data.create_pretraining_data.create_pretraining_data(...)` (and the CLI
`python -m data.create_pretraining_data`); it is not re-exported here so that running the module does not
import it twice.
"""

import data.tensorflow_startup  # noqa: F401  (first of all: TensorFlow without its C++ start-up lines)
from data.corpus import embedded_corpus, open_corpus, split_sentences
from data.instances import TokenizedDocuments, assemble_instances, create_instance_spans
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
from data.records import serialize_examples, shard_file_name
from data.tokenization import WordPieceTokenizer
from data.vocab import Vocab, continuation_ids, file_sha256, learn_vocab, load_vocab, write_vocab

__all__ = [
    # corpus
    "embedded_corpus",
    "open_corpus",
    "split_sentences",
    # vocabulary and tokenization
    "Vocab",
    "WordPieceTokenizer",
    "continuation_ids",
    "file_sha256",
    "learn_vocab",
    "load_vocab",
    "write_vocab",
    # instances, masking, records
    "MaskingConfig",
    "TokenizedDocuments",
    "assemble_instances",
    "create_instance_spans",
    "mask_tokens",
    "serialize_examples",
    "shard_file_name",
    "unmask",
    # meta.json
    "META_FILENAME",
    "META_FORMAT",
    "META_FORMAT_VERSION",
    "DataConfigError",
    "check_meta",
    "meta_directory",
    "read_meta",
    "write_meta",
    # input pipeline
    "feature_spec",
    "masking_config_from_meta",
    "parse_batch",
    "pretraining_dataset",
]
