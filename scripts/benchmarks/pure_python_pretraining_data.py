"""The baseline for scripts/benchmarks/bench_data.py: Google's pretraining-data algorithm in plain Python.

This is what google-research/bert's create_pretraining_data.py does, written out independently: read Google's
text format into memory, tokenize with a pure-Python BERT basic tokenizer + greedy WordPiece, create the
next-sentence pairs and masked-LM predictions one instance at a time with Python's `random`, and write
tf.train.Example protos with tf.io.TFRecordWriter, round-robin over the output files. Single process.

    python scripts/benchmarks/pure_python_pretraining_data.py --input=corpus.txt --vocab_file=vocab.txt \
        --output=out/baseline.tfrecord --dupe_factor=10

It exists to be measured against, and as an independent reference for the tokenizer in tests.
"""

import argparse
import collections
import random
import sys
import unicodedata

# --------------------------------------------------------------------------------------------- tokenizer


def _is_whitespace(char):
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char):
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True  # all non-alphanumeric ASCII counts as punctuation, as in BERT
    return unicodedata.category(char).startswith("P")


def _is_cjk(code):
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def basic_tokenize(text, lower_case):
    """BERT's basic tokenizer: clean, isolate CJK characters, split on whitespace and punctuation."""
    cleaned = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or _is_control(char):
            continue
        if _is_cjk(code):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(" " if _is_whitespace(char) else char)
    words = []
    for word in "".join(cleaned).split():
        if lower_case:
            word = "".join(
                c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn"
            )
        piece = []
        for char in word:
            if _is_punctuation(char):
                if piece:
                    words.append("".join(piece))
                    piece = []
                words.append(char)
            else:
                piece.append(char)
        if piece:
            words.append("".join(piece))
    return words


def wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    """Greedy longest-match-first WordPiece; a word with an unmatched remainder is one [UNK]."""
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                break
            end -= 1
        if end == start:
            return [unk]
        pieces.append(candidate)
        start = end
    return pieces


class Tokenizer:
    def __init__(self, vocab_file, lower_case=True):
        with open(vocab_file, encoding="utf-8") as f:
            self.tokens = [line.rstrip("\n") for line in f]
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.lower_case = lower_case

    def tokenize(self, text):
        return [
            piece for word in basic_tokenize(text, self.lower_case) for piece in wordpiece(word, self.ids)
        ]


# ---------------------------------------------------------------------------------------------- instances

Instance = collections.namedtuple("Instance", "tokens segment_ids is_random_next positions labels")


def truncate_pair(tokens_a, tokens_b, max_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def mask_instance(tokens, settings, vocab_tokens, rng):
    words = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if settings.do_whole_word_mask and words and token.startswith("##") and words[-1][-1] == i - 1:
            words[-1].append(i)
        else:
            words.append([i])
    rng.shuffle(words)
    output = list(tokens)
    count = min(settings.max_predictions_per_seq, max(1, int(round(len(tokens) * settings.masked_lm_prob))))
    chosen = []
    for word in words:
        if len(chosen) >= count:
            break
        if len(chosen) + len(word) > count:
            continue
        roll = rng.random()
        for index in word:
            if roll < 0.8:
                output[index] = "[MASK]"
            elif roll >= 0.9:
                output[index] = vocab_tokens[rng.randint(0, len(vocab_tokens) - 1)]
            chosen.append((index, tokens[index]))
    chosen.sort()
    return output, [i for i, _ in chosen], [t for _, t in chosen]


def instances_from_document(documents, index, settings, vocab_tokens, rng):
    document = documents[index]
    max_tokens = settings.max_seq_length - 3
    target = max_tokens
    if rng.random() < settings.short_seq_prob:
        target = rng.randint(2, max_tokens)
    instances, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                other_document = documents[other]
                for sentence in other_document[rng.randint(0, len(other_document) - 1) :]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            truncate_pair(tokens_a, tokens_b, max_tokens, rng)
            tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            tokens, positions, labels = mask_instance(tokens, settings, vocab_tokens, rng)
            instances.append(Instance(tokens, segment_ids, is_random_next, positions, labels))
            chunk, length = [], 0
        i += 1
    return instances


def read_documents(paths, tokenizer):
    documents = [[]]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    documents.append([])
                    continue
                tokens = tokenizer.tokenize(line)
                if tokens:
                    documents[-1].append(tokens)
    return [d for d in documents if d]


def write_examples(instances, tokenizer, settings, output_files):
    import tensorflow as tf

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    writers = [tf.io.TFRecordWriter(path) for path in output_files]
    S, P = settings.max_seq_length, settings.max_predictions_per_seq
    for n, instance in enumerate(instances):
        input_ids = [tokenizer.ids[t] for t in instance.tokens]
        mask = [1] * len(input_ids)
        segment_ids = list(instance.segment_ids)
        while len(input_ids) < S:
            input_ids.append(0)
            mask.append(0)
            segment_ids.append(0)
        positions = list(instance.positions)
        label_ids = [tokenizer.ids[t] for t in instance.labels]
        weights = [1.0] * len(label_ids)
        while len(positions) < P:
            positions.append(0)
            label_ids.append(0)
            weights.append(0.0)
        features = {
            "input_ids": ints(input_ids),
            "input_mask": ints(mask),
            "segment_ids": ints(segment_ids),
            "masked_lm_positions": ints(positions),
            "masked_lm_ids": ints(label_ids),
            "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=weights)),
            "next_sentence_labels": ints([1 if instance.is_random_next else 0]),
        }
        example = tf.train.Example(features=tf.train.Features(feature=features))
        writers[n % len(writers)].write(example.SerializeToString())
    for writer in writers:
        writer.close()


def create(input_files, vocab_file, output_files, settings):
    """Runs the whole baseline; returns (number of documents, number of instances)."""
    rng = random.Random(settings.random_seed)
    tokenizer = Tokenizer(vocab_file, settings.do_lower_case)
    documents = read_documents(input_files, tokenizer)
    rng.shuffle(documents)
    instances = []
    for _ in range(settings.dupe_factor):
        for index in range(len(documents)):
            instances.extend(instances_from_document(documents, index, settings, tokenizer.tokens, rng))
    rng.shuffle(instances)
    write_examples(instances, tokenizer, settings, output_files)
    return len(documents), len(instances)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, nargs="+")
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--output", required=True, nargs="+")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--masked_lm_prob", type=float, default=0.15)
    parser.add_argument("--short_seq_prob", type=float, default=0.1)
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--random_seed", type=int, default=12345)
    parser.add_argument("--do_lower_case", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--do_whole_word_mask", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    num_documents, num_instances = create(args.input, args.vocab_file, args.output, args)
    print(f"{num_documents} documents -> {num_instances} instances")
