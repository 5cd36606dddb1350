"""Pretraining data: Google-schema TFRecord shards with meta.json, and the input pipeline that reads them."""

from data.meta import (
    META_FILENAME,
    META_FORMAT,
    META_FORMAT_VERSION,
    DataConfigError,
    check_meta,
    read_meta,
    write_meta,
)
from data.pipeline import feature_spec, parse_batch, pretraining_dataset

__all__ = [
    "META_FILENAME",
    "META_FORMAT",
    "META_FORMAT_VERSION",
    "DataConfigError",
    "check_meta",
    "read_meta",
    "write_meta",
    "feature_spec",
    "parse_batch",
    "pretraining_dataset",
]
