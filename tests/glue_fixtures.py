"""Tiny GLUE trees in each task's real file format, a tiny vocabulary, and tiny model dirs.

The text is synthetic and separable: a sentence holding a "positive" word is label 1. Layouts
follow the GLUE distribution (checked against /work/shared/data/glue): CoLA train/dev have no
header, MRPC train/dev begin with a byte-order mark, STS-B has ten columns, MNLI dev carries
label1..label5 before gold_label, and test files have an index column and no labels.
"""

from __future__ import annotations

import random
from pathlib import Path

import sentencepiece as spm

from albertctl.core.config import load_profile
from albertctl.core.modeldir import save_model_dir
from albertctl.model.albert import AlbertForPreTraining

POSITIVE = ["good", "great", "fine", "nice", "happy", "bright"]
NEGATIVE = ["bad", "awful", "poor", "sad", "dull", "grim"]
FILLER = ["the", "movie", "was", "really", "a", "plot", "and", "story", "it", "very", "cast", "film"]

MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)
STSB_HEAD = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"


def sentence(rng: random.Random, positive: bool) -> str:
    words = rng.sample(FILLER, rng.randint(2, 6))
    words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
    return " ".join(words)


def rows(rng: random.Random, n: int) -> list[tuple[int, str, str]]:
    """(label 0/1, sentence1, sentence2): label = whether sentence1 is positive."""
    out = []
    for i in range(n):
        y = i % 2
        out.append((y, sentence(rng, bool(y)), sentence(rng, rng.random() < 0.5)))
    rng.shuffle(out)
    return out


def _write(path: Path, lines: list[str], bom: bool = False, final_newline: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


def write_glue(root: Path, n_train: int = 16, n_dev: int = 8, n_test: int = 5, seed: int = 0) -> Path:
    """glue_data/<TASK>/{train,dev,test}.tsv for every task (MNLI: dev/test matched and
    mismatched; AX: diagnostic/diagnostic.tsv)."""
    rng = random.Random(seed)
    nli = ["contradiction", "entailment", "neutral"]
    for split, n in (("train", n_train), ("dev", n_dev)):
        data = rows(rng, n)
        # CoLA: no header, no final newline on dev (as the real file)
        _write(
            root / "CoLA" / f"{split}.tsv",
            [f"gj04\t{y}\t{'' if y else '*'}\t{a}" for y, a, _ in data],
            final_newline=split == "train",
        )
        _write(root / "SST-2" / f"{split}.tsv", ["sentence\tlabel", *(f"{a} \t{y}" for y, a, _ in data)])
        _write(
            root / "MRPC" / f"{split}.tsv",
            [
                "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                *(f'{y}\t{100 + i}\t{200 + i}\t"{a}\t{b}"' for i, (y, a, b) in enumerate(data)),
            ],
            bom=True,
        )
        _write(
            root / "STS-B" / f"{split}.tsv",
            [
                f"{STSB_HEAD}\tscore",
                *(
                    f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}\t{abs(5.0 * y - 0.25 * (i % 3)):.3f}"
                    for i, (y, a, b) in enumerate(data)
                ),
            ],
        )
        _write(
            root / "QQP" / f"{split}.tsv",
            [
                "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                *(f"{i}\t{2 * i}\t{2 * i + 1}\t{a}?\t{b}?\t{y}" for i, (y, a, b) in enumerate(data)),
            ],
        )
        _write(
            root / "QNLI" / f"{split}.tsv",
            [
                "index\tquestion\tsentence\tlabel",
                *(
                    f"{i}\t{b}?\t{a}.\t{'entailment' if y else 'not_entailment'}"
                    for i, (y, a, b) in enumerate(data)
                ),
            ],
        )
        _write(
            root / "RTE" / f"{split}.tsv",
            [
                "index\tsentence1\tsentence2\tlabel",
                *(
                    f"{i}\t{a}.\t{b}.\t{'entailment' if y else 'not_entailment'}"
                    for i, (y, a, b) in enumerate(data)
                ),
            ],
        )
        _write(
            root / "WNLI" / f"{split}.tsv",
            [
                "index\tsentence1\tsentence2\tlabel",
                *(f"{i}\t{a}.\t{b}.\t{y}" for i, (y, a, b) in enumerate(data)),
            ],
        )
    mnli = {
        "train": (n_train, "label1\tgold_label"),
        "dev_matched": (n_dev, "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"),
        "dev_mismatched": (n_dev, "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"),
    }
    for split, (n, tail) in mnli.items():
        lines = [f"{MNLI_HEAD}\t{tail}"]
        for i, (y, a, b) in enumerate(rows(rng, n)):
            label = nli[y + (i % 3 == 0)]  # all three labels appear
            votes = "\t".join([label] * tail.count("\t"))
            lines.append(
                f"{i}\t{i}\t{i}n\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}\t{votes}\t{label}"
            )
        _write(root / "MNLI" / f"{split}.tsv", lines)

    test = rows(rng, n_test)
    _write(
        root / "CoLA" / "test.tsv", ["index\tsentence", *(f"{i}\t{a}" for i, (_, a, _) in enumerate(test))]
    )
    _write(
        root / "SST-2" / "test.tsv", ["index\tsentence", *(f"{i}\t{a}" for i, (_, a, _) in enumerate(test))]
    )
    _write(
        root / "MRPC" / "test.tsv",
        [
            "index\t#1 ID\t#2 ID\t#1 String\t#2 String",
            *(f"{i}\t{300 + i}\t{400 + i}\t{a}\t{b}" for i, (_, a, b) in enumerate(test)),
        ],
    )
    _write(
        root / "STS-B" / "test.tsv",
        [
            STSB_HEAD,
            *(
                f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}"
                for i, (_, a, b) in enumerate(test)
            ),
        ],
    )
    _write(
        root / "QQP" / "test.tsv",
        ["id\tquestion1\tquestion2", *(f"{i}\t{a}?\t{b}?" for i, (_, a, b) in enumerate(test))],
    )
    for task in ("QNLI",):
        _write(
            root / task / "test.tsv",
            ["index\tquestion\tsentence", *(f"{i}\t{b}?\t{a}." for i, (_, a, b) in enumerate(test))],
        )
    for task in ("RTE", "WNLI"):
        _write(
            root / task / "test.tsv",
            ["index\tsentence1\tsentence2", *(f"{i}\t{a}.\t{b}." for i, (_, a, b) in enumerate(test))],
        )
    for split in ("test_matched", "test_mismatched"):
        _write(
            root / "MNLI" / f"{split}.tsv",
            [
                MNLI_HEAD,
                *(
                    f"{i}\t{i}\t{i}n\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}"
                    for i, (_, a, b) in enumerate(test)
                ),
            ],
        )
    _write(
        root / "diagnostic" / "diagnostic.tsv",
        ["index\tsentence1\tsentence2", *(f"{i}\t{a}.\t{b}." for i, (_, a, b) in enumerate(test))],
    )
    return root


def train_spm(directory: Path, vocab_size: int = 64) -> Path:
    """A tiny SentencePiece model with ALBERT's control symbols; every fixture word is one
    piece (user-defined symbols), so a tiny model sees words, not letters."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    rng = random.Random(1)
    lines = [sentence(rng, rng.random() < 0.5) + " ? ." for _ in range(400)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines += [
        " ".join("".join(rng.choices(letters, k=rng.randint(2, 6))) for _ in range(8)) for _ in range(100)
    ]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.Train(
        input=str(corpus),
        model_prefix=str(directory / "m"),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols="[CLS],[SEP],[MASK]",
        user_defined_symbols=",".join(POSITIVE + NEGATIVE + FILLER),
        character_coverage=1.0,
        minloglevel=2,
    )
    return directory / "m.model"


MICRO = [  # a model small enough to fine-tune in seconds on one CPU core
    "model.embedding_size=16",
    "model.hidden_size=32",
    "model.num_hidden_layers=2",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "model.max_position_embeddings=64",
    "model.classifier_dropout_prob=0.0",
    "data.max_seq_length=64",
]


def pretrained_dir(target: Path, spm_model: Path, seed: int = 0) -> Path:
    """A random-init 'pretrained' albertctl model dir with the tiny vocabulary."""
    import torch

    vocab_size = spm.SentencePieceProcessor(model_file=str(spm_model)).GetPieceSize()
    profile = load_profile("tiny", [*MICRO, f"model.vocab_size={vocab_size}"])
    with torch.random.fork_rng():  # the fixture's init, without touching the caller's RNG
        torch.manual_seed(seed)
        model = AlbertForPreTraining(profile.model)
    return save_model_dir(target, profile, model.state_dict(), spm_model)


def task_world(root: Path) -> dict:
    """What a task's tests share: a tiny SentencePiece model, its tokenizer and a random-init
    pretrained model directory, under `root`."""
    from albertctl.data.tokenizer import Tokenizer

    spm_model = train_spm(root / "spm")
    return {
        "root": root,
        "spm": spm_model,
        "tok": Tokenizer(spm_model),
        "model": pretrained_dir(root / "pre", spm_model),
    }
