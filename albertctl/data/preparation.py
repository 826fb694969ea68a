"""Text -> sharded pretraining data (SOP/NSP pairs, n-gram masks): `albertctl prepare`, and
`pretrain`'s built-in sample corpus.

The recipe, in order:
1. the vocabulary: the given SentencePiece model, or one trained on the same input;
2. read documents as a stream and group them into chunks (by document count and bytes);
3. hand chunks to `num_proc` worker processes, at most a few in flight (bounded memory);
   each makes the rows of its chunk (`data.pretraining.InstanceBuilder`);
4. write the rows in chunk order to Arrow shards of the train and eval splits;
5. write `manifest.json` with the recipe, counts and statistics, and rename the directory
   into place (nothing is left under the output name if anything fails).

Generators are derived from (seed, document index), so with a given vocabulary the output is
byte-identical for a seed whatever `num_proc` is. A vocabulary trained here uses `num_proc`
SentencePiece threads, and SentencePiece's result depends on its thread count.
"""

from __future__ import annotations

import collections
import itertools
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albertctl import __version__
from albertctl.core import outputs
from albertctl.core.config import DataConfig, Profile
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import sha256_file, vocab_name
from albertctl.core.results import Result
from albertctl.data.corpus import DatasetSource, ReadStats, input_bytes, iter_documents
from albertctl.data.pretraining import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    SPM,
    Chunk,
    ChunkResult,
    InstanceBuilder,
    ShardWriter,
    build_chunk,
    check_split,
    init_worker,
    num_to_mask,
    read_manifest,
)
from albertctl.data.pretraining import vocab_file as manifest_vocab
from albertctl.data.tokenizer import Tokenizer, load_tokenizer
from albertctl.data.vocab import train_sentencepiece

CHUNK_DOCUMENTS = 256  # documents per chunk handed to a worker ...
CHUNK_BYTES = 2 << 20  # ... or fewer once they hold this much text
TIMING_KEYS = ("seconds", "documents_per_second", "mb_per_second", "instances_per_second")
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PrepareResult(Result):
    """What `albertctl prepare` prints; `to_dict()` is its --json output. The fields up to
    `instances_per_second` are `statistics()` (the manifest keeps them, timings left out)."""

    documents: int
    documents_train: int
    documents_eval: int
    sentences: int
    instances: int
    instances_train: int
    instances_eval: int
    tokens: int
    tokens_per_instance: float
    padding_share: float
    masked_share: float
    masked_share_from: str
    max_predictions_at_max_seq_length: int
    span_lengths: dict[str, int]
    span_length_shares: dict[str, float]
    replacement_shares: dict[str, float]
    label_1_share: float
    input_bytes: int
    seconds: float
    documents_per_second: float
    mb_per_second: float
    instances_per_second: float
    warnings: list[str]
    output: str
    skipped: dict[str, int]  # why input was dropped -> count
    adjusted: dict[str, int]  # what was changed to fit -> count


def prepare_data(
    profile: Profile,
    inputs: list[str | Path] | DatasetSource | None = None,
    output: Path | str = "data",
    vocab: Path | str | None = None,
    num_proc: int = 1,
    seed: int | None = None,
    progress: ProgressFn | None = None,
    shard_bytes: int = 256 << 20,
    chunk_documents: int = CHUNK_DOCUMENTS,
) -> PrepareResult:
    """Prepare pretraining data from files/globs, a dataset, or (no input) the sample corpus
    into `output` (replaced atomically). Returns the statistics the CLI prints (also stored in
    the manifest)."""
    data = profile.data
    seed = profile.train.seed if seed is None else seed
    if num_proc < 1:
        raise AlbertError(f"--num-proc must be at least 1, got {num_proc}")
    output = Path(output)
    sources = [*([] if isinstance(inputs, DatasetSource) else inputs or []), vocab]
    outputs.check_output(
        output, owns_prepared_data, PREPARED, inputs=sources, flag="--output", read_dirs=True
    )
    # a given vocabulary is read once, before any work: a clear error if it lacks [CLS] etc.
    tokenizer = load_tokenizer(vocab, data.do_lower_case) if vocab is not None else None
    started = time.perf_counter()
    stats = ReadStats()
    total_bytes = input_bytes(inputs)
    vocab_file = vocab_name(vocab) if vocab is not None else SPM  # vocab.txt for WordPiece
    with outputs.atomic_directory(
        output,
        owns_prepared_data,
        PREPARED,
        inputs=sources,
        validate=validate,
        flag="--output",
        read_dirs=True,
    ) as tmp:
        vocab_summary = None
        if tokenizer is None:
            vocab_summary = train_sentencepiece(
                profile, inputs, tmp / "spiece", seed=seed, num_threads=num_proc
            )
            (tmp / "spiece.vocab").unlink()
            tokenizer = load_tokenizer(tmp / vocab_file, data.do_lower_case)
        else:
            shutil.copyfile(vocab, tmp / vocab_file)
        documents_in = chunks(iter_documents(inputs, stats), stats, chunk_documents)
        shards, counts, documents = _write_shards(
            documents_in,
            tmp,
            vocab_file,
            tokenizer,
            data,
            seed,
            num_proc,
            shard_bytes,
            progress,
            total_bytes,
        )
        _check_something_came_out(documents, counts, inputs, stats)
        elapsed = time.perf_counter() - started
        result = statistics(counts, documents, stats, data, elapsed)
        warnings = _warnings(counts, stats, tokenizer, profile)
        manifest = _manifest(
            tmp,
            profile,
            seed,
            vocab_file,
            tokenizer,
            vocab_summary is not None,
            stats,
            shards,
            counts,
            result,
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if vocab_summary is not None:
        warnings.insert(0, "no --vocab given: trained one on the same input (spiece.model in the output)")
    return PrepareResult(
        **result,
        warnings=warnings,
        output=str(output),
        skipped=manifest["skipped"],
        adjusted=manifest["adjusted"],
    )


def _check_something_came_out(documents: int, counts: Counter, inputs: Any, stats: ReadStats) -> None:
    if documents == 0:
        raise AlbertError(f"no documents in {_describe(inputs, stats)} (empty input)")
    if counts["instances/train"] == 0:
        raise AlbertError(
            f"no training instances from {documents} document(s) in {_describe(inputs, stats)}: "
            f"{_skipped_text(counts)}; add text or lower data.held_out_fraction"
        )


def _write_shards(
    documents_in: Iterator,
    tmp: Path,
    vocab_file: str,
    tokenizer: Tokenizer,
    data: DataConfig,
    seed: int,
    num_proc: int,
    shard_bytes: int,
    progress: ProgressFn | None,
    total_bytes: int | None,
) -> tuple[dict[str, Any], Counter, int]:
    """Turn the document chunks into instances (in `num_proc` workers) and write both splits'
    shards under `tmp`; returns the shard lists, the counts and the number of documents.
    Progress events start with one at zero bytes, and their `elapsed` counts from it, so a bar's
    rate and ETA are the reading's (a vocabulary trained before it is not in them)."""
    writers = {split: ShardWriter(tmp, split, data.masking == "static", shard_bytes) for split in SPLITS}
    counts: Counter = Counter()
    documents = 0
    reading = time.perf_counter()

    def report(bytes_read: int) -> None:
        if progress is not None:
            progress(
                {
                    "documents": documents,
                    "bytes": bytes_read,
                    "total_bytes": total_bytes,
                    "instances": counts["instances/train"] + counts["instances/eval"],
                    "elapsed": time.perf_counter() - reading,
                }
            )

    report(0)
    for result in _process(documents_in, tokenizer, tmp / vocab_file, data, seed, num_proc):
        for split in SPLITS:
            writers[split].write(result.batches[split])
        counts.update(result.counts)
        documents += result.documents
        report(result.bytes_read)
    return {split: writers[split].close() for split in SPLITS}, counts, documents


def _manifest(
    tmp: Path,
    profile: Profile,
    seed: int,
    vocab_file: str,
    tokenizer: Tokenizer,
    trained_here: bool,
    stats: ReadStats,
    shards: dict[str, Any],
    counts: Counter,
    result: dict[str, Any],
) -> dict[str, Any]:
    """manifest.json of the directory being written in `tmp` (its files' checksums included)."""
    data = profile.data
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_by": f"albertctl {__version__}",
        "objective": "nsp" if data.random_next_sentence else "sop",
        "masking": data.masking,
        "seed": seed,
        "data": profile.to_dict()["data"],
        "vocab": {
            "file": vocab_file,
            "vocab_size": tokenizer.vocab_size,
            "sha256": sha256_file(tmp / vocab_file),
            "trained_here": trained_here,
        },
        "inputs": stats.sources,
        "splits": {
            split: {
                "shards": shards[split],
                "instances": counts[f"instances/{split}"],
                "documents": counts[f"documents/{split}"],
                "tokens": counts[f"tokens/{split}"],
            }
            for split in SPLITS
        },
        "skipped": {
            k.removeprefix("skipped_"): counts[k] for k in sorted(counts) if k.startswith("skipped_")
        },
        "adjusted": {
            "decode_error_lines": stats.decode_error_lines,
            "long_sentences_split": counts["long_sentences_split"],
            "one_sentence_chunks_split": counts["one_sentence_chunks_split"],
            "tokens_truncated": counts["tokens_truncated"],
            "nsp_without_other_document": counts["nsp_without_other_document"],
        },
        # timings stay out, so the directory is byte-identical for a seed whatever num_proc
        "statistics": {k: v for k, v in result.items() if k not in TIMING_KEYS},
    }
    manifest["files"] = {
        p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(tmp.rglob("*"))
        if p.is_file()
    }
    return manifest


PREPARED = "prepared data"


def owns_prepared_data(path: Path) -> bool:
    """An earlier `prepare` output: its manifest, and no file the manifest does not list."""
    return outputs.manifest_owns(path, lambda m: m.get("format") == FORMAT, MANIFEST)


def validate(path: Path) -> None:
    """The written directory loads back: the manifest, every file it lists, the vocabulary
    and both splits with the row counts the manifest records."""
    manifest = read_manifest(path)
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file() or f.stat().st_size != meta["bytes"]:
            raise AlbertError(f"{f}: missing or not the size {MANIFEST} records")
    load_tokenizer(manifest_vocab(path, manifest), True)  # spiece.model, or vocab.txt (WordPiece)
    for split in SPLITS:
        check_split(path, split)


def chunks(
    documents: Iterator[list[str]], stats: ReadStats | None = None, chunk_documents: int = CHUNK_DOCUMENTS
) -> Iterator[Chunk]:
    """Group the document stream into chunks; boundaries depend only on the input."""
    batch: list[list[str]] = []
    size = 0
    first = 0
    index = 0
    reader_stats = stats
    for doc in documents:
        batch.append(doc)
        size += sum(len(s) for s in doc)
        if len(batch) >= chunk_documents or size >= CHUNK_BYTES:
            yield Chunk(index, first, batch, reader_stats.bytes if reader_stats else 0)
            first += len(batch)
            index += 1
            batch, size = [], 0
    if batch:
        yield Chunk(index, first, batch, reader_stats.bytes if reader_stats else 0)


def _process(
    chunk_iter: Iterator[Chunk],
    tokenizer: Tokenizer,
    vocab_file: Path,
    data: DataConfig,
    seed: int,
    num_proc: int,
) -> Iterator[ChunkResult]:
    """Results in chunk order. With several processes at most 2 x num_proc chunks are in
    flight, so reading never runs ahead of the workers (Pool.imap would read everything).
    One process uses `tokenizer`; workers load `vocab_file` (the output's copy of it)."""
    first = next(chunk_iter, None)
    second = next(chunk_iter, None)
    if num_proc == 1 or second is None:  # one chunk: starting workers would only cost time
        builder = InstanceBuilder(tokenizer, data, seed)
        for chunk in itertools.chain([first, second], chunk_iter):
            if chunk is not None:
                yield builder(chunk)
        return
    import multiprocessing  # only with workers: a one-process run starts without them
    from concurrent.futures import ProcessPoolExecutor

    chunk_iter = itertools.chain([first, second], chunk_iter)
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch/rich threads exist
    # an executor, not a Pool: a worker that dies raises BrokenProcessPool instead of hanging
    with ProcessPoolExecutor(
        num_proc, mp_context=ctx, initializer=init_worker, initargs=(vocab_file, data, seed)
    ) as pool:
        pending: collections.deque = collections.deque()
        for chunk in chunk_iter:
            pending.append(pool.submit(build_chunk, chunk))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def statistics(
    counts: Counter, documents: int, stats: ReadStats, data: DataConfig, elapsed: float
) -> dict[str, Any]:
    """The final table: documents, instances, tokens, padding, masking, spans, labels."""
    instances = counts["instances/train"] + counts["instances/eval"]
    tokens = counts["tokens/train"] + counts["tokens/eval"]
    spans = {n: counts[f"span_{n}"] for n in range(1, data.ngram + 1)}
    span_total = sum(spans.values())
    replaced = {k: counts[f"replaced_{k}"] for k in ("mask", "random", "keep")}
    replaced_total = sum(replaced.values())
    label_1 = counts["label_1/train"] + counts["label_1/eval"]
    return {
        "documents": documents,
        "documents_train": counts["documents/train"],
        "documents_eval": counts["documents/eval"],
        "sentences": counts["sentences"],
        "instances": instances,
        "instances_train": counts["instances/train"],
        "instances_eval": counts["instances/eval"],
        "tokens": tokens,
        "tokens_per_instance": tokens / instances if instances else 0.0,
        "padding_share": 1.0 - tokens / (instances * data.max_seq_length) if instances else 0.0,
        "masked_share": counts["masked_tokens"] / counts["masked_sample_tokens"]
        if counts["masked_sample_tokens"]
        else 0.0,
        "masked_share_from": "all instances"
        if data.masking == "static"
        else f"a sample of {counts['masked_sample_instances']} instances (masked again at load time)",
        "max_predictions_at_max_seq_length": num_to_mask(data.max_seq_length, data),
        "span_lengths": {str(n): c for n, c in spans.items()},
        "span_length_shares": {str(n): (c / span_total if span_total else 0.0) for n, c in spans.items()},
        "replacement_shares": {
            k: (c / replaced_total if replaced_total else 0.0) for k, c in replaced.items()
        },
        "label_1_share": label_1 / instances if instances else 0.0,
        "input_bytes": stats.bytes,
        "seconds": elapsed,
        "documents_per_second": documents / elapsed if elapsed else 0.0,
        "mb_per_second": stats.bytes / 1e6 / elapsed if elapsed else 0.0,
        "instances_per_second": instances / elapsed if elapsed else 0.0,
    }


def _describe(inputs: Any, stats: ReadStats) -> str:
    if isinstance(inputs, DatasetSource):
        return f"dataset {inputs.name}"
    if not inputs:
        return "the built-in sample corpus"
    return ", ".join(stats.sources) or ", ".join(map(str, inputs))


def _skipped_text(counts: Counter) -> str:
    parts = [
        f"{counts[k]} {k.removeprefix('skipped_').replace('_', ' ')}"
        for k in sorted(counts)
        if k.startswith("skipped_") and counts[k]
    ]
    held = counts["documents/eval"]
    if held:
        parts.append(f"{held} document(s) held out for eval")
    return ", ".join(parts) or "every document was too short"


def _warnings(counts: Counter, stats: ReadStats, tokenizer: Tokenizer, profile: Profile) -> list[str]:
    out = []
    if stats.decode_error_lines:
        out.append(f"{stats.decode_error_lines} input line(s) were not valid UTF-8; bad bytes became U+FFFD")
    if stats.empty_documents:
        out.append(f"{stats.empty_documents} dataset row(s) had no text and were skipped")
    for key, what in (
        ("skipped_empty_sentences", "sentence(s) were empty after normalisation and skipped"),
        ("skipped_one_word_chunks", "one-word chunk(s) could not make a pair and were skipped"),
        (
            "long_sentences_split",
            f"sentence(s) longer than {profile.data.max_seq_length - 3} tokens "
            "were cut at word starts into shorter ones",
        ),
        (
            "nsp_without_other_document",
            "NSP pair(s) kept the real next segment: no other document in their chunk",
        ),
    ):
        if counts[key]:
            out.append(f"{counts[key]} {what}")
    if tokenizer.vocab_size != profile.model.vocab_size:
        out.append(
            f"vocabulary has {tokenizer.vocab_size} pieces but profile {profile.name} has "
            f"model.vocab_size {profile.model.vocab_size}; pretrain with --set model.vocab_size={tokenizer.vocab_size}"
        )
    return out
