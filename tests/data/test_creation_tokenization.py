"""data.tokenization: BERT's basic tokenization + WordPiece, by hand and against a plain-Python reference."""

import importlib.util
import pathlib

import pytest

from data.tokenization import WordPieceTokenizer
from data.vocab import Vocab

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sat", "on", "mat", ".", ",",
          "!", "un", "##aff", "##able", "cafe", "The", "Cat", "é", "'", "t", "don", "a", "##n"]  # fmt: skip
VOCAB = Vocab(TOKENS)


def words(ids):
    return [TOKENS[i] for i in ids]


def test_uncased_hand_worked():
    tokenizer = WordPieceTokenizer(VOCAB, do_lower_case=True)
    assert words(tokenizer.tokenize(["The cats sat on the mat."])[0]) == [
        "the", "cat", "##s", "sat", "on", "the", "mat", "."]  # fmt: skip
    assert words(tokenizer.tokenize(["Unaffable, CAFÉ!"])[0]) == ["un", "##aff", "##able", ",", "cafe", "!"]
    assert words(tokenizer.tokenize(["don't"])[0]) == ["don", "'", "t"]
    assert words(tokenizer.tokenize(["dog cats"])[0]) == ["[UNK]", "cat", "##s"]  # no pieces for "dog"
    assert words(tokenizer.tokenize(["unx"])[0]) == ["[UNK]"]  # a word that cannot be finished is one [UNK]


def test_cased_keeps_case_and_accents():
    tokenizer = WordPieceTokenizer(VOCAB, do_lower_case=False)
    assert words(tokenizer.tokenize(["The Cat sat."])[0]) == ["The", "Cat", "sat", "."]
    assert words(tokenizer.tokenize(["the cat"])[0]) == ["the", "cat"]
    assert words(tokenizer.tokenize(["CAFÉ"])[0]) == ["[UNK]"]


def test_documents_drop_empty_sentences_and_documents():
    tokenizer = WordPieceTokenizer(VOCAB, do_lower_case=True, batch_size=2)  # several batches
    docs = tokenizer.tokenize_documents(
        [["the cat", "   ", "sat"], ["\u200b"], ["on the mat", "a", "an"], ["!"]]
    )
    assert docs.num_documents == 3
    assert [words(s) for s in docs.document(0)] == [["the", "cat"], ["sat"]]
    assert [words(s) for s in docs.document(1)] == [["on", "the", "mat"], ["a"], ["a", "##n"]]
    assert [words(s) for s in docs.document(2)] == [["!"]]


def reference_tokenizer_module():
    path = ROOT / "scripts" / "benchmarks" / "pure_python_pretraining_data.py"
    spec = importlib.util.spec_from_file_location("pure_python_pretraining_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo wörld: naïve café, résumé; Ångström!",
    "x = f(a[1], b['c']) -> 3.14 ** 2 // 7 % 5",
    "Tabs\tand\nnewlines   and  spaces",
    "中文字符 and 日本語 mixed with English.",
    "Don't split e-mail addresses like someone@example.com (or URLs: https://a.b/c?d=e).",
    "Numbers 1,234,567.89 and 3rd 21st 100%",
]


@pytest.mark.parametrize("lower_case", [True, False])
def test_matches_a_plain_python_bert_tokenizer(tmp_path, lower_case):
    reference = reference_tokenizer_module()
    pieces = set()
    for sentence in SENTENCES:
        for word in reference.basic_tokenize(sentence, lower_case):
            pieces.add(word[:3])
            pieces.update("##" + word[i : i + 2] for i in range(3, len(word), 2))
    vocab_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(pieces)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab_tokens) + "\n", encoding="utf-8")
    expected = reference.Tokenizer(str(tmp_path / "vocab.txt"), lower_case)
    ours = WordPieceTokenizer(Vocab(vocab_tokens), do_lower_case=lower_case)
    for sentence, ids in zip(SENTENCES, ours.tokenize(SENTENCES), strict=True):
        assert [vocab_tokens[i] for i in ids] == expected.tokenize(sentence), sentence
