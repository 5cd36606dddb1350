"""data.masking: Google's masked-LM rules, on hand-made sequences and as statistics over many masks."""

import numpy as np
import pytest
import tensorflow as tf

from data.masking import MaskingConfig, mask_tokens, unmask

PAD, CLS, SEP, MASK = 0, 1, 2, 3
V = 1000  # ids >= 10 are ordinary tokens; ids 500..999 are "##" continuation pieces in whole-word tests
CONTINUATIONS = tuple(range(500, 1000))


def config(**overrides):
    settings = dict(vocab_size=V, cls_id=CLS, sep_id=SEP, mask_id=MASK, pad_id=PAD)
    return MaskingConfig(**{**settings, **overrides})


def sequences(batch, length_a, length_b, seq_length, rng, continuation_prob=0.0):
    """[CLS] A [SEP] B [SEP] padded: words are ids 10..499, pieces after a word may be continuations."""
    ids = np.zeros([batch, seq_length], np.int32)
    for row in range(batch):
        tokens = [CLS]
        for n in (length_a, length_b):
            for _ in range(n):
                is_piece = tokens[-1] not in (CLS, SEP) and rng.random() < continuation_prob
                tokens.append(rng.integers(500, 1000) if is_piece else rng.integers(10, 500))
            tokens.append(SEP)
        ids[row, : len(tokens)] = tokens
    return ids


def run(ids, cfg, seed=(1, 2)):
    out = mask_tokens(tf.constant(ids), cfg, tf.constant(seed, tf.int64))
    return {k: v.numpy() for k, v in out.items()}


def expected_count(length, prob, max_predictions):
    return min(max_predictions, max(1, int(round(length * prob))))  # Python's round: halves to even


@pytest.mark.parametrize("length_a,length_b", [(3, 4), (10, 20), (30, 50), (60, 65), (1, 1)])
def test_number_of_predictions_is_googles_formula(length_a, length_b):
    rng = np.random.default_rng(0)
    ids = sequences(8, length_a, length_b, 128, rng)
    out = run(ids, config())
    length = length_a + length_b + 3  # counts [CLS] and both [SEP]
    assert (out["masked_lm_weights"].sum(axis=1) == expected_count(length, 0.15, 20)).all()


def test_rounding_halves_to_even_like_python():
    # 30 tokens * 0.15 = 4.5 -> 4 ; 10 tokens * 0.15 = 1.5 -> 2 ; 50 * 0.15 = 7.5 -> 8
    for length, expected in ((30, 4), (10, 2), (50, 8)):
        assert expected_count(length, 0.15, 20) == expected
        ids = sequences(4, length - 3 - (length - 3) // 2, (length - 3) // 2, 64, np.random.default_rng(1))
        assert (run(ids, config())["masked_lm_weights"].sum(axis=1) == expected).all()


def test_masked_lm_prob_zero_still_masks_one_token_and_zero_predictions_masks_none():
    ids = sequences(4, 5, 5, 16, np.random.default_rng(2))
    assert (run(ids, config(masked_lm_prob=0.0))["masked_lm_weights"].sum(axis=1) == 1).all()
    out = run(ids, config(max_predictions_per_seq=0))
    assert out["masked_lm_positions"].shape == (4, 0)
    np.testing.assert_array_equal(out["input_ids"], ids)


def test_outputs_follow_googles_record_layout():
    rng = np.random.default_rng(3)
    ids = sequences(64, 20, 30, 64, rng)
    out = run(ids, config(max_predictions_per_seq=12))
    assert out["input_ids"].dtype == np.int32 and out["input_ids"].shape == (64, 64)
    assert out["masked_lm_positions"].shape == (64, 12) and out["masked_lm_positions"].dtype == np.int32
    assert out["masked_lm_ids"].dtype == np.int32 and out["masked_lm_weights"].dtype == np.float32
    for row in range(64):
        n = int(out["masked_lm_weights"][row].sum())
        positions = out["masked_lm_positions"][row]
        assert (out["masked_lm_weights"][row, :n] == 1).all() and (
            out["masked_lm_weights"][row, n:] == 0
        ).all()
        assert (positions[n:] == 0).all() and (out["masked_lm_ids"][row, n:] == 0).all()
        assert list(positions[:n]) == sorted(set(positions[:n]))  # ascending, distinct
        np.testing.assert_array_equal(out["masked_lm_ids"][row, :n], ids[row, positions[:n]])
        untouched = np.ones(64, bool)
        untouched[positions[:n]] = False
        np.testing.assert_array_equal(out["input_ids"][row, untouched], ids[row, untouched])


def test_cls_sep_and_padding_are_never_masked():
    rng = np.random.default_rng(4)
    ids = sequences(2000, 2, 3, 16, rng)  # 8 tokens, 5 candidates, 1 prediction each
    out = run(ids, config(masked_lm_prob=1.0, max_predictions_per_seq=16))  # asks for every token
    for row in range(len(ids)):
        positions = out["masked_lm_positions"][row, : int(out["masked_lm_weights"][row].sum())]
        assert set(positions) == {1, 2, 4, 5, 6}  # all candidates, never 0 ([CLS]), 3, 7 ([SEP]) or padding
    specials = np.isin(ids, [CLS, SEP, PAD])
    np.testing.assert_array_equal(out["input_ids"][specials], ids[specials])


def test_fifteen_percent_masked_with_80_10_10_replacement():
    rng = np.random.default_rng(5)
    ids = sequences(4000, 60, 63, 128, rng)  # 126 tokens -> round(18.9) = 19 predictions per sequence
    out = run(ids, config())
    weights = out["masked_lm_weights"]
    assert weights.sum() / (ids != PAD).sum() == pytest.approx(19 / 126)
    real = weights > 0
    rows = np.repeat(np.arange(len(ids))[:, None], 20, axis=1)[real]
    positions = out["masked_lm_positions"][real]
    original, now = ids[rows, positions], out["input_ids"][rows, positions]
    n = real.sum()  # 76000 predictions
    masked, kept = (now == MASK).mean(), (now == original).mean()
    randomised = ((now != MASK) & (now != original)).mean()
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(
        0.1 + 0.1 / V, abs=0.01
    )  # a random token equals the original 1/V of the time
    assert randomised == pytest.approx(0.1 * (1 - 2 / V), abs=0.01)
    assert n == 4000 * 19
    replaced = now[(now != MASK) & (now != original)]
    assert np.unique(replaced).size > 0.8 * V / 2  # random tokens spread over the vocabulary


def test_every_candidate_position_is_chosen_equally_often():
    rng = np.random.default_rng(6)
    ids = sequences(20000, 9, 10, 32, rng)  # 22 tokens -> 3 predictions among 19 candidates
    out = run(ids, config())
    counts = np.bincount(out["masked_lm_positions"][out["masked_lm_weights"] > 0], minlength=32)
    candidates = [p for p in range(22) if p not in (0, 10, 21)]
    expected = 20000 * 3 / 19
    assert (counts[[0, 10, 21]] == 0).all() and (counts[22:] == 0).all()
    np.testing.assert_allclose(counts[candidates], expected, rtol=0.08)  # 4.5 standard deviations


def test_every_subset_of_candidates_is_chosen_equally_often():
    # [CLS] a b [SEP] c d e [SEP]: 5 candidates; masked_lm_prob 0.4 of 8 tokens -> round(3.2) = 3 predictions,
    # so each of the C(5, 3) = 10 subsets of positions {1, 2, 4, 5, 6} should come up 1/10 of the time.
    ids = np.array([[CLS, 10, 11, SEP, 12, 13, 14, SEP]] * 20000, np.int32)
    out = run(ids, config(masked_lm_prob=0.4, max_predictions_per_seq=4))
    assert (out["masked_lm_weights"].sum(axis=1) == 3).all()
    subsets = {}
    for positions in out["masked_lm_positions"][:, :3].tolist():
        subsets[tuple(positions)] = subsets.get(tuple(positions), 0) + 1
    expected = {(a, b, c) for a in range(8) for b in range(a + 1, 8) for c in range(b + 1, 8)
                if not {a, b, c} & {0, 3, 7}}  # fmt: skip
    assert set(subsets) == expected and len(expected) == 10
    np.testing.assert_allclose(list(subsets.values()), 2000, rtol=0.1)  # 4.7 standard deviations


def test_random_replacements_come_from_random_token_ids_when_given():
    ids = sequences(3000, 20, 20, 48, np.random.default_rng(7))
    allowed = tuple(range(100, 110))
    out = run(ids, config(random_token_ids=allowed))
    real = out["masked_lm_weights"] > 0
    rows = np.repeat(np.arange(len(ids))[:, None], 20, axis=1)[real]
    now = out["input_ids"][rows, out["masked_lm_positions"][real]]
    original = ids[rows, out["masked_lm_positions"][real]]
    replaced = now[(now != MASK) & (now != original)]
    assert len(replaced) > 100 and set(replaced) <= set(allowed)


def words_of(row_ids):
    """Words of one hand-built sequence as lists of positions (a word = a piece and its "##" followers)."""
    words = []
    for position, token in enumerate(row_ids):
        if token in (CLS, SEP, PAD):
            continue
        if token >= 500 and words and words[-1][-1] == position - 1:
            words[-1].append(position)
        else:
            words.append([position])
    return words


def test_whole_word_masking_keeps_words_whole_and_decides_80_10_10_per_word():
    rng = np.random.default_rng(8)
    ids = sequences(3000, 40, 40, 96, rng, continuation_prob=0.5)
    # Random replacements from ids no sequence holds, so "random" is never mistaken for "unchanged".
    cfg = config(whole_word_mask=True, continuation_ids=CONTINUATIONS, random_token_ids=tuple(range(4, 10)))
    out = run(ids, cfg)
    outcomes = []
    for row in range(len(ids)):
        n = int(out["masked_lm_weights"][row].sum())
        chosen = set(out["masked_lm_positions"][row, :n])
        assert n <= expected_count(83, 0.15, 20)
        for word in words_of(ids[row]):
            inside = [p in chosen for p in word]
            assert all(inside) or not any(inside), f"row {row}: word {word} partly masked"
            if all(inside):
                now, before = out["input_ids"][row, word], ids[row, word]
                kinds = {
                    "mask" if t == MASK else "same" if t == b else "random"
                    for t, b in zip(now, before, strict=True)
                }
                assert len(kinds) == 1, f"row {row}: word {word} got {kinds}"  # one decision per word
                outcomes.append(kinds.pop())
    counts = {k: outcomes.count(k) / len(outcomes) for k in ("mask", "same", "random")}
    assert counts["mask"] == pytest.approx(0.8, abs=0.02)
    assert counts["same"] == pytest.approx(0.1, abs=0.02)
    assert counts["random"] == pytest.approx(0.1, abs=0.02)


def test_whole_word_masking_skips_a_word_too_long_for_the_budget_and_goes_on():
    # 13 tokens -> round(1.95) = 2 predictions. Words: three 3-piece words and one 1-piece word.
    # Google's loop skips any 3-piece word (it would exceed 2) and keeps looking, so it always ends up
    # masking exactly the 1-piece word at position 11.
    row = [CLS, 20, 600, 601, 21, 602, 603, SEP, 22, 604, 605, 23, SEP] + [PAD] * 3
    ids = np.array([row] * 500, np.int32)
    cfg = config(whole_word_mask=True, continuation_ids=CONTINUATIONS)
    out = run(ids, cfg)
    assert (out["masked_lm_weights"].sum(axis=1) == 1).all()
    assert (out["masked_lm_positions"][:, 0] == 11).all()


def test_whole_word_mode_picks_words_uniformly_and_fills_the_budget():
    # 16 tokens -> round(2.4) = 2 predictions; five 2-piece words: always exactly one whole word.
    row = [CLS, 20, 600, 21, 601, 22, 602, SEP, 23, 603, 24, 604, 25, 26, 27, SEP]
    ids = np.array([row] * 6000, np.int32)
    out = run(ids, config(whole_word_mask=True, continuation_ids=CONTINUATIONS))
    first = out["masked_lm_positions"][:, 0]
    n = out["masked_lm_weights"].sum(axis=1)
    # Either one 2-piece word, or two of the three 1-piece words (25, 26, 27 at positions 12..14).
    assert set(n) == {2}
    frequency = np.bincount(first, minlength=16) / len(ids)
    # 8 words (5 two-piece, 3 one-piece) in random order: the first word visited is taken; if it is a
    # one-piece word, a second one-piece word fills the budget (a two-piece word no longer fits).
    for start in (1, 3, 5, 8, 10):
        assert frequency[start] == pytest.approx(1 / 8, abs=0.02)


def test_a_continuation_piece_after_sep_starts_a_new_word():
    row = [CLS, 20, SEP, 600, 601, SEP]  # "##" pieces right after [SEP] do not join the word before it
    ids = np.array([row] * 400, np.int32)
    out = run(ids, config(whole_word_mask=True, continuation_ids=CONTINUATIONS, masked_lm_prob=0.3))
    positions = {
        tuple(p[: int(w.sum())])
        for p, w in zip(out["masked_lm_positions"], out["masked_lm_weights"], strict=True)
    }
    # Budget round(6 * 0.3) = 2: either the word at 1, or the 2-piece word at 3-4 (were the pieces part
    # of the word at 1, that 3-piece word would never fit).
    assert positions == {(1,), (3, 4)}


def test_same_seed_same_masks_other_seed_other_masks():
    ids = sequences(16, 30, 30, 64, np.random.default_rng(9))
    a, b, c = run(ids, config(), (7, 1)), run(ids, config(), (7, 1)), run(ids, config(), (7, 2))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["masked_lm_positions"], c["masked_lm_positions"])


def test_unbatched_sequences_and_more_predictions_than_positions():
    ids = sequences(1, 2, 2, 8, np.random.default_rng(10))[0]
    out = run(ids, config(max_predictions_per_seq=12, masked_lm_prob=1.0))
    assert out["masked_lm_positions"].shape == (12,)
    assert sorted(out["masked_lm_positions"][:4]) == [1, 2, 4, 5] and out["masked_lm_weights"].sum() == 4


def test_unmask_restores_the_original_tokens():
    ids = sequences(50, 20, 25, 64, np.random.default_rng(11))
    for whole_word in (False, True):
        out = run(ids, config(whole_word_mask=whole_word, continuation_ids=CONTINUATIONS))
        restored = unmask(
            out["input_ids"], out["masked_lm_positions"], out["masked_lm_ids"], out["masked_lm_weights"]
        )
        np.testing.assert_array_equal(restored.numpy(), ids)
        single = unmask(*(out[k][0] for k in ("input_ids", "masked_lm_positions", "masked_lm_ids",
                                                "masked_lm_weights")))  # fmt: skip
        np.testing.assert_array_equal(single.numpy(), ids[0])


def test_works_inside_tf_data_map_with_static_prediction_shape():
    ids = sequences(8, 10, 10, 32, np.random.default_rng(12))
    cfg = config()
    dataset = (
        tf.data.Dataset.from_tensor_slices(ids)
        .batch(4)
        .map(lambda x: mask_tokens(x, cfg, tf.constant([3, 4], tf.int64)))
    )
    assert dataset.element_spec["masked_lm_positions"].shape.as_list() == [None, 20]
    assert dataset.element_spec["input_ids"].shape.as_list() == [None, 32]
    assert sum(int(b["masked_lm_weights"].numpy().sum()) for b in dataset) == 8 * 3  # round(23 * 0.15) = 3
