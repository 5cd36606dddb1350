"""Pretraining data: corpus -> WordPiece vocab -> Google-schema TFRecord shards with meta.json, and the input
pipeline that reads them.

The creation entry point is `data.create_pretraining_data.create_pretraining_data(config)` (and the CLI
`python -m data.create_pretraining_data`; `--runner=...` runs it on Apache Beam, data.beam_pipeline).

Importing `data` changes nothing global and imports nothing heavy: the names below are loaded from their
modules on first use, so a command-line entry point can import `data.tensorflow_startup` and start
TensorFlow quietly before any module of data/ imports TensorFlow.
"""

import importlib

_EXPORTS = {
    "data.corpus": ("embedded_corpus", "open_corpus", "split_sentences"),
    "data.vocab": ("Vocab", "continuation_ids", "file_sha256", "learn_vocab", "load_vocab", "write_vocab"),
    "data.tokenization": ("WordPieceTokenizer",),
    "data.instances": ("TokenizedDocuments", "assemble_instances", "create_instance_spans"),
    "data.masking": ("MaskingConfig", "mask_tokens", "unmask"),
    "data.records": ("serialize_examples", "shard_file_name"),
    "data.meta": (
        "META_FILENAME",
        "META_FORMAT",
        "META_FORMAT_VERSION",
        "DataConfigError",
        "check_meta",
        "meta_directory",
        "read_meta",
        "write_meta",
    ),
    "data.checks": (
        "VERIFY_LEVELS",
        "DataFiles",
        "check_data",
        "damaged_record_message",
        "feature_spec",
        "token_id_error",
        "with_token_id_check",
    ),
    "data.pipeline": ("MaskingSettingsError", "dynamic_masking_config", "parse_batch", "pretraining_dataset"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__():
    return sorted([*globals(), *__all__])
