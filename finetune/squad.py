"""SQuAD v1.1 span extraction as Google's `run_squad.py` does it.

Reading: the official JSON (`data` -> paragraphs -> `context`, `qas` -> `id`, `question`, `answers`) or TFDS
`squad/v1.1`. The context is split at whitespace into words; an answer's character offset gives its first
and last word (a training question whose answer is not at its offset is skipped, as Google does).

Windowing: each word is WordPiece-tokenized on its own (so every piece knows its word). The question keeps
at most `max_query_length` pieces; the context is cut into windows of `max_seq_length - len(question) - 3`
pieces, each starting `doc_stride` pieces after the previous one, until one reaches the end. A feature is
[CLS] question [SEP] window [SEP] (segment ids 0, then 1 from the window on). A piece in several windows
is scored only in the window where it has the most context (min(left, right) + 0.01 x window length). For
training, the answer's pieces are narrowed to the exact pieces of the answer text when they occur inside
its words (`_improve_answer_span`), and a window without the whole answer points at [CLS] (position 0).

Prediction: per feature the `n_best_size` best start and end logits; a span is valid when both ends are in
the window's context, start is a max-context piece, end >= start and it is at most `max_answer_length`
pieces long. The best start + end logit over all features of the question wins. Its text is cut out of the
original context as Google's `get_final_text` does (`final_text`): the predicted pieces are joined back into
the tokenizer's words ("##" continuations glued on), the context's whole words from the start piece's word
to the end piece's word are taken as written and as the tokenizer normalised them (their pieces joined the
same way: lower-cased, accents stripped, punctuation split off), the prediction is found in the normalised
text, and the two texts are aligned character by character with their spaces removed. So the pieces "1995"
inside the word "(1995)," give "1995", and "denver" in "Denver's" gives "Denver". When the prediction is
not found or the normalisation changed the number of characters (a word the vocabulary cannot spell is one
[UNK] piece), the answer is the whole words.
"""

import dataclasses
import json
import os

import numpy as np

from finetune.metrics import squad_scores

TRAIN_FILE = "train-v1.1.json"
EVAL_FILE = "dev-v1.1.json"


@dataclasses.dataclass
class SquadExample:
    question_id: str
    question: str
    words: list  # the context split at whitespace
    answers: list  # gold answer texts
    start_word: int = -1  # the first answer's words (training)
    end_word: int = -1


def _is_whitespace(c):
    return c in " \t\r\n" or ord(c) == 0x202F


def split_words(context):
    """(words, word index of each character) of a context split at whitespace."""
    words, char_to_word, previous_is_space = [], [], True
    for c in context:
        if _is_whitespace(c):
            previous_is_space = True
        else:
            if previous_is_space:
                words.append(c)
            else:
                words[-1] += c
            previous_is_space = False
        char_to_word.append(len(words) - 1)
    return words, char_to_word


def make_example(question_id, question, context, answers, answer_starts):
    words, char_to_word = split_words(context)
    example = SquadExample(question_id, question, words, list(answers))
    if answers:
        start, text = answer_starts[0], answers[0]
        if text and start >= 0 and context[start : start + len(text)] == text:  # else not trained on
            example.start_word = char_to_word[start]
            example.end_word = char_to_word[start + len(text) - 1]
    return example


def read_json_examples(path):
    """The examples of an official SQuAD v1.1 JSON file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            articles = json.load(f)["data"]
    except OSError as e:
        raise ValueError(f"task.data_dir: cannot read {path}: {e.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a SQuAD JSON file (expected {{'data': [...]}}): {e}") from None
    examples = []
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [a["text"] for a in qa["answers"]]
                    starts = [a["answer_start"] for a in qa["answers"]]
                    examples.append(
                        make_example(qa["id"], qa["question"], paragraph["context"], answers, starts)
                    )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: a paragraph or question lacks the key {e}") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return examples


def read_tfds_examples(split, data_dir=None):
    """The examples of TFDS `squad/v1.1` (already prepared: nothing is downloaded)."""
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load("squad/v1.1", split=split, data_dir=data_dir, download=False)
    except Exception as e:  # TFDS raises several types for a dataset that is not prepared
        raise ValueError(f"task.data_dir is null and TFDS squad/v1.1 cannot be read: {e}") from None
    examples = []
    for ex in tfds.as_numpy(dataset):
        answers = [a.decode("utf-8") for a in ex["answers"]["text"]]
        starts = [int(s) for s in ex["answers"]["answer_start"]]
        examples.append(
            make_example(ex["id"].decode(), ex["question"].decode(), ex["context"].decode(), answers, starts)
        )
    return examples


def read_examples(data_dir, is_training, tfds_data_dir=None):
    if data_dir:
        return read_json_examples(os.path.join(data_dir, TRAIN_FILE if is_training else EVAL_FILE))
    return read_tfds_examples("train" if is_training else "validation", tfds_data_dir)


@dataclasses.dataclass
class Window:
    example_index: int
    token_to_word: dict  # feature position -> word index of the context
    max_context: dict  # feature position -> whether this window is the piece's best context


def _improve_answer_span(pieces, start, end, answer_pieces):
    """The narrowest [start, end] within the answer's words whose pieces are exactly the answer's."""
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if pieces[new_start : new_end + 1] == answer_pieces:
                return new_start, new_end
    return start, end


def _windows(length, max_tokens, doc_stride):
    """(start, length) of the context windows (Google's doc_spans)."""
    spans, start = [], 0
    while start < length:
        span = min(length - start, max_tokens)
        spans.append((start, span))
        if start + span == length:
            break
        start += min(span, doc_stride)
    return spans


def _is_max_context(spans, span_index, position):
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return best_index == span_index


def encode(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training):
    """(features: int32 input_ids, input_mask, segment_ids [F, S] (+ start_positions, end_positions [F] for
    training), windows: one Window per feature)."""
    vocab = tokenizer.vocab
    questions = tokenizer.tokenize([e.question for e in examples])
    rows, windows = [], []
    for index, example in enumerate(examples):
        if is_training and example.start_word < 0:
            continue  # an answer not found at its offset: Google's run_squad.py skips it too
        query = questions[index][:max_query_length]
        word_pieces = tokenizer.tokenize(example.words)
        pieces, piece_to_word, word_start = [], [], []
        for word, word_ids in enumerate(word_pieces):
            word_start.append(len(pieces))
            pieces.extend(word_ids)
            piece_to_word.extend([word] * len(word_ids))
        if is_training:
            start = word_start[example.start_word]
            end = (
                word_start[example.end_word + 1] - 1
                if example.end_word + 1 < len(word_start)
                else len(pieces) - 1
            )
            answer_pieces = [p for ids in tokenizer.tokenize(example.answers[0].split()) for p in ids]
            start, end = _improve_answer_span(pieces, start, end, answer_pieces)
        spans = _windows(len(pieces), max_seq_length - len(query) - 3, doc_stride)
        for span_index, (span_start, span_length) in enumerate(spans):
            offset = len(query) + 2  # [CLS] query [SEP]
            ids = [
                vocab.cls_id,
                *query,
                vocab.sep_id,
                *pieces[span_start : span_start + span_length],
                vocab.sep_id,
            ]
            positions = range(offset, offset + span_length)
            window = Window(
                index,
                {p: piece_to_word[span_start + p - offset] for p in positions},
                {p: _is_max_context(spans, span_index, span_start + p - offset) for p in positions},
            )
            row = {"ids": ids, "segment_start": offset}
            if is_training:
                inside = span_start <= start and end < span_start + span_length
                row["start"] = start - span_start + offset if inside else 0
                row["end"] = end - span_start + offset if inside else 0
            rows.append(row)
            windows.append(window)
    count = len(rows)
    features = {
        name: np.zeros([count, max_seq_length], np.int32)
        for name in ("input_ids", "input_mask", "segment_ids")
    }
    for i, row in enumerate(rows):
        ids = row["ids"]
        features["input_ids"][i, : len(ids)] = ids
        features["input_mask"][i, : len(ids)] = 1
        features["segment_ids"][i, row["segment_start"] : len(ids)] = 1
    if is_training:
        features["start_positions"] = np.asarray([row["start"] for row in rows], np.int32)
        features["end_positions"] = np.asarray([row["end"] for row in rows], np.int32)
    return features, windows


def best_spans(windows, start_logits, end_logits, n_best_size, max_answer_length):
    """{example index: (feature, start position, end position)} of the best valid span of each question."""
    best = {}  # example index -> (score, feature, start, end)
    for feature, window in enumerate(windows):
        starts = np.argsort(-start_logits[feature], kind="stable")[:n_best_size]
        ends = np.argsort(-end_logits[feature], kind="stable")[:n_best_size]
        for s in starts:
            if s not in window.token_to_word or not window.max_context[s]:
                continue
            for e in ends:
                if e not in window.token_to_word or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[feature, s] + end_logits[feature, e])
                current = best.get(window.example_index)
                if current is None or score > current[0]:
                    best[window.example_index] = (score, feature, s, e)
    return {index: spans[1:] for index, spans in best.items()}


def join_pieces(pieces):
    """WordPiece strings as the words they spell: "##" continuations glued to the piece before, one space
    between words (["den", "##ver", "broncos"] -> "denver broncos")."""
    text = " ".join(pieces).replace(" ##", "").replace("##", "")
    return " ".join(text.split())


def final_text(predicted, normalised, original):
    """The part of `original` that `predicted` covers (Google's get_final_text; see the module docstring).

    `original`: whole words of the context joined by spaces; `normalised`: the same words as the tokenizer
    normalised them; `predicted`: the predicted pieces joined (join_pieces), found in `normalised`.
    """
    start = normalised.find(predicted)
    if not predicted or start < 0:
        return original  # not found: the whole words
    end = start + len(predicted) - 1
    # Where the characters that are not spaces are: the k-th of one text aligns with the k-th of the other.
    normalised_chars = [i for i, c in enumerate(normalised) if c != " "]
    original_chars = [i for i, c in enumerate(original) if c != " "]
    if len(normalised_chars) != len(original_chars):
        return original  # the normalisation changed the number of characters: no alignment
    rank = {position: k for k, position in enumerate(normalised_chars)}
    return original[original_chars[rank[start]] : original_chars[rank[end]] + 1]


def predict_answers(
    examples, windows, input_ids, start_logits, end_logits, tokenizer, n_best_size=20, max_answer_length=30
):
    """{question id: answer text} from the features' input_ids and logits [F, S] (see the module docstring);
    `tokenizer` is the data.WordPieceTokenizer that made the features."""
    pieces = tokenizer.vocab.tokens
    spans = best_spans(windows, start_logits, end_logits, n_best_size, max_answer_length)
    answers = dict.fromkeys((example.question_id for example in examples), "")
    if not spans:
        return answers
    predicted, originals = [], []
    for index, (feature, start, end) in spans.items():
        first, last = windows[feature].token_to_word[start], windows[feature].token_to_word[end]
        predicted.append(join_pieces([pieces[i] for i in input_ids[feature, start : end + 1]]))
        originals.append(" ".join(examples[index].words[first : last + 1]))
    normalised = [join_pieces([pieces[i] for i in ids]) for ids in tokenizer.tokenize(originals)]
    for index, *texts in zip(spans, predicted, normalised, originals, strict=True):
        answers[examples[index].question_id] = final_text(*texts)
    return answers


def evaluate(
    examples, windows, input_ids, start_logits, end_logits, tokenizer, n_best_size, max_answer_length
):
    """The official exact match and F1 (x100) of the predicted answers."""
    predictions = predict_answers(
        examples, windows, input_ids, start_logits, end_logits, tokenizer, n_best_size, max_answer_length
    )
    return squad_scores(predictions, {e.question_id: e.answers for e in examples})
