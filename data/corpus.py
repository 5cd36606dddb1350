"""Corpus sources: where the documents (lists of sentences) that become pretraining instances come from.

Three sources, all read the same way -- `partition(num_parts)` cuts the corpus into contiguous,
deterministic parts (one per output shard) and each part streams its documents, so a worker holds one
shard's documents in memory, never the corpus:

- `TextFiles`: Google's format, one sentence per line and a blank line between documents (also between
  files: each file starts a new document). Parts are byte ranges of the concatenated files; a document
  belongs to the part holding the first byte of its first line, so parts are balanced by text size and
  found without reading the files first.
- `TfdsText`: a TensorFlow Datasets text dataset (e.g. `wikipedia/20230601.en`); each example's text
  feature is one document, split into paragraphs at newlines and then into sentences. Parts are
  example ranges of the split (`train[a:b]`).
- `embedded_corpus()`: English prose that every installation already holds, needing no download: Python's
  reference documentation (`pydoc_data.topics`) and the docstrings of the standard library, numpy and
  TensorFlow, cleaned of code, doctests and markup and split into sentences; held in memory (a
  `DocumentList`, about 4 MB) and cut into ranges of documents.

`open_corpus(spec)` turns a command-line spec (`embedded`, `tfds:<name>`, a glob, a directory or a
comma-separated list of them) into one of these.
"""

import ast
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator

import tensorflow as tf

from data import paths

Document = list[str]  # the sentences of one document, in order

# ---------------------------------------------------------------------------------------------------------
# Sentence splitting (used for TFDS articles and the embedded prose).

# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets), then whitespace, then
# something that can start a sentence.
_SENTENCE_END = re.compile(r"""[.!?]["')\]]*\s+(?=["'(\[]?[A-Z0-9])""")
_ABBREVIATIONS = {
    "al", "approx", "cf", "dr", "e.g", "eg", "etc", "fig", "i.e", "ie", "inc", "jr", "ltd", "mr", "mrs",
    "ms", "no", "nos", "prof", "sr", "st", "vs", "vol",
}  # fmt: skip


def _is_abbreviation(text_before_period):
    word = text_before_period.rsplit(None, 1)[-1].lstrip("(\"'[").lower() if text_before_period else ""
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())  # "J. R. R. Tolkien"


def split_sentences(paragraph):
    """Splits one paragraph of prose into sentences (whitespace collapsed, empty ones dropped).

    A rule-based splitter: a boundary is [.!?] + whitespace + a capital letter or digit, unless the word
    before the period is a known abbreviation or a single letter (an initial).
    """
    text = " ".join(paragraph.split())
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if text[match.start()] == "." and _is_abbreviation(text[start : match.start()]):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def split_article(text):
    """An article (paragraphs separated by newlines, as TFDS Wikipedia stores them) -> its sentences."""
    return [sentence for paragraph in text.split("\n") for sentence in split_sentences(paragraph)]


# ---------------------------------------------------------------------------------------------------------
# Google's text format: byte-range parts of a list of files.


def resolve_input_files(spec):
    """The files named by `spec`: comma-separated globs, files or directories (searched recursively), on
    any file system tf.io.gfile knows.

    Returns a sorted, de-duplicated list; raises ValueError naming the spec when it matches nothing.
    """
    files = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if tf.io.gfile.isdir(item):
            for root, _, names in tf.io.gfile.walk(item):
                files.update(paths.join(root, n) for n in names if not n.startswith("."))
            continue
        matches = tf.io.gfile.glob(item)
        if not matches:
            raise ValueError(f"--input {item}: no such file, directory or matching glob")
        for match in matches:
            if tf.io.gfile.isdir(match):
                files.update(resolve_input_files(match))
            else:
                files.add(match)
    if not files:
        raise ValueError(f"--input {spec}: matches no files")
    return sorted(files)


def _line_before_is_blank(f, line_start):
    """Whether the line ending just before byte `line_start` (a line start > 0) holds only whitespace."""
    end = line_start - 1  # the '\n' ending the previous line
    begin = end
    chunk = 4096
    while begin > 0:  # walk back to the start of that line
        lo = max(0, begin - chunk)
        f.seek(lo)
        data = f.read(begin - lo)
        newline = data.rfind(b"\n")
        if newline >= 0:
            begin = lo + newline + 1
            break
        begin = lo
    f.seek(begin)
    return not f.read(end - begin).decode("utf-8", errors="replace").strip()


def _decode(line, path, offset):
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: invalid UTF-8 at byte {offset + e.start} (expected UTF-8 text)") from None


def read_documents_in_range(path, begin, end):
    """Yields the documents of a Google-format file whose first line starts at a byte in [begin, end).

    A document is a run of non-blank lines (each stripped, one sentence per line); blank lines separate
    documents and the start of the file starts one. A document that starts in the range is read to its
    end even past `end`, so consecutive ranges yield every document exactly once.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        if begin == 0:
            previous_blank, offset = True, 0
        else:
            f.seek(begin - 1)
            offset = begin - 1 + len(f.readline())  # the first line starting at or after `begin`
            if offset >= end:
                return
            previous_blank = _line_before_is_blank(f, offset)
        f.seek(offset)
        document = None
        for raw in f:
            line = _decode(raw, path, offset).strip()
            line_start, offset = offset, offset + len(raw)
            if not line:
                if document:
                    yield document
                document, previous_blank = None, True
                if line_start >= end:
                    return
                continue
            if document is not None:
                document.append(line)
            elif previous_blank:  # a document starts here
                if line_start >= end:
                    return
                document = [line]
            previous_blank = False
        if document:
            yield document


@dataclasses.dataclass(frozen=True)
class TextFilePart:
    """The documents starting in global bytes [begin, end) of the concatenation of `files`."""

    files: tuple[str, ...]
    sizes: tuple[int, ...]
    begin: int
    end: int

    def documents(self) -> Iterator[Document]:
        file_start = 0
        for path, size in zip(self.files, self.sizes, strict=True):
            lo, hi = max(self.begin, file_start), min(self.end, file_start + size)
            if lo < hi:
                yield from read_documents_in_range(path, lo - file_start, hi - file_start)
            file_start += size


@dataclasses.dataclass(frozen=True)
class TextFiles:
    """Text files in Google's format (see module docstring)."""

    files: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec):
        return cls(tuple(resolve_input_files(spec)))

    @property
    def description(self):
        return f"text files ({len(self.files)}): {_shown(self.files)}"

    def partition(self, num_parts):
        sizes = tuple(tf.io.gfile.stat(f).length for f in self.files)
        total = sum(sizes)
        bounds = [total * i // num_parts for i in range(num_parts + 1)]
        return [TextFilePart(self.files, sizes, bounds[i], bounds[i + 1]) for i in range(num_parts)]


# ---------------------------------------------------------------------------------------------------------
# Documents as records: JSON Lines and Parquet files with a text field, cut into ranges of records.

JSON_LINES_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
INPUT_FORMATS = ("auto", "text", "jsonl", "parquet")


def _count_lines(path):
    """The lines of a (maybe gzipped) file: its newlines, plus an unterminated last line."""
    count, last = 0, b"\n"
    with _open_maybe_gzipped(path) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


@contextlib.contextmanager
def _open_maybe_gzipped(path):
    """A binary file (any gfile path), decompressed on the fly when its name ends with `.gz`."""
    with tf.io.gfile.GFile(path, "rb") as raw:
        if not path.endswith(".gz"):
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as f:
            yield f


def _json_lines_texts(path, begin, end, text_feature):
    """The text of records [begin, end) of a JSON Lines file (record i = line i, from 0)."""
    with _open_maybe_gzipped(path) as f:
        for index, line in enumerate(f):
            if index >= end:
                return
            if index < begin or not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{index + 1}: not a JSON object (expected JSON Lines)") from None
            if not isinstance(record, dict) or text_feature not in record:
                found = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(
                    f"{path}:{index + 1}: no field {text_feature!r} (found: {found}); set --text_feature"
                )
            yield _text_of(record[text_feature], f"{path}:{index + 1}: field {text_feature!r}")


def _text_of(value, where):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where} is a {type(value).__name__}, expected a string")
    return value


class _SeekableFile(io.RawIOBase):
    """A gfile opened for reading as the Python file object pyarrow expects (GFile has no `closed`)."""

    def __init__(self, path):
        super().__init__()
        self._file = tf.io.gfile.GFile(path, "rb")

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_END:
            offset, whence = self._file.size() + offset, io.SEEK_SET
        self._file.seek(offset, whence)
        return self._file.tell()

    def tell(self):
        return self._file.tell()

    def close(self):
        if not self.closed:
            self._file.close()
        super().close()


@contextlib.contextmanager
def _open_parquet(path):
    import pyarrow.parquet as pq

    with _SeekableFile(path) as f:
        try:
            parquet = pq.ParquetFile(f)
        except Exception as e:  # pyarrow's ArrowInvalid and friends
            raise ValueError(f"{path}: not a Parquet file ({' '.join(str(e).split())})") from None
        yield parquet


def _parquet_rows(path, text_feature):
    """The row count of a Parquet file, after checking that it has a string column `text_feature`."""
    import pyarrow as pa

    with _open_parquet(path) as parquet:
        schema = parquet.schema_arrow
        if text_feature not in schema.names:
            raise ValueError(
                f"{path}: no column {text_feature!r} (found: {', '.join(schema.names)}); set --text_feature"
            )
        kind = schema.field(text_feature).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(f"{path}: column {text_feature!r} is {kind}, expected strings")
        return parquet.metadata.num_rows


def _parquet_texts(path, begin, end, text_feature):
    """The text of rows [begin, end) of a Parquet file, read one row group at a time."""
    with _open_parquet(path) as parquet:
        first_row = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if first_row >= end:
                return
            if first_row + rows > begin:
                column = parquet.read_row_group(group, columns=[text_feature]).column(0).to_pylist()
                for i in range(max(begin - first_row, 0), min(end - first_row, rows)):
                    yield _text_of(column[i], f"{path}: row {first_row + i} of column {text_feature!r}")
            first_row += rows


_RECORD_READERS = {
    "jsonl": (_count_lines, _json_lines_texts),
    "parquet": (_parquet_rows, _parquet_texts),
}


@dataclasses.dataclass(frozen=True)
class RecordPart:
    """Records [begin, end) of the concatenation of `files` (`counts` records each), as documents."""

    file_format: str
    text_feature: str
    files: tuple[str, ...]
    counts: tuple[int, ...]
    begin: int
    end: int

    def documents(self) -> Iterator[Document]:
        read_texts = _RECORD_READERS[self.file_format][1]
        file_start = 0
        for path, count in zip(self.files, self.counts, strict=True):
            lo, hi = max(self.begin, file_start), min(self.end, file_start + count)
            if lo < hi:
                for text in read_texts(path, lo - file_start, hi - file_start, self.text_feature):
                    sentences = split_article(text)
                    if sentences:
                        yield sentences
            file_start += count


@dataclasses.dataclass(frozen=True)
class RecordFiles:
    """JSON Lines or Parquet files, one document per record in its `text_feature` (see module docstring).

    Parts are ranges of records (not bytes), so the same documents as JSON Lines and as Parquet are cut
    into the same parts and give the same shards.
    """

    file_format: str  # "jsonl" or "parquet"
    files: tuple[str, ...]
    text_feature: str = "text"

    @property
    def description(self):
        name = {"jsonl": "JSON Lines", "parquet": "Parquet"}[self.file_format]
        return f"{name} files ({len(self.files)}): {_shown(self.files)}; text field {self.text_feature!r}"

    def partition(self, num_parts):
        count_records = _RECORD_READERS[self.file_format][0]
        if self.file_format == "parquet":
            counts = tuple(count_records(path, self.text_feature) for path in self.files)
        else:
            counts = tuple(count_records(path) for path in self.files)
        return [
            RecordPart(self.file_format, self.text_feature, self.files, counts, begin, end)
            for begin, end in _even_ranges(sum(counts), num_parts)
        ]


def _shown(files):
    return ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def file_format(path):
    """`jsonl`, `parquet` or `text`, from the file name."""
    name = path.lower()
    if name.endswith(JSON_LINES_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "text"


def open_files(spec, input_format="auto", text_feature="text"):
    """The corpus of the files named by `spec`, read as `input_format` (`auto`: from the names, which
    must then agree)."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"--input_format={input_format}: expected one of {', '.join(INPUT_FORMATS)}")
    files = tuple(resolve_input_files(spec))
    if input_format == "auto":
        formats = sorted({file_format(path) for path in files})
        if len(formats) > 1:
            raise ValueError(
                f"--input {spec}: mixes {' and '.join(formats)} files; give one kind, or set --input_format"
            )
        input_format = formats[0]
    if input_format == "text":
        return TextFiles(files)
    return RecordFiles(input_format, files, text_feature)


# ---------------------------------------------------------------------------------------------------------
# TensorFlow Datasets.


def _even_ranges(count, num_parts):
    bounds = [count * i // num_parts for i in range(num_parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclasses.dataclass(frozen=True)
class TfdsPart:
    """Examples [begin, end) of a prepared TFDS dataset in `builder_dir`; `text_feature` is the article."""

    builder_dir: str
    split: str
    text_feature: str
    begin: int
    end: int

    def documents(self) -> Iterator[Document]:
        import tensorflow_datasets as tfds

        if self.begin >= self.end:
            return
        builder = tfds.builder_from_directory(self.builder_dir)
        dataset = builder.as_dataset(split=f"{self.split}[{self.begin}:{self.end}]", shuffle_files=False)
        for example in dataset.batch(256).as_numpy_iterator():
            for text in example[self.text_feature]:
                sentences = split_article(text.decode("utf-8", errors="replace"))
                if sentences:
                    yield sentences


@dataclasses.dataclass(frozen=True)
class TfdsText:
    """A TFDS text dataset by name, e.g. `wikipedia/20230601.en` (see module docstring).

    The dataset must be prepared in `data_dir` (TFDS's default directory when None), or `download=True`
    lets TFDS download and prepare it first.
    """

    name: str
    split: str = "train"
    text_feature: str = "text"
    data_dir: str | None = None
    download: bool = False

    @property
    def description(self):
        return f"tfds:{self.name} split={self.split} feature={self.text_feature}"

    def _builder(self):
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(self.name, data_dir=self.data_dir)
        except Exception as e:  # unknown name, bad config, ...: TFDS's own message, on one line
            raise ValueError(f"--input tfds:{self.name}: {' '.join(str(e).split())}") from None
        if self.download:
            try:
                builder.download_and_prepare()
            except Exception as e:
                raise ValueError(
                    f"--input tfds:{self.name}: download and preparation failed: {' '.join(str(e).split())}"
                ) from None
        if not builder.is_prepared():
            raise ValueError(
                f"--input tfds:{self.name}: the dataset is not prepared in {builder.data_dir} "
                "(prepare it with `tfds build`, point --tfds_data_dir at a prepared copy, "
                "or pass --tfds_download)"
            )
        if self.split not in builder.info.splits:
            raise ValueError(
                f"--input tfds:{self.name}: no split {self.split!r} (it has {', '.join(builder.info.splits)})"
            )
        features = builder.info.features
        if self.text_feature not in features:
            raise ValueError(
                f"--input tfds:{self.name}: no feature {self.text_feature!r} "
                f"(it has {', '.join(features.keys())}); set --text_feature"
            )
        return builder

    def partition(self, num_parts):
        builder = self._builder()
        count = builder.info.splits[self.split].num_examples
        return [
            TfdsPart(str(builder.data_dir), self.split, self.text_feature, begin, end)
            for begin, end in _even_ranges(count, num_parts)
        ]


# ---------------------------------------------------------------------------------------------------------
# The embedded corpus: Python's reference documentation and docstrings of the stdlib, numpy and TensorFlow.

# Docstring sections that hold code, signatures or cross references rather than prose.
_SKIPPED_SECTIONS = {
    "attributes", "examples", "example", "methods", "other parameters", "parameters", "raises", "references",
    "returns", "see also", "warns", "yields", "args", "arguments", "keyword arguments", "usage",
}  # fmt: skip
_UNDERLINE = re.compile(r"^\s*([-=~*^#+\"'`])\1{2,}\s*$")
_ROLE = re.compile(r":[a-zA-Z:]+:`([^`]+)`")  # :func:`os.path.join`, :class:`~a.B`, :ref:`title <target>`
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")
_EMPHASIS = re.compile(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*")
_URL = re.compile(r"<?https?://\S+>?")


def _role_text(match):
    inner = match.group(1)
    if "<" in inner:
        return inner.split("<")[0].strip()  # :ref:`the title <target>` -> the title
    if inner.startswith("~"):
        return inner[1:].rsplit(".", 1)[-1]  # :class:`~a.b.C` -> C
    return inner


def _strip_markup(text):
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    return _URL.sub("", text).replace("::", ":")


def _looks_like_prose(sentence):
    """At least three words, mostly letters, and no code-like punctuation."""
    words = sentence.split()
    if len(words) < 3:
        return False
    visible = sentence.replace(" ", "")
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.75 * len(visible):
        return False
    return not any(
        marker in sentence for marker in ("==", "->", "()", "[]", "{", "}", ">>>", "__", " = ", "\\")
    )


def prose_paragraphs(text):
    """The prose paragraphs of reStructuredText-like documentation (a docstring or a pydoc topic).

    Keeps unindented paragraphs; drops indented blocks (code, grammar, parameter descriptions), Markdown
    code fences, doctests, directives, tables, headings and the sections listed in _SKIPPED_SECTIONS;
    removes inline markup.
    """
    lines = text.expandtabs().split("\n")
    paragraphs, current, skipping_section, in_fence = [], [], False, False

    def flush():
        if current:
            paragraphs.append(_strip_markup(" ".join(current)))
            current.clear()

    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        stripped = line.strip()
        if stripped.startswith("```"):  # a Markdown code block starts or ends
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if _UNDERLINE.match(following) and stripped and not _UNDERLINE.match(line):  # a heading
            flush()
            skipping_section = stripped.lower().rstrip(":") in _SKIPPED_SECTIONS
            continue
        if _UNDERLINE.match(line):
            continue
        if stripped.lower().rstrip(":") in _SKIPPED_SECTIONS and not current:  # a Google-style section
            skipping_section = True
            continue
        if not stripped or line[0] in " \t":
            flush()  # indented lines (code, grammar, nested descriptions) are not kept
            continue
        if skipping_section or stripped.startswith(("..", ">>>", "|", "+-", "$ ", "* ", "- ")):
            flush()
            continue
        current.append(stripped)
    flush()
    return paragraphs


def _doc_sentences(text):
    return [s for p in prose_paragraphs(text) for s in split_sentences(p) if _looks_like_prose(s)]


def _docstrings_in_source_order(tree):
    """The module's, classes' and functions' docstrings of a parsed module, in source order."""
    docstrings = []

    def visit(node):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                docstrings.append(doc)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child)

    visit(tree)
    return docstrings


_EXCLUDED_DIRECTORIES = {"test", "tests", "idle_test", "site-packages", "__pycache__", "turtledemo"}
# Machine-generated modules (TensorFlow's op wrappers `gen_*.py`, protobuf and flatbuffer bindings): slow to
# parse and repetitive.
_GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_generated.py")


def _python_files(root):
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in _EXCLUDED_DIRECTORIES)
        for name in sorted(names):
            if (
                name.endswith(".py")
                and not name.startswith("gen_")
                and not name.endswith(_GENERATED_SUFFIXES)
            ):
                yield os.path.join(directory, name)


def _module_documents(root):
    """One document per module under `root`: the sentences of its docstrings, in source order."""
    for path in _python_files(root):
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few files are templates or in other encodings
        sentences = [s for doc in _docstrings_in_source_order(tree) for s in _doc_sentences(doc)]
        if len(sentences) >= 2:
            yield sentences


def _embedded_roots():
    """(name, directory) of each installed package whose docstrings join the embedded corpus.

    The packages are pinned dependencies, so the corpus is the same on every installation of one Python
    version; their source files are parsed, never imported.
    """
    roots = [(f"Python {sys.version.split()[0]} standard library", sysconfig.get_paths()["stdlib"])]
    for package in ("numpy", "tensorflow"):
        spec = importlib.util.find_spec(package)
        roots.append((f"{package} {importlib.metadata.version(package)}", os.path.dirname(spec.origin)))
    return roots


def embedded_documents():
    """The embedded corpus as a list of documents (the same for given Python, numpy and TF versions)."""
    return [list(document) for document in _embedded_documents()]


@functools.lru_cache(maxsize=1)
def _embedded_documents():  # parsing the sources takes a while: once per process
    import pydoc_data.topics

    documents = []
    for name in sorted(pydoc_data.topics.topics):
        sentences = _doc_sentences(pydoc_data.topics.topics[name])
        if len(sentences) >= 2:
            documents.append(tuple(sentences))
    for _, root in _embedded_roots():
        documents.extend(tuple(d) for d in _module_documents(root))
    return tuple(documents)


@dataclasses.dataclass(frozen=True)
class ListPart:
    """A slice of an in-memory list of documents."""

    documents_list: tuple[tuple[str, ...], ...]

    def documents(self) -> Iterator[Document]:
        for document in self.documents_list:
            yield list(document)


@dataclasses.dataclass(frozen=True)
class DocumentList:
    """Documents held in memory (the embedded corpus, or documents a caller built)."""

    documents_list: tuple[tuple[str, ...], ...]
    description: str = "documents in memory"

    @classmethod
    def from_documents(cls, documents, description="documents in memory"):
        return cls(tuple(tuple(d) for d in documents if d), description)

    def partition(self, num_parts):
        return [
            ListPart(self.documents_list[a:b]) for a, b in _even_ranges(len(self.documents_list), num_parts)
        ]


def embedded_corpus():
    """The embedded corpus (see module docstring) as a DocumentList whose description names its origin
    and the SHA-256 of its text, so meta.json tells exactly which text the data was built from."""
    documents = embedded_documents()
    digest = hashlib.sha256("\n\n".join("\n".join(d) for d in documents).encode("utf-8")).hexdigest()
    origin = " + ".join(["pydoc_data.topics"] + [f"docstrings of {name}" for name, _ in _embedded_roots()])
    return DocumentList.from_documents(documents, f"embedded: {origin} (text sha256 {digest[:16]})")


# ---------------------------------------------------------------------------------------------------------


def open_corpus(
    spec,
    *,
    input_format="auto",
    text_feature="text",
    tfds_split="train",
    tfds_data_dir=None,
    tfds_download=False,
):
    """A corpus source from a spec: `embedded`, `tfds:<name>[/<config>]`, or files (`open_files`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("--input: expected `embedded`, `tfds:<name>`, a glob, a directory or a file list")
    spec = spec.strip()
    if spec == "embedded":
        return embedded_corpus()
    if spec.startswith("tfds:"):
        name = spec[len("tfds:") :]
        if not name:
            raise ValueError(
                "--input tfds:: expected a dataset name after `tfds:`, e.g. tfds:wikipedia/20230601.en"
            )
        return TfdsText(name, tfds_split, text_feature, tfds_data_dir, tfds_download)
    return open_files(spec, input_format, text_feature)


def count_text_bytes(document):
    """UTF-8 bytes of a document's sentences (one line each), for MB/min throughput figures."""
    return sum(len(s.encode("utf-8")) + 1 for s in document)


__all__ = [
    "Document",
    "DocumentList",
    "RecordFiles",
    "TextFiles",
    "TfdsText",
    "embedded_corpus",
    "embedded_documents",
    "open_corpus",
    "open_files",
    "read_documents_in_range",
    "resolve_input_files",
    "split_article",
    "split_sentences",
]
