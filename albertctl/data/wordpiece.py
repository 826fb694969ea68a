"""WordPiece vocabularies (`vocab.txt`): the tokenizer of the Chinese ALBERT models.

The original code tokenizes with BERT's FullTokenizer when no SentencePiece model is given:
drop control characters and turn whitespace into spaces, put spaces around every CJK
character (each is a word of its own), split on whitespace and punctuation, lower-case and
strip accents when `do_lower_case`, then greedy longest-match WordPiece with `##`
continuations; a word longer than 100 characters, or one no pieces cover, is one `[UNK]`.
The `tokenizers` package implements exactly that (BertNormalizer, BertPreTokenizer,
WordPiece), with offsets into the original text; tests/test_wordpiece.py checks its ids
against transformers' pure-Python transcription of FullTokenizer.

`WordPieceTokenizer` offers the interface of the SentencePiece `Tokenizer` (ids, offsets,
pair encoding, special ids, word starts), so tasks, masking and training use either.
`tokenizers` is imported when a WordPiece vocabulary is opened, not when this module is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Encoding, Tokenizer

CONTINUATION = "##"  # a piece starting with it continues the previous word (BERT's rule)
MAX_CHARS_PER_WORD = 100  # FullTokenizer's max_input_chars_per_word
REQUIRED_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
# BERT's vocab.txt convention (the Chinese vocab too): [PAD]=0, [unused1..99], [UNK]=100,
# [CLS]=101, [SEP]=102, [MASK]=103. `vocab --kind wordpiece` writes them first, in this order.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def read_vocab(path: Path) -> list[str]:
    """The pieces of a vocab.txt, one a line, the id being the line number (as BERT's
    `load_vocab`: surrounding whitespace stripped, a blank line is a piece too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AlbertError(f"{path}: not a UTF-8 WordPiece vocabulary (byte {err.start})") from None
    except OSError as err:
        raise AlbertError(f"{path}: unreadable WordPiece vocabulary ({err.strerror})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def bert_pipeline(vocab: dict[str, int] | None, do_lower_case: bool) -> Any:
    """A `tokenizers.Tokenizer` doing FullTokenizer's steps over `vocab` (None: an empty
    WordPiece model, for training one)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers

    model = models.WordPiece(
        vocab or {}, unk_token="[UNK]", continuing_subword_prefix=CONTINUATION,
        max_input_chars_per_word=MAX_CHARS_PER_WORD,
    )  # fmt: skip
    tk = HFTokenizer(model)
    # accents are stripped exactly when lower-casing, as in the original BasicTokenizer
    tk.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=do_lower_case, lowercase=do_lower_case
    )
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece(prefix=CONTINUATION)
    return tk


class WordPieceTokenizer(Tokenizer):
    """A BERT `vocab.txt` + ALBERT conventions: the same interface as `Tokenizer`, whose pair
    building (`build_inputs`, `encode_pair`) it shares."""

    kind = "wordpiece"

    def __init__(self, vocab_file: Path | str, do_lower_case: bool = True) -> None:
        path = Path(vocab_file)
        if path.is_dir():
            raise AlbertError(f"{path}: is a directory, expected a WordPiece vocabulary file (vocab.txt)")
        if not path.is_file():
            raise AlbertError(f"WordPiece vocabulary {path} not found")
        self.path = path
        self.do_lower_case = do_lower_case
        self.pieces = read_vocab(path)
        vocab: dict[str, int] = {}
        for i, piece in enumerate(self.pieces):
            vocab[piece] = i  # a repeated piece takes its last line, as BERT's load_vocab
        missing = [t for t in REQUIRED_TOKENS if t not in vocab]
        if missing:
            raise AlbertError(
                f"{path}: WordPiece vocabulary lacks {', '.join(missing)} "
                "(expected BERT's special tokens; albertctl vocab --kind wordpiece writes them)"
            )
        self.vocab = vocab
        self.vocab_size = len(self.pieces)
        self.pad_id = vocab.get("[PAD]", 0)
        self.unk_id = vocab["[UNK]"]
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.mask_id = vocab["[MASK]"]
        # [unusedN] and the special tokens never come out of tokenizing text: they are not
        # drawn as "random token" replacements and decode to nothing
        self.special_ids = frozenset(
            i for i, p in enumerate(self.pieces) if p in SPECIAL_TOKENS or p.startswith("[unused")
        ) | {self.pad_id}
        self._tk = bert_pipeline(vocab, do_lower_case)

    def normalize(self, text: str) -> str:
        return self._tk.normalizer.normalize_str(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens."""
        return self._tk.encode(text, add_special_tokens=False).ids

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, on this thread: `encode_batch` would start a thread pool,
        which `tokenizers` then disables (with a warning) in forked prepare workers."""
        return [self._tk.encode(t, add_special_tokens=False).ids for t in texts]

    def encode_with_offsets(self, text: str) -> Encoding:
        """Ids plus, per token, the (start, end) character span in the original `text`
        (an [UNK] covers its whole word)."""
        enc = self._tk.encode(text, add_special_tokens=False)
        return Encoding(list(enc.ids), [tuple(o) for o in enc.offsets])

    def is_word_start(self, token_id: int) -> bool:
        """BERT's whole-word rule (`_is_start_piece_bert`): a piece starting with `##`
        continues the previous word; anything else, each CJK character included, starts one."""
        return not self.pieces[token_id].startswith(CONTINUATION)

    def id_to_piece(self, token_id: int) -> str:
        return self.pieces[token_id]

    def decode(self, ids: list[int]) -> str:
        return self._tk.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=False)
