"""Corpora the vocab/prepare tests make: deterministic pseudo-English, one sentence per line."""

from __future__ import annotations

import random
from pathlib import Path

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "pe",
    "da",
    "zu",
    "fo",
    "gri",
    "tha",
    "mon",
    "ber",
]


def words(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = {"the", "a", "of", "and", "to", "in", "is", "it", "was", "for"}
    while len(out) < n:
        out.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(out)


def sentence(rng: random.Random, vocab: list[str], n_words: int) -> str:
    ws = [rng.choice(vocab) for _ in range(n_words)]
    ws[0] = ws[0].capitalize()
    if rng.random() < 0.2:
        ws.insert(rng.randrange(1, len(ws)), "Café")  # an accent the normaliser must strip
    return " ".join(ws) + rng.choice([".", ".", ".", "!", "?"])


def documents(
    n_docs: int, sentences: tuple[int, int], sentence_words: tuple[int, int], seed: int = 1
) -> list[list[str]]:
    rng = random.Random(seed)
    vocab = words()
    return [
        [sentence(rng, vocab, rng.randint(*sentence_words)) for _ in range(rng.randint(*sentences))]
        for _ in range(n_docs)
    ]


def write_corpus(path: Path, docs: list[list[str]]) -> Path:
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path
