"""Vocabulary training: a SentencePiece unigram vocabulary the way ALBERT's was trained
(`albertctl vocab`, and `prepare` without --vocab), or a WordPiece one.

Defaults are the flags of the released `30k-clean.model` (SPEC section 2): unigram, pad 0,
unk 1, no bos/eos, control symbols [CLS] [SEP] [MASK] (so they get ids 2, 3, 4),
user-defined symbols ( ) " - . – £ €, shuffled sentence sampling of up to 10M sentences,
character coverage 0.99995. The vocabulary size is the profile's `model.vocab_size`.
Any of them can be changed through `options` (CLI: `--spm key=value`).

The training text goes through the tokenizer's normalisation first (accents stripped,
lower-cased, quotes unified), so the pieces are the ones the tokenizer will ask for.

`kind="wordpiece"` trains a BERT WordPiece `vocab.txt` instead, as the Chinese models use:
`tokenizers`' WordPieceTrainer behind BERT's normaliser and pre-tokenizer (the ones
`data.wordpiece` tokenizes with), the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] first
(ids 0-4: BERT's order, without its 99 [unusedN] slots), then the learnt pieces by length:
single characters, their `##` forms, then longer pieces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

from albertctl.core import outputs
from albertctl.core.config import Profile
from albertctl.core.errors import AlbertError
from albertctl.core.results import Result
from albertctl.data.corpus import DatasetSource, ReadStats, iter_documents
from albertctl.data.tokenizer import Tokenizer, load_tokenizer, normalize_text
from albertctl.data.wordpiece import SPECIAL_TOKENS as WORDPIECE_SPECIALS
from albertctl.data.wordpiece import bert_pipeline

ALBERT_SPM_FLAGS: dict[str, Any] = {
    "model_type": "unigram",
    "pad_id": 0,
    "unk_id": 1,
    "bos_id": -1,
    "eos_id": -1,
    # lists, not comma-joined strings: SentencePiece reads them as CSV, where a bare " breaks
    "control_symbols": ["[CLS]", "[SEP]", "[MASK]"],
    "user_defined_symbols": ["(", ")", '"', "-", ".", "–", "£", "€"],
    "shuffle_input_sentence": True,
    "input_sentence_size": 10_000_000,
    "character_coverage": 0.99995,
    "max_sentence_length": 4192,  # bytes; SentencePiece skips longer sentences (we count them)
}
SAMPLE_SENTENCES = 2000  # held back (in memory) to measure coverage after training
KINDS = ("sentencepiece", "wordpiece")


@dataclass(frozen=True)
class VocabResult(Result):
    """What `albertctl vocab` prints; `to_dict()` is its --json output."""

    model: str  # the trained file (.model, or vocab.txt for WordPiece)
    vocab: str  # the piece list (.vocab; the same vocab.txt for WordPiece)
    vocab_size: int
    special_ids: dict[str, int]
    inputs: list[str]
    input_bytes: int
    sentences: int
    decode_error_lines: int
    too_long_sentences: int
    sample_sentences: int  # held back to measure coverage on
    token_coverage: float  # share of sample tokens that are not <unk>
    tokens_per_word: float
    example: str
    example_pieces: list[str]
    flags: dict[str, Any]  # the trainer's settings (num_threads left out: it does not change the output)
    warnings: list[str]


def train_sentencepiece(
    profile: Profile,
    inputs: list[str | Path] | DatasetSource | None,
    output: Path | str,
    vocab_size: int | None = None,
    options: dict[str, Any] | None = None,
    seed: int | None = None,
    num_threads: int = 1,
) -> VocabResult:
    """Train `<output>.model` and `<output>.vocab` from files/globs, a dataset, or (no input)
    the built-in sample corpus; both written whole or not at all. `vocab_size` None: the
    profile's `model.vocab_size`; `options`: SentencePiece flags over ALBERT's; `seed` None:
    the profile's `train.seed`. Returns the summary the CLI prints."""
    output = Path(output)
    if output.suffix == ".model":
        output = output.with_suffix("")
    flags = build_flags(vocab_size or profile.model.vocab_size, options or {}, num_threads)
    seed = profile.train.seed if seed is None else seed
    stats = ReadStats()
    counts = {"sentences": 0, "too_long_sentences": 0}
    sample: list[str] = []

    max_bytes = int(flags["max_sentence_length"])
    feed, interrupted = _sentence_feed(inputs, stats, counts, sample, max_bytes, profile.data.do_lower_case)

    files = [output.parent / f"{output.name}{ext}" for ext in (".model", ".vocab")]
    sources = [] if isinstance(inputs, DatasetSource) else list(inputs or [])
    for f in files:  # before any work: one line if a file there is not a vocabulary
        outputs.check_output(
            f,
            is_vocabulary_file,
            VOCABULARY,
            inputs=sources,
            flag="--output",
            directory=False,
            read_dirs=True,
        )
    # both files are written, loaded back, then moved: never half a vocabulary, never a broken one
    with outputs.atomic_files(
        output.parent,
        output.name,
        is_vocabulary_file,
        VOCABULARY,
        inputs=sources,
        validate=validate,
        flag="--output",
        read_dirs=True,
    ) as tmp:
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.Train(
                sentence_iterator=feed, model_prefix=str(tmp / output.name), minloglevel=2, **flags
            )
        except RuntimeError as err:
            if interrupted:
                raise KeyboardInterrupt from None
            how = "--vocab-size" if vocab_size else "--set model.vocab_size="
            raise AlbertError(_explain(err, counts["sentences"], inputs, how)) from None
    model_file = output.parent / f"{output.name}.model"
    return summarize(model_file, profile, flags, stats, counts, sample)


VOCABULARY = "a SentencePiece vocabulary file"


def is_vocabulary_file(path: Path) -> bool:
    """A `.model` SentencePiece loads, or a `.vocab` of `piece<TAB>score` lines."""
    if path.suffix == ".model":
        try:
            spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError):
            return False
        return True
    try:
        with path.open(encoding="utf-8") as f:
            lines = [f.readline(1 << 16) for _ in range(3)]
        for line in filter(None, lines):
            float(line.rstrip("\n").rsplit("\t", 1)[1])
    except (OSError, ValueError, IndexError):
        return False
    return path.suffix == ".vocab"


def validate(directory: Path) -> None:
    """Both files load: the model in SentencePiece, the .vocab with one line per piece."""
    [model] = directory.glob("*.model")
    try:
        pieces = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    except (OSError, RuntimeError) as err:
        raise AlbertError(f"{model}: not a SentencePiece model ({str(err).splitlines()[0]})") from None
    vocab = model.with_suffix(".vocab")
    lines = vocab.read_text(encoding="utf-8").splitlines() if vocab.is_file() else []
    if len(lines) != pieces or not all("\t" in line for line in lines):
        raise AlbertError(f"{vocab}: {len(lines)} lines for {pieces} pieces")


def _sentence_feed(
    inputs: Any, stats: ReadStats, counts: dict[str, int], sample: list[str], max_bytes: int, lower: bool
) -> tuple[Iterator[str], list[bool]]:
    """The normalised sentences SentencePiece trains on, counted into `counts` (too long ones
    skipped, as SentencePiece would) and the first SAMPLE_SENTENCES kept in `sample`. The list
    returned beside it becomes non-empty when SIGTERM or Ctrl-C stopped the reading (SentencePiece
    turns an exception in the iterator into a RuntimeError)."""
    interrupted: list[bool] = []

    def sentences() -> Iterator[str]:
        for doc in iter_documents(inputs, stats):
            for sentence in doc:
                text = normalize_text(sentence, lower)
                if not text:
                    continue
                counts["sentences"] += 1
                if len(text.encode("utf-8")) > max_bytes:
                    counts["too_long_sentences"] += 1
                    continue
                if len(sample) < SAMPLE_SENTENCES:
                    sample.append(text)
                yield text

    def guarded() -> Iterator[str]:
        try:
            yield from sentences()
        except KeyboardInterrupt:
            interrupted.append(True)
            raise

    return guarded(), interrupted


def train_wordpiece(
    profile: Profile,
    inputs: list[str | Path] | DatasetSource | None,
    output: Path | str,
    vocab_size: int | None = None,
) -> VocabResult:
    """Train a WordPiece `<output>.txt`; written whole or not at all."""
    from tokenizers import trainers

    output = Path(output)
    target = output if output.suffix == ".txt" else output.parent / f"{output.name}.txt"
    size = vocab_size or profile.model.vocab_size
    stats = ReadStats()
    counts = {"sentences": 0, "too_long_sentences": 0}
    sample: list[str] = []

    def sentences() -> Iterator[str]:
        for doc in iter_documents(inputs, stats):
            for sentence in doc:
                if not sentence.strip():
                    continue
                counts["sentences"] += 1
                if len(sample) < SAMPLE_SENTENCES:
                    sample.append(sentence)
                yield sentence

    tk = bert_pipeline(None, profile.data.do_lower_case)  # BERT's normaliser and pre-tokenizer
    trainer = trainers.WordPieceTrainer(
        vocab_size=size, special_tokens=list(WORDPIECE_SPECIALS), continuing_subword_prefix="##",
        show_progress=False,
    )  # fmt: skip
    tk.train_from_iterator(sentences(), trainer)
    if counts["sentences"] == 0:
        raise AlbertError(_explain(RuntimeError(), 0, inputs))
    # The trainer orders equally frequent characters by hash (a different file each run);
    # greedy longest-match does not depend on ids, so they are put in a fixed order instead:
    # specials, then by length, single characters before their ## forms, then code points.
    learned = set(tk.get_vocab()) - set(WORDPIECE_SPECIALS)
    pieces = [
        *WORDPIECE_SPECIALS,
        *sorted(learned, key=lambda p: (len(p.removeprefix("##")), p.startswith("##"), p)),
    ]
    sources = [] if isinstance(inputs, DatasetSource) else list(inputs or [])
    # replaces only an earlier WordPiece vocabulary (checked before and after writing), never an input
    outputs.check_output(
        target, is_wordpiece_file, WORDPIECE, inputs=sources, flag="--output", directory=False, read_dirs=True
    )
    with outputs.atomic_files(
        target.parent,
        target.stem,
        is_wordpiece_file,
        WORDPIECE,
        inputs=sources,
        flag="--output",
        read_dirs=True,
    ) as tmp:
        (tmp / target.name).write_text("\n".join(pieces) + "\n", encoding="utf-8")
    flags = {
        "kind": "wordpiece",
        "vocab_size": size,
        "special_tokens": list(WORDPIECE_SPECIALS),
        "lowercase": profile.data.do_lower_case,
    }
    return summarize(target, profile, flags, stats, counts, sample)


WORDPIECE = "a WordPiece vocabulary file"


def is_wordpiece_file(path: Path) -> bool:
    """A vocab.txt `vocab --kind wordpiece` wrote: one piece per line, starting with its specials."""
    try:
        with path.open(encoding="utf-8") as f:
            head = [f.readline(1 << 16).rstrip("\n") for _ in WORDPIECE_SPECIALS]
    except (OSError, ValueError):
        return False
    return path.suffix == ".txt" and head == list(WORDPIECE_SPECIALS)


def build_flags(vocab_size: int, options: dict[str, Any], num_threads: int) -> dict[str, Any]:
    flags = {**ALBERT_SPM_FLAGS, "vocab_size": vocab_size, "num_threads": max(1, num_threads)}
    for key, value in options.items():
        if key in ("input", "model_prefix", "sentence_iterator", "model_writer"):
            raise AlbertError(f"--spm {key}: set by albertctl (inputs and --output choose it)")
        if key in ("control_symbols", "user_defined_symbols") and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        flags[key] = value
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in flags.get("control_symbols", [])]
    if missing:
        raise AlbertError(f"--spm control_symbols must keep {', '.join(missing)}: ALBERT's inputs need them")
    return flags


def _explain(err: RuntimeError, sentences: int, inputs: Any, how: str = "--vocab-size") -> str:
    """SentencePiece's failure as one line; `how` is the option that sets the size here
    (`vocab --vocab-size`, or the profile's `--set model.vocab_size=` under prepare/pretrain)."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    where = (
        "the built-in sample corpus"
        if not inputs
        else (f"dataset {inputs.name}" if isinstance(inputs, DatasetSource) else ", ".join(map(str, inputs)))
    )
    if sentences == 0:
        return f"no text to train a vocabulary on in {where} (empty input)"
    if "Vocabulary size too high" in text:
        text = text[text.index("Vocabulary size too high") :]
        most = re.search(r"<= *(\d+)", text)
        fix = f"{how}{most.group(1)}" if most and how.endswith("=") else f"a lower {how}"
        if how.endswith("=") and not most:
            fix = f"a lower {how}N"
        return f"SentencePiece: {text} ({sentences} sentences in {where}); use {fix} or more text"
    return f"SentencePiece training failed on {where}: {text}"


def _encode_sample(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Ids of sample sentences: SentencePiece's are normalised already, WordPiece's raw."""
    if tok.kind == "wordpiece":
        return tok.encode_many(texts)
    return tok.sp.encode(texts, out_type=int, num_threads=1) if texts else []


def summarize(
    model_file: Path,
    profile: Profile,
    flags: dict[str, Any],
    stats: ReadStats,
    counts: dict[str, int],
    sample: list[str],
) -> VocabResult:
    """Vocabulary size, special ids, coverage of the held-back sample, a tokenised sentence."""
    tok = load_tokenizer(model_file, profile.data.do_lower_case)
    encoded = _encode_sample(tok, sample)
    total = sum(len(ids) for ids in encoded)
    unk = sum(ids.count(tok.unk_id) for ids in encoded)
    words = sum(len(s.split()) for s in sample)
    example = sample[0] if sample else ""
    warnings = []
    if stats.decode_error_lines:
        warnings.append(
            f"{stats.decode_error_lines} input lines were not valid UTF-8; bad bytes became U+FFFD"
        )
    if counts["too_long_sentences"]:
        warnings.append(
            f"{counts['too_long_sentences']} sentences longer than max_sentence_length "
            f"({flags['max_sentence_length']} bytes) were skipped by SentencePiece"
        )
    if tok.vocab_size != profile.model.vocab_size:
        warnings.append(
            f"vocabulary has {tok.vocab_size} pieces but profile {profile.name} has "
            f"model.vocab_size {profile.model.vocab_size}; pretrain with --set model.vocab_size={tok.vocab_size}"
        )
    return VocabResult(
        model=str(model_file),
        vocab=str(model_file if tok.kind == "wordpiece" else model_file.with_suffix(".vocab")),
        vocab_size=tok.vocab_size,
        special_ids={
            ("[PAD]" if tok.kind == "wordpiece" else "<pad>"): tok.pad_id,
            ("[UNK]" if tok.kind == "wordpiece" else "<unk>"): tok.unk_id,
            "[CLS]": tok.cls_id,
            "[SEP]": tok.sep_id,
            "[MASK]": tok.mask_id,
        },
        inputs=stats.sources,
        input_bytes=stats.bytes,
        sentences=counts["sentences"],
        decode_error_lines=stats.decode_error_lines,
        too_long_sentences=counts["too_long_sentences"],
        sample_sentences=len(sample),
        token_coverage=1.0 - unk / total if total else 0.0,  # share of sample tokens that are not <unk>
        tokens_per_word=total / words if words else 0.0,
        example=example,
        example_pieces=[tok.id_to_piece(i) for i in _encode_sample(tok, [example])[0]] if example else [],
        flags={k: v for k, v in flags.items() if k != "num_threads"},
        warnings=warnings,
    )
