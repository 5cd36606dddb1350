"""data.vocab: Google's vocab.txt format, special ids found by token, and the learned vocabulary's layout."""

import pytest

from data.vocab import (
    Vocab,
    compact_reserved_tokens,
    continuation_ids,
    default_reserved_tokens,
    google_reserved_tokens,
    learn_vocab,
    load_vocab,
    write_vocab,
)


def google_layout_file(path, words):
    """A small vocab.txt laid out like Google's uncased BERT vocabulary."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"[unused{i}]" for i in range(99, 120)] + words
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return tokens


def test_google_layout_vocab_loads_with_googles_special_ids(tmp_path):
    tokens = google_layout_file(tmp_path / "vocab.txt", ["the", "cat", "##s", "!", "##ing", "#"])
    vocab = load_vocab(str(tmp_path / "vocab.txt"))
    assert len(vocab) == len(tokens) == 131
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (0, 100, 101, 102, 103)
    assert vocab.id("the") == 125 and vocab.tokens[126] == "cat"
    assert vocab.continuation_ids == [127, 129]  # "##s", "##ing"; "#" alone is a word


def test_special_ids_are_looked_up_not_assumed(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hello\n[MASK]\n[SEP]\n[PAD]\n[CLS]\n[UNK]\n##lo\n", encoding="utf-8")
    vocab = load_vocab(str(path))
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (3, 5, 4, 2, 1)
    assert vocab.continuation_ids == [6]


def test_a_vocab_without_final_newline_or_with_crlf_reads_the_same(tmp_path):
    (tmp_path / "a.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nx\r\n")
    assert load_vocab(str(tmp_path / "a.txt")).tokens == load_vocab(str(tmp_path / "b.txt")).tokens


@pytest.mark.parametrize(
    "content,message",
    [
        ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n", r"missing special token\(s\) \[MASK\]"),
        ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\nx\n", r"token 'x' on line 7 repeats line 6"),
        ("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n", r"line 3 holds ''"),
        ("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na b\n", r"line 6 holds 'a b'"),
    ],
)
def test_bad_vocab_files_are_refused_naming_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        load_vocab(str(path))
    assert str(path) in str(error.value)


def test_missing_and_non_utf8_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_vocab(str(tmp_path / "absent.txt"))
    (tmp_path / "latin1.txt").write_bytes("[PAD]\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_vocab(str(tmp_path / "latin1.txt"))


def test_write_then_load_round_trips(tmp_path):
    vocab = Vocab(compact_reserved_tokens() + ["a", "##b"])
    write_vocab(vocab, str(tmp_path / "vocab.txt"))
    assert (tmp_path / "vocab.txt").read_text() == "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n##b\n"
    assert load_vocab(str(tmp_path / "vocab.txt")) == vocab
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.txt"]


def test_reserved_layouts():
    google = google_reserved_tokens()
    assert (
        len(google) == 104
        and google[0] == "[PAD]"
        and google[1] == "[unused0]"
        and google[99] == "[unused98]"
    )
    assert google[100:] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert compact_reserved_tokens() == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert default_reserved_tokens(999) == compact_reserved_tokens()
    assert default_reserved_tokens(1000) == google


def test_continuation_ids_are_the_double_hash_pieces():
    assert continuation_ids(["[PAD]", "##", "##a", "a##", "#", "##9"]) == [2, 5]


CORPUS = [
    "The cats were playing in the garden while the dogs were sleeping.",
    "Playing games is what cats and dogs like best.",
    "A garden full of playing cats!",
    "Sleeping dogs lie; playing cats play.",
] * 5


def test_learned_small_vocab_has_the_compact_layout_and_exact_size():
    vocab = learn_vocab(CORPUS, 120)
    assert len(vocab) == 120
    assert vocab.tokens[:5] == ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    learned = [t for t in vocab.tokens[5:] if not t.startswith("[unused")]
    assert {"the", "cats", "playing", "garden", "!", ";"} <= set(learned)  # lower-cased whole words fit
    assert "The" not in learned and vocab.continuation_ids  # and "##" pieces exist


def test_learned_large_vocab_has_googles_layout():
    vocab = learn_vocab(CORPUS, 1000)
    assert len(vocab) == 1000
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id, vocab.mask_id) == (0, 100, 101, 102, 103)
    assert vocab.tokens[1] == "[unused0]" and vocab.tokens[99] == "[unused98]"
    assert "[unused99]" in vocab.tokens  # the corpus is too small for 1000 pieces: filled with unused tokens


def test_learned_vocab_with_custom_reserved_tokens_and_case():
    reserved = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<doc>"]
    vocab = learn_vocab(CORPUS, 150, do_lower_case=False, reserved_tokens=reserved)
    assert vocab.tokens[:6] == tuple(reserved) and "The" in vocab.tokens


def test_learning_refuses_impossible_requests():
    with pytest.raises(ValueError, match=r"missing special token\(s\) \[MASK\]"):
        learn_vocab(CORPUS, 100, reserved_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    with pytest.raises(ValueError, match="vocab_size=5: must exceed the 5 reserved tokens"):
        learn_vocab(CORPUS, 5)
    with pytest.raises(ValueError, match="vocab_size=20: too small for this corpus"):
        learn_vocab(CORPUS, 20)
