"""Text -> WordPiece ids with tensorflow-text's FastBertTokenizer, in batches.

FastBertTokenizer does in C++ what Google's BasicTokenizer + WordpieceTokenizer do in Python: clean the
text, split off punctuation and CJK characters, optionally lower-case and strip accents (NFD), then
greedy longest-match-first WordPiece with "##" continuations; a word longer than 100 bytes or with no
matching pieces becomes [UNK].
"""

from collections.abc import Iterable

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from data.instances import TokenizedDocuments
from data.vocab import UNK


class WordPieceTokenizer:
    """Tokenizes batches of sentences into lists of ids of `vocab` (a data.vocab.Vocab)."""

    def __init__(self, vocab, do_lower_case=True, batch_size=8192):
        self.vocab = vocab
        self.do_lower_case = do_lower_case
        self.batch_size = batch_size
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=list(vocab.tokens),
            token_out_type=tf.int32,
            unknown_token=UNK,
            lower_case_nfd_strip_accents=do_lower_case,
            max_bytes_per_word=100,
        )
        self._tokenize = tf.function(
            self._tokenize_batch, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )

    def _tokenize_batch(self, sentences):
        ids = self._tokenizer.tokenize(sentences)  # ragged [N, (tokens)]
        return ids.flat_values, ids.row_splits

    def ids_and_lengths(self, sentences: list[str]):
        """(int32 [T]: the ids of all sentences back to back, int64 [N]: the length of each sentence)."""
        values, lengths = [], []
        for start in range(0, len(sentences), self.batch_size):
            flat, splits = self._tokenize(tf.constant(sentences[start : start + self.batch_size]))
            values.append(flat.numpy())
            lengths.append(np.diff(splits.numpy()))
        if not values:
            return np.zeros([0], np.int32), np.zeros([0], np.int64)
        return np.concatenate(values), np.concatenate(lengths)

    def tokenize(self, sentences: list[str]) -> list[list[int]]:
        """The ids of each sentence as lists (an empty list for a sentence with no tokens)."""
        flat, lengths = self.ids_and_lengths(sentences)
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        flat = flat.tolist()
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def tokenize_documents(self, documents: Iterable[list[str]]) -> TokenizedDocuments:
        """Tokenizes a stream of documents (lists of sentences), `batch_size` sentences per call, into a
        TokenizedDocuments (sentences without tokens and then empty documents are dropped, as Google does)."""
        values, lengths, sentences_per_document, batch = [], [], [], []

        def flush():
            flat, sentence_lengths = self.ids_and_lengths(batch)
            values.append(flat)
            lengths.append(sentence_lengths)
            batch.clear()

        for document in documents:
            sentences_per_document.append(len(document))
            batch.extend(document)
            if len(batch) >= self.batch_size:
                flush()
        flush()
        return TokenizedDocuments.from_lengths(
            np.concatenate(values), np.concatenate(lengths), np.asarray(sentences_per_document, np.int64)
        )
