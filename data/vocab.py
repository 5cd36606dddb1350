"""WordPiece vocabularies: Google's `vocab.txt` format, and learning one from a corpus.

`vocab.txt` holds one token per line; the line number (from 0) is the token id. Google's uncased English
vocabulary has [PAD]=0, [unused0]..[unused98]=1..99, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103; its
cased one has the same ids. Loaded vocabularies are never assumed to follow that layout: the special ids
are looked up by token.

Learned vocabularies (tensorflow-text's WordPiece learner) put the special tokens first, in Google's
layout when `vocab_size >= GOOGLE_LAYOUT_MIN_SIZE` (so ids match Google's checkpoints), otherwise in the
compact layout [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 (so a tiny vocabulary is not mostly unused slots).
The learned list is filled up to exactly `vocab_size` with further [unusedN] tokens when the corpus
yields fewer pieces, so the model's `vocab_size` is the number asked for.
"""

import hashlib
import math
from collections.abc import Iterable, Sequence

import tensorflow as tf

from data import paths

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
CONTINUATION_PREFIX = "##"
GOOGLE_LAYOUT_MIN_SIZE = 1000


def google_reserved_tokens():
    """Google's first 104 tokens: [PAD], [unused0]..[unused98], [UNK], [CLS], [SEP], [MASK]."""
    return [PAD] + [f"[unused{i}]" for i in range(99)] + [UNK, CLS, SEP, MASK]


def compact_reserved_tokens():
    """The five special tokens alone: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4."""
    return [PAD, UNK, CLS, SEP, MASK]


def default_reserved_tokens(vocab_size):
    return google_reserved_tokens() if vocab_size >= GOOGLE_LAYOUT_MIN_SIZE else compact_reserved_tokens()


def continuation_ids(tokens):
    """Ids of the word-continuation pieces ("##ing"): the tokens whole-word masking keeps with their word."""
    return [i for i, token in enumerate(tokens) if token.startswith(CONTINUATION_PREFIX) and len(token) > 2]


class Vocab:
    """An ordered WordPiece vocabulary: `tokens[i]` has id i. Special ids are found by token."""

    def __init__(self, tokens: Sequence[str], source="vocabulary"):
        self.tokens = tuple(tokens)
        self.source = source
        self._ids = {}
        for i, token in enumerate(self.tokens):
            if not token or token != token.strip() or any(c.isspace() for c in token):
                raise ValueError(
                    f"{source}: line {i + 1} holds {token!r}; expected one token without whitespace"
                )
            if token in self._ids:
                raise ValueError(
                    f"{source}: token {token!r} on line {i + 1} repeats line {self._ids[token] + 1}"
                )
            self._ids[token] = i
        missing = [t for t in SPECIAL_TOKENS if t not in self._ids]
        if missing:
            raise ValueError(
                f"{source}: missing special token(s) {', '.join(missing)} (expected Google's BERT format)"
            )

    def __len__(self):
        return len(self.tokens)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __hash__(self):
        return hash(self.tokens)

    def id(self, token):
        return self._ids[token]

    def get(self, token, default=None):
        return self._ids.get(token, default)

    @property
    def size(self):
        return len(self.tokens)

    @property
    def pad_id(self):
        return self._ids[PAD]

    @property
    def unk_id(self):
        return self._ids[UNK]

    @property
    def cls_id(self):
        return self._ids[CLS]

    @property
    def sep_id(self):
        return self._ids[SEP]

    @property
    def mask_id(self):
        return self._ids[MASK]

    @property
    def continuation_ids(self):
        return continuation_ids(self.tokens)


def load_vocab(path):
    """Reads a `vocab.txt` (one UTF-8 token per line, line number = id) into a Vocab (any gfile path)."""
    if not tf.io.gfile.exists(path):
        raise ValueError(f"vocab file {path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"vocab file {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return Vocab([line.rstrip("\r") for line in lines], source=f"vocab file {path}")


def write_vocab(vocab, path):
    """Writes `vocab` as `vocab.txt` (via a temporary file and a rename, so it is never half-written)."""
    paths.write_atomically(path, "".join(token + "\n" for token in vocab.tokens))


def file_sha256(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fill_with_unused(tokens, vocab_size):
    """Appends [unusedN] tokens (N continuing after the highest one present) up to `vocab_size` tokens."""
    present = set(tokens)
    n = 0
    tokens = list(tokens)
    while len(tokens) < vocab_size:
        candidate = f"[unused{n}]"
        if candidate not in present:
            tokens.append(candidate)
        n += 1
    return tokens


def count_words(sentences: Iterable[str], *, do_lower_case=True, batch_size=1024):
    """Counts the words of `sentences` as BERT's basic tokenizer splits them (tensorflow-text ops)."""
    from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    def batches():
        batch = []
        for sentence in sentences:
            batch.append(sentence)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    splitter = BasicTokenizer(lower_case=do_lower_case)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=tf.TensorSpec([None], tf.string))
    return learner.count_words(dataset.map(splitter.tokenize))


def learn_vocab(
    sentences: Iterable[str],
    vocab_size,
    *,
    do_lower_case=True,
    reserved_tokens=None,
    slack_ratio=0.05,
    learn_params=None,
):
    """Learns a WordPiece vocabulary of exactly `vocab_size` tokens from an iterable of sentences.

    Words are split as BERT's basic tokenizer does, then tensorflow-text's WordPiece learner keeps the
    pieces seen at least `threshold` times. The threshold is searched on a log scale (each try is one
    learner pass) for the largest vocabulary not above `vocab_size`, stopping early within `slack_ratio`.
    `reserved_tokens` come first, in order; by default `default_reserved_tokens(vocab_size)` (see module
    docstring); they must include the five special tokens. `learn_params` go to the learner
    (`num_iterations`, `max_token_length`, `max_unique_chars`, ...). Raises ValueError when even the
    corpus's alphabet needs more than `vocab_size` tokens.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    reserved = list(default_reserved_tokens(vocab_size) if reserved_tokens is None else reserved_tokens)
    missing = [t for t in SPECIAL_TOKENS if t not in reserved]
    if missing:
        raise ValueError(f"reserved_tokens: missing special token(s) {', '.join(missing)}")
    if vocab_size <= len(reserved):
        raise ValueError(f"vocab_size={vocab_size}: must exceed the {len(reserved)} reserved tokens")
    word_counts = count_words(sentences, do_lower_case=do_lower_case)
    if not word_counts:
        raise ValueError("learn_vocab: the corpus holds no words")

    def vocab_at(threshold):  # one learner pass: lower == upper threshold means no search inside
        params = {"upper_thresh": threshold, "lower_thresh": threshold, **(learn_params or {})}
        return learner.learn(word_counts, vocab_size, reserved, **params)

    max_count = max(word_counts.values())
    low, high = 1, max_count  # vocabulary size falls as the threshold rises
    best = None
    while low <= high:
        threshold = max(low, min(high, round(math.sqrt(low * high))))
        tokens = vocab_at(threshold)
        if len(tokens) <= vocab_size:
            best = tokens
            if len(tokens) >= (1 - slack_ratio) * vocab_size:
                break
            high = threshold - 1
        else:
            low = threshold + 1
    if best is None:
        raise ValueError(
            f"vocab_size={vocab_size}: too small for this corpus, whose reserved tokens and characters alone "
            f"need {len(vocab_at(max_count))} tokens; use a larger vocab_size or set max_unique_chars"
        )
    return Vocab(_fill_with_unused(best, vocab_size), source="learned vocabulary")
