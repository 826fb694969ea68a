"""The one tokenizer: SentencePiece with ALBERT's text normalisation, pair encoding, offsets.

Normalisation (SPEC section 2, as the original `tokenization.py` does it before SentencePiece):
collapse whitespace, turn ``` `` ``` and `''` into `"`, strip accents (NFKD, drop combining
marks) and lower-case when `do_lower_case`. Every normalised character remembers the
original character it came from, so token offsets point into the user's text (SQuAD spans).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from albertctl.core.errors import AlbertError

SPECIAL_TOKENS = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
WORD_START = "\u2581"  # SentencePiece's "▁": a piece that begins a word


@dataclass(frozen=True)
class Encoding:
    ids: list[int]
    offsets: list[tuple[int, int]]  # (start, end) character offsets into the original text


def normalize_with_offsets(text: str, do_lower_case: bool = True) -> tuple[str, list[tuple[int, int]]]:
    """ALBERT's normalisation; returns the text and, per output char, the (start, end) span of
    the original characters it came from."""
    chars: list[str] = []
    origin: list[tuple[int, int]] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "`'" and i + 1 < n and text[i + 1] == ch:  # `` and '' -> "
            pieces, width = '"', 2
        else:
            pieces, width = ch, 1
            pieces = "".join(c for c in unicodedata.normalize("NFKD", pieces) if not unicodedata.combining(c))
            if do_lower_case:
                pieces = pieces.lower()
        for c in pieces:
            if c.isspace():
                c = " "
            chars.append(c)
            origin.append((i, i + width))
        i += width
    # collapse whitespace runs and strip the ends
    out: list[str] = []
    out_origin: list[tuple[int, int]] = []
    for c, o in zip(chars, origin, strict=True):
        if c == " " and (not out or out[-1] == " "):
            continue
        out.append(c)
        out_origin.append(o)
    if out and out[-1] == " ":
        out.pop()
        out_origin.pop()
    return "".join(out), out_origin


_PAIRED_QUOTES = re.compile(r"``|''")


def normalize_text(text: str, do_lower_case: bool = True) -> str:
    """`normalize_with_offsets(text)[0]` without the offsets, about 20x faster: whole-string
    operations instead of a Python loop per character (the pretraining data path needs it)."""
    text = _PAIRED_QUOTES.sub('"', text)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        if not text.isascii():  # only the rare non-ASCII sentence pays a loop per character
            text = "".join(c for c in text if not unicodedata.combining(c))
        if do_lower_case:  # str.lower turns a word-final capital sigma into ς; per character it is σ
            text = text.replace("\u03a3", "\u03c3")
    if do_lower_case:
        text = text.lower()
    return " ".join(text.split())


class Tokenizer:
    """SentencePiece model + ALBERT conventions. Special ids come from the model file."""

    kind = "sentencepiece"

    def __init__(self, model_file: Path | str, do_lower_case: bool = True) -> None:
        path = Path(model_file)
        if path.is_dir():
            raise AlbertError(f"{path}: is a directory, expected a SentencePiece model file (*.model)")
        if not path.is_file():
            raise AlbertError(f"SentencePiece model {path} not found")
        self.path = path
        self.do_lower_case = do_lower_case
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(path))
        except (OSError, RuntimeError) as err:
            raise AlbertError(f"{path}: not a SentencePiece model ({str(err).splitlines()[0]})") from None
        missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if self.sp.PieceToId(t) == self.sp.unk_id()]
        if missing:
            raise AlbertError(
                f"{path}: vocabulary lacks {', '.join(missing)}; train it with "
                "control_symbols=[CLS],[SEP],[MASK] (albertctl vocab does)"
            )
        self.pad_id = max(self.sp.pad_id(), 0)
        self.unk_id = self.sp.unk_id()
        self.cls_id = self.sp.PieceToId("[CLS]")
        self.sep_id = self.sp.PieceToId("[SEP]")
        self.mask_id = self.sp.PieceToId("[MASK]")
        self.vocab_size = self.sp.GetPieceSize()
        self._word_start = [self.sp.IdToPiece(i).startswith(WORD_START) for i in range(self.vocab_size)]
        self.special_ids = frozenset(
            i for i in range(self.vocab_size) if self.sp.IsControl(i) or self.sp.IsUnknown(i)
        ) | {self.pad_id}

    def normalize(self, text: str) -> str:
        return normalize_text(text, self.do_lower_case)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens."""
        return self.sp.EncodeAsIds(self.normalize(text))

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens), in one SentencePiece call on this thread."""
        return self.sp.encode([self.normalize(t) for t in texts], out_type=int, num_threads=1)

    def encode_with_offsets(self, text: str) -> Encoding:
        """Ids plus, per token, the (start, end) character span in the original `text`."""
        norm, origin = normalize_with_offsets(text, self.do_lower_case)
        try:  # sentencepiece >= 0.2.1 spells it return_type="proto"; older releases immutable_proto
            proto = self.sp.encode(norm, return_type="proto")
        except (TypeError, ValueError):
            proto = self.sp.encode(norm, out_type="immutable_proto")
        # proto offsets are byte offsets into the UTF-8 of `norm`; map bytes -> chars -> original
        byte_to_char = []
        for ci, ch in enumerate(norm):
            byte_to_char.extend([ci] * len(ch.encode("utf-8")))
        byte_to_char.append(len(norm))
        ids, offsets = [], []
        for piece in proto.pieces:
            ids.append(piece.id)
            b, e = piece.begin, piece.end
            start_c, end_c = byte_to_char[b], byte_to_char[e] if e < len(byte_to_char) else len(norm)
            while start_c < end_c and norm[start_c] == " ":  # the "▁" covers the space before a word
                start_c += 1
            if start_c >= end_c:  # a piece that is only a space marker
                pos = origin[min(start_c, len(origin) - 1)][0] if origin else 0
                offsets.append((pos, pos))
                continue
            offsets.append((origin[start_c][0], origin[end_c - 1][1]))
        return Encoding(ids, offsets)

    def is_word_start(self, token_id: int) -> bool:
        return self._word_start[token_id]

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.IdToPiece(token_id)

    def decode(self, ids: list[int]) -> str:
        return self.sp.DecodeIds([i for i in ids if i not in self.special_ids])

    def build_inputs(self, a: list[int], b: list[int] | None = None) -> tuple[list[int], list[int]]:
        """`[CLS] A [SEP]` (segment 0) and `B [SEP]` (segment 1)."""
        ids = [self.cls_id, *a, self.sep_id]
        types = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_id]
            types += [1] * (len(b) + 1)
        return ids, types

    def encode_pair(
        self, text_a: str, text_b: str | None, max_seq_length: int
    ) -> tuple[list[int], list[int]]:
        """Encode and truncate the longer side one token at a time until it fits (GLUE style)."""
        a = self.encode(text_a)
        b = self.encode(text_b) if text_b is not None else None
        budget = max_seq_length - (3 if b is not None else 2)
        if b is None:
            a = a[:budget]
        else:
            a, b = truncate_longest_first(a, b, budget)
        return self.build_inputs(a, b)


def load_tokenizer(vocab_file: Path | str, do_lower_case: bool = True) -> Tokenizer:
    """The tokenizer for a vocabulary file: a BERT WordPiece `vocab.txt` (any `*.txt`, as the
    Chinese models' vocab_chinese.txt) or a SentencePiece model (anything else)."""
    if Path(vocab_file).suffix == ".txt":
        from albertctl.data.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer(vocab_file, do_lower_case)
    return Tokenizer(vocab_file, do_lower_case)


def truncate_longest_first(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer list until len(a) + len(b) <= budget."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b
