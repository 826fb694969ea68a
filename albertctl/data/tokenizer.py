"""The one tokenizer: SentencePiece with ALBERT's text normalisation, pair encoding, offsets.

Every path that turns text into ids (pretraining data, GLUE, SQuAD, RACE) goes through
`Tokenizer.encode`, `encode_many` or `encode_with_offsets`, which do what the original
`tokenization.py` does (SPEC section 2):

- `preprocess_text`: collapse whitespace runs and strip the ends, then NFKD and drop combining
  marks (accents), then lower-case the whole string when `do_lower_case`. ``` `` ``` and `''`
  stay as they are (transformers' tokenizer turns them into `"`; the original does not).
- `encode_pieces`: SentencePiece, then every piece longer than one character that ends in a
  digit followed by "," (`▁1990,`) is replaced by the pieces SentencePiece gives for the piece
  without its "," and without any "▁" (`1990` -> `▁1990`, SentencePiece adding its dummy-prefix
  "▁" as it does at the start of any text), followed by a "," piece. The original also meant to
  drop that added "▁" when the piece did not start with one (`7,` inside `x7,`), but it
  compares a `str` piece with the `bytes` "▁" there, which is never equal: the "▁" stays. We
  follow what it does. Only the original piece is re-split, once: the re-encoded pieces are
  not looked at again.

Every normalised character remembers the original character it came from, so token offsets
point into the user's text (SQuAD spans), also for re-split pieces.
"""

from __future__ import annotations

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
    """ALBERT's normalisation (`normalize_text`); returns the text and, per output char, the
    (start, end) span of the original characters it came from."""
    chars: list[str] = []
    origin: list[tuple[int, int]] = []
    pending_space: int | None = None  # a whitespace run between two words: one " "
    in_text = False  # past the leading whitespace
    for i, ch in enumerate(text):
        if ch.isspace():  # str.split()'s notion of whitespace, as the original's " ".join(split())
            if in_text and pending_space is None:
                pending_space = i
            continue
        if pending_space is not None:
            chars.append(" ")
            origin.append((pending_space, pending_space + 1))
            pending_space = None
        in_text = True
        for c in unicodedata.normalize("NFKD", ch):
            if not unicodedata.combining(c):
                chars.append(c)
                origin.append((i, i + 1))
    norm = "".join(chars)
    if do_lower_case:
        # The whole string at once, as the original: a word-final capital sigma becomes ς.
        # After NFKD without combining marks, lower() keeps every string's length.
        norm = norm.lower()
    return norm, origin


def normalize_text(text: str, do_lower_case: bool = True) -> str:
    """The original's `preprocess_text`: whitespace runs collapsed, NFKD without combining
    marks, then lower-cased. Whole-string operations, about 20x faster than the loop of
    `normalize_with_offsets` (the pretraining data path needs it)."""
    text = " ".join(text.split())
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        if not text.isascii():  # only the rare non-ASCII sentence pays a loop per character
            text = "".join(c for c in text if not unicodedata.combining(c))
    if do_lower_case:
        text = text.lower()
    return text


def splits_at_digit_comma(piece: str) -> bool:
    """The original `encode_pieces`' test: a piece of two or more characters ending in a
    digit (`str.isdigit`) followed by ","."""
    return len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()


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
        # One call per id for the pieces and one for their type: the tables below are built for
        # every load (each process of prepare, pretrain, fine-tuning), 30,000 ids for ALBERT's.
        self.pieces = [self.sp.IdToPiece(i) for i in range(self.vocab_size)]
        # control pieces ([CLS], <pad>, ...) and the unknown piece (a model has exactly one)
        controls = frozenset(i for i in range(self.vocab_size) if self.sp.IsControl(i)) | {self.unk_id}
        self._word_start = [piece.startswith(WORD_START) for piece in self.pieces]
        # id -> the ids it is re-split into (the original's digit-comma rule), for every
        # vocabulary piece the rule applies to; unknown pieces are handled from their text.
        self._resplit = {
            i: self._resplit_piece(piece)
            for i, piece in enumerate(self.pieces)
            if i not in controls and splits_at_digit_comma(piece)
        }
        self.special_ids = controls | {self.pad_id}

    def normalize(self, text: str) -> str:
        return normalize_text(text, self.do_lower_case)

    def _resplit_piece(self, piece: str) -> list[int]:
        """The ids the original's `encode_pieces` puts in place of a `<digit>,` piece."""
        number = piece[:-1].replace(WORD_START, "")
        return [self.sp.PieceToId(p) for p in self.sp.EncodeAsPieces(number)] + [self.sp.PieceToId(",")]

    def _apply_resplit(self, ids: list[int], norm: str) -> list[int]:
        if self.unk_id in ids:  # an unknown piece's text is its surface: decide from the pieces
            out: list[int] = []
            for piece in self.sp.EncodeAsPieces(norm):
                out.extend(
                    self._resplit_piece(piece) if splits_at_digit_comma(piece) else [self.sp.PieceToId(piece)]
                )
            return out
        if not any(i in self._resplit for i in ids):
            return ids
        return [j for i in ids for j in self._resplit.get(i, (i,))]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens."""
        norm = self.normalize(text)
        return self._apply_resplit(self.sp.EncodeAsIds(norm), norm)

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens), in one SentencePiece call on this thread."""
        norms = [self.normalize(t) for t in texts]
        encoded = self.sp.encode(norms, out_type=int, num_threads=1)
        return [self._apply_resplit(ids, norm) for ids, norm in zip(encoded, norms, strict=True)]

    def encode_with_offsets(self, text: str) -> Encoding:
        """Ids plus, per token, the (start, end) character span in the original `text`."""
        norm, origin = normalize_with_offsets(text, self.do_lower_case)
        ids: list[int] = []
        spans: list[tuple[int, int]] = []  # character spans in `norm`
        for piece, start, end in self._proto_pieces(norm):
            while start < end and norm[start] == " ":  # the "▁" covers the space before a word
                start += 1
            if not splits_at_digit_comma(piece.piece):
                ids.append(piece.id)
                spans.append((start, end))
                continue
            # Re-split as the original; the number's pieces point into its characters when
            # SentencePiece's own normalisation left them one for one, else at the whole number.
            number = piece.piece[:-1].replace(WORD_START, "")
            one_for_one = end - start == len(number) + 1
            for sub, s, e in self._proto_pieces(number):
                ids.append(self.sp.PieceToId(sub.piece))
                spans.append((start + s, start + e) if one_for_one else (start, end - 1))
            ids.append(self.sp.PieceToId(","))
            spans.append((end - 1, end))
        offsets = []
        for start, end in spans:
            if start >= end:  # a piece that is only a space marker
                pos = origin[min(start, len(origin) - 1)][0] if origin else 0
                offsets.append((pos, pos))
            else:
                offsets.append((origin[start][0], origin[end - 1][1]))
        return Encoding(ids, offsets)

    def _proto_pieces(self, text: str) -> list[tuple[object, int, int]]:
        """SentencePiece's pieces of `text` with their (start, end) character offsets in it
        (the proto gives UTF-8 byte offsets)."""
        try:  # sentencepiece >= 0.2.1 spells it return_type="proto"; older releases immutable_proto
            proto = self.sp.encode(text, return_type="proto")
        except (TypeError, ValueError):
            proto = self.sp.encode(text, out_type="immutable_proto")
        byte_to_char = []
        for ci, ch in enumerate(text):
            byte_to_char.extend([ci] * len(ch.encode("utf-8")))
        byte_to_char.append(len(text))
        return [
            (piece, byte_to_char[piece.begin], byte_to_char[min(piece.end, len(byte_to_char) - 1)])
            for piece in proto.pieces
        ]

    def is_word_start(self, token_id: int) -> bool:
        return self._word_start[token_id]

    def id_to_piece(self, token_id: int) -> str:
        return self.pieces[token_id]

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
