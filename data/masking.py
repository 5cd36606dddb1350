"""Masked-LM masking in TensorFlow ops, with the semantics of google-research/bert (used at creation time and
by the input pipeline's optional dynamic masking).

For each sequence of token ids (right-padded with pad_id, containing [CLS]/[SEP]):

1. Candidates are all tokens except [CLS], [SEP] and padding. Without whole-word masking each candidate is
   its own word; with it, a word is a candidate followed by its "##" continuation pieces (a word never
   spans [CLS]/[SEP]: a "##" piece right after one starts a new word).
2. count = min(max_predictions_per_seq, max(1, round(len * masked_lm_prob))), len counting [CLS]/[SEP]
   but not padding; round() halves to even as Python's does.
3. Words are visited in a uniformly random order; a word is taken when all its pieces still fit in
   `count`, otherwise skipped (the next, shorter word may still fit) -- Google's loop.
4. Each taken word is replaced, all its pieces alike (one decision per word, the fix of
   google-research/bert #910): 80% [MASK], 10% unchanged, 10% random token (drawn per piece, uniformly
   from `random_token_ids`, by default every id of the vocabulary as Google does).
5. The predictions are listed by ascending position and zero-padded to max_predictions_per_seq.

Randomness is stateless (`tf.random.stateless_*`): the same ids and seed give the same masks.
"""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    vocab_size: int
    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int = 0
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    continuation_ids: tuple[int, ...] = ()  # ids of "##" pieces (data.vocab.continuation_ids)
    random_token_ids: tuple[int, ...] | None = None  # None: every id in [0, vocab_size)

    def __post_init__(self):
        object.__setattr__(self, "continuation_ids", tuple(int(i) for i in self.continuation_ids))
        if self.random_token_ids is not None:
            object.__setattr__(self, "random_token_ids", tuple(int(i) for i in self.random_token_ids))
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size={self.vocab_size}: must be positive")
        for name in ("cls_id", "sep_id", "mask_id", "pad_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name}={value}: must be a token id in [0, vocab_size={self.vocab_size})")
        if not 0.0 <= self.masked_lm_prob <= 1.0:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob}: must be in [0, 1]")
        if self.max_predictions_per_seq < 0:
            raise ValueError(f"max_predictions_per_seq={self.max_predictions_per_seq}: must be >= 0")
        if self.random_token_ids is not None and not self.random_token_ids:
            raise ValueError("random_token_ids: must not be empty (None means every id)")

    @classmethod
    def from_vocab(cls, vocab, **settings):
        """The config for a data.vocab.Vocab; `settings` are the remaining fields (masked_lm_prob, ...)."""
        return cls(
            vocab_size=len(vocab),
            cls_id=vocab.cls_id,
            sep_id=vocab.sep_id,
            mask_id=vocab.mask_id,
            pad_id=vocab.pad_id,
            continuation_ids=tuple(vocab.continuation_ids),
            **settings,
        )


def _num_to_predict(lengths, config):
    """min(P, max(1, round(len * prob))) in float64, rounding half to even like Python's round()."""
    wanted = tf.cast(tf.round(tf.cast(lengths, tf.float64) * config.masked_lm_prob), tf.int32)
    return tf.minimum(config.max_predictions_per_seq, tf.maximum(1, wanted))


def _word_starts(ids, candidate, config):
    """[B, S] bool: the candidates that begin a word."""
    if not config.whole_word_mask:
        return candidate
    table = np.zeros([config.vocab_size], bool)
    table[list(config.continuation_ids)] = True
    continuation = tf.gather(tf.constant(table), ids)  # [B, S]
    previous_is_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])  # [B, S], False at position 0
    return candidate & ~(continuation & previous_is_candidate)


def _word_lengths(starts, candidate):
    """[B, S]: at each word start, the number of pieces of that word (its "##" pieces follow it); else 0."""
    B, S = tf.shape(starts)[0], tf.shape(starts)[1]
    word_number = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # of each candidate, from 0 in each row
    segment = tf.where(candidate, tf.range(B)[:, None] * S + word_number, B * S)  # B*S collects the rest
    pieces = tf.math.unsorted_segment_sum(tf.cast(candidate, tf.int32), segment, B * S + 1)[:-1]
    pieces = tf.reshape(pieces, [B, S])  # [B, words]
    return tf.where(starts, tf.gather(pieces, tf.maximum(word_number, 0), batch_dims=1), 0)


def _greedy_fit(lengths, budget):
    """Google's selection loop, vectorised over the batch: visiting the words in order (lengths [B, K],
    0 = no word), take a word when it still fits in budget [B], else skip it. Returns taken [B, K] bool."""

    def visit(state, length):  # length [B]: the next word of every row
        total, _ = state
        take = (length > 0) & (total + length <= budget)
        return total + tf.where(take, length, 0), take

    initial = (tf.zeros_like(budget), tf.zeros_like(budget, tf.bool))
    _, taken = tf.scan(visit, tf.transpose(lengths), initializer=initial)  # [K, B]
    return tf.transpose(taken)


def _random_subset(population, count, num_slots, seed):
    """`count` [B] distinct indices drawn uniformly from range(population) [B], in slots [B, num_slots]
    (slots >= count hold junk), by Floyd's algorithm: for s = 0, 1, ..., count - 1, with
    j = population - count + s, draw t uniformly from [0, j] and take t, or j if t is already taken.
    Every subset of `count` indices is equally likely, after `count` draws (no ordering of all of them)."""
    j = (population - count)[:, None] + tf.range(num_slots)[None, :]  # [B, N]
    bits = tf.random.stateless_uniform(tf.shape(j), seed, minval=None, maxval=None, dtype=tf.uint32)
    product = tf.cast(bits, tf.int64) * tf.cast(j + 1, tf.int64)  # floor(bits * (j + 1) / 2**32) is in [0, j]
    draws = tf.cast(tf.bitwise.right_shift(product, 32), tf.int32)  # [B, N]
    taken = []
    for t, j_s in zip(tf.unstack(draws, num_slots, axis=1), tf.unstack(j, num_slots, axis=1), strict=True):
        if taken:  # t, unless an earlier step took it
            t = tf.where(tf.reduce_any(tf.stack(taken, axis=1) == t[:, None], axis=1), j_s, t)
        taken.append(t)
    return tf.stack(taken, axis=1) if taken else tf.zeros_like(j)


def _single_pieces(candidate, budget, config, seed):
    """Without whole words: min(budget, candidates) [B] candidates chosen uniformly, as positions [B, P]
    in ascending order (then zeros) and valid [B, P]. Google shuffles the candidates and takes the first
    `budget` ones: a uniformly random subset of them."""
    P = config.max_predictions_per_seq
    population = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)  # [B] candidates per row
    count = tf.minimum(budget, population)
    index = _random_subset(population, count, P, seed)  # [B, P] the chosen candidates, numbered in each row
    valid = tf.range(P)[None, :] < count[:, None]
    # The k-th candidate of row b is the (first[b] + k)-th True of `candidate` in row-major order.
    first = tf.cumsum(population, exclusive=True)  # [B]
    candidate_positions = tf.concat([tf.cast(tf.where(candidate)[:, 1], tf.int32), [0]], axis=0)
    nth = tf.where(valid, first[:, None] + index, tf.size(candidate_positions) - 1)
    position = tf.gather(candidate_positions, nth)  # [B, P]
    ascending = tf.sort(tf.where(valid, position, tf.shape(candidate)[1] + tf.range(P)[None, :]), axis=1)
    return tf.where(valid, ascending, 0), valid


def _whole_words(ids, candidate, budget, config, order_seed, choice_seed):
    """With whole words: Google's loop over the words in a uniformly random order. Returns positions [B, P]
    in ascending order (then zeros), valid [B, P] and the 80/10/10 draw of each slot's word [B, P]."""
    B, S = tf.shape(ids)[0], tf.shape(ids)[1]
    P = config.max_predictions_per_seq
    starts = _word_starts(ids, candidate, config)
    word_length = _word_lengths(starts, candidate)

    # Visit the words in a uniformly random order (sorted random keys), taking those that fit.
    keys = tf.where(starts, tf.random.stateless_uniform([B, S], order_seed), 2.0)
    negative_keys, word_start = tf.math.top_k(-keys, k=S)  # [B, S] in visiting order
    lengths = tf.where(negative_keys > -2.0, tf.gather(word_length, word_start, batch_dims=1), 0)
    taken = tf.where(_greedy_fit(lengths, budget), lengths, 0)  # [B, S] pieces taken from each word
    word_choice = tf.random.stateless_uniform(tf.shape(taken), choice_seed)  # the 80/10/10 draw of each word

    # The taken pieces, at most P: slot j holds a piece of the word k with end[k-1] <= j < end[k].
    end = tf.cumsum(taken, axis=1)  # [B, S]
    slot = tf.broadcast_to(tf.range(P), [B, P])
    word = tf.minimum(tf.searchsorted(end, slot, side="right"), S - 1)  # [B, P]
    valid = slot < end[:, -1:]  # [B, P]
    piece = slot - tf.gather(end - taken, word, batch_dims=1)  # index of the piece within its word
    position = tf.gather(word_start, word, batch_dims=1) + piece  # [B, P]
    choice = tf.gather(word_choice, word, batch_dims=1)

    # Ascending positions, padding last.
    order = tf.argsort(tf.where(valid, position, S + slot), axis=1, stable=True)
    valid = tf.gather(valid, order, batch_dims=1)
    position = tf.where(valid, tf.gather(position, order, batch_dims=1), 0)
    return position, valid, tf.gather(choice, order, batch_dims=1)


def _random_tokens(shape, seed, config):
    if config.random_token_ids is None:
        return tf.random.stateless_uniform(shape, seed, minval=0, maxval=config.vocab_size, dtype=tf.int32)
    choices = tf.constant(config.random_token_ids, tf.int32)
    index = tf.random.stateless_uniform(shape, seed, minval=0, maxval=tf.size(choices), dtype=tf.int32)
    return tf.gather(choices, index)


def mask_tokens(token_ids, config, seed):
    """Masks token_ids int [B, S] (or [S]) per the module docstring; `seed` is an int tensor of shape [2].

    Returns a dict with Google's feature names: `input_ids` int32 [B, S], `masked_lm_positions` int32
    [B, P], `masked_lm_ids` int32 [B, P] (the original tokens), `masked_lm_weights` float32 [B, P]
    (1.0 for real predictions, 0.0 for padding), P = config.max_predictions_per_seq.
    """
    ids = tf.cast(tf.convert_to_tensor(token_ids), tf.int32)
    unbatched = ids.shape.rank == 1
    if unbatched:
        ids = ids[None, :]
    B, S = tf.shape(ids)[0], tf.shape(ids)[1]
    P = config.max_predictions_per_seq
    order_seed, choice_seed, token_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))

    is_token = ids != config.pad_id
    candidate = is_token & (ids != config.cls_id) & (ids != config.sep_id)  # [B, S]
    budget = _num_to_predict(tf.reduce_sum(tf.cast(is_token, tf.int32), axis=1), config)  # [B]
    if config.whole_word_mask:
        position, valid, choice = _whole_words(ids, candidate, budget, config, order_seed, choice_seed)
    else:
        position, valid = _single_pieces(candidate, budget, config, order_seed)
        choice = tf.random.stateless_uniform([B, P], choice_seed)  # the 80/10/10 draw of each piece

    original = tf.where(valid, tf.gather(ids, position, batch_dims=1), 0)  # [B, P]
    random_ids = _random_tokens([B, P], token_seed, config)
    replacement = tf.where(choice < 0.8, config.mask_id, tf.where(choice < 0.9, original, random_ids))

    # Write the replacements in, as differences added at their flat index (padding slots add 0 at 0).
    flat_index = tf.range(B)[:, None] * S + position  # [B, P]
    change = tf.math.unsorted_segment_sum(tf.where(valid, replacement - original, 0), flat_index, B * S)
    out = {
        "input_ids": ids + tf.reshape(change, [B, S]),
        "masked_lm_positions": tf.reshape(position, [-1, P]),
        "masked_lm_ids": tf.reshape(original, [-1, P]),
        "masked_lm_weights": tf.reshape(tf.cast(valid, tf.float32), [-1, P]),
    }
    if unbatched:
        out = {name: value[0] for name, value in out.items()}
    return out


def unmask(input_ids, masked_lm_positions, masked_lm_ids, masked_lm_weights):
    """The original token ids [B, S] (or [S]) of a Google-format record: writes masked_lm_ids back at
    masked_lm_positions wherever masked_lm_weights > 0."""
    ids = tf.convert_to_tensor(input_ids)
    unbatched = ids.shape.rank == 1
    positions = tf.cast(masked_lm_positions, tf.int32)
    labels = tf.cast(masked_lm_ids, ids.dtype)
    weights = tf.convert_to_tensor(masked_lm_weights)
    if unbatched:
        ids, positions, labels, weights = ids[None], positions[None], labels[None], weights[None]
    real = tf.where(weights > 0)  # [K, 2] (row, slot)
    rows = tf.cast(real[:, 0], tf.int32)
    targets = tf.stack([rows, tf.gather_nd(positions, real)], axis=1)  # [K, 2] (row, position)
    restored = tf.tensor_scatter_nd_update(ids, targets, tf.gather_nd(labels, real))
    return restored[0] if unbatched else restored
