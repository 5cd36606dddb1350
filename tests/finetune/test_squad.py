"""SQuAD v1.1 worked by hand: words and answer positions, run_squad.py's windows, max-context, spans, and the
answer text cut out of the original words (get_final_text)."""

import numpy as np
import pytest
from finetune_setup import VOCAB, write_model_files, write_squad

import data
from finetune import squad


@pytest.fixture
def tokenizer(tmp_path):
    vocab, _ = write_model_files(tmp_path / "model")
    return data.WordPieceTokenizer(data.load_vocab(vocab), do_lower_case=True)


def ids(words):
    return [VOCAB.index(w) for w in words.split()]


def test_words_split_at_whitespace_and_answers_map_to_words():
    words, char_to_word = squad.split_words("The  cat\tsat.\n")
    assert words == ["The", "cat", "sat."]
    assert char_to_word[:6] == [0, 0, 0, 0, 0, 1]  # the spaces after a word belong to it
    example = squad.make_example("q", "who?", "The Denver Broncos won.", ["Denver Broncos"], [4])
    assert (example.start_word, example.end_word) == (1, 2)
    lost = squad.make_example("q", "who?", "The Denver Broncos won.", ["Broncos"], [0])  # wrong offset
    assert lost.start_word == -1


def test_windows_follow_the_doc_stride_until_one_reaches_the_end():
    assert squad._windows(10, 4, 2) == [(0, 4), (2, 4), (4, 4), (6, 4)]
    assert squad._windows(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
    assert squad._windows(3, 4, 2) == [(0, 3)]
    spans = [(0, 4), (2, 4), (4, 4), (6, 4)]
    # piece 3: window 0 leaves it min(3, 0) = 0 context, window 1 min(1, 2) = 1, window 2 does not hold it
    assert [squad._is_max_context(spans, i, 3) for i in range(4)] == [False, True, False, False]
    # piece 5: windows 1 (min(3, 0)) and 2 (min(1, 2)): window 2
    assert [squad._is_max_context(spans, i, 5) for i in range(4)] == [False, False, True, False]


CONTEXT = "the cat sat on the mat and the dog ran"  # 10 words, one piece each


def test_training_features_point_at_the_answer_in_the_windows_that_hold_it(tokenizer):
    example = squad.make_example("q1", "who sat", CONTEXT, ["the dog"], [CONTEXT.index("the dog")])
    assert (example.start_word, example.end_word) == (7, 8)
    # [CLS] who sat [SEP] + 4 context pieces + [SEP] = 9 positions; windows (0,4), (2,4), (4,4), (6,4)
    features, windows = squad.encode([example], tokenizer, 9, 2, 64, is_training=True)
    assert len(windows) == 4
    np.testing.assert_array_equal(
        features["input_ids"][3], [2, *ids("who sat"), 3, *ids("and the dog ran"), 3]
    )
    np.testing.assert_array_equal(features["segment_ids"][3], [0, 0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(features["input_mask"][3], [1] * 9)
    # words 7-8 lie in windows 2 (words 4-7: no) and 3 (words 6-9): offset 4, so positions 5 and 6
    np.testing.assert_array_equal(features["start_positions"], [0, 0, 0, 5])
    np.testing.assert_array_equal(features["end_positions"], [0, 0, 0, 6])
    assert windows[3].token_to_word == {4: 6, 5: 7, 6: 8, 7: 9}


def test_the_answer_span_narrows_to_the_answer_pieces(tokenizer):
    context = "the broncos won"  # "broncos" is one word; the answer "broncos" is found exactly
    example = squad.make_example("q", "who won", context, ["broncos"], [4])
    features, _ = squad.encode([example], tokenizer, 16, 8, 64, is_training=True)
    assert (features["start_positions"][0], features["end_positions"][0]) == (5, 5)  # [CLS] who won [SEP] the


def test_the_best_valid_span_wins_and_gives_the_context_words(tokenizer):
    example = squad.SquadExample("q", "who", CONTEXT.split(), ["the dog"])
    windows = [
        squad.Window(0, {4: 4, 5: 5, 6: 6, 7: 7}, {4: False, 5: True, 6: True, 7: True}),
        squad.Window(0, {4: 6, 5: 7, 6: 8, 7: 9}, {4: False, 5: True, 6: True, 7: True}),
    ]
    input_ids = np.array(
        [
            [2, *ids("who"), 3, 0, *ids("the mat and the"), 3],
            [2, *ids("who"), 3, 0, *ids("and the dog ran"), 3],
        ]
    )
    start, end = np.zeros([2, 9]), np.zeros([2, 9])
    start[0, 4], end[0, 4] = 9.0, 9.0  # the best logits, but position 4 is not its max context there
    start[0, 0], end[0, 0] = 8.0, 8.0  # [CLS]: not in the context
    start[1, 5], end[1, 6] = 3.0, 3.0  # words 7-8: "the dog"
    start[1, 7], end[1, 4] = 5.0, 5.0  # end before start: not valid
    args = ([example], windows, input_ids, start, end, tokenizer)
    assert squad.predict_answers(*args, n_best_size=3, max_answer_length=30) == {"q": "the dog"}
    assert squad.predict_answers(*args, n_best_size=3, max_answer_length=1) != {"q": "the dog"}
    assert squad.evaluate(*args, 3, 30) == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.parametrize(
    ("predicted", "normalised", "original", "answer"),
    [
        ("1995", "( 1995 ) ,", "(1995),", "1995"),  # the pieces inside the word
        ("denver broncos", "the denver broncos .", "The Denver Broncos.", "Denver Broncos"),  # case
        ("cafe", "cafe , and", "Café, and", "Café"),  # an accent stripped: the same number of characters
        ("denver", "denver ' s", "Denver's", "Denver"),
        ("rams", "the denver broncos", "The Denver Broncos", "The Denver Broncos"),  # not found: whole
        ("fine", "fine", "\ufb01ne", "\ufb01ne"),  # the ligature became two characters: no alignment
        ("[UNK]", "[UNK] ,", "Zürich,", "Zürich,"),  # 6 characters against 7
        ("[UNK]", "the [UNK]", "the Tokyo", "Tokyo"),  # 5 against 5: aligned
    ],
)
def test_the_answer_is_cut_out_of_the_original_words_where_the_characters_align(
    predicted, normalised, original, answer
):
    assert squad.final_text(predicted, normalised, original) == answer


def test_predicted_pieces_join_into_the_tokenizers_words_and_map_onto_the_context(tokenizer):
    assert squad.join_pieces(["the", "cat", "##s", ",", "sat"]) == "the cats , sat"
    context = "The Denver Broncos, won."
    example = squad.make_example("q", "who won", context, ["Denver Broncos"], [4])
    features, windows = squad.encode([example], tokenizer, 16, 8, 64, is_training=False)
    # [CLS] who won [SEP] the denver broncos , won . [SEP]: "denver broncos" at positions 5 and 6
    np.testing.assert_array_equal(features["input_ids"][0, 4:10], ids("the denver broncos , won ."))
    start, end = np.zeros([1, 16]), np.zeros([1, 16])
    start[0, 5], end[0, 6] = 1.0, 1.0
    answers = squad.predict_answers([example], windows, features["input_ids"], start, end, tokenizer)
    assert answers == {"q": "Denver Broncos"}  # not the whole words "Denver Broncos,"


def test_the_official_json_is_read_and_a_broken_one_named(tmp_path):
    path = write_squad(tmp_path / "dev-v1.1.json", [(CONTEXT, [("q1", "who ran", "the dog", 27)])])
    (example,) = squad.read_examples(str(tmp_path), is_training=False)
    assert (example.question_id, example.answers, example.start_word) == ("q1", ["the dog"], 7)
    (tmp_path / "dev-v1.1.json").write_text(
        '{"data": [{"paragraphs": [{"qas": [{"id": "q", "question": "x", "answers": []}]}]}]}'
    )
    with pytest.raises(ValueError, match="dev-v1.1.json: a paragraph or question lacks the key 'context'"):
        squad.read_examples(str(tmp_path), is_training=False)
    with pytest.raises(ValueError, match="cannot read .*train-v1.1.json"):
        squad.read_examples(str(tmp_path), is_training=True)
    assert path.endswith("dev-v1.1.json")
