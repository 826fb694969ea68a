"""Small Chinese fixtures built in code: a WordPiece vocab.txt in BERT's layout, mixed text."""

from __future__ import annotations

from pathlib import Path

CHARS = "我们你他她的是在有一个这不了和大学生说北京上海天气今年中国人好很吃饭喜欢看书写字去来"
WORDS = ["the", "quick", "brown", "fox", "cafe", "hello", "world", "run", "albert", "model", "12", "e"]
CONTINUATIONS = ["##able", "##s", "##ing", "##ed"]
PUNCT = list(".,!?;:()[]\"'-，。！？；：、（）《》“”…—")
ALNUM = list("abcdefghijklmnopqrstuvwxyz0123456789")


def vocab_pieces(unused: int = 3) -> list[str]:
    """BERT's order: [PAD], [unusedN], [UNK] [CLS] [SEP] [MASK], <S> <T>, then pieces."""
    specials = ["[PAD]", *[f"[unused{i}]" for i in range(1, unused + 1)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return [
        *specials,
        "<S>",
        "<T>",
        *CHARS,
        *WORDS,
        "un",
        *CONTINUATIONS,
        *PUNCT,
        *ALNUM,
        *[f"##{c}" for c in ALNUM],
    ]


def write_vocab(path: Path, pieces: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(pieces or vocab_pieces()) + "\n", encoding="utf-8")
    return path


def vocab_of_size(n: int) -> list[str]:
    """`vocab_pieces()` cut or padded (with ##-pieces of spare CJK characters) to n entries."""
    pieces = vocab_pieces()
    spare = (f"##{chr(0x4E00 + i)}" for i in range(n))
    while len(pieces) < n:
        pieces.append(next(spare))
    return pieces[:n]
