"""The pretraining-data rules against small transcriptions of the original's
(google-research/albert create_pretraining_data.py), written here in our own words:
masking budget, word starts, n-gram masking, chunking and A/B pairing. Pure functions on
made-up ids, no files: the whole module runs in a few seconds."""

import random
from collections import Counter

import pytest

from albertctl.core.config import DataConfig
from albertctl.data.pretraining import (
    MaskingVocab,
    create_chunks,
    is_start_piece,
    mask_sequence,
    ngram_weights,
    num_to_mask,
    pair_chunk,
    sentence_ends,
)

# --------------------------------------------------------------------------- transcriptions


def original_budget(n_tokens: int, max_predictions_per_seq: int, masked_lm_prob: float) -> int:
    """How many tokens the original masks: the masked_lm_prob share of the whole sequence
    ([CLS] and [SEP] counted), rounded, at least one, never above the per-sequence maximum."""
    return min(max_predictions_per_seq, max(1, int(round(n_tokens * masked_lm_prob))))


# The punctuation the original lists. It adds "€" and "£" as UTF-8 *bytes*, which never equal
# a piece (a str) under Python 3; such pieces start words anyway as "not English" characters.
ORIGINAL_PUNCTUATION = set('!"#$%&"()*+,-./:;?@[\\]^_`{|}~')


def original_start_piece(piece: str) -> bool:
    """The original's test for a SentencePiece piece that begins a word."""
    if piece.startswith("▁") or piece.startswith("<") or piece in ORIGINAL_PUNCTUATION:
        return True
    allowed = set("abcdefghijklmnopqrstuvwxyz") | ORIGINAL_PUNCTUATION
    return not all(ch.lower() in allowed for ch in piece)


def original_masking(ids, len_a, starts, budget, ngram, rng, mask_id, pool):
    """The original's n-gram whole-word masking, drawing every random number from `rng`
    (the original draws n from numpy's global generator, the rest from its `rng`)."""
    specials = {0, 1 + len_a, len(ids) - 1}
    words: list[list[int]] = []
    for i in range(len(ids)):
        if i in specials:
            continue
        if words and not starts[ids[i]]:
            words[-1].append(i)
        else:
            words.append([i])
    probs = [1 / n for n in range(1, ngram + 1)]
    probs = [p / sum(probs) for p in probs]
    # for every candidate start, its 1-, 2-, ... n-word spans (shorter near the end)
    candidates = [[words[w : w + n] for n in range(1, ngram + 1)] for w in range(len(words))]
    rng.shuffle(candidates)
    out = list(ids)
    picked: list[tuple[int, int]] = []
    covered: set[int] = set()
    for spans in candidates:
        if len(picked) >= budget:
            break
        r, n, acc = rng.random(), 1, probs[0]
        while r >= acc and n < ngram:
            acc += probs[n]
            n += 1
        chosen = [p for word in spans[n - 1] for p in word]
        while len(picked) + len(chosen) > budget and n > 1:
            n -= 1
            chosen = [p for word in spans[n - 1] for p in word]
        if len(picked) + len(chosen) > budget or covered & set(chosen):
            continue
        for p in chosen:
            covered.add(p)
            if rng.random() < 0.8:
                out[p] = mask_id
            elif rng.random() < 0.5:
                pass  # kept as it was
            else:
                out[p] = pool[rng.randint(0, len(pool) - 1)]
            picked.append((p, ids[p]))
    picked.sort()
    return out, [p for p, _ in picked], [o for _, o in picked]


def original_chunk_boundaries(lengths: list[int], max_num_tokens: int, short_seq_prob: float, rng):
    """Where the original closes its chunks (in sentences) for one document, under SOP."""
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    ends, length = [], 0
    for i, n in enumerate(lengths):
        length += n
        if i == len(lengths) - 1 or length >= target:
            ends.append(i + 1)
            length = 0
    return ends


def original_sop_pair(chunk: list[list[int]], max_num_tokens: int, rng):
    """A, B and the label the original makes from a chunk of two or more sentences (SOP)."""
    a_end = rng.randint(1, len(chunk) - 1)
    a = [t for s in chunk[:a_end] for t in s]
    b = [t for s in chunk[a_end:] for t in s]
    label = 0
    if rng.random() < 0.5:
        a, b, label = b, a, 1
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b, label


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("length", "expected"), [(10, 2), (100, 15), (512, 20), (64, 10), (7, 1)])
def test_masking_budget_is_the_originals(length, expected):
    base = DataConfig()  # 20 per sequence, 15%
    assert num_to_mask(length, base) == original_budget(length, 20, 0.15) == expected
    tiny = DataConfig(max_seq_length=64, max_predictions_per_seq=10)
    assert num_to_mask(length, tiny) == original_budget(length, 10, 0.15)


TRICKY_PIECES = {
    "▁the": True,
    "▁": True,
    "the": False,
    "ing": False,
    "S": False,  # upper-case English letters are English letters
    "s,": False,  # letters and listed punctuation only: continues the word
    ".)": False,
    ",": True,
    "(": True,
    "€": True,
    "£": True,
    "€5": True,
    "a€": True,  # the original's "€" is bytes: inside a piece it is no listed punctuation
    ".£": True,
    "1": True,
    "19": True,
    "x2": True,
    "é": True,
    "café": True,
    "'s": True,  # the apostrophe is not in the original's list
    "'": True,
    "—": True,
    "中": True,
    "<unk>": True,
    "<": True,
    "=": True,
    "[CLS]": False,
}


def test_word_starts_are_the_originals():
    for piece, expected in TRICKY_PIECES.items():
        assert is_start_piece(piece) == original_start_piece(piece) == expected, piece


def _random_case(rng: random.Random, vocab_size: int = 50):
    starts = bytes(rng.random() < 0.6 for _ in range(vocab_size))
    len_a, len_b = rng.randint(1, 40), rng.randint(1, 40)
    ids = [0] + [rng.randrange(5, vocab_size) for _ in range(len_a)] + [1]
    ids += [rng.randrange(5, vocab_size) for _ in range(len_b)] + [1]
    return ids, len_a, starts


def test_masking_equals_the_original_procedure():
    """Same generator, same choices: positions, original ids and replaced ids all equal."""
    pool = tuple(range(5, 50))
    for seed in range(300):
        case = random.Random(seed)
        ids, len_a, starts = _random_case(case)
        data = DataConfig(
            max_seq_length=128,
            masked_lm_prob=case.choice([0.15, 0.3]),
            max_predictions_per_seq=case.choice([5, 20]),
            ngram=case.choice([1, 2, 3]),
        )
        vocab = MaskingVocab(starts, mask_id=4, replacement_ids=pool)
        m = mask_sequence(ids, len_a, vocab, data, random.Random(seed))
        budget = original_budget(len(ids), data.max_predictions_per_seq, data.masked_lm_prob)
        out, positions, labels = original_masking(
            ids, len_a, starts, budget, data.ngram, random.Random(seed), 4, pool
        )
        assert (m.input_ids, m.positions, m.labels) == (out, positions, labels), seed
        assert len(m.positions) <= budget


def test_span_lengths_are_drawn_with_p_proportional_to_one_over_n():
    """With a budget far from binding, the chosen spans are 1, 2, 3 words 6/11, 3/11, 2/11
    of the time (±0.02; about 5,000 spans). Near the budget the original shortens spans, so
    a binding budget skews them short; that is its rule too."""
    data = DataConfig(max_seq_length=8192, max_predictions_per_seq=1000, masked_lm_prob=0.15)
    vocab = MaskingVocab(bytes([1]) * 50, mask_id=4, replacement_ids=tuple(range(5, 50)))
    spans = Counter()
    for seed in range(25):
        rng = random.Random(seed)
        ids = (
            [0]
            + [rng.randrange(5, 50) for _ in range(1000)]
            + [1]
            + [rng.randrange(5, 50) for _ in range(1000)]
        )
        ids.append(1)
        spans.update(mask_sequence(ids, 1000, vocab, data, rng).span_lengths)
    total = sum(spans.values())
    assert total > 4000
    for n, share in zip((1, 2, 3), (6 / 11, 3 / 11, 2 / 11), strict=True):
        assert abs(spans[n] / total - share) <= 0.02, spans
    assert [round(x, 6) for x in ngram_weights(3)] == [round(6 / 11, 6), round(9 / 11, 6), 1.0]


def test_chunks_close_where_the_originals_do():
    data = DataConfig(max_seq_length=40, short_seq_prob=0.3)
    for seed in range(200):
        case = random.Random(1000 + seed)
        doc = [
            [case.randrange(5, 50) for _ in range(case.randint(2, 15))] for _ in range(case.randint(1, 12))
        ]
        word_start = bytes([1]) * 50
        chunks = create_chunks(doc, data, random.Random(seed), word_start, Counter())
        ours = [sum(len(c) for c in chunks[: k + 1]) for k in range(len(chunks))]
        lengths = [len(s) for s in doc]
        assert ours == original_chunk_boundaries(lengths, 37, 0.3, random.Random(seed)), seed


def test_pairs_of_multi_sentence_chunks_are_the_originals():
    data = DataConfig(max_seq_length=32)
    for seed in range(200):
        case = random.Random(seed)
        chunk = [
            [case.randrange(5, 50) for _ in range(case.randint(1, 20))] for _ in range(case.randint(2, 6))
        ]
        tokens = [t for s in chunk for t in s]
        pair = pair_chunk(tokens, sentence_ends(chunk), data, bytes([1]) * 50, random.Random(seed))
        assert (pair.tokens_a, pair.tokens_b, pair.label) == original_sop_pair(chunk, 29, random.Random(seed))


def test_one_sentence_chunk_is_cut_at_a_word_start():
    """albertctl's deliberate difference (google-research/albert issue 234): a one-sentence
    chunk becomes A and B of that sentence, cut before a word-start piece, never a random B."""
    word_start = bytes([0] * 10 + [1] * 10)  # ids 10..19 start words
    sentence = [12, 3, 4, 15, 6, 17, 8]
    data = DataConfig(max_seq_length=32)
    cuts = Counter()
    for seed in range(200):
        pair = pair_chunk(sentence, [len(sentence)], data, word_start, random.Random(seed))
        first, second = (pair.tokens_b, pair.tokens_a) if pair.label else (pair.tokens_a, pair.tokens_b)
        assert first + second == sentence
        cuts[len(first)] += 1
    assert set(cuts) == {3, 5}
