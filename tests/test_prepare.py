"""`albertctl prepare`: the SOP/NSP and masking recipe checked on data the tests make.

Tolerances are absolute shares: masked share ±1% of 15%, span lengths ±2% of 6/11, 3/11,
2/11, replacements ±2% of 80/10/10, SOP labels ±2% of 50%. Everything is seeded, so the
numbers are the same on every run; the samples are large enough that the tolerances are
several standard deviations wide.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from albertctl.core.config import load_profile
from albertctl.core.errors import AlbertError
from albertctl.data.pretraining import (
    MaskingVocab,
    PretrainingCollator,
    load_split,
    mask_sequence,
    max_predictions,
)
from albertctl.data.tokenizer import Tokenizer
from albertctl.model.albert import AlbertForPreTraining, pretraining_loss
from albertctl.pipelines import prepare, vocab
from tests.prepare_fixtures import documents, write_corpus

# One pairing per document unless a test asks, and ALBERT's masking pinned: these tests check
# the original recipe, whatever tiny.yaml is tuned to for its pretraining demo.
TINY = load_profile(
    "tiny",
    ["data.pair_copies=1", "data.ngram=3", "data.masked_lm_prob=0.15", "data.max_predictions_per_seq=10"],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prepare")


@pytest.fixture(scope="module")
def corpus(workdir) -> Path:
    return write_corpus(workdir / "corpus.txt", documents(400, (2, 14), (4, 16)))


@pytest.fixture(scope="module")
def spm_file(workdir, corpus) -> Path:
    return Path(vocab.run(TINY, [corpus], workdir / "spiece", vocab_size=200)["model"])


@pytest.fixture(scope="module")
def tok(spm_file) -> Tokenizer:
    return Tokenizer(spm_file)


@pytest.fixture(scope="module")
def dynamic(workdir, corpus, spm_file):
    """SOP pairs at 64 tokens, dynamic masking, several chunks."""
    profile = TINY.replace(data={"max_seq_length": 64, "held_out_fraction": 0.05})
    result = prepare.run(profile, [corpus], workdir / "dyn", spm_file, chunk_documents=32)
    return profile, result, workdir / "dyn"


@pytest.fixture(scope="module")
def static(workdir, corpus, spm_file):
    """Long sequences and a loose cap, so the 15% budget (77 tokens at 512) binds, not the cap."""
    profile = TINY.replace(
        model={"max_position_embeddings": 512},
        data={
            "max_seq_length": 512,
            "max_predictions_per_seq": 80,
            "masking": "static",
            "dupe_factor": 8,
            "short_seq_prob": 0.0,
        },
    )
    result = prepare.run(profile, [corpus], workdir / "static", spm_file, chunk_documents=64)
    return profile, result, workdir / "static"


def _segments(row) -> tuple[list[int], list[int]]:
    ids, types = row["input_ids"], row["token_type_ids"]
    len_a = types.count(0) - 2
    return ids[1 : 1 + len_a], ids[2 + len_a : -1]


def _occurrences(hay: list[int], needle: list[int]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(hay) - n + 1) if hay[i : i + n] == needle]


def _in_order(stream: list[int], first: list[int], second: list[int]) -> bool:
    """`first` and `second` both occur in `stream`, `second` after the end of `first`."""
    starts = _occurrences(stream, first)
    return bool(starts) and any(j >= min(starts) + len(first) for j in _occurrences(stream, second))


def _find(hay: list[int], needle: list[int], start: int = 0) -> int:
    return next((i for i in _occurrences(hay, needle) if i >= start), -1)


def test_output_layout_and_manifest(dynamic, spm_file):
    profile, result, out = dynamic
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "albertctl-pretraining-data" and manifest["objective"] == "sop"
    assert (out / "spiece.model").read_bytes() == spm_file.read_bytes()
    assert set(manifest["splits"]) == {"train", "eval"}
    train, held = load_split(out, "train"), load_split(out, "eval")
    assert len(train) == result["instances_train"] and len(held) == result["instances_eval"] > 0
    assert set(train["document"]).isdisjoint(held["document"])
    assert set(held["document"]) <= {d for d in range(400) if d % 20 == 0}  # every 20th, from document 0
    assert train["uid"] == list(range(len(train)))
    assert all(len(ids) <= 64 for ids in train["input_ids"])
    assert sorted(manifest["files"]) == sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"
    )


def test_pairs_are_consecutive_text_and_labels_say_when_swapped(dynamic, corpus, tok):
    profile, result, out = dynamic
    docs = [[tok.encode(s) for s in d] for d in documents(400, (2, 14), (4, 16))]
    streams = [[t for s in d for t in s] for d in docs]
    bounds = [{sum(len(s) for s in d[:k]) for k in range(len(d) + 1)} for d in docs]
    checked_untruncated = 0
    for row in load_split(out, "train"):
        a, b = _segments(row)
        first, second = (b, a) if row["sentence_order_label"] == 1 else (a, b)
        stream = streams[row["document"]]
        assert _in_order(stream, first, second), row  # both in the document, in the original order
        if len(a) + len(b) < profile.data.max_seq_length - 3:  # not truncated: exactly adjacent
            starts = [i for i in _occurrences(stream, first + second)]
            assert starts, row
            ok = False
            for i in starts:
                boundary = i + len(first)
                inner = [
                    x for x in bounds[row["document"]] if i < x < boundary + len(second) and x != boundary
                ]
                # a sentence boundary, or a word start inside a one-sentence chunk
                ok |= boundary in bounds[row["document"]] or (not inner and tok.is_word_start(second[0]))
            assert ok, row
            checked_untruncated += 1
    assert checked_untruncated > 250


def test_prepared_ids_match_transformers(dynamic, spm_file, tmp_path):
    transformers = pytest.importorskip("transformers")
    shutil.copyfile(spm_file, tmp_path / "spiece.model")
    hf = transformers.AlbertTokenizer.from_pretrained(str(tmp_path))
    docs = documents(400, (2, 14), (4, 16))
    rows = load_split(dynamic[2], "train").select(range(150))
    streams = {}
    for row in rows:
        d = row["document"]
        if d not in streams:
            streams[d] = [t for s in docs[d] for t in hf(s, add_special_tokens=False)["input_ids"]]
        a, b = _segments(row)
        first, second = (b, a) if row["sentence_order_label"] == 1 else (a, b)
        assert _in_order(streams[d], first, second)
        assert row["input_ids"][0] == hf.cls_token_id and row["input_ids"][-1] == hf.sep_token_id


def test_sop_labels_are_balanced(workdir, corpus, spm_file):
    profile = TINY.replace(data={"max_seq_length": 32, "masking": "static", "dupe_factor": 5})
    prepare.run(profile, [corpus], workdir / "short", spm_file, chunk_documents=100)
    labels = Counter(load_split(workdir / "short", "train")["sentence_order_label"])
    share = labels[1] / sum(labels.values())
    assert abs(share - 0.5) <= 0.02 and sum(labels.values()) > 10000, labels


def test_masking_statistics_follow_the_recipe(static, tok):
    profile, result, out = static
    rows = load_split(out, "train")
    masked = tokens = 0
    kinds = Counter()
    for row in rows:
        ids, pos, orig = row["input_ids"], row["masked_lm_positions"], row["masked_lm_ids"]
        tokens += len(ids)
        masked += len(pos)
        assert len(pos) <= max_predictions(len(ids), profile.data)
        for p, o in zip(pos, orig, strict=True):
            kinds["mask" if ids[p] == tok.mask_id else "keep" if ids[p] == o else "random"] += 1
    assert abs(masked / tokens - 0.15) <= 0.01
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) <= 0.02 and abs(kinds["random"] / total - 0.1) <= 0.02, kinds
    spans = result["span_length_shares"]
    for n, want in (("1", 6 / 11), ("2", 3 / 11), ("3", 2 / 11)):
        assert abs(spans[n] - want) <= 0.02, spans
    assert sum(result["span_lengths"].values()) > 20000
    assert abs(result["masked_share"] - masked / tokens) < 0.002  # the table counts eval rows too


def test_whole_words_are_never_split(static, tok):
    _, _, out = static
    for row in load_split(out, "train").select(range(300)):
        ids = list(row["input_ids"])
        for p, o in zip(row["masked_lm_positions"], row["masked_lm_ids"], strict=True):
            ids[p] = o  # the original sequence
        masked = set(row["masked_lm_positions"])
        len_a = row["token_type_ids"].count(0) - 2
        starts = {1, 2 + len_a}  # a segment's first token starts a word
        for p in masked:
            q = p  # walk to the start of p's word, then to its end: all of it is masked
            while q not in starts and not tok.is_word_start(ids[q]):
                q -= 1
                assert q in masked
            q = p + 1
            while q < len(ids) - 1 and q != 1 + len_a and q not in starts and not tok.is_word_start(ids[q]):
                assert q in masked
                q += 1


def test_same_output_whatever_num_proc(workdir, corpus, spm_file):
    profile = TINY.replace(data={"max_seq_length": 64, "masking": "static", "dupe_factor": 2})
    one = prepare.run(profile, [corpus], workdir / "np1", spm_file, num_proc=1, seed=7, chunk_documents=40)
    two = prepare.run(profile, [corpus], workdir / "np2", spm_file, num_proc=2, seed=7, chunk_documents=40)
    files1 = sorted(p.relative_to(workdir / "np1") for p in (workdir / "np1").rglob("*") if p.is_file())
    files2 = sorted(p.relative_to(workdir / "np2") for p in (workdir / "np2").rglob("*") if p.is_file())
    assert files1 == files2 and len(files1) >= 4
    for f in files1:
        assert (workdir / "np1" / f).read_bytes() == (workdir / "np2" / f).read_bytes(), f
    assert one["instances"] == two["instances"]
    other = prepare.run(profile, [corpus], workdir / "seed8", spm_file, seed=8, chunk_documents=40)
    assert (workdir / "seed8/train/shard-00000.arrow").read_bytes() != (
        workdir / "np1/train/shard-00000.arrow"
    ).read_bytes()
    assert other["instances"] > 0


def test_pair_copies_pair_each_training_document_again(dynamic, workdir, corpus, spm_file):
    """Dynamic masking with data.pair_copies=3: copy 0 is the single-copy output, the other
    copies pair the same training documents with their own segmentation and swaps; the
    held-out split keeps one copy."""
    profile, _, out = dynamic
    again = profile.replace(data={"pair_copies": 3})
    prepare.run(again, [corpus], workdir / "copies", spm_file, chunk_documents=32)
    one, three = load_split(out, "train"), load_split(workdir / "copies", "train")
    assert load_split(workdir / "copies", "eval")["input_ids"] == load_split(out, "eval")["input_ids"]
    assert set(three["document"]) == set(one["document"])
    assert 2.7 < len(three) / len(one) < 3.3

    def by_document(rows) -> dict[int, list[tuple[list[int], int]]]:
        out: dict[int, list[tuple[list[int], int]]] = {}
        for ids, doc, label in zip(
            rows["input_ids"], rows["document"], rows["sentence_order_label"], strict=True
        ):
            out.setdefault(doc, []).append((ids, label))
        return out

    first, copies = by_document(one), by_document(three)
    assert all(copies[d][: len(rows)] == rows for d, rows in first.items())
    differs = sum(copies[d][len(rows) :] != rows * 2 for d, rows in first.items())
    assert differs > 0.9 * len(first)
    assert three["uid"] == list(range(len(three)))


def test_nsp_takes_b_from_another_document(workdir, corpus, spm_file, tok):
    profile = TINY.replace(data={"max_seq_length": 64, "random_next_sentence": True})
    result = prepare.run(profile, [corpus], workdir / "nsp", spm_file, chunk_documents=50)
    docs = [[t for s in d for t in tok.encode(s)] for d in documents(400, (2, 14), (4, 16))]
    rows = load_split(workdir / "nsp", "train")
    assert abs(result["label_1_share"] - 0.5) <= 0.03
    for row in rows.select(range(400)):
        a, b = _segments(row)
        stream = docs[row["document"]]
        if row["sentence_order_label"] == 0:
            assert _in_order(stream, a, b)
        elif len(b) > 8:
            assert _find(stream, b) < 0  # B came from another document


def test_collator_dynamic_masks_are_reproducible(dynamic, tok):
    profile, _, out = dynamic
    rows = load_split(out, "train")
    examples = [rows[i] for i in range(8)]
    collate = PretrainingCollator(tok, profile.data, seed=3)
    batch = collate(examples, batch_index=5)
    T = max(len(e["input_ids"]) for e in examples)
    P = max_predictions(T, profile.data)
    assert batch["input_ids"].shape == (8, T) and batch["masked_lm_positions"].shape == (8, P)
    assert batch["attention_mask"].sum().item() == sum(len(e["input_ids"]) for e in examples)
    assert batch["sentence_order_labels"].tolist() == [e["sentence_order_label"] for e in examples]
    again = collate(examples, batch_index=5)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    other = collate(examples, batch_index=6)
    assert not torch.equal(batch["masked_lm_positions"], other["masked_lm_positions"])
    w = batch["masked_lm_weights"]
    for b in range(8):
        n = int(w[b].sum())
        pos = batch["masked_lm_positions"][b, :n]
        assert n >= 1 and w[b, n:].sum() == 0 and (pos > 0).all()
        assert torch.equal(batch["masked_lm_ids"][b, :n], torch.tensor(examples[b]["input_ids"])[pos])
    model = AlbertForPreTraining(
        TINY.model.__class__(**{**TINY.model.__dict__, "vocab_size": tok.vocab_size})
    )
    out_ = model(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], batch["masked_lm_positions"]
    )
    loss = pretraining_loss(
        out_, batch["masked_lm_ids"], batch["masked_lm_weights"], batch["sentence_order_labels"]
    )
    assert torch.isfinite(loss.loss)


def test_collator_uses_stored_static_masks(static, tok):
    profile, _, out = static
    examples = [r for r in load_split(out, "train").select(range(4))]
    batch = PretrainingCollator(tok, profile.data, seed=0)(examples, batch_index=0)
    for b, e in enumerate(examples):
        n = len(e["masked_lm_positions"])
        assert batch["masked_lm_positions"][b, :n].tolist() == e["masked_lm_positions"]
        assert batch["input_ids"][b, : len(e["input_ids"])].tolist() == e["input_ids"]


def test_mask_sequence_respects_budget_and_segments(tok):
    data = TINY.data
    ids = [
        tok.cls_id,
        *tok.encode("one two three four five six seven"),
        tok.sep_id,
        *tok.encode("eight nine"),
        tok.sep_id,
    ]
    vocab_ = MaskingVocab.from_tokenizer(tok)
    import random

    for seed in range(50):
        m = mask_sequence(ids, ids.index(tok.sep_id) - 1, vocab_, data, random.Random(seed))
        assert 1 <= len(m.positions) <= max_predictions(len(ids), data)
        assert not {0, ids.index(tok.sep_id), len(ids) - 1} & set(m.positions)


# ---------------------------------------------------------------- bad inputs, through the CLI


def _bad_inputs(tmp: Path, spm_file: Path) -> dict[str, Path]:
    (tmp / "empty.txt").write_text("\n \n\n", encoding="utf-8")
    no_specials = tmp / "plain"
    import sentencepiece as spm

    spm.SentencePieceTrainer.Train(
        input=str(tmp / "corpus.txt"), model_prefix=str(no_specials), vocab_size=60, minloglevel=2
    )
    return {"empty": tmp / "empty.txt", "plain": no_specials.with_suffix(".model")}


def test_cli_bad_inputs_fail_cleanly(run_cli, tmp_path, corpus, spm_file):
    shutil.copyfile(corpus, tmp_path / "corpus.txt")
    bad = _bad_inputs(tmp_path, spm_file)
    cases = [
        (
            ["prepare", str(bad["empty"]), "--vocab", str(spm_file), "-o", str(tmp_path / "out")],
            f"no documents in {bad['empty']} (empty input)",
        ),
        (
            [
                "prepare",
                str(tmp_path / "corpus.txt"),
                "--vocab",
                str(bad["plain"]),
                "-o",
                str(tmp_path / "out"),
            ],
            f"{bad['plain']}: vocabulary lacks [CLS], [SEP], [MASK]; train it with control_symbols=[CLS],[SEP],[MASK] "
            "(albertctl vocab does)",
        ),
        (
            ["prepare", str(tmp_path / "missing.txt"), "--vocab", str(spm_file), "-o", str(tmp_path / "out")],
            f"input file {tmp_path / 'missing.txt'} not found",
        ),
        (
            ["prepare", str(tmp_path / "corpus.txt"), "--vocab", str(spm_file), "-o", str(tmp_path)],
            f"--output {tmp_path} contains the input {tmp_path / 'corpus.txt'}; choose another --output",
        ),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in cases:
        r = run_cli(argv)
        assert (r.exit_code, r.stderr.strip()) == (2, f"error: {message}"), r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary directory


def test_awkward_text_is_kept_and_counted(run_cli, tmp_path, spm_file, tok):
    long_line = " ".join(["lokami thaber nesa"] * 40) + "."  # far longer than 64 tokens
    text = (
        "Only one sentence here in this document.\n\n"
        "Caf\xe9 latin-1 bytes in one line.\nAnd a second sentence follows it.\n\n"
        f"{long_line}\nShort tail sentence.\n\n"
        "x\n\n"
        + "\n\n".join(f"Filler document {i} has words.\nIt has two sentences." for i in range(30))
        + "\n"
    )
    f = tmp_path / "awkward.txt"
    f.write_bytes(text.encode("utf-8").replace("Caf\xe9".encode(), b"Caf\xe9"))
    r = run_cli(
        [
            "prepare",
            str(f),
            "--vocab",
            str(spm_file),
            "-o",
            str(tmp_path / "out"),
            "--set",
            "data.max_seq_length=64",
            "--set",
            "data.pair_copies=1",
            "--json",
        ]
    )
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["adjusted"]["decode_error_lines"] == 1 and "not valid UTF-8" in r.stderr + " ".join(
        result["warnings"]
    )
    assert manifest["adjusted"]["long_sentences_split"] == 1
    assert manifest["adjusted"]["one_sentence_chunks_split"] >= 1
    assert manifest["skipped"]["one_word_chunks"] == 1  # the document "x"
    rows = load_split(tmp_path / "out", "train").to_list() + load_split(tmp_path / "out", "eval").to_list()
    docs_seen = {row["document"] for row in rows}
    assert {0, 1, 2} <= docs_seen  # one-sentence, non-UTF-8 and long-line documents all made pairs
    long_tokens = sum(len(row["input_ids"]) - 3 for row in rows if row["document"] == 2)
    truncated = manifest["adjusted"]["tokens_truncated"]
    assert long_tokens + truncated >= len(
        tok.encode(long_line)
    )  # nothing of the long line vanished uncounted


def test_load_split_errors(tmp_path, dynamic):
    with pytest.raises(AlbertError, match="not found"):
        load_split(tmp_path / "nope", "train")
    (tmp_path / "d").mkdir()
    with pytest.raises(AlbertError, match=r"not a prepared data directory \(no manifest.json"):
        load_split(tmp_path / "d", "train")
    (tmp_path / "d" / "manifest.json").write_text('{"format": "albertctl-model"}')
    with pytest.raises(AlbertError, match="not a prepared-data manifest"):
        load_split(tmp_path / "d", "train")
    with pytest.raises(AlbertError, match="no split 'test'"):
        load_split(dynamic[2], "test")
