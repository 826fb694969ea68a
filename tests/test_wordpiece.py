"""WordPiece vocabularies: ids equal BERT's FullTokenizer (transformers' pure-Python
transcription of it), offsets into the original text, pairs, and one-line errors."""

from __future__ import annotations

import json

import pytest
from zh_fixtures import TOPICS, chinese_documents, write_documents, write_vocab

from albertctl.core.config import load_profile
from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Tokenizer, load_tokenizer
from albertctl.data.wordpiece import WordPieceTokenizer
from albertctl.pipelines import vocab as vocab_pipeline

transformers = pytest.importorskip("transformers")
try:  # transformers 5 keeps the pure-Python FullTokenizer transcription under this name
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBert
except ImportError:  # transformers 4: BertTokenizer is the pure-Python one
    SlowBert = transformers.BertTokenizer

PARITY = [
    "我们是中国人，今年在北京上学。",  # CJK: one word per character, full-width punctuation
    "The Quick brown FOX runs!",  # lower-casing, ## continuation
    "Café hello，world。“你好”《看书》…—",  # accents stripped, full-width quotes and brackets
    "12345 abc\x00def\tghi\x0bjk\u200dl\x7f",  # control characters dropped, tabs are spaces
    "😀 emoji 我😀们",  # an unknown symbol: the whole word is [UNK]
    "a" * 101 + " b " + "c" * 100,  # longer than 100 characters -> [UNK]; exactly 100 is split
    "Ünable ｆｕｌｌ　ｗｉｄｔｈ！",  # full-width letters (not NFKC-folded by BERT), ideographic space
    "mixed中English混合123文本",  # CJK inside a Latin word splits it
    "İstanbul ΣΟΦΟΣ ß ﬁ naïve",
    "  ",
    "",
]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return write_vocab(tmp_path_factory.mktemp("wp") / "vocab.txt")


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("text", PARITY)
def test_ids_equal_bert_full_tokenizer(vocab, text, lower):
    ref = SlowBert(str(vocab), do_lower_case=lower)
    ours = load_tokenizer(vocab, do_lower_case=lower)
    assert ours.encode(text) == ref.convert_tokens_to_ids(ref.tokenize(text))
    assert ours.encode_many([text, text]) == [ours.encode(text)] * 2


@pytest.mark.parametrize(
    ("a", "b"), [("我们是中国人。", "The fox runs!"), ("hello，world", "看书 写字 " * 3)]
)
def test_pairs_equal_bert(vocab, a, b):
    ref = SlowBert(str(vocab), do_lower_case=True)
    ours = load_tokenizer(vocab)
    want = ref(a, b, return_token_type_ids=True)
    assert ours.encode_pair(a, b, 512) == (want["input_ids"], want["token_type_ids"])
    ids, types = ours.encode_pair(a, b, 9)  # truncated longest-first to 9 tokens
    assert len(ids) == 9 and ids[0] == ours.cls_id and ids.count(ours.sep_id) == 2 and types[-1] == 1


def test_special_ids_and_word_starts(vocab):
    tok = load_tokenizer(vocab)
    assert isinstance(tok, WordPieceTokenizer) and isinstance(tok, Tokenizer) and tok.kind == "wordpiece"
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 4, 5, 6, 7)
    assert sorted(tok.special_ids) == [0, 1, 2, 3, 4, 5, 6, 7]  # [unusedN] are never drawn
    ids = tok.encode("我们 unable runs")
    assert [tok.id_to_piece(i) for i in ids] == ["我", "们", "un", "##able", "run", "##s"]
    assert [tok.is_word_start(i) for i in ids] == [True, True, True, False, True, False]
    assert tok.decode([tok.cls_id, *ids, tok.sep_id]) == "我 们 unable runs"


def test_offsets_point_into_original_text(vocab):
    tok = load_tokenizer(vocab)
    text = "Ｃafé说：“Hello，WORLD”😀 x"
    enc = tok.encode_with_offsets(text)
    assert enc.ids == tok.encode(text)
    assert [text[s:e] for s, e in enc.offsets] == [
        "Ｃafé",
        "说",
        "：",
        "“",
        "Hello",
        "，",
        "WORLD",
        "”",
        "😀",
        "x",
    ]
    assert tok.id_to_piece(enc.ids[0]) == "[UNK]"  # full-width Ｃ is not in the vocabulary


def test_bad_vocabularies(tmp_path):
    with pytest.raises(AlbertError, match=r"WordPiece vocabulary .*nope.txt not found"):
        load_tokenizer(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[PAD]\n\xff\xfe\n")
    with pytest.raises(AlbertError, match=r"bad.txt: not a UTF-8 WordPiece vocabulary \(byte 6\)"):
        load_tokenizer(bad)
    plain = write_vocab(tmp_path / "plain.txt", ["[PAD]", "[UNK]", "a", "b"])
    with pytest.raises(AlbertError) as err:
        load_tokenizer(plain)
    assert str(err.value) == (
        f"{plain}: WordPiece vocabulary lacks [CLS], [SEP], [MASK] "
        "(expected BERT's special tokens; albertctl vocab --kind wordpiece writes them)"
    )


# ---- vocab --kind wordpiece ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("wp-train")
    corpus = write_documents(root / "zh.txt", chinese_documents(120))
    result = vocab_pipeline.run(
        load_profile("tiny"), [corpus], root / "out" / "zh", vocab_size=200, kind="wordpiece"
    )
    return corpus, result


def test_trained_vocabulary_layout_and_parity(trained):
    corpus, result = trained
    path = corpus.parent / "out" / "zh.txt"
    assert result["model"] == result["vocab"] == str(path)
    pieces = path.read_text(encoding="utf-8").splitlines()
    assert (
        pieces[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(pieces) == result["vocab_size"]
    )
    assert result["special_ids"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert "##o" in pieces and all(c in pieces for c in "".join(TOPICS))
    assert result["token_coverage"] == 1.0 and result["sentences"] > 400
    ref = SlowBert(str(path), do_lower_case=True)
    tok = load_tokenizer(path)
    lines = [x for x in corpus.read_text(encoding="utf-8").splitlines() if x][:100]
    assert tok.encode_many(lines) == [ref.convert_tokens_to_ids(ref.tokenize(x)) for x in lines]


def test_trained_vocabulary_is_deterministic(trained, tmp_path):
    corpus, result = trained
    again = vocab_pipeline.run(
        load_profile("tiny"), [corpus], tmp_path / "zh.txt", vocab_size=200, kind="wordpiece"
    )
    assert (tmp_path / "zh.txt").read_bytes() == (corpus.parent / "out" / "zh.txt").read_bytes()
    assert again["example_pieces"] == result["example_pieces"]


def test_vocab_cli_kind(run_cli, trained, tmp_path):
    corpus, _ = trained
    ok = run_cli(["vocab", str(corpus), "--kind", "wordpiece", "--vocab-size", "150", "--json"], cwd=tmp_path)
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["model"] == "vocab.txt" and (tmp_path / "vocab.txt").is_file()
    bad = run_cli(["vocab", str(corpus), "--kind", "bpe", "-o", "x"], cwd=tmp_path)
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        "error: --kind 'bpe': expected one of sentencepiece, wordpiece",
    )
    bad = run_cli(
        ["vocab", str(corpus), "--kind", "wordpiece", "--spm", "character_coverage=1.0"], cwd=tmp_path
    )
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        "error: --spm sets SentencePiece trainer flags; it does not apply to --kind wordpiece",
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    bad = run_cli(["vocab", str(empty), "--kind", "wordpiece", "-o", "e"], cwd=tmp_path)
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        f"error: no text to train a vocabulary on in {empty} (empty input)",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "vocab.txt"]
