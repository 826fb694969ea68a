"""`albertctl vocab`: train a vocabulary (the trainers live in `data/vocab.py`).

`kind="sentencepiece"` (the default) trains a SentencePiece unigram model with the flags of
ALBERT's released `30k-clean.model` (SPEC section 2), changeable through `options` (CLI:
`--spm key=value`); `kind="wordpiece"` trains a BERT `vocab.txt`, as the Chinese models use.
The vocabulary size is the profile's `model.vocab_size` unless `vocab_size` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from albertctl.core.config import Profile
from albertctl.core.errors import AlbertError
from albertctl.data.corpus import DatasetSource
from albertctl.data.vocab import KINDS, VocabResult, train_sentencepiece, train_wordpiece


def run(
    profile: Profile,
    inputs: list[str | Path] | DatasetSource | None = None,
    output: Path | str | None = None,
    vocab_size: int | None = None,
    options: dict[str, Any] | None = None,
    seed: int | None = None,
    num_threads: int = 1,
    kind: str = "sentencepiece",
) -> VocabResult:
    """Train `<output>.model` and `<output>.vocab` (SentencePiece; output default `spiece`) or
    `<output>.txt` (WordPiece; default `vocab`) from files/globs, a dataset, or (no input) the
    built-in sample corpus. Returns the summary the CLI prints."""
    if kind not in KINDS:
        raise AlbertError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "wordpiece":
        if options:
            raise AlbertError("--spm sets SentencePiece trainer flags; it does not apply to --kind wordpiece")
        return train_wordpiece(profile, inputs, "vocab" if output is None else output, vocab_size)
    output = "spiece" if output is None else output
    return train_sentencepiece(profile, inputs, output, vocab_size, options, seed, num_threads)
