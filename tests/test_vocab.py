"""`albertctl vocab`: ALBERT's SentencePiece flags, normalised training text, summaries, errors."""

import json
import re
import shutil

import pytest
import sentencepiece as spm

from albertctl.core.config import load_profile
from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Tokenizer
from albertctl.pipelines import vocab
from tests.prepare_fixtures import documents, write_corpus


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("vocab") / "corpus.txt", documents(60, (4, 10), (5, 14)))


@pytest.fixture(scope="module")
def trained(corpus_file):
    out = corpus_file.parent / "out" / "sp"
    return vocab.run(load_profile("tiny"), [corpus_file], out, vocab_size=200)


def test_albert_flags_and_special_ids(trained):
    assert trained["vocab_size"] == 200
    assert trained["special_ids"] == {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    sp = spm.SentencePieceProcessor(model_file=trained["model"])
    assert [sp.IdToPiece(i) for i in range(5, 13)] == ["(", ")", '"', "-", ".", "–", "£", "€"]
    assert sp.IsControl(2) and sp.IsControl(4) and not sp.IsControl(5)
    assert trained["vocab"].endswith("sp.vocab")
    assert trained["token_coverage"] > 0.999 and trained["sentences"] > 300


def test_training_text_is_normalised(trained):
    sp = spm.SentencePieceProcessor(model_file=trained["model"])
    pieces = [sp.IdToPiece(i) for i in range(5, sp.GetPieceSize())]  # after <pad> <unk> [CLS] [SEP] [MASK]
    assert not any(c.isupper() or c == "é" for p in pieces for c in p)  # lower-cased, accents stripped
    assert trained["example"] == trained["example"].lower()


def test_ids_match_transformers(trained, corpus_file, tmp_path):
    transformers = pytest.importorskip("transformers")
    shutil.copyfile(trained["model"], tmp_path / "spiece.model")
    hf = transformers.AlbertTokenizer.from_pretrained(str(tmp_path))
    tok = Tokenizer(trained["model"])
    lines = [x for x in corpus_file.read_text(encoding="utf-8").splitlines() if x][:50]
    assert [tok.encode(x) for x in lines] == [hf(x, add_special_tokens=False)["input_ids"] for x in lines]


def test_deterministic_for_a_seed(trained, corpus_file, tmp_path):
    again = vocab.run(load_profile("tiny"), [corpus_file], tmp_path / "sp", vocab_size=200)
    a = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    b = spm.SentencePieceProcessor(model_file=trained["model"])
    assert [(a.IdToPiece(i), a.GetScore(i)) for i in range(200)] == [
        (b.IdToPiece(i), b.GetScore(i)) for i in range(200)
    ]
    assert again["example_pieces"] == trained["example_pieces"]


def test_flags_are_overridable_but_keep_specials(corpus_file, tmp_path):
    r = vocab.run(
        load_profile("tiny"),
        [corpus_file],
        tmp_path / "sp",
        vocab_size=180,
        options={"character_coverage": 1.0, "user_defined_symbols": ""},
    )
    assert r["vocab_size"] == 180 and r["flags"]["character_coverage"] == 1.0
    with pytest.raises(AlbertError, match=r"control_symbols must keep \[MASK\]"):
        vocab.run(
            load_profile("tiny"), [corpus_file], tmp_path / "x", options={"control_symbols": "[CLS],[SEP]"}
        )


def test_cli_json_and_errors(run_cli, corpus_file, tmp_path):
    ok = run_cli(
        ["vocab", str(corpus_file), "-o", str(tmp_path / "v" / "m"), "--vocab-size", "190", "--json"]
    )
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["vocab_size"] == 190 and (tmp_path / "v" / "m.model").is_file()

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    bad = run_cli(["vocab", str(empty), "-o", str(tmp_path / "e" / "m")])
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        f"error: no text to train a vocabulary on in {empty} (empty input)",
    )
    too_big = run_cli(["vocab", str(corpus_file), "-o", str(tmp_path / "b" / "m"), "--vocab-size", "50000"])
    assert (
        too_big.exit_code == 2
        and "Vocabulary size too high" in too_big.stderr
        and "Traceback" not in too_big.stderr
    )
    assert not (tmp_path / "e").exists() and not (tmp_path / "b").exists()  # nothing half-written
    assert too_big.stderr.rstrip().endswith("use a lower --vocab-size or more text")


def test_too_big_vocabulary_under_prepare_names_the_profile_setting(run_cli, tmp_path):
    """prepare and pretrain have no --vocab-size: the hint is the profile key, with SentencePiece's limit."""
    corpus = tmp_path / "small.txt"
    corpus.write_text("hello world.\nthis is a test.\n\nanother doc here.\nmore text.\n", encoding="utf-8")
    result = run_cli(["prepare", str(corpus), "-o", str(tmp_path / "p"), "--profile", "tiny"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(
        "error: SentencePiece: Vocabulary size too high (4000). Please set it to a value <= "
    )
    assert re.search(r"use --set model\.vocab_size=\d+ or more text$", result.stderr.strip())
    assert not (tmp_path / "p").exists()
