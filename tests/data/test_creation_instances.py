"""data.instances: Google's next-sentence pairs, checked by hand on tiny documents and statistically."""

import random

import numpy as np
import pytest

from data.instances import TokenizedDocuments, assemble_instances, create_instance_spans, truncated_lengths

CLS, SEP, PAD = 101, 102, 0


def documents_of(*documents):
    """TokenizedDocuments from documents given as lists of sentences (lists of ids)."""
    sentences = [s for d in documents for s in d]
    tokens = np.array([t for s in sentences for t in s], np.int32)
    return TokenizedDocuments.from_lengths(tokens, [len(s) for s in sentences], [len(d) for d in documents])


def instances(documents, max_seq_length, seed=0, dupe_factor=1, short_seq_prob=0.0):
    spans = create_instance_spans(
        documents,
        max_seq_length=max_seq_length,
        short_seq_prob=short_seq_prob,
        dupe_factor=dupe_factor,
        rng=random.Random(seed),
    )
    ids, segments, lengths = assemble_instances(
        documents.tokens, spans, max_seq_length, cls_id=CLS, sep_id=SEP
    )
    return [
        (ids[i, : lengths[i]].tolist(), segments[i].tolist(), int(spans.next_sentence_labels[i]))
        for i in range(len(spans))
    ], (ids, segments, lengths)


def googles_truncation_lengths(length_a, length_b, max_num_tokens):
    """The lengths left by google-research/bert's truncate_seq_pair loop (transcribed, lengths only)."""
    while length_a + length_b > max_num_tokens:
        if length_a > length_b:
            length_a -= 1
        else:
            length_b -= 1
    return length_a, length_b


def test_truncated_lengths_match_googles_loop():
    for a in range(0, 40):
        for b in range(0, 40):
            for m in range(2, 50):
                assert truncated_lengths(a, b, m) == googles_truncation_lengths(a, b, m), (a, b, m)


def test_empty_sentences_and_documents_are_dropped():
    docs = documents_of([[1, 2], [], [3]], [[]], [[4]])
    assert docs.num_documents == 2 and docs.num_sentences == 3
    assert docs.document(0) == [[1, 2], [3]] and docs.document(1) == [[4]]


# Two documents, hand-worked with max_seq_length 20 (17 tokens for A + B, far more than either holds):
#   doc X = [1 2 3] [4 5]   doc Y = [7 8 9]
# X: both sentences form one chunk (the document ends); A = [1 2 3] (the only split point). Either
#    B = [4 5], actual next (label 0), or B comes from Y = [7 8 9] (label 1) and [4 5] is put back, giving
#    a second chunk of one sentence, always random next: A = [4 5], B = [7 8 9].
# Y: one sentence, always random next: B starts at a random sentence of X and takes sentences until it
#    reaches 17 - 3 = 14 tokens or X ends: [1 2 3 4 5] or [4 5].
X, Y = [[1, 2, 3], [4, 5]], [[7, 8, 9]]


def pair(a, b):
    return [CLS, *a, SEP, *b, SEP]


EXPECTED_FROM_X = [
    [(pair([1, 2, 3], [4, 5]), 0)],
    [(pair([1, 2, 3], [7, 8, 9]), 1), (pair([4, 5], [7, 8, 9]), 1)],
]
EXPECTED_FROM_Y = [(pair([7, 8, 9], [1, 2, 3, 4, 5]), 1), (pair([7, 8, 9], [4, 5]), 1)]


def test_hand_worked_pairs_and_labels():
    seen_x, seen_y = set(), set()
    for seed in range(40):
        made, _ = instances(documents_of(X, Y), 20, seed=seed)
        pairs = [(tokens, label) for tokens, _, label in made]
        from_y = [p for p in pairs if p[0][1] == 7]
        from_x = [p for p in pairs if p[0][1] != 7]
        assert len(from_y) == 1 and from_y[0] in EXPECTED_FROM_Y
        assert sorted(from_x) in [sorted(e) for e in EXPECTED_FROM_X]
        seen_y.add(str(from_y[0]))
        seen_x.add(str(sorted(from_x)))
    assert len(seen_x) == 2 and len(seen_y) == 2  # every hand-worked outcome happens


def test_hand_worked_segment_ids_and_padding():
    made, (ids, segments, lengths) = instances(documents_of(X, Y), 20, seed=3)
    for row, (tokens, _, _) in enumerate(made):
        a_length = tokens.index(SEP) - 1
        b_length = len(tokens) - a_length - 3
        assert segments[row].tolist() == [0] * (a_length + 2) + [1] * (b_length + 1) + [0] * (
            20 - len(tokens)
        )
        assert ids[row, lengths[row] :].tolist() == [PAD] * (20 - lengths[row])


def test_hand_worked_truncation_from_front_or_back():
    # max_seq_length 8 leaves 5 tokens for A + B. Doc [1 2 3 4] [5 6 7] is one chunk (4 < 5 <= 7), so
    # A = [1 2 3 4]. With the actual next B = [5 6 7] the pair is 2 tokens too long: A (longer) loses one
    # token, then the tie makes B lose one: A is [1 2 3] or [2 3 4], B is [5 6] or [6 7], each equally likely.
    # (Random next: B = [9] (the other document), unchanged.)
    outcomes = {}
    for seed in range(400):
        made, _ = instances(documents_of([[1, 2, 3, 4], [5, 6, 7]], [[9]]), 8, seed=seed)
        for tokens, _, label in made:
            if label == 0:
                outcomes[str(tokens)] = outcomes.get(str(tokens), 0) + 1
            elif tokens[1] == 1:
                assert tokens == pair([1, 2, 3, 4], [9])
    expected = {str(pair(a, b)) for a in ([1, 2, 3], [2, 3, 4]) for b in ([5, 6], [6, 7])}
    assert set(outcomes) == expected
    assert min(outcomes.values()) > 0.15 * sum(outcomes.values())  # about a quarter each


def test_unused_sentences_of_a_random_next_chunk_start_the_next_chunk():
    # Ten 2-token sentences with max_seq_length 9 (6 tokens for A + B): chunks are 3 sentences (6 tokens),
    # nothing is ever truncated. When B is random, the chunk's sentences after A go back and start the next
    # chunk, so over one pass every sentence is used exactly once, in an A or in an actual-next B.
    doc = [[10 + 2 * i, 11 + 2 * i] for i in range(10)]
    for seed in range(30):
        made, _ = instances(documents_of(doc, [[90, 91]]), 9, seed=seed)
        used = []
        for tokens, _, label in made:
            sep = tokens.index(SEP)
            if tokens[1] != 90:
                used += tokens[1:sep] + (tokens[sep + 1 : -1] if label == 0 else [])
        assert sorted(used) == [t for s in doc for t in s]  # instances are shuffled: compare as sets


def test_short_sequences_target_random_lengths():
    # The target length is drawn once per document and pass: uniform in [2, 61] when short, else 61.
    rng = random.Random(0)
    docs = documents_of(
        *[[[rng.randrange(200, 300) for _ in range(8)] for _ in range(10)] for _ in range(300)]
    )
    always_short, _ = instances(docs, 64, short_seq_prob=1.0)
    never_short, _ = instances(docs, 64, short_seq_prob=0.0)
    short_lengths = [len(t) for t, _, _ in always_short]
    long_lengths = [len(t) for t, _, _ in never_short]
    assert max(short_lengths) <= 64 and max(long_lengths) <= 64
    assert np.median(long_lengths) >= 60  # 61 tokens wanted, sentences of 8 fill almost all of it
    # Short: about the target rounded up to whole sentences, plus [CLS] [SEP] [SEP]; short targets make
    # more instances per document, so the mean over instances is below the mean target (31.5) + 7.
    assert 15 < np.mean(short_lengths) < 38 and min(short_lengths) == 8 + 8 + 3  # one sentence each


def test_next_sentence_labels_are_balanced():
    rng = random.Random(1)
    docs = documents_of(
        *[[[rng.randrange(200, 300) for _ in range(6)] for _ in range(40)] for _ in range(100)]
    )
    made, _ = instances(docs, 64, dupe_factor=3)
    labels = np.array([label for _, _, label in made])
    assert len(labels) > 1500
    # 0.5, a little more as a chunk of a single sentence (at a document's end) is always random next.
    assert labels.mean() == pytest.approx(0.5, abs=0.05)


def test_dupe_factor_passes_and_shuffle():
    docs = documents_of(X, Y, [[20, 21], [22, 23], [24]])
    one, _ = instances(docs, 20, dupe_factor=1, seed=5)
    five, _ = instances(docs, 20, dupe_factor=5, seed=5)
    assert 5 * 3 <= len(five) <= 5 * 6  # at least one instance per document per pass
    assert len(one) <= 6


def test_same_seed_same_instances():
    docs = documents_of(*[[[i * 10 + j, i * 10 + j + 1] for j in range(5)] for i in range(8)])
    a, _ = instances(docs, 16, seed=7, dupe_factor=2)
    b, _ = instances(docs, 16, seed=7, dupe_factor=2)
    c, _ = instances(docs, 16, seed=8, dupe_factor=2)
    assert a == b and a != c
