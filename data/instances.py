"""Next-sentence-prediction instances with the semantics of google-research/bert's create_pretraining_data.py.

For each of `dupe_factor` passes over the (shuffled) documents, each document is cut into chunks of
consecutive sentences of about `max_seq_length - 3` tokens (with probability `short_seq_prob` the target
is a random length in [2, max_seq_length - 3] instead, drawn once per document per pass); each chunk is
split at a random sentence boundary into segment A and segment B. With probability 0.5, or always when
the chunk is a single sentence, B is replaced by sentences from a random other document (label 1,
"random next") and the chunk's unused sentences go back to be used by the next chunk. The pair is then
truncated to `max_seq_length - 3` tokens by removing tokens from the longer segment, each from the front or
the back with equal chance. The instances are shuffled at the end. Masking comes later (data.masking).

Because A and B are runs of consecutive sentences of one document, and truncation only shortens runs
from their ends, every segment is a contiguous slice of the concatenated token ids: an instance is
four integers (start and length of A and of B) plus its label, and the token matrix is gathered with
numpy per batch. Only the sentence lengths are touched in the Python loop.
"""

import bisect
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TokenizedDocuments:
    """Documents as token ids: `tokens` [T] holds every sentence's ids back to back;
    sentence k is tokens[sentence_starts[k]:sentence_starts[k + 1]], and document d is sentences
    document_starts[d] to document_starts[d + 1] - 1. No sentence and no document is empty."""

    tokens: np.ndarray  # int32 [T]
    sentence_starts: np.ndarray  # int64 [num_sentences + 1]
    document_starts: np.ndarray  # int64 [num_documents + 1]

    @classmethod
    def from_lengths(cls, tokens, sentence_lengths, document_num_sentences):
        """From concatenated ids, each sentence's length and each document's sentence count; drops
        sentences without tokens and then documents without sentences (as Google's reader does)."""
        sentence_lengths = np.asarray(sentence_lengths, np.int64)
        sentence_document = np.repeat(np.arange(len(document_num_sentences)), document_num_sentences)
        kept = sentence_lengths > 0  # an empty sentence owns no tokens, so dropping it moves no token
        sentences_per_document = np.bincount(sentence_document[kept], minlength=len(document_num_sentences))
        return cls(
            tokens=np.asarray(tokens, np.int32),
            sentence_starts=np.concatenate([[0], np.cumsum(sentence_lengths[kept])]).astype(np.int64),
            document_starts=np.concatenate(
                [[0], np.cumsum(sentences_per_document[sentences_per_document > 0])]
            ).astype(np.int64),
        )

    @property
    def num_documents(self):
        return len(self.document_starts) - 1

    @property
    def num_sentences(self):
        return len(self.sentence_starts) - 1

    def document(self, d):
        """Document d as a list of sentences (lists of ids); for inspection and tests."""
        first, last = self.document_starts[d], self.document_starts[d + 1]
        bounds = self.sentence_starts[first : last + 1]
        return [self.tokens[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclasses.dataclass(frozen=True)
class InstanceSpans:
    """N instances: segment A is tokens[a_start : a_start + a_length], B likewise; label 1 = random next."""

    a_start: np.ndarray  # int64 [N]
    a_length: np.ndarray  # int64 [N]
    b_start: np.ndarray  # int64 [N]
    b_length: np.ndarray  # int64 [N]
    next_sentence_labels: np.ndarray  # int32 [N]

    def __len__(self):
        return len(self.a_start)

    def take(self, rows):
        return InstanceSpans(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


def truncated_lengths(length_a, length_b, max_num_tokens):
    """The lengths Google's truncate_seq_pair leaves: while too long, shorten the longer segment (B on ties).

    Returns (new_a, new_b); which segment loses each token does not depend on the random front/back choice,
    so the final lengths follow from the two lengths alone.
    """
    excess = length_a + length_b - max_num_tokens
    if excess <= 0:
        return length_a, length_b
    cut = min(excess, max(0, length_a - length_b))  # A is longer: shorten it until the two are equal
    length_a, excess = length_a - cut, excess - cut
    cut = min(excess, max(0, length_b - length_a + 1))  # A <= B: shorten B until it is one shorter than A
    length_b, excess = length_b - cut, excess - cut
    return length_a - (excess + 1) // 2, length_b - excess // 2  # then alternately A, B, A, ...


def _instances_from_document(
    starts, document_starts, order, position, max_num_tokens, short_seq_prob, rng, out
):
    """Appends the instances of document `order[position]` to `out` as tuples (a_start, a_length, b_start,
    b_length, next_sentence_label) (see InstanceSpans).

    `starts` and `document_starts` are TokenizedDocuments' offsets as Python lists. `randint(a, b)` below is
    a + int(random() * (b - a + 1)): uniform up to a relative bias of (b - a + 1) / 2**53, and several
    times faster than random.randint, which matters in this loop. Truncation takes each removed token from
    the front with probability 1/2: the front cut of n removed tokens is the number of 1 bits of
    getrandbits(n). Sentence runs are found by bisection on the token offsets instead of Google's loop over
    sentences: the same chunks, the same random draws in the same order.
    """
    uniform, random_bits = rng.random, rng.getrandbits
    first, end = document_starts[order[position]], document_starts[order[position] + 1]
    target_length = max_num_tokens
    if uniform() < short_seq_prob:
        target_length = 2 + int(uniform() * (max_num_tokens - 1))  # randint(2, max_num_tokens)
    chunk_first = first
    while chunk_first < end:
        # The chunk: sentences from chunk_first until they reach target_length tokens or the document ends.
        i = bisect.bisect_left(starts, starts[chunk_first] + target_length, chunk_first + 1, end) - 1
        num_chunk_sentences = i + 1 - chunk_first
        # A: the chunk's first randint(1, n - 1) sentences (all of a one-sentence chunk).
        a_sentences = 1 + int(uniform() * (num_chunk_sentences - 1)) if num_chunk_sentences >= 2 else 1
        a_start = starts[chunk_first]
        a_length = starts[chunk_first + a_sentences] - a_start
        if num_chunk_sentences == 1 or uniform() < 0.5:
            is_random_next = 1
            for _ in range(10):  # another document, if one turns up in 10 draws
                other = int(uniform() * len(order))
                if other != position:
                    break
            other_first, other_end = document_starts[order[other]], document_starts[order[other] + 1]
            j = other_first + int(uniform() * (other_end - other_first))  # a random sentence of it
            b_start = starts[j]
            # Whole sentences until B reaches its target length or the document ends.
            j = bisect.bisect_left(starts, b_start + target_length - a_length, j + 1, other_end)
            b_length = starts[j] - b_start
            i = chunk_first + a_sentences - 1  # the unused sentences start the next chunk
        else:
            is_random_next = 0
            b_start = starts[chunk_first + a_sentences]
            b_length = starts[i + 1] - b_start
        new_a, new_b = a_length, b_length
        if a_length + b_length > max_num_tokens:
            new_a, new_b = truncated_lengths(a_length, b_length, max_num_tokens)
        a_start += random_bits(a_length - new_a).bit_count()  # tokens cut from the front of A
        b_start += random_bits(b_length - new_b).bit_count()
        out.append((a_start, new_a, b_start, new_b, is_random_next))
        chunk_first = i + 1


def create_instance_spans(documents, *, max_seq_length, short_seq_prob, dupe_factor, rng):
    """All instances of `documents` (a TokenizedDocuments) in Google's order: shuffle the documents, make
    `dupe_factor` passes over them, shuffle the instances. `rng` is a random.Random."""
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length}: must be at least 5 ([CLS] A [SEP] B [SEP])")
    max_num_tokens = max_seq_length - 3
    order = list(range(documents.num_documents))
    rng.shuffle(order)
    starts, document_starts = documents.sentence_starts.tolist(), documents.document_starts.tolist()
    out = []
    for _ in range(dupe_factor):
        for position in range(len(order)):
            _instances_from_document(
                starts, document_starts, order, position, max_num_tokens, short_seq_prob, rng, out
            )
    permutation = np.random.default_rng(rng.getrandbits(64)).permutation(len(out))  # the final shuffle
    columns = np.array(out, np.int64).reshape(-1, 5)[permutation].T  # [5, N]
    return InstanceSpans(*columns[:4], next_sentence_labels=columns[4].astype(np.int32))


def assemble_instances(tokens, spans, max_seq_length, *, cls_id, sep_id, pad_id=0):
    """Token and segment ids [n, S] of `spans`: [CLS] A [SEP] B [SEP], then padding with pad_id.

    Returns (input_ids int32 [n, S], segment_ids int32 [n, S], lengths int32 [n]).
    """
    position = np.arange(max_seq_length)[None, :]  # [1, S]
    a_length, b_length = spans.a_length[:, None], spans.b_length[:, None]  # [n, 1]
    length = a_length + b_length + 3
    # Cell (i, p) of segment A holds tokens[a_start + p - 1], of B tokens[b_start + p - (a_length + 2)];
    # the [CLS]/[SEP] cells are overwritten below (their indices may fall outside `tokens`: clipped).
    offset = np.where(position <= a_length, spans.a_start[:, None] - 1, spans.b_start[:, None] - a_length - 2)
    is_token = position < length  # [n, S]
    input_ids = np.where(is_token, tokens.take(offset + position, mode="clip"), pad_id).astype(np.int32)
    rows = np.arange(len(spans))
    input_ids[:, 0] = cls_id
    input_ids[rows, a_length[:, 0] + 1] = sep_id
    input_ids[rows, length[:, 0] - 1] = sep_id
    segment_ids = ((position > a_length + 1) & is_token).astype(np.int32)
    return input_ids, segment_ids, length[:, 0].astype(np.int32)


__all__ = [
    "InstanceSpans",
    "TokenizedDocuments",
    "assemble_instances",
    "create_instance_spans",
    "truncated_lengths",
]
