"""Pretraining data: SOP/NSP pairs, whole-word n-gram masking, Arrow shards, the collator.

The recipe is SPEC section 3 (after google-research/albert `create_pretraining_data.py`);
what differs from the original is said where it happens.

Prepared data directory (written by `albertctl prepare`, read by `load_split`):

    DIR/
      manifest.json        format, recipe (data section, seed), vocab, counts, statistics, files
      spiece.model         the SentencePiece model the ids refer to (or vocab.txt: WordPiece)
      train/shard-00000.arrow ...   Arrow stream files (`datasets.Dataset.from_file` reads them)
      eval/shard-00000.arrow ...    `data.held_out_fraction` of the documents, never in train

Columns of one instance (one row):

    input_ids              list<int32>  [CLS] A [SEP] B [SEP], unpadded (static: already masked)
    token_type_ids         list<int8>   0 for [CLS] A [SEP], 1 for B [SEP]
    sentence_order_label   int8         SOP: 1 = A and B swapped; NSP: 1 = B from another document
    document               int64        index of the source document in the input
    uid                    int64        row number inside its split (seeds dynamic masking)
    masked_lm_positions    list<int32>  static masking only: positions that were masked
    masked_lm_ids          list<int32>  static masking only: the original ids at those positions

Rows are in input order; shuffle them when loading (the original shuffled in memory).
Dynamic masking (the default) stores unmasked pairs once and `PretrainingCollator` masks at
load time; static masking stores `dupe_factor` copies, each with its own pairs and masks
(the eval split keeps one copy).

Every random choice comes from a generator derived from (seed, purpose, index), never from
a worker's position, so the output is the same whatever the number of worker processes.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from albertctl.core.config import DataConfig
from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Tokenizer, load_tokenizer

if TYPE_CHECKING:  # torch and datasets are imported where used: worker processes start faster
    import datasets
    import torch

FORMAT = "albertctl-pretraining-data"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPM = "spiece.model"
SPLITS = ("train", "eval")


def derive_rng(seed: int, purpose: str, *indices: int) -> random.Random:
    """A generator that depends only on (seed, purpose, indices): string seeds are hashed
    with SHA-512 by `random.Random`, so streams for neighbouring indices are unrelated."""
    return random.Random(f"albertctl:{seed}:{purpose}:" + ":".join(str(i) for i in indices))


# --------------------------------------------------------------------------- counts


def max_predictions(length: int, data: DataConfig) -> int:
    """Most masked positions for a sequence (or a batch padded) to `length` tokens:
    `data.max_predictions_per_seq` at `data.max_seq_length`, scaled linearly, at least 1.
    With the base profile that is 20 at 512 tokens, as ALBERT trained."""
    return max(1, math.ceil(data.max_predictions_per_seq * length / data.max_seq_length))


def num_to_mask(length: int, data: DataConfig) -> int:
    """`masked_lm_prob` of the tokens ([CLS]/[SEP] included, as the original counts), capped."""
    return min(max_predictions(length, data), max(1, round(length * data.masked_lm_prob)))


def is_held_out(doc_index: int, fraction: float) -> bool:
    """Every 1/fraction-th document, starting with document 0: exactly `fraction` of them,
    spread evenly, and a non-empty eval split as soon as there is one document."""
    return fraction > 0 and math.ceil((doc_index + 1) * fraction) > math.ceil(doc_index * fraction)


# --------------------------------------------------------------------------- pairs


@dataclass
class Pair:
    tokens_a: list[int]
    tokens_b: list[int]
    label: int  # SOP: 1 = swapped; NSP: 1 = random B


def split_long_sentences(
    sentences: list[list[int]], limit: int, word_start: bytes, counts: Counter
) -> list[list[int]]:
    """Sentences longer than `limit` tokens become pieces of at most `limit` tokens, cut at
    word starts (a single word longer than `limit` is cut inside). The original kept them
    whole and truncation then dropped most of their tokens."""
    out: list[list[int]] = []
    for sent in sentences:
        if len(sent) <= limit:
            out.append(sent)
            continue
        counts["long_sentences_split"] += 1
        start = 0
        while len(sent) - start > limit:
            cut = start + limit
            while cut > start + 1 and not word_start[sent[cut]]:
                cut -= 1
            if cut == start + 1 and not word_start[sent[cut]]:
                cut = start + limit
            out.append(sent[start:cut])
            start = cut
        out.append(sent[start:])
    return out


def _split_one_sentence(
    sent: list[int], word_start: bytes, rng: random.Random
) -> tuple[list[int], list[int]] | None:
    """A and B from one sentence, cut at a random word start; None for a single word (cutting
    inside a word would make a pair no reader could order)."""
    cuts = [i for i in range(1, len(sent)) if word_start[sent[i]]]
    if not cuts:
        return None
    cut = cuts[rng.randrange(len(cuts))]
    return sent[:cut], sent[cut:]


def truncate_pair(a: list[int], b: list[int], max_num_tokens: int, rng: random.Random) -> int:
    """Shorten the longer of A/B by one token at a time, from the front or the back at random,
    until both fit (in place). Returns the number of tokens removed."""
    removed = 0
    while len(a) + len(b) > max_num_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
        removed += 1
    return removed


def create_pairs(
    document: list[list[int]],
    data: DataConfig,
    rng: random.Random,
    word_start: bytes,
    counts: Counter,
    other_document: Callable[[random.Random], list[list[int]] | None] | None = None,
) -> list[Pair]:
    """The pairs of one document (sentences already tokenised and split to fit).

    Chunks of whole sentences grow to a target length (`max_seq_length - 3`, or with
    `short_seq_prob` a random length in [2, max], drawn once per document as the original
    does) and are cut at a random sentence boundary into A and B. SOP swaps them with
    probability 0.5. NSP (`data.random_next_sentence`) replaces B with probability 0.5 by
    text from `other_document` and gives back the unused sentences of the chunk.

    One-sentence chunks (google-research/albert issue 234): the original pairs them with a
    random B from another document and labels them "random next" even for SOP, which mixes
    an easier NSP-style negative into the SOP task. Here the sentence is cut at a random word
    start into A and B, so both halves are consecutive text of one document and the label
    means what it says; a chunk of a single word is skipped and counted.
    """
    max_num_tokens = data.max_seq_length - 3
    target = max_num_tokens
    if rng.random() < data.short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    pairs: list[Pair] = []
    chunk: list[list[int]] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            if len(chunk) == 1:
                halves = _split_one_sentence(chunk[0], word_start, rng)
                if halves is None:
                    counts["skipped_one_word_chunks"] += 1
                    chunk, length, i = [], 0, i + 1
                    continue
                counts["one_sentence_chunks_split"] += 1
                a, b = list(halves[0]), list(halves[1])
                a_end = 1
            else:
                a_end = rng.randint(1, len(chunk) - 1)
                a = [t for s in chunk[:a_end] for t in s]
                b = [t for s in chunk[a_end:] for t in s]
            label = 0
            if data.random_next_sentence:
                if rng.random() < 0.5:
                    other = other_document(rng) if other_document is not None else None
                    if other:
                        if len(chunk) == 1:
                            a = list(chunk[0])  # the whole sentence: B comes from elsewhere
                        b = _random_segment(other, max(1, target - len(a)), rng)
                        label = 1
                        if len(chunk) > 1:  # the unused sentences start the next chunk
                            i -= len(chunk) - a_end
                    else:
                        counts["nsp_without_other_document"] += 1
            elif rng.random() < 0.5:
                a, b = b, a
                label = 1
            counts["tokens_truncated"] += truncate_pair(a, b, max_num_tokens, rng)
            pairs.append(Pair(a, b, label))
            chunk, length = [], 0
        i += 1
    return pairs


def _random_segment(document: list[list[int]], target: int, rng: random.Random) -> list[int]:
    start = rng.randrange(len(document))
    out: list[int] = []
    for sent in document[start:]:
        out.extend(sent)
        if len(out) >= target:
            break
    return out


# --------------------------------------------------------------------------- masking


@dataclass(frozen=True)
class MaskingVocab:
    """What masking needs from the vocabulary; small and picklable for worker processes."""

    word_start: bytes  # per id: 1 when the piece starts a word ("▁" prefix; WordPiece: no "##")
    mask_id: int
    replacement_ids: tuple[int, ...]  # ids a "random token" is drawn from (no special ids)

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> MaskingVocab:
        starts = bytes(1 if tokenizer.is_word_start(i) else 0 for i in range(tokenizer.vocab_size))
        replacement = tuple(i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids)
        return cls(starts, tokenizer.mask_id, replacement)


@dataclass
class Masked:
    input_ids: list[int]  # with the replacements applied
    positions: list[int]  # sorted
    labels: list[int]  # original ids at `positions`
    span_lengths: list[int]  # n (in words) of every masked span
    replaced: tuple[int, int, int]  # how many became [MASK], a random id, stayed themselves


def ngram_weights(ngram: int) -> list[float]:
    """Cumulative P(n) ∝ 1/n for n = 1..ngram (6/11, 3/11, 2/11 for 3)."""
    raw = [1.0 / n for n in range(1, ngram + 1)]
    total = sum(raw)
    cum, acc = [], 0.0
    for w in raw:
        acc += w / total
        cum.append(acc)
    cum[-1] = 1.0
    return cum


def mask_sequence(
    input_ids: Sequence[int],
    len_a: int,
    vocab: MaskingVocab,
    data: DataConfig,
    rng: random.Random,
) -> Masked:
    """Whole-word n-gram masking of `[CLS] A [SEP] B [SEP]` (A has `len_a` tokens).

    Words start at "▁" pieces and at the first token of A and of B; a span never crosses
    [SEP]. A span's length n (in words) is drawn with P(n) ∝ 1/n, then a free place for it
    that keeps the count within `max_predictions`. Spans are added while fewer than the
    target (`num_to_mask`, less the expected overshoot of the last span) are chosen, and
    the span that crosses the target is kept. Deciding to stop from the count so far, never
    from the next span's size, keeps the realised span lengths at 6/11, 3/11, 2/11 (Wald's
    identity); the original backed off to shorter spans near the budget, which skews them
    short. Each chosen token becomes [MASK] 80%, a random non-special id 10%, itself 10%.
    """
    ids = list(input_ids)
    word_start = vocab.word_start
    sep = 1 + len_a  # position of the first [SEP]
    end = len(ids) - 1  # position of the last [SEP]
    # token index where each word starts: a "▁" piece, or the first token of A or of B
    words = [i for i in range(1, end) if i != sep and (i == 1 or i == sep + 1 or word_start[ids[i]])]
    n_words = len(words)
    n_a = bisect.bisect_left(words, sep)  # words in A
    ends = words[1:] + [end]  # token index after each word
    if 0 < n_a < n_words:
        ends[n_a - 1] = sep
    cap = max_predictions(len(ids), data)
    # the last span overshoots the target by about (mean tokens per word - 1/2) on average
    mean_word = (len(ids) - 3) / n_words if n_words else 1.0
    target = num_to_mask(len(ids), data) - max(0.0, mean_word - 0.5)
    cum = ngram_weights(data.ngram)
    ngram = data.ngram
    covered = bytearray(n_words)
    chosen: list[tuple[int, int]] = []  # (first word, n)
    masked = 0
    misses = 0
    random_ = rng.random
    while n_words and (masked < target or not chosen) and misses < 16:
        n = min(bisect.bisect_right(cum, random_()) + 1, ngram, n_words)
        for _ in range(12):  # a few random places for this n, then stop
            w = int(random_() * (n_words - n + 1))
            last = w + n - 1
            if (w < n_a) != (last < n_a) or any(covered[w : last + 1]):
                continue  # crosses [SEP] or overlaps a chosen span
            size = ends[last] - words[w]
            if masked + size > cap:
                continue
            covered[w : last + 1] = b"\x01" * n
            chosen.append((w, n))
            masked += size
            break
        else:
            if chosen:  # no room for this n: stop (but try for at least one span per sequence)
                break
            misses += 1
    positions: list[int] = []
    for w, n in chosen:
        positions.extend(range(words[w], ends[w + n - 1]))
    positions.sort()
    labels = [ids[p] for p in positions]
    pool = vocab.replacement_ids
    n_mask = n_random = 0
    for p in positions:
        r = random_()
        if r < 0.8:
            ids[p] = vocab.mask_id
            n_mask += 1
        elif r < 0.9:
            ids[p] = pool[int(random_() * len(pool))]
            n_random += 1
    replaced = (n_mask, n_random, len(positions) - n_mask - n_random)
    return Masked(ids, positions, labels, [n for _, n in chosen], replaced)


# --------------------------------------------------------------------------- chunks -> rows


@dataclass
class Chunk:
    """Consecutive documents handed to one worker. Chunk boundaries depend only on the input
    (document count and bytes), so results do not depend on the number of workers."""

    index: int
    first_document: int
    documents: list[list[str]]
    bytes_read: int  # input bytes consumed up to the end of this chunk (for MB/s)


@dataclass
class ChunkResult:
    index: int
    batches: dict[str, Any]  # split -> pyarrow.RecordBatch of its rows (all columns but uid)
    counts: Counter  # everything the statistics table and the manifest add up
    bytes_read: int
    documents: int


def schema(static: bool):
    import pyarrow as pa

    fields = [
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("token_type_ids", pa.list_(pa.int8())),
        pa.field("sentence_order_label", pa.int8()),
        pa.field("document", pa.int64()),
        pa.field("uid", pa.int64()),
    ]
    if static:
        fields += [
            pa.field("masked_lm_positions", pa.list_(pa.int32())),
            pa.field("masked_lm_ids", pa.list_(pa.int32())),
        ]
    return pa.schema(fields)


class InstanceBuilder:
    """Turns a `Chunk` of raw documents into rows for the train and eval splits.

    One per worker process. Per document: normalise and tokenise its sentences, drop those
    that come out empty, cut over-long ones (`split_long_sentences`), make pairs with a
    generator derived from (seed, document index, copy) and, for static masking, mask them.
    For dynamic masking a sample of documents (every `stats_every`-th) is masked with its own
    generator only to report the masking statistics; nothing of it is stored.
    """

    def __init__(self, vocab_file: Path, data: DataConfig, seed: int, stats_every: int = 8) -> None:
        self.tokenizer = load_tokenizer(vocab_file, data.do_lower_case)
        self.vocab = MaskingVocab.from_tokenizer(self.tokenizer)
        self.data = data
        self.seed = seed
        self.stats_every = stats_every
        self.static = data.masking == "static"

    def __call__(self, chunk: Chunk) -> ChunkResult:
        data, tok = self.data, self.tokenizer
        counts: Counter = Counter()
        flat = [s for doc in chunk.documents for s in doc]
        encoded = tok.encode_many(flat)
        docs: list[list[list[int]]] = []
        at = 0
        for doc in chunk.documents:
            sentences = encoded[at : at + len(doc)]
            at += len(doc)
            kept = [t for t in sentences if t]
            counts["skipped_empty_sentences"] += len(sentences) - len(kept)
            counts["sentences"] += len(kept)
            docs.append(split_long_sentences(kept, data.max_seq_length - 3, self.vocab.word_start, counts))
        columns: dict[str, dict[str, list[Any]]] = {
            split: {name: [] for name in self._names()} for split in SPLITS
        }
        masked_tokens = sample_tokens = sample_instances = 0
        spans: list[int] = []
        replaced = [0, 0, 0]
        for k, doc in enumerate(docs):
            doc_index = chunk.first_document + k
            split = "eval" if is_held_out(doc_index, data.held_out_fraction) else "train"
            counts[f"documents/{split}"] += 1
            if not doc:
                counts["skipped_empty_documents"] += 1
                continue

            def other_document(rng: random.Random, k: int = k) -> list[list[int]] | None:
                if len(docs) < 2:
                    return None
                j = rng.randrange(len(docs) - 1)
                j += j >= k
                return docs[j] or None

            copies = (data.dupe_factor if self.static else data.pair_copies) if split == "train" else 1
            stats_rng = None
            if not self.static and doc_index % self.stats_every == 0:
                stats_rng = derive_rng(self.seed, "stats-mask", doc_index)
            for copy in range(copies):
                rng = derive_rng(self.seed, "pairs", doc_index, copy)
                pairs = create_pairs(doc, data, rng, self.vocab.word_start, counts, other_document)
                for pair in pairs:
                    ids = [tok.cls_id, *pair.tokens_a, tok.sep_id, *pair.tokens_b, tok.sep_id]
                    types = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
                    cols = columns[split]
                    counts[f"instances/{split}"] += 1
                    counts[f"tokens/{split}"] += len(ids)
                    counts[f"label_{pair.label}/{split}"] += 1
                    if self.static or stats_rng is not None:
                        m = mask_sequence(
                            ids, len(pair.tokens_a), self.vocab, data, rng if self.static else stats_rng
                        )
                        masked_tokens += len(m.positions)
                        sample_tokens += len(ids)
                        sample_instances += 1
                        spans.extend(m.span_lengths)
                        replaced = [x + y for x, y in zip(replaced, m.replaced, strict=True)]
                        if self.static:
                            ids = m.input_ids
                            cols["masked_lm_positions"].append(m.positions)
                            cols["masked_lm_ids"].append(m.labels)
                    cols["input_ids"].append(ids)
                    cols["token_type_ids"].append(types)
                    cols["sentence_order_label"].append(pair.label)
                    cols["document"].append(doc_index)
        counts.update(
            masked_tokens=masked_tokens,
            masked_sample_tokens=sample_tokens,
            masked_sample_instances=sample_instances,
        )
        counts.update({f"span_{n}": c for n, c in Counter(spans).items()})
        counts.update({f"replaced_{k}": c for k, c in zip(("mask", "random", "keep"), replaced, strict=True)})
        # Arrow, not lists, crosses the process boundary: pickling it is a buffer copy
        batches = {split: self._batch(columns[split]) for split in SPLITS}
        return ChunkResult(chunk.index, batches, counts, chunk.bytes_read, len(chunk.documents))

    def _batch(self, columns: dict[str, list[Any]]):
        import pyarrow as pa

        fields = [f for f in schema(self.static) if f.name != "uid"]
        return pa.RecordBatch.from_arrays(
            [_arrow_array(columns[f.name], f.type) for f in fields], schema=pa.schema(fields)
        )

    def _names(self) -> list[str]:
        return [f.name for f in schema(self.static) if f.name != "uid"]


_worker_builder: InstanceBuilder | None = None


def init_worker(vocab_file: Path, data: DataConfig, seed: int) -> None:
    """Pool initializer: one `InstanceBuilder` per worker process (this module imports no
    torch, so spawned workers start in well under a second)."""
    global _worker_builder
    _worker_builder = InstanceBuilder(vocab_file, data, seed)


def build_chunk(chunk: Chunk) -> ChunkResult:
    return _worker_builder(chunk)


def _arrow_array(values: list[Any], type_: Any):
    """pa.array, but lists of ints go in as one flat array plus offsets (several times faster)."""
    import itertools

    import numpy as np
    import pyarrow as pa

    if not pa.types.is_list(type_):
        return pa.array(values, type=type_)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    flat = pa.array(list(itertools.chain.from_iterable(values)), type=type_.value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), flat, type=type_)


class ShardWriter:
    """Rows of one split into `split/shard-NNNNN.arrow` files of about `shard_bytes` each
    (Arrow stream format, as `datasets` writes them). Adds the running `uid`."""

    def __init__(self, root: Path, split: str, static: bool, shard_bytes: int = 256 << 20) -> None:
        self.root, self.split, self.shard_bytes = root, split, shard_bytes
        self.schema = schema(static)
        self.shards: list[str] = []
        self.rows = 0
        self._writer = None
        self._bytes = 0
        (root / split).mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        import pyarrow as pa

        name = f"{self.split}/shard-{len(self.shards):05d}.arrow"
        self.shards.append(name)
        self._sink = pa.OSFile(str(self.root / name), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._bytes = 0

    def write(self, rows) -> None:
        """Append a RecordBatch of every column but `uid`."""
        import pyarrow as pa

        n = rows.num_rows
        if not n:
            return
        if self._bytes >= self.shard_bytes:
            self._close_current()
            self._open()
        uid = pa.array(range(self.rows, self.rows + n), type=pa.int64())
        batch = pa.RecordBatch.from_arrays(
            [uid if f.name == "uid" else rows.column(f.name) for f in self.schema], schema=self.schema
        )
        self._writer.write_batch(batch)
        self._bytes += batch.nbytes
        self.rows += n

    def _close_current(self) -> None:
        self._writer.close()
        self._sink.close()

    def close(self) -> list[str]:
        self._close_current()
        return self.shards


# --------------------------------------------------------------------------- loading


def read_manifest(data_dir: Path) -> dict[str, Any]:
    """The manifest of a prepared data directory, checked, or a one-line AlbertError."""
    import json

    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise AlbertError(f"prepared data directory {data_dir} not found (make one with albertctl prepare)")
    if not data_dir.is_dir():
        raise AlbertError(f"{data_dir}: expected a prepared data directory, got a file")
    path = data_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlbertError(
            f"{data_dir}: not a prepared data directory (no {MANIFEST}; make one with albertctl prepare)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AlbertError(f"{path}: corrupt manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AlbertError(f"{path}: not a prepared-data manifest (format should be '{FORMAT}')")
    if manifest.get("version") != FORMAT_VERSION:
        raise AlbertError(
            f"{path}: format version {manifest.get('version')}, this albertctl reads {FORMAT_VERSION}"
        )
    return manifest


def vocab_file(data_dir: Path, manifest: dict[str, Any]) -> Path:
    """The vocabulary a prepared data directory's ids refer to, as its manifest names it."""
    return Path(data_dir) / str(manifest.get("vocab", {}).get("file", SPM))


def load_split(data_dir: Path, split: str) -> datasets.Dataset:
    """One split ("train" or "eval") of a prepared data directory as a memory-mapped
    `datasets.Dataset` (columns in this module's docstring), rows in input order."""
    import datasets

    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    splits = manifest.get("splits", {})
    if split not in splits:
        raise AlbertError(f"{data_dir}: no split '{split}' (have: {', '.join(splits) or 'none'})")
    shards = [data_dir / name for name in splits[split]["shards"]]
    for shard in shards:
        if not shard.is_file():
            raise AlbertError(f"{shard}: listed in {MANIFEST} but missing")
    try:
        parts = [datasets.Dataset.from_file(str(s)) for s in shards]
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise AlbertError(
            f"{data_dir}: unreadable shard in split '{split}' ({str(err).splitlines()[0]})"
        ) from None
    if not parts:
        raise AlbertError(f"{data_dir}: split '{split}' has no shards")
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if len(ds) != splits[split]["instances"]:
        raise AlbertError(
            f"{data_dir}: split '{split}' has {len(ds)} rows, {MANIFEST} says {splits[split]['instances']}"
        )
    return ds


# --------------------------------------------------------------------------- collator


class PretrainingCollator:
    """Examples (rows of `load_split`) -> a padded batch of tensors for `pretraining_loss`.

    `collator(examples, batch_index)` returns `input_ids`, `token_type_ids`,
    `attention_mask` (B, T; padded with <pad> to the longest example), `masked_lm_positions`,
    `masked_lm_ids` (B, P; long) and `masked_lm_weights` (B, P; float, 0 for padding) with
    P = `max_predictions(T, data)`, and `sentence_order_labels` (B,).

    Rows with `masked_lm_positions` (static masking) keep their stored masks. Other rows are
    masked here with a generator derived from (seed, batch_index, the row's uid), so an epoch
    sees new masks and a resumed run sees exactly the masks of the uninterrupted one.
    """

    def __init__(self, tokenizer: Tokenizer, data: DataConfig, seed: int) -> None:
        self.data = data
        self.seed = seed
        self.pad_id = tokenizer.pad_id
        self.vocab = MaskingVocab.from_tokenizer(tokenizer)

    def __call__(self, examples: list[dict[str, Any]], batch_index: int) -> dict[str, torch.Tensor]:
        import torch

        if not examples:
            raise ValueError("PretrainingCollator needs at least one example")
        rows: list[tuple[list[int], list[int], list[int], list[int]]] = []
        for k, ex in enumerate(examples):
            ids = list(ex["input_ids"])
            types = list(ex["token_type_ids"])
            if ex.get("masked_lm_positions") is not None:
                positions, labels = list(ex["masked_lm_positions"]), list(ex["masked_lm_ids"])
            else:
                uid = ex.get("uid", k)
                rng = derive_rng(self.seed, "dynamic-mask", batch_index, int(uid))
                len_a = types.count(0) - 2
                m = mask_sequence(ids, len_a, self.vocab, self.data, rng)
                ids, positions, labels = m.input_ids, m.positions, m.labels
            rows.append((ids, types, positions, labels))
        T = max(len(r[0]) for r in rows)
        P = max(max_predictions(T, self.data), max(len(r[2]) for r in rows))
        B = len(rows)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        token_type_ids = torch.zeros((B, T), dtype=torch.long)
        attention_mask = torch.zeros((B, T), dtype=torch.long)
        positions = torch.zeros((B, P), dtype=torch.long)
        label_ids = torch.zeros((B, P), dtype=torch.long)
        weights = torch.zeros((B, P), dtype=torch.float32)
        for b, (ids, types, pos, lab) in enumerate(rows):
            n = len(ids)
            input_ids[b, :n] = torch.tensor(ids, dtype=torch.long)
            token_type_ids[b, :n] = torch.tensor(types, dtype=torch.long)
            attention_mask[b, :n] = 1
            if pos:
                positions[b, : len(pos)] = torch.tensor(pos, dtype=torch.long)
                label_ids[b, : len(lab)] = torch.tensor(lab, dtype=torch.long)
                weights[b, : len(pos)] = 1.0
        labels = torch.tensor([int(ex["sentence_order_label"]) for ex in examples], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "masked_lm_positions": positions,
            "masked_lm_ids": label_ids,
            "masked_lm_weights": weights,
            "sentence_order_labels": labels,
        }
