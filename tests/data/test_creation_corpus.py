"""data.corpus: Google's text format cut into byte-range parts, TFDS datasets, the embedded prose."""

import inspect
import os
import random
import sysconfig

import pytest
import tensorflow_datasets as tfds

from data.corpus import (
    DocumentList,
    TextFiles,
    TfdsText,
    _module_documents,
    embedded_documents,
    open_corpus,
    prose_paragraphs,
    read_documents_in_range,
    split_article,
    split_sentences,
)


def test_sentence_splitting_hand_worked():
    assert split_sentences("It rains. The sun is out!  Is it?  Yes") == [
        "It rains.", "The sun is out!", "Is it?", "Yes"]  # fmt: skip
    assert split_sentences("See e.g. the manual. J. R. R. Tolkien wrote it.") == [
        "See e.g. the manual.", "J. R. R. Tolkien wrote it."]  # fmt: skip
    assert split_sentences('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]
    assert split_sentences("Version 3.11 is out. 42 is the answer.") == [
        "Version 3.11 is out.",
        "42 is the answer.",
    ]
    assert split_sentences("  \n ") == []
    assert split_article("First paragraph. Two.\n\nSecond one.") == [
        "First paragraph.",
        "Two.",
        "Second one.",
    ]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_google_format_documents_and_file_boundaries(tmp_path):
    a = write(
        tmp_path / "a.txt", "s1\ns2\n\n\n  \ns3\n \t\ns4\ns5"
    )  # blank, whitespace-only, no final newline
    b = write(tmp_path / "b.txt", "t1\nt2\n")
    documents = [d for part in TextFiles((a, b)).partition(1) for d in part.documents()]
    assert documents == [["s1", "s2"], ["s3"], ["s4", "s5"], ["t1", "t2"]]  # a new file starts a new document


def random_corpus_file(path, rng):
    lines = []
    for _ in range(rng.randrange(1, 30)):
        lines += [f"d{len(lines)} " + "x" * rng.randrange(0, 40) for _ in range(rng.randrange(1, 6))]
        lines += [rng.choice(["", "  ", "\t", ""]) for _ in range(rng.randrange(1, 3))]
    return write(path, "\n".join(lines) + rng.choice(["", "\n"]))


def test_parts_hold_every_document_exactly_once_for_any_number_of_parts(tmp_path):
    rng = random.Random(0)
    for trial in range(15):
        files = tuple(
            random_corpus_file(tmp_path / f"{trial}-{i}.txt", rng) for i in range(rng.randrange(1, 4))
        )
        corpus = TextFiles(files)
        whole = [d for part in corpus.partition(1) for d in part.documents()]
        for num_parts in (2, 3, 7, 50, 400):
            parts = corpus.partition(num_parts)
            assert len(parts) == num_parts
            assert [d for part in parts for d in part.documents()] == whole, (trial, num_parts)


def test_a_range_starting_inside_a_document_leaves_it_to_the_previous_range(tmp_path):
    path = write(tmp_path / "c.txt", "alpha\nbeta\n\ngamma\n")
    assert list(read_documents_in_range(path, 0, 1)) == [["alpha", "beta"]]
    assert list(read_documents_in_range(path, 1, 12)) == []  # "alpha beta" starts at 0, "gamma" at 12
    assert list(read_documents_in_range(path, 12, 13)) == [["gamma"]]


def test_inputs_from_globs_directories_and_lists(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.txt", "b.txt", "sub/c.txt", "sub/.hidden"):
        write(tmp_path / name, "x\n")
    assert TextFiles.from_spec(str(tmp_path / "*.txt")).files == (
        str(tmp_path / "a.txt"),
        str(tmp_path / "b.txt"),
    )
    assert len(TextFiles.from_spec(str(tmp_path)).files) == 3  # recursive, hidden files skipped
    both = TextFiles.from_spec(f"{tmp_path / 'a.txt'}, {tmp_path / 'sub'}").files
    assert both == (str(tmp_path / "a.txt"), str(tmp_path / "sub" / "c.txt"))
    with pytest.raises(
        ValueError, match=r"--input .*nothing\*\.txt: no such file, directory or matching glob"
    ):
        TextFiles.from_spec(str(tmp_path / "nothing*.txt"))


def test_invalid_utf8_names_the_file_and_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff line\n")
    with pytest.raises(ValueError, match=rf"{path}: invalid UTF-8 at byte 14"):
        [d for part in TextFiles((str(path),)).partition(1) for d in part.documents()]


def test_prose_is_kept_and_code_markup_and_reference_sections_are_not():
    docstring = """Return the sum of :func:`numbers <builtins.sum>` and ``values``.

    The :class:`~collections.Counter` adds **counts** of *elements*. See https://example.com for more.

    Example::

        >>> add(1, 2)
        3

    Parameters
    ----------
    x : int
        The first value is an integer.

    Notes
    -----
    This paragraph explains the idea
    over two lines.
    """
    assert prose_paragraphs(inspect.cleandoc(docstring)) == [
        "Return the sum of numbers and values.",
        "The Counter adds counts of elements. See  for more.",
        "This paragraph explains the idea over two lines.",
    ]


def test_markdown_code_fences_are_dropped():
    text = "Use it like this:\n\n```python\nimport os\nx = 1\n```\n\nAnd that is all there is to say."
    assert prose_paragraphs(text) == ["Use it like this:", "And that is all there is to say."]


def test_module_docstrings_become_documents_of_prose_sentences():
    documents = list(_module_documents(os.path.join(sysconfig.get_paths()["stdlib"], "json")))
    assert len(documents) >= 3
    sentences = [s for d in documents for s in d]
    assert any("JSON" in s for s in sentences)
    assert not any(">>>" in s or "::" in s or "``" in s for s in sentences)
    assert all(len(s.split()) >= 3 for s in sentences)


def test_open_corpus_specs(tmp_path):
    write(tmp_path / "a.txt", "x\n")
    assert isinstance(open_corpus(str(tmp_path / "a.txt")), TextFiles)
    assert open_corpus("tfds:wikipedia/20230601.en", text_feature="body").text_feature == "body"
    with pytest.raises(ValueError, match="expected a dataset name"):
        open_corpus("tfds:")
    with pytest.raises(ValueError, match="--input: expected `embedded`"):
        open_corpus("  ")


def test_document_list_parts_are_contiguous_and_complete():
    documents = DocumentList.from_documents([[f"s{i}"] for i in range(10)] + [[]])
    parts = documents.partition(3)
    assert [[d[0] for d in p.documents()] for p in parts] == [["s0", "s1", "s2"], ["s3", "s4", "s5"],
                                                               ["s6", "s7", "s8", "s9"]]  # fmt: skip


# ----------------------------------------------------------------------------------------- TFDS


class CreationTestArticles(tfds.core.GeneratorBasedBuilder):
    """A tiny TFDS text dataset shaped like wikipedia (title, text with newline-separated paragraphs)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"title": tfds.features.Text(), "text": tfds.features.Text()})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(7):
            text = f"Article {i} begins here. It has two sentences.\nA second paragraph for {i}. Done."
            yield i, {"title": f"A{i}", "text": text}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tfds"))
    CreationTestArticles(data_dir=directory).download_and_prepare()
    return directory


def test_tfds_articles_become_documents_in_contiguous_parts(tfds_dir):
    corpus = TfdsText("creation_test_articles", data_dir=tfds_dir)
    parts = corpus.partition(3)
    documents = [d for part in parts for d in part.documents()]
    assert len(documents) == 7
    assert sorted(documents)[0] == [
        "Article 0 begins here.", "It has two sentences.", "A second paragraph for 0.", "Done."]  # fmt: skip
    assert [len(list(p.documents())) for p in parts] == [2, 2, 3]


def test_tfds_errors_are_one_clear_line(tfds_dir, tmp_path):
    with pytest.raises(ValueError, match=r"not prepared in .*--tfds_download") as error:
        TfdsText("creation_test_articles", data_dir=str(tmp_path)).partition(2)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"no feature 'body' \(it has title, text\); set --text_feature"):
        TfdsText("creation_test_articles", text_feature="body", data_dir=tfds_dir).partition(1)
    with pytest.raises(ValueError, match=r"no split 'validation'"):
        TfdsText("creation_test_articles", split="validation", data_dir=tfds_dir).partition(1)
    with pytest.raises(ValueError, match=r"^--input tfds:no_such_dataset_here: ") as error:
        TfdsText("no_such_dataset_here", data_dir=str(tmp_path)).partition(1)
    assert "\n" not in str(error.value)


def test_tfds_download_failure_is_one_clear_line(tmp_path, monkeypatch):
    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to connect to the download server\n(details)")

    monkeypatch.setattr(CreationTestArticles, "download_and_prepare", no_network)
    with pytest.raises(ValueError, match="download and preparation failed: Failed to connect") as error:
        TfdsText("creation_test_articles", data_dir=str(tmp_path), download=True).partition(1)
    assert "\n" not in str(error.value)


def test_embedded_corpus_is_substantial_english_prose():
    documents = embedded_documents()
    sentences = [s for d in documents for s in d]
    assert len(documents) > 1000 and len(sentences) > 40000
    assert sum(len(s) + 1 for s in sentences) > 3_000_000
    assert not any(">>>" in s or "```" in s for s in sentences)
    assert all(len(d) >= 2 for d in documents)  # documents hold several sentences, for next-sentence pairs
