"""Creates BERT pretraining data: corpus -> WordPiece ids -> NSP pairs -> masks -> TFRecord shards, meta.json.

    python -m data.create_pretraining_data --input=embedded --output_dir=demo_data \
        --learn_vocab --vocab_size=8192 --max_seq_length=128 --dupe_factor=10
    python -m data.create_pretraining_data ... --runner=DirectRunner     # the same, on Apache Beam

Every setting is a field of CreationConfig: the command-line options are made from its fields, and
`create_pretraining_data(config)` takes one. The corpus (data.corpus: text, JSON Lines, Parquet, TFDS or
the embedded prose; any tf.io.gfile path) is cut into one contiguous part per output shard
(`plan_creation`). Each shard is built from its part, independently of the others: its documents are
tokenized (tensorflow-text), paired into instances (data.instances) with a random generator seeded by
(random_seed, shard index), masked (data.masking, stateless seeds) and written (data.records) under a
temporary name that is renamed when the shard is complete (`build_shard`). Shards are spread over worker
processes here, or over Beam's workers (data.beam_pipeline); the output depends only on the corpus, the
settings and num_shards, never on the number or kind of workers. "Random next" segments come from
documents of the same shard, so a worker holds one shard's documents, not the corpus.

meta.json is written last, atomically (`finish_creation`), once every shard is complete; a directory
holding shards or a meta.json is refused unless overwrite, which first deletes the old meta.json.
"""

import argparse
import collections
import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import random
import sys
import time
import typing

from data.tensorflow_startup import import_tensorflow_quietly

# The command line (and its spawned workers, which run this module as __mp_main__): TensorFlow without its
# C++ start-up lines, so that an error stays one line.
if __name__ in ("__main__", "__mp_main__"):
    import_tensorflow_quietly(list_devices=True)  # the GPU driver's start-up lines too

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data import paths  # noqa: E402
from data.corpus import INPUT_FORMATS, count_text_bytes, open_corpus  # noqa: E402
from data.instances import assemble_instances, create_instance_spans  # noqa: E402
from data.masking import MaskingConfig, mask_tokens  # noqa: E402
from data.meta import META_FILENAME, META_FORMAT, META_FORMAT_VERSION, write_meta  # noqa: E402
from data.records import AtomicRecordWriter, serialize_examples, shard_file_name  # noqa: E402
from data.tokenization import WordPieceTokenizer  # noqa: E402
from data.vocab import SPECIAL_TOKENS, file_sha256, learn_vocab, load_vocab, write_vocab  # noqa: E402

TOOL_VERSION = "data.create_pretraining_data 1.2"
VOCAB_FILENAME = "vocab.txt"
MASKING_BATCH_SIZE = 2048  # instances masked per stateless seed; part of what makes the output reproducible
_READ_SHARE = 0.1  # share of a shard's time spent reading + tokenizing (measured), for the progress bar's ETA

log = logging.getLogger(__name__)


def _option(default, help, **metadata):
    """A CreationConfig field: its default and its command-line help."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass(frozen=True, kw_only=True)
class CreationConfig:
    """Every setting of a data creation, declared once: the command-line options of `main` are made from
    these fields (same names, defaults and help) and `create_pretraining_data` takes one of these.
    The settings that shape the records (SHARD_SETTINGS: Google's options, with Google's defaults) are
    written into meta.json."""

    input: str = _option(
        dataclasses.MISSING,
        "`embedded`, `tfds:<name>`, or comma-separated globs, directories or files (text, JSON Lines, "
        "Parquet; local or gs://)",
    )
    output_dir: str = _option(
        dataclasses.MISSING, "directory of the shards, vocab.txt and meta.json (or gs://)"
    )
    input_format: str = _option(
        "auto",
        "text, jsonl or parquet; auto: from the file names (.jsonl[.gz], .json[.gz], .parquet, else text)",
    )
    text_feature: str = _option(
        "text", "the text field of JSON Lines or Parquet records, or of a TFDS dataset"
    )
    vocab_file: str | None = _option(None, "an existing vocab.txt (Google's format)")
    learn_vocab: bool = _option(False, "learn a WordPiece vocabulary of --vocab_size tokens from the corpus")
    vocab_size: int | None = _option(None, "size of the learned vocabulary")
    reserved_tokens: tuple[str, ...] | None = _option(
        None, "comma-separated tokens placed first in a learned vocabulary"
    )
    max_seq_length: int = _option(128, "tokens per instance, [CLS] and [SEP]s included")
    max_predictions_per_seq: int = _option(20, "masked positions per instance, at most")
    masked_lm_prob: float = _option(0.15, "fraction of the tokens masked")
    short_seq_prob: float = _option(0.1, "probability of an instance shorter than max_seq_length")
    dupe_factor: int = _option(10, "times each document is used, with different masks and pairs")
    random_seed: int = _option(12345, "seed of pairing and masking (with the shard index)")
    do_lower_case: bool = _option(True, "lower-case and strip accents before tokenizing")
    do_whole_word_mask: bool = _option(False, "mask whole words instead of single WordPiece tokens")
    num_shards: int = _option(8, "TFRecord files written; the output depends on it")
    num_workers: int | None = _option(None, "processes building shards (default: the CPUs); output unchanged")
    overwrite: bool = _option(False, "replace the data in an existing --output_dir")
    shard_prefix: str = _option("pretraining", "shard file names: `<prefix>-00000-of-00008.tfrecord`")
    tfds_split: str = _option("train", "the split of a TFDS dataset")
    tfds_data_dir: str | None = _option(None, "where TFDS datasets are prepared (default: TFDS's own)")
    tfds_download: bool = _option(False, "let TFDS download and prepare the dataset")
    quiet: bool = _option(False, "no progress bar")

    def validate(self):
        """Raises ValueError naming the first bad option (as the command line spells it)."""
        checks = [
            ("max_seq_length", self.max_seq_length >= 5, "an integer >= 5 ([CLS] A [SEP] B [SEP])"),
            ("max_predictions_per_seq", self.max_predictions_per_seq >= 0, "an integer >= 0"),
            ("masked_lm_prob", 0.0 <= self.masked_lm_prob <= 1.0, "a probability in [0, 1]"),
            ("short_seq_prob", 0.0 <= self.short_seq_prob <= 1.0, "a probability in [0, 1]"),
            ("dupe_factor", self.dupe_factor >= 1, "an integer >= 1"),
            ("random_seed", 0 <= self.random_seed < 2**63, "an integer in [0, 2**63)"),
            ("num_shards", self.num_shards >= 1, "an integer >= 1"),
            ("num_workers", self.num_workers is None or self.num_workers >= 1, "an integer >= 1"),
            ("input_format", self.input_format in INPUT_FORMATS, f"one of {', '.join(INPUT_FORMATS)}"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"--{name}={getattr(self, name)}: expected {expected}")
        if self.learn_vocab and self.vocab_file:
            raise ValueError("--learn_vocab and --vocab_file: give one of them")
        if self.learn_vocab and self.vocab_size is None:
            raise ValueError("--learn_vocab: needs --vocab_size")
        if not self.learn_vocab and self.vocab_size is not None:
            raise ValueError("--vocab_size: only with --learn_vocab")
        if not self.learn_vocab and self.vocab_file is None:
            raise ValueError("--vocab_file: required (or --learn_vocab --vocab_size=N)")
        if self.vocab_file is not None and not tf.io.gfile.exists(self.vocab_file):
            raise ValueError(f"--vocab_file {self.vocab_file}: no such file")

    def shard_settings(self):
        """The settings that shape the records, as written into meta.json."""
        return {name: getattr(self, name) for name in SHARD_SETTINGS}


SHARD_SETTINGS = (
    "max_seq_length",
    "max_predictions_per_seq",
    "masked_lm_prob",
    "short_seq_prob",
    "dupe_factor",
    "random_seed",
    "do_lower_case",
    "do_whole_word_mask",
)


@dataclasses.dataclass(frozen=True)
class ShardTask:
    index: int
    num_shards: int
    part: object  # a corpus part: has .documents()
    path: str
    vocab_path: str
    settings: CreationConfig


@dataclasses.dataclass(frozen=True)
class ShardStats:
    index: int
    file: str
    num_documents: int
    num_sentences: int
    num_instances: int
    num_tokens: int
    num_masked_lm_predictions: int
    num_text_bytes: int
    size_bytes: int
    records_sha256: str
    process_id: int  # of the process that built it (not part of meta.json)


# ------------------------------------------------------------------------------------------ one shard


class _ShardBuilder:
    """Everything a process needs to build shards for one vocabulary and settings (built once per process:
    the tokenizer and the traced masking function)."""

    def __init__(self, vocab_path, settings):
        self.vocab = load_vocab(vocab_path)
        self.settings = settings
        self.tokenizer = WordPieceTokenizer(self.vocab, settings.do_lower_case)
        config = MaskingConfig.from_vocab(
            self.vocab,
            masked_lm_prob=settings.masked_lm_prob,
            max_predictions_per_seq=settings.max_predictions_per_seq,
            whole_word_mask=settings.do_whole_word_mask,
        )
        self._mask_tokens = tf.function(
            lambda input_ids, seed: mask_tokens(input_ids, config, seed),
            input_signature=[
                tf.TensorSpec([None, settings.max_seq_length], tf.int32),  # input_ids before masking
                tf.TensorSpec([2], tf.int64),  # masking seed
            ],
            autograph=False,
        )

    def mask(self, input_ids, seed):
        """Masked-LM features of a batch as numpy arrays (runs on the masking thread; TensorFlow's ops
        release the GIL, so the next batch is assembled and the previous one written meanwhile)."""
        return {name: value.numpy() for name, value in self._mask_tokens(input_ids, seed).items()}

    def build(self, task, report):
        settings, vocab = task.settings, self.vocab
        counts = {"documents": 0, "bytes": 0}

        def counted(documents):
            for document in documents:
                counts["documents"] += 1
                counts["bytes"] += count_text_bytes(document)
                if counts["documents"] % 1000 == 0:
                    report(task.index, "read", 1000, 0, 0.0)
                yield document

        documents = self.tokenizer.tokenize_documents(counted(task.part.documents()))
        report(task.index, "read", counts["documents"] % 1000, 0, _READ_SHARE)
        rng = random.Random(shard_seed(settings.random_seed, task.index))
        spans = create_instance_spans(
            documents,
            max_seq_length=settings.max_seq_length,
            short_seq_prob=settings.short_seq_prob,
            dupe_factor=settings.dupe_factor,
            rng=rng,
        )
        S = settings.max_seq_length

        def write(masked, segment_ids, lengths, next_sentence_labels):  # on the writing thread
            features = masked.result()  # re-raises an exception of the masking thread
            input_mask = np.arange(S)[None, :] < lengths[:, None]
            features.update(
                input_mask=input_mask, segment_ids=segment_ids, next_sentence_labels=next_sentence_labels
            )
            writer.write(serialize_examples(features))
            return len(lengths), int(lengths.sum()), float(features["masked_lm_weights"].sum())

        # Three threads: this one assembles batch k + 1 while the masking thread masks batch k (in
        # TensorFlow's ops, which release the GIL) and the writing thread encodes and writes batch k - 1
        # (mostly in numpy and the record writer, which release it too).
        totals = np.zeros(3)  # instances, tokens, predictions
        with (
            AtomicRecordWriter(task.path) as writer,
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="masking") as masking,
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="writing") as writing,
        ):
            written = collections.deque()  # futures of the batches being masked or written, in order

            def collect(keep):  # waits until at most `keep` batches are in flight; reports the written
                while len(written) > keep or (written and written[0].done()):
                    batch_totals = written.popleft().result()  # re-raises an exception of either thread
                    totals[:] += batch_totals
                    done = _READ_SHARE + (1 - _READ_SHARE) * totals[0] / len(spans)
                    report(task.index, "write", 0, batch_totals[0], done)

            for batch_index, start in enumerate(range(0, len(spans), MASKING_BATCH_SIZE)):
                batch = spans.take(slice(start, start + MASKING_BATCH_SIZE))
                input_ids, segment_ids, lengths = assemble_instances(
                    documents.tokens, batch, S, cls_id=vocab.cls_id, sep_id=vocab.sep_id, pad_id=vocab.pad_id
                )
                seed = np.array([settings.random_seed, (task.index << 32) + batch_index], np.int64)
                masked = masking.submit(self.mask, input_ids, seed)
                written.append(
                    writing.submit(write, masked, segment_ids, lengths, batch.next_sentence_labels)
                )
                collect(keep=2)
            collect(keep=0)
        report(task.index, "done", 0, 0, 1.0)
        return ShardStats(
            index=task.index,
            file=paths.basename(task.path),
            num_documents=documents.num_documents,
            num_sentences=documents.num_sentences,
            num_instances=len(spans),
            num_tokens=int(totals[1]),
            num_masked_lm_predictions=int(round(totals[2])),
            num_text_bytes=counts["bytes"],
            size_bytes=writer.size_bytes,
            records_sha256=writer.records_sha256,
            process_id=os.getpid(),
        )


def shard_seed(random_seed, shard_index):
    """The seed of a shard's random.Random: a function of (random_seed, shard_index) only."""
    return int(np.random.SeedSequence([random_seed, shard_index]).generate_state(2, np.uint64)[0])


_builders = {}  # (vocab_path, settings) -> _ShardBuilder, per process
_progress_queue = None  # in worker processes: where progress events go


def build_shard(task, report=None):
    """Builds one shard file (atomically) and returns its ShardStats."""
    if report is None:
        report = _report_to_queue if _progress_queue is not None else (lambda *event: None)
    return _builder(task.vocab_path, task.settings).build(task, report)


def _builder(vocab_path, settings):
    key = (vocab_path, settings)
    if key not in _builders:
        _builders[key] = _ShardBuilder(vocab_path, settings)
    return _builders[key]


def _report_to_queue(*event):
    _progress_queue.put(event)


def _init_worker(queue):
    """Runs first in each spawned worker (importing this module imports TensorFlow)."""
    global _progress_queue
    _progress_queue = queue
    # One thread per spawned worker: the parallelism comes from the processes, one per CPU by default.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _warm_up(vocab_path, settings):
    """Builds a spawned worker's tokenizer and traced functions before it is handed a shard."""
    _builder(vocab_path, settings)
    return os.getpid()


# ------------------------------------------------------------------------------------------ progress


class Progress:
    """A one-line progress bar on stderr: documents read (and per second), instances written, ETA.

    Shard events are (shard, kind, new_documents, new_instances, fraction_of_shard_done)."""

    def __init__(self, num_shards, enabled=True, stream=None):
        self.num_shards = num_shards
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.done = [0.0] * num_shards
        self.documents = 0
        self.instances = 0
        self.shards_done = 0
        self._last_draw = 0.0
        self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, shard, kind, new_documents, new_instances, fraction):
        self.documents += new_documents
        self.instances += new_instances
        self.done[shard] = max(self.done[shard], fraction)
        self.shards_done += kind == "done"
        self.draw()

    def line(self):
        elapsed = max(time.monotonic() - self.start, 1e-9)
        fraction = sum(self.done) / self.num_shards
        eta = "?" if fraction <= 0 else _format_seconds(elapsed * (1 - fraction) / fraction)
        bar = "#" * int(20 * fraction) + "." * (20 - int(20 * fraction))
        return (
            f"[{bar}] {100 * fraction:3.0f}% shards {self.shards_done}/{self.num_shards} | "
            f"{self.documents:,} docs ({self.documents / elapsed:,.0f} docs/s) | "
            f"{self.instances:,} instances | elapsed {_format_seconds(elapsed)} ETA {eta}"
        )

    def draw(self, final=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last_draw < (0.2 if self._interactive else 10.0):
            return
        self._last_draw = now
        if self._interactive:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


def _format_seconds(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ------------------------------------------------------------------------------------------ the run


class _Workers:
    """This process plus `num_workers - 1` spawned worker processes, handed shards as they become free.

    The spawned workers start (and import TensorFlow) as soon as this object exists, while this process
    reads the corpus and the vocabulary. This process builds shards too, and a spawned worker gets a shard
    only once it is ready, so a small corpus never waits for a worker's start-up.
    """

    def __init__(self, num_workers):
        self.num_spawned = num_workers - 1
        self.pool = self.queue = None
        self.ready = []  # futures that complete when a spawned worker is ready to build shards
        if self.num_spawned:
            context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
            self.queue = context.Queue()
            self.pool = concurrent.futures.ProcessPoolExecutor(
                self.num_spawned, mp_context=context, initializer=_init_worker, initargs=(self.queue,)
            )
            self.pool.submit(os.getpid)  # launches the processes now: they import TensorFlow meanwhile

    def run(self, tasks, progress):
        """Builds every task's shard; returns their ShardStats in task order. A failure anywhere raises."""
        stats = [None] * len(tasks)
        remaining = collections.deque(range(len(tasks)))
        running = {}  # future -> task index
        if self.pool is not None and tasks:
            self.warm_up(tasks[0].vocab_path, tasks[0].settings)

        def hand_out():  # collect finished shards, keep every ready worker busy, show their progress
            for future in [f for f in running if f.done()]:
                stats[running.pop(future)] = future.result()  # re-raises a spawned worker's exception
            while remaining and len(running) < sum(future.done() for future in self.ready):
                i = remaining.popleft()
                running[self.pool.submit(build_shard, tasks[i])] = i
            if self.queue is not None:
                _drain(self.queue, progress)

        def report(*event):
            progress.update(*event)
            hand_out()

        hand_out()
        while remaining:
            i = remaining.popleft()
            stats[i] = build_shard(tasks[i], report)
        while running:
            concurrent.futures.wait(running, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            hand_out()
        return stats

    def warm_up(self, vocab_path, settings):
        """Has each spawned worker build its tokenizer and traced functions; `run` uses the ready ones."""
        if not self.ready:
            self.ready = [self.pool.submit(_warm_up, vocab_path, settings) for _ in range(self.num_spawned)]

    def close(self):
        """Stops the spawned workers: after `run` they are idle (perhaps still starting); after a failure
        they may be building shards that are no longer wanted. Either way nothing is waited for."""
        if self.pool is None:
            return
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _drain(queue, progress):
    while True:
        try:
            event = queue.get_nowait()
        except Exception:  # queue.Empty
            return
        progress.update(*event)


def _existing_outputs(output_dir):
    names = tf.io.gfile.listdir(output_dir) if tf.io.gfile.isdir(output_dir) else []
    return sorted(n for n in names if n == META_FILENAME or n.endswith(".tfrecord"))


def _check_output_dir(output_dir, overwrite):
    """Refuses an output_dir that is a file, or that holds data unless `overwrite`; returns its data files."""
    if tf.io.gfile.exists(output_dir) and not tf.io.gfile.isdir(output_dir):
        raise ValueError(f"--output_dir {output_dir}: exists and is not a directory")
    existing = _existing_outputs(output_dir)
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise ValueError(
            f"--output_dir {output_dir}: already holds {shown}; pass --overwrite to replace them"
        )
    return existing


def _prepare_output_dir(output_dir, overwrite):
    """Creates output_dir, or empties it of data when `overwrite`: the old meta.json goes first (so the
    directory never looks complete while new shards are written), then the old shards."""
    existing = _check_output_dir(output_dir, overwrite)
    tf.io.gfile.makedirs(output_dir)
    if META_FILENAME in existing:
        tf.io.gfile.remove(paths.join(output_dir, META_FILENAME))
    for name in existing:
        if name != META_FILENAME:
            tf.io.gfile.remove(paths.join(output_dir, name))


def remove_incomplete_files(output_dir):
    for path in tf.io.gfile.glob(paths.join(output_dir, ".*.incomplete-*")):
        tf.io.gfile.remove(path)


def _full_path(path):
    return os.path.abspath(path) if paths.is_local(path) else path


def _install_vocab(config, source):
    """Copies or learns the vocabulary into <output_dir>/vocab.txt; returns (path, description)."""
    target = paths.join(config.output_dir, VOCAB_FILENAME)
    if config.vocab_file is not None:
        vocab = load_vocab(config.vocab_file)  # validates the file
        if _full_path(config.vocab_file) != _full_path(target):
            write_vocab(vocab, target)
        return target, _full_path(config.vocab_file)
    log.info("learning a %d-token WordPiece vocabulary from the corpus", config.vocab_size)
    started = time.monotonic()
    sentences = (s for part in source.partition(1) for document in part.documents() for s in document)
    vocab = learn_vocab(
        sentences,
        config.vocab_size,
        do_lower_case=config.do_lower_case,
        reserved_tokens=None if config.reserved_tokens is None else list(config.reserved_tokens),
    )
    write_vocab(vocab, target)
    log.info("learned the vocabulary in %.1f s", time.monotonic() - started)
    return (
        target,
        f"learned from the corpus (tensorflow-text WordPiece learner, vocab_size={config.vocab_size})",
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """A creation ready to run: the output directory prepared, the vocabulary installed, one task per
    shard. The local tool and the Beam pipeline (data.beam_pipeline) both start from one."""

    config: CreationConfig
    source: object  # the corpus
    vocab_path: str
    vocab_origin: str
    tasks: tuple[ShardTask, ...]


def plan_creation(config, corpus=None):
    """Validates `config`, opens the corpus (`corpus`, or the one config.input names), prepares the output
    directory and installs vocab.txt; returns the Plan. Nothing is written before the corpus is found."""
    config.validate()
    _check_output_dir(config.output_dir, config.overwrite)
    source = corpus
    if source is None:
        source = open_corpus(
            config.input,
            input_format=config.input_format,
            text_feature=config.text_feature,
            tfds_split=config.tfds_split,
            tfds_data_dir=config.tfds_data_dir,
            tfds_download=config.tfds_download,
        )
    parts = source.partition(config.num_shards)
    log.info("corpus: %s", source.description)
    _prepare_output_dir(config.output_dir, config.overwrite)
    vocab_path, vocab_origin = _install_vocab(config, source)
    tasks = tuple(
        ShardTask(
            i,
            config.num_shards,
            part,
            paths.join(config.output_dir, shard_file_name(config.shard_prefix, i, config.num_shards)),
            vocab_path,
            config,
        )
        for i, part in enumerate(parts)
    )
    return Plan(config, source, vocab_path, vocab_origin, tasks)


def finish_creation(plan, stats):
    """Writes meta.json from the shards' ShardStats (any order) and returns the meta dict; last, so its
    presence says every shard is complete."""
    stats = sorted(stats, key=lambda s: s.index)
    if [s.index for s in stats] != list(range(len(plan.tasks))):
        raise RuntimeError(f"expected the stats of {len(plan.tasks)} shards, got {[s.index for s in stats]}")
    meta = _meta(plan, load_vocab(plan.vocab_path), stats)
    write_meta(plan.config.output_dir, meta)
    return meta


def create_pretraining_data(config, corpus=None):
    """Writes `config.num_shards` TFRecord shards of Google's pretraining examples, vocab.txt and meta.json
    into `config.output_dir` (a CreationConfig), and returns the meta dict.

    corpus: a corpus source object (with `description` and `partition(n)`) to read instead of config.input.
    config.num_workers: processes building shards in parallel (default: the CPU count, at most
    num_shards); it does not change the output.
    """
    config.validate()
    num_workers = min(config.num_workers or os.cpu_count() or 1, config.num_shards)
    _check_output_dir(config.output_dir, config.overwrite)  # refuse early, before workers start
    started = time.monotonic()
    workers = _Workers(num_workers)  # they start now, while the corpus and the vocabulary are read
    try:
        plan = plan_creation(config, corpus)
        log.info(
            "settings: %s",
            dict(config.shard_settings(), num_shards=config.num_shards, num_workers=num_workers),
        )
        bar = Progress(config.num_shards, enabled=not config.quiet)
        stats = workers.run(list(plan.tasks), bar)
    except BaseException:
        workers.close()
        remove_incomplete_files(config.output_dir)  # a worker stopped mid-shard leaves its temporary file
        raise
    workers.close()
    bar.draw(final=True)
    meta = finish_creation(plan, stats)
    log.info(
        "wrote %d instances from %d documents into %d shards in %.1f s",
        meta["num_instances"],
        meta["num_documents"],
        config.num_shards,
        time.monotonic() - started,
    )
    return meta


def _meta(plan, vocab, stats):
    counts = ("num_documents", "num_sentences", "num_instances", "num_tokens", "num_masked_lm_predictions")
    total = {name: sum(getattr(s, name) for s in stats) for name in (*counts, "num_text_bytes")}
    return {
        "format": META_FORMAT,
        "format_version": META_FORMAT_VERSION,
        "tool_version": TOOL_VERSION,
        **plan.config.shard_settings(),
        "vocab_file": VOCAB_FILENAME,
        "vocab_size": len(vocab),
        "vocab_sha256": file_sha256(plan.vocab_path),
        "vocab_source": plan.vocab_origin,
        "special_token_ids": {token: vocab.id(token) for token in SPECIAL_TOKENS},
        "tokenizer": "tensorflow_text.FastBertTokenizer",
        "masking_batch_size": MASKING_BATCH_SIZE,
        "corpus": plan.source.description,
        "num_shards": len(stats),
        "shard_prefix": plan.config.shard_prefix,
        **total,
        "shards": [
            {
                "file": s.file,
                "num_instances": s.num_instances,
                "num_documents": s.num_documents,
                "size_bytes": s.size_bytes,
                "records_sha256": s.records_sha256,
            }
            for s in stats
        ],
    }


# ------------------------------------------------------------------------------------------ command line


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _boolean(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _token_list(text):
    return tuple(token.strip() for token in text.split(",") if token.strip())


def _value_type(annotation):
    """The command-line parser of a CreationConfig field's type (`X | None` parses as X)."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = options[0]
    if kind is bool:
        return _boolean
    if typing.get_origin(kind) is tuple:
        return _token_list
    return kind


def _parser():
    """The command line: one option per CreationConfig field (bools also as `--no<name>`), and --runner."""
    p = _OneLineErrorParser(
        prog="create_pretraining_data",
        description=__doc__.split("\n")[0],
        allow_abbrev=False,  # an unknown option goes to Beam whole, never as an abbreviation of ours
    )
    for field in dataclasses.fields(CreationConfig):
        kind = _value_type(field.type)
        required = field.default is dataclasses.MISSING
        default = None if required else field.default
        help = field.metadata["help"] + ("" if required or default is None else f" (default: {default})")
        if kind is _boolean:
            p.add_argument(f"--{field.name}", nargs="?", const=True, default=default, type=kind, help=help)
            p.add_argument(f"--no{field.name}", dest=field.name, action="store_false", help=argparse.SUPPRESS)
        else:
            p.add_argument(f"--{field.name}", type=kind, default=default, required=required, help=help)
    p.add_argument(
        "--runner",
        help="run as an Apache Beam pipeline on this runner (DirectRunner, DataflowRunner, FlinkRunner, "
        "SparkRunner, ...); further --options go to Beam's PipelineOptions",
    )
    return p


def options_table():
    """The command-line options as a Markdown table (docs/data.md holds it; a test compares the two)."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(CreationConfig):
        default = field.default
        if isinstance(default, bool):
            default = str(default).lower()
        default = {dataclasses.MISSING: "(required)", None: ""}.get(default, f"`{default}`")
        rows.append(f"| `--{field.name}` | {default} | {field.metadata['help']} |")
    rows.append("| `--runner` | | run on Apache Beam (data.beam_pipeline); other `--options` go to Beam |")
    return "\n".join(rows) + "\n"


def parse_command_line(argv):
    """(CreationConfig, Beam pipeline arguments or None when no --runner is given) from `argv`."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.runner is None and unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (Beam options need --runner)")
    values = vars(args)
    runner = values.pop("runner")
    config = CreationConfig(**values)
    if runner is None:
        return config, None
    beam_args = [f"--runner={runner}", *unknown]
    if config.num_workers is not None:  # also Dataflow's name for its worker count
        beam_args.append(f"--num_workers={config.num_workers}")
    return config, beam_args


def main(argv=None):
    """The command line. Starts TensorFlow without its C++ start-up lines, so an error stays one line."""
    import_tensorflow_quietly(list_devices=True)  # the GPU driver's start-up lines too
    config, beam_args = parse_command_line(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if beam_args is None:
            create_pretraining_data(config)
        else:
            from data.beam_pipeline import create_with_beam

            create_with_beam(config, beam_args)
    except (ValueError, OSError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        sys.stderr.write("create_pretraining_data: interrupted; no meta.json was written\n")
        return 130
    return 0


def _fail(message):
    sys.stderr.write(f"create_pretraining_data: error: {' '.join(message.split())}\n")
    raise SystemExit(2)


if __name__ == "__main__":
    sys.exit(main())
