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


# ---- a small Chinese world with learnable structure -------------------------------------------
# Each document keeps to one topic: a group of 4 common characters. A masked character is one
# of the 4 its context shows (about 1 in 4), where the most frequent token is right about 1 in
# 11. Some sentences carry a made-up Latin word ("kabedo"), which WordPiece cuts into ## pieces.
COMMON = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研"
TOPICS = [COMMON[2 * i : 2 * i + 2] for i in range(30)]
SYLLABLES = ["ka", "be", "do", "ri", "mo"]  # made-up Latin words of 2-4 of them: too many for whole pieces


def topic_sentence(rng, topic: int) -> str:
    chars = [rng.choice(TOPICS[topic]) for _ in range(rng.randint(8, 14))]
    if rng.random() < 0.3:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        chars.insert(rng.randint(0, len(chars)), f" {word} ")
    return "".join(chars) + "。"


def chinese_documents(n: int, seed: int = 0) -> list[list[str]]:
    """n documents of 3-6 sentences, each document on one topic."""
    import random

    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        topic = rng.randrange(len(TOPICS))
        docs.append([topic_sentence(rng, topic) for _ in range(rng.randint(3, 6))])
    return docs


def write_documents(path: Path, docs: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path
