"""The tokenizer: normalisation, offsets, pair encoding, and ids equal to transformers'."""

import shutil
from pathlib import Path

import pytest
import sentencepiece as spm

from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Tokenizer, normalize_with_offsets, truncate_longest_first

TEXT = """The quick brown fox jumps over the lazy dog.
Café owners in Zürich said ``hello'' to naïve visitors.
Numbers like 1,234 and 9, or 3.14 appear (sometimes) in text.
ALBERT uses factorised embeddings and cross-layer parameter sharing.
Sentence order prediction replaces next sentence prediction.
"""


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("spm")
    corpus = d / "corpus.txt"
    corpus.write_text(TEXT * 30, encoding="utf-8")
    spm.SentencePieceTrainer.Train(
        input=str(corpus),
        model_prefix=str(d / "m"),
        vocab_size=90,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols="[CLS],[SEP],[MASK]",
        user_defined_symbols=["(", ")", '"', "-", ".", "–", "£", "€"],
        character_coverage=1.0,
        minloglevel=2,
    )
    return d / "m.model"


def test_special_ids(spm_model):
    tok = Tokenizer(spm_model)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)


def test_normalisation():
    norm, origin = normalize_with_offsets("  Café  ``Hi''\tthere ")
    assert norm == "cafe ``hi'' there"  # the original keeps `` and '' (transformers turns them into ")
    assert origin[0] == (2, 3) and origin[3] == (5, 6) and origin[5] == (8, 9)


# transformers 5's AlbertTokenizer (a `tokenizers` Unigram) departs from SentencePiece around
# user-defined symbols ( ) " - . that are not at the end of a word: it splits them off as added
# tokens and prepends a spurious "▁" to what follows ("3.14" -> "3", ".", "▁", "14"). The released
# models were trained with SentencePiece itself, so we follow SentencePiece there (tested below)
# and compare with transformers on text where the two agree.
PARITY_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Café owners in Zürich said hello to naïve visitors.",
    "Numbers like 1,234 and 9, or 314 appear sometimes in text.",
    "ALBERT uses factorised embeddings and shared parameters.",
    "Sentence order prediction replaces next sentence prediction.",
]


@pytest.mark.parametrize("line", PARITY_LINES + ["  Spaces   everywhere  ", "Ünïcödé ÀÉÎ"])
def test_ids_match_transformers(spm_model, line, tmp_path):
    transformers = pytest.importorskip("transformers")
    shutil.copyfile(spm_model, tmp_path / "spiece.model")
    hf = transformers.AlbertTokenizer.from_pretrained(str(tmp_path))
    ours = Tokenizer(spm_model)
    assert ours.encode(line) == hf(line, add_special_tokens=False)["input_ids"]
    ids, types = ours.encode_pair(line, "second part", 64)
    ref = hf(line, "second part", truncation=True, max_length=64, return_token_type_ids=True)
    assert ids == ref["input_ids"] and types == ref["token_type_ids"]


def test_user_symbols_follow_sentencepiece(spm_model):
    tok = Tokenizer(spm_model)
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    for text in ("appear (sometimes) in text.", "3.14 and cross-layer"):
        assert tok.encode(text) == sp.EncodeAsIds(text)
    pieces = [tok.id_to_piece(i) for i in tok.encode("a (b) 3.14")]
    assert pieces[1:3] == ["\u2581", "("] and "\u2581" not in pieces[pieces.index(".") :][:2]


def test_offsets_point_into_original_text(spm_model):
    tok = Tokenizer(spm_model)
    text = "Café owners in Zürich said ``hello'' to naïve visitors."
    enc = tok.encode_with_offsets(text)
    assert enc.ids == tok.encode(text)
    for tid, (s, e) in zip(enc.ids, enc.offsets, strict=True):
        piece = tok.id_to_piece(tid).lstrip("\u2581")
        if piece and tid != tok.unk_id:
            assert tok.normalize(text[s:e]) == piece, (piece, text[s:e])
    words = [text[s:e] for s, e in enc.offsets]
    assert "".join(words).replace(" ", "") == text.replace(" ", "")


def test_pair_truncation_longest_first():
    assert truncate_longest_first([1] * 10, [2] * 4, 8) == ([1] * 4, [2] * 4)
    assert truncate_longest_first([1] * 3, [2] * 9, 8) == ([1] * 3, [2] * 5)


def test_bad_models(tmp_path):
    with pytest.raises(AlbertError, match="not found"):
        Tokenizer(tmp_path / "nope.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(AlbertError, match="not a SentencePiece model"):
        Tokenizer(bad)
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 20)
    spm.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(tmp_path / "plain"), vocab_size=70, minloglevel=2
    )
    with pytest.raises(AlbertError, match=r"vocabulary lacks \[CLS\], \[SEP\], \[MASK\]"):
        Tokenizer(tmp_path / "plain.model")


# ---- the original's digit-comma rule (tokenization.py encode_pieces) -------------------------

DIGIT_TEXT = " ".join(
    ["in 1990, the city of 12 was founded by 7 people", "45,000 x7 ab12 year 2001 and 1990 river"] * 40
)
ADDED_PIECES = ["\u25811990,", "\u258112,", "7,", "\u258145,000,", "\u258145,", "\u2581\u0663,"]


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory) -> Path:
    """A vocabulary holding pieces that end in a digit and ",", as the released 30k-clean does
    (trained here without them, then added to the model proto)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    d = tmp_path_factory.mktemp("spm_digits")
    (d / "corpus.txt").write_text(TEXT * 30 + (DIGIT_TEXT + "\n") * 20, encoding="utf-8")
    spm.SentencePieceTrainer.Train(
        input=str(d / "corpus.txt"),
        model_prefix=str(d / "m"),
        vocab_size=120,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols="[CLS],[SEP],[MASK]",
        character_coverage=1.0,
        minloglevel=2,
    )
    proto = pb.ModelProto()
    proto.ParseFromString((d / "m.model").read_bytes())
    for text in ADDED_PIECES:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = text, 0.0, pb.ModelProto.SentencePiece.NORMAL
    (d / "m.model").write_bytes(proto.SerializeToString())
    return d / "m.model"


def original_ids(sp: spm.SentencePieceProcessor, text: str) -> list[int]:
    """Our transcription of the original: preprocess_text (whitespace runs -> one space, NFKD,
    combining marks dropped, whole string lower-cased), then encode_pieces + PieceToId. A piece
    like "▁1990," or "7," is replaced by the pieces of its text with "," and every "▁" removed
    (SentencePiece puts its own "▁" in front), then ","; the original's attempt to remove that
    "▁" again compares str with bytes under Python 3, so it never happens."""
    import unicodedata

    text = " ".join(text.strip().split())
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    pieces = []
    for piece in sp.EncodeAsPieces(text):
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            pieces += sp.EncodeAsPieces(piece[:-1].replace("\u2581", "")) + [","]
        else:
            pieces.append(piece)
    return [sp.PieceToId(p) for p in pieces]


TRICKY = [
    "In 1990, the city",
    "x7, and 12,3, ab12, c",
    "45,000, people",
    "1990,,",
    "  12,  ",
    "Café ``1990,'' naïve ☃ 1990, ☃☃7,",
    "year \u0663, and \u0663,",
    "ΟΔΟΣ 1990, Σ",
    "NO DIGITS, HERE",
]


def test_digit_comma_split_matches_the_original(digit_model):
    tok = Tokenizer(digit_model)
    sp = spm.SentencePieceProcessor(model_file=str(digit_model))
    assert sp.EncodeAsPieces("1990, x7,") == ["▁1990,", "▁", "x", "7,"]  # the fixture's premise
    for text in TRICKY:
        assert tok.encode(text) == original_ids(sp, text), text
    assert tok.encode_many(TRICKY) == [original_ids(sp, t) for t in TRICKY]

    def pieces(text):
        return [tok.id_to_piece(i) for i in tok.encode(text)]

    assert pieces("1990,") == ["▁1990", ","]
    assert pieces("x7,") == ["▁", "x", "▁", "7", ","]  # the re-encoded "7" keeps SentencePiece's "▁"
    assert pieces("45,000,")[0] == "▁45,"  # re-split once: "▁45," is not looked at again
    assert pieces("\u0663,") == ["▁", "<unk>", ","]  # an unknown digit: its piece is <unk>


def test_tables_read_every_piece_of_the_model(digit_model):
    """The per-id tables (built in one pass over the pieces) say what SentencePiece says of each id."""
    tok = Tokenizer(digit_model)
    sp = spm.SentencePieceProcessor(model_file=str(digit_model))
    ids = range(sp.GetPieceSize())
    assert [tok.id_to_piece(i) for i in ids] == [sp.IdToPiece(i) for i in ids]
    assert [tok.is_word_start(i) for i in ids] == [sp.IdToPiece(i).startswith("\u2581") for i in ids]
    assert tok.special_ids == {i for i in ids if sp.IsControl(i) or sp.IsUnknown(i)} | {tok.pad_id}
    assert tok.special_ids >= {tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id}


def test_digit_comma_offsets_stay_exact(digit_model):
    """encode_with_offsets gives encode's ids; every token's span in the original text
    normalises to the token's piece (without "▁"), also for re-split pieces."""
    tok = Tokenizer(digit_model)
    for text in TRICKY:
        enc = tok.encode_with_offsets(text)
        assert enc.ids == tok.encode(text), text
        for tid, (s, e) in zip(enc.ids, enc.offsets, strict=True):
            piece = tok.id_to_piece(tid).lstrip("\u2581")
            if tid == tok.unk_id:
                assert s < e and "\u2581" not in text[s:e]
            elif piece:
                assert tok.normalize(text[s:e]) == piece, (text, piece, text[s:e])
            else:
                assert s == e
    text = "Founded in 1990, by 7 people"
    enc = tok.encode_with_offsets(text)
    pieces = [(tok.id_to_piece(i), text[s:e]) for i, (s, e) in zip(enc.ids, enc.offsets, strict=True)]
    k = pieces.index(("▁1990", "1990"))
    assert pieces[k + 1] == (",", ",") and enc.offsets[k + 1] == (15, 16)
    start = text.index("1990")  # a SQuAD answer "1990" maps to exactly the number's token
    assert [i for i, (s, e) in enumerate(enc.offsets) if s < start + 4 and e > start] == [k]


def test_quotes_and_final_sigma_as_the_original(spm_model):
    tok = Tokenizer(spm_model)
    assert tok.normalize("He said ``hi'' ") == "he said ``hi''"
    assert tok.normalize("ΟΔΟΣ Σ") == "οδος σ"  # str.lower() on the whole string: final sigma
    for text in ("He said ``hi''", "ΟΔΟΣ ´x"):
        norm, origin = normalize_with_offsets(text)
        assert norm == tok.normalize(text) and len(origin) == len(norm)
    assert tok.normalize("a \u00b4b") == "a  b"  # NFKD after the whitespace collapse, as the original
