"""Pretraining data: SOP/NSP pairs, whole-word n-gram masking, Arrow shards, the collator.

The recipe is SPEC section 3 (after google-research/albert `create_pretraining_data.py`);
what differs from the original is said where it happens.

Prepared data directory (written by `albertctl prepare`, read by `load_split`):

    DIR/
      manifest.json        format, recipe (data section, seed), vocab, counts, statistics, files
      spiece.model         the SentencePiece model the ids refer to (or vocab.txt: WordPiece)
      train/shard-00000.arrow ...   Arrow stream files (`datasets.Dataset.from_file` reads them)
      eval/shard-00000.arrow ...    `data.held_out_fraction` of the documents, never in train

Columns of one row, dynamic masking (the default): a chunk, paired and masked at load time

    tokens                 list<int32>  the chunk's sentences, concatenated (not yet truncated)
    sentence_ends          list<int32>  end offset of each sentence in `tokens`
    document               int64        index of the source document in the input
    uid                    int64        row number inside its split (seeds pairing and masking)

static masking: a finished instance

    input_ids              list<int32>  [CLS] A [SEP] B [SEP], unpadded, masked
    token_type_ids         list<int8>   0 for [CLS] A [SEP], 1 for B [SEP]
    sentence_order_label   int8         SOP: 1 = A and B swapped; NSP: 1 = B from another document
    document, uid          int64        as above
    masked_lm_positions    list<int32>  positions that were masked
    masked_lm_ids          list<int32>  the original ids at those positions

Rows are in input order; shuffle them when loading (the original shuffled in memory).
Dynamic masking stores each training document's chunks `data.pair_copies` times (1 by
default) and `PretrainingCollator` draws the A/B split, the sentence-order swap (or NSP
partner), the truncation and the masks every time a row is loaded, so no two passes see
the same pairs; static masking stores `dupe_factor` copies, each with its own chunks, pairs
and masks, as the original (the eval split keeps one copy).

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
from albertctl.core.safeload import read_json
from albertctl.data.tokenizer import Tokenizer, load_tokenizer

if TYPE_CHECKING:  # torch and datasets are imported where used: worker processes start faster
    import datasets
    import torch

FORMAT = "albertctl-pretraining-data"
FORMAT_VERSION = 2  # 2: dynamic masking stores chunks, paired at load time
MANIFEST = "manifest.json"
SPM = "spiece.model"
SPLITS = ("train", "eval")


def derive_rng(seed: int, purpose: str, *indices: int) -> random.Random:
    """A generator that depends only on (seed, purpose, indices): string seeds are hashed
    with SHA-512 by `random.Random`, so streams for neighbouring indices are unrelated."""
    return random.Random(f"albertctl:{seed}:{purpose}:" + ":".join(str(i) for i in indices))


# --------------------------------------------------------------------------- counts


def num_to_mask(length: int, data: DataConfig) -> int:
    """How many tokens the original masks in a sequence of `length` tokens ([CLS]/[SEP]
    included): `masked_lm_prob` of them, rounded, at least 1, at most
    `max_predictions_per_seq` (20 at 512 tokens, 15 at 100 with the base profile)."""
    return min(data.max_predictions_per_seq, max(1, round(length * data.masked_lm_prob)))


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


def create_chunks(
    document: list[list[int]], data: DataConfig, rng: random.Random, word_start: bytes, counts: Counter
) -> list[list[list[int]]]:
    """The chunks of one document (sentences already tokenised and split to fit): runs of
    whole sentences that grow to a target length, `max_seq_length - 3`, or with
    `short_seq_prob` a random length in [2, max] drawn once per document, as the original
    does. The last chunk takes what is left. A chunk of one sentence holding a single word
    cannot make a pair (`pair_chunk` cuts such a chunk at a word start): it is skipped and
    counted."""
    max_num_tokens = data.max_seq_length - 3
    target = max_num_tokens
    if rng.random() < data.short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    chunks: list[list[list[int]]] = []
    chunk: list[list[int]] = []
    length = 0
    for i, sent in enumerate(document):
        chunk.append(sent)
        length += len(sent)
        if i == len(document) - 1 or length >= target:
            if len(chunk) == 1 and not any(word_start[t] for t in sent[1:]):
                counts["skipped_one_word_chunks"] += 1
            else:
                chunks.append(chunk)
            chunk, length = [], 0
    return chunks


def pair_chunk(
    tokens: Sequence[int],
    sentence_ends: Sequence[int],
    data: DataConfig,
    word_start: bytes,
    rng: random.Random,
    other_text: Callable[[random.Random], list[int] | None] | None = None,
    counts: Counter | None = None,
) -> Pair:
    """A and B from one chunk (`tokens`, its sentences ending at `sentence_ends`).

    A is the chunk's first k sentences, k drawn uniformly from 1..sentences-1; B the rest.
    SOP swaps them with probability 0.5 (label 1). NSP (`data.random_next_sentence`) instead
    replaces B with probability 0.5 by as many tokens from `other_text` (another document,
    from a random sentence start) and labels it 1. The longer of A/B is then truncated to fit.

    One-sentence chunks (google-research/albert issue 234): the original pairs them with a
    random B from another document and labels them "random next" even for SOP, which mixes
    an easier NSP-style negative into the SOP task. Here the sentence is cut at a random word
    start into A and B, so both halves are consecutive text of one document and the label
    means what it says.
    """
    tokens = list(tokens)
    if len(sentence_ends) == 1:
        cuts = [i for i in range(1, len(tokens)) if word_start[tokens[i]]]
        cut = cuts[rng.randrange(len(cuts))]
        if counts is not None:
            counts["one_sentence_chunks_split"] += 1
    else:
        cut = sentence_ends[rng.randint(1, len(sentence_ends) - 1) - 1]
    a, b = tokens[:cut], tokens[cut:]
    label = 0
    if data.random_next_sentence:
        if rng.random() < 0.5:
            other = other_text(rng) if other_text is not None else None
            if other:
                b, label = other[: len(b)], 1
            elif counts is not None:
                counts["nsp_without_other_document"] += 1
    elif rng.random() < 0.5:
        a, b, label = b, a, 1
    removed = truncate_pair(a, b, data.max_seq_length - 3, rng)
    if counts is not None:
        counts["tokens_truncated"] += removed
    return Pair(a, b, label)


def sentence_ends(chunk: list[list[int]]) -> list[int]:
    """End offset of every sentence of a chunk in its concatenated tokens."""
    out, at = [], 0
    for sent in chunk:
        at += len(sent)
        out.append(at)
    return out


def text_from(tokens: Sequence[int], ends: Sequence[int], rng: random.Random) -> list[int]:
    """The text of a chunk or document from a random sentence start to its end (NSP's B)."""
    k = rng.randrange(len(ends))
    return list(tokens[ends[k - 1] if k else 0 :])


# --------------------------------------------------------------------------- masking


_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_ENGLISH = frozenset("abcdefghijklmnopqrstuvwxyz")


def is_start_piece(piece: str) -> bool:
    """Whether a SentencePiece piece starts a word, by the original's rule
    (`_is_start_piece_sp`, SPEC section 3): it starts with "▁" or "<", or is a single
    punctuation character (ASCII punctuation but the apostrophe, <, = and >; or "€", "£"), or
    holds any character that is neither an English letter (either case) nor that ASCII
    punctuation, so digits, accented and non-Latin letters, apostrophes, "€" and other
    symbols start words. A piece of English letters and punctuation ("ing", "s,") continues
    the word before it. (The original adds "€" and "£" to its punctuation as UTF-8 bytes, so
    they match only a whole piece; inside a longer piece they count as other symbols.)"""
    if piece.startswith(("▁", "<")) or piece in _PUNCTUATION or piece in ("€", "£"):
        return True
    return any(ch.lower() not in _ENGLISH and ch not in _PUNCTUATION for ch in piece)


@dataclass(frozen=True)
class MaskingVocab:
    """What masking needs from the vocabulary; small and picklable for worker processes."""

    word_start: (
        bytes  # per id: 1 when the piece starts a word (SentencePiece: `is_start_piece`; WordPiece: no "##")
    )
    mask_id: int
    replacement_ids: tuple[int, ...]  # ids a "random token" is drawn from (no special ids)

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> MaskingVocab:
        if tokenizer.kind == "wordpiece":  # BERT's rule: a "##" piece continues the word before it
            starts = bytes(tokenizer.is_word_start(i) for i in range(tokenizer.vocab_size))
        else:  # the original's `_is_start_piece_sp`
            starts = bytes(is_start_piece(tokenizer.id_to_piece(i)) for i in range(tokenizer.vocab_size))
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


def word_spans(input_ids: Sequence[int], len_a: int, word_start: bytes) -> list[list[int]]:
    """The positions of each word of `[CLS] A [SEP] B [SEP]` (A has `len_a` tokens), grouped
    as the original groups them: [CLS] and [SEP] belong to no word; a token starts a new word
    when its piece is a start piece or no word has begun yet, else it joins the word before
    (so a B that begins inside a word continues A's last word across [SEP])."""
    words: list[list[int]] = []
    sep = 1 + len_a
    for i in range(1, len(input_ids) - 1):
        if i == sep:
            continue
        if words and not word_start[input_ids[i]]:
            words[-1].append(i)
        else:
            words.append([i])
    return words


def mask_sequence(
    input_ids: Sequence[int],
    len_a: int,
    vocab: MaskingVocab,
    data: DataConfig,
    rng: random.Random,
) -> Masked:
    """Whole-word n-gram masking of `[CLS] A [SEP] B [SEP]` (A has `len_a` tokens), the
    original's procedure (`create_masked_lm_predictions`):

    the budget is `num_to_mask(len)`; every word is a candidate start, visited in random
    order until the budget is met. At each, n is drawn with P(n) ∝ 1/n (n ≤ `data.ngram`)
    and the span is the n words from there (fewer at the end of the sequence); while it
    would overrun the budget, n shrinks by one; a span that still overruns it, or touches a
    masked word, is passed over. Each chosen token becomes [MASK] 80%, a random non-special
    id 10% (the original draws from the whole vocabulary), itself 10%.
    """
    ids = list(input_ids)
    words = word_spans(ids, len_a, vocab.word_start)
    budget = num_to_mask(len(ids), data)
    cum = ngram_weights(data.ngram)
    pool = vocab.replacement_ids
    order = list(range(len(words)))
    rng.shuffle(order)
    covered = bytearray(len(ids))
    labels_at: dict[int, int] = {}
    spans: list[int] = []
    n_mask = n_random = 0
    for w in order:
        if len(labels_at) >= budget:
            break
        n = bisect.bisect_right(cum, rng.random()) + 1
        span = words[w : w + n]
        size = sum(len(x) for x in span)
        while n > 1 and len(labels_at) + size > budget:
            n -= 1
            span = words[w : w + n]
            size = sum(len(x) for x in span)
        if len(labels_at) + size > budget:
            continue
        positions = [p for x in span for p in x]
        if any(covered[p] for p in positions):
            continue
        spans.append(len(span))
        for p in positions:  # drawn in this order, interleaved with the spans, as the original
            covered[p] = 1
            labels_at[p] = ids[p]
            if rng.random() < 0.8:
                ids[p] = vocab.mask_id
                n_mask += 1
            elif rng.random() >= 0.5:
                ids[p] = pool[rng.randint(0, len(pool) - 1)]
                n_random += 1
    positions = sorted(labels_at)
    labels = [labels_at[p] for p in positions]
    replaced = (n_mask, n_random, len(positions) - n_mask - n_random)
    return Masked(ids, positions, labels, spans, replaced)


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

    if not static:
        return pa.schema(
            [
                pa.field("tokens", pa.list_(pa.int32())),
                pa.field("sentence_ends", pa.list_(pa.int32())),
                pa.field("document", pa.int64()),
                pa.field("uid", pa.int64()),
            ]
        )
    return pa.schema(
        [
            pa.field("input_ids", pa.list_(pa.int32())),
            pa.field("token_type_ids", pa.list_(pa.int8())),
            pa.field("sentence_order_label", pa.int8()),
            pa.field("document", pa.int64()),
            pa.field("uid", pa.int64()),
            pa.field("masked_lm_positions", pa.list_(pa.int32())),
            pa.field("masked_lm_ids", pa.list_(pa.int32())),
        ]
    )


class InstanceBuilder:
    """Turns a `Chunk` of raw documents into rows for the train and eval splits.

    One per worker process. Per document: normalise and tokenise its sentences, drop those
    that come out empty, cut over-long ones (`split_long_sentences`), and cut the document
    into chunks (`create_chunks`) with a generator derived from (seed, document index, copy).
    Dynamic masking stores the chunks (`data.pair_copies` chunkings of each training
    document); the collator pairs and masks them each time they are loaded. Static masking
    stores `dupe_factor` copies, each chunked, paired and masked with its own generator.

    The statistics come from pairing every stored chunk once with a generator of its own, as
    the collator would, and masking every `stats_every`-th document's pairs; nothing of that
    is stored for dynamic masking.
    """

    def __init__(self, tokenizer: Tokenizer, data: DataConfig, seed: int, stats_every: int = 8) -> None:
        self.tokenizer = tokenizer
        self.vocab = MaskingVocab.from_tokenizer(self.tokenizer)
        self.data = data
        self.seed = seed
        self.stats_every = stats_every
        self.static = data.masking == "static"

    def __call__(self, chunk: Chunk) -> ChunkResult:
        data, tok, word_start = self.data, self.tokenizer, self.vocab.word_start
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
            docs.append(split_long_sentences(kept, data.max_seq_length - 3, word_start, counts))
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

            def other_text(rng: random.Random, k: int = k) -> list[int] | None:
                if len(docs) < 2:
                    return None
                j = rng.randrange(len(docs) - 1)
                j += j >= k
                if not docs[j]:
                    return None
                return text_from([t for s in docs[j] for t in s], sentence_ends(docs[j]), rng)

            copies = (data.dupe_factor if self.static else data.pair_copies) if split == "train" else 1
            sampled = self.static or doc_index % self.stats_every == 0
            for copy in range(copies):
                rng = derive_rng(self.seed, "chunks", doc_index, copy)
                stats_rng = rng if self.static else derive_rng(self.seed, "stats", doc_index, copy)
                cols = columns[split]
                for sentences in create_chunks(doc, data, rng, word_start, counts):
                    tokens = [t for s in sentences for t in s]
                    ends = sentence_ends(sentences)
                    pair = pair_chunk(tokens, ends, data, word_start, stats_rng, other_text, counts)
                    ids = [tok.cls_id, *pair.tokens_a, tok.sep_id, *pair.tokens_b, tok.sep_id]
                    counts[f"instances/{split}"] += 1
                    counts[f"tokens/{split}"] += len(ids)
                    counts[f"label_{pair.label}/{split}"] += 1
                    if sampled:
                        m = mask_sequence(ids, len(pair.tokens_a), self.vocab, data, stats_rng)
                        masked_tokens += len(m.positions)
                        sample_tokens += len(ids)
                        sample_instances += 1
                        spans.extend(m.span_lengths)
                        replaced = [x + y for x, y in zip(replaced, m.replaced, strict=True)]
                    if self.static:
                        cols["input_ids"].append(m.input_ids)
                        cols["token_type_ids"].append(
                            [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
                        )
                        cols["sentence_order_label"].append(pair.label)
                        cols["masked_lm_positions"].append(m.positions)
                        cols["masked_lm_ids"].append(m.labels)
                    else:
                        cols["tokens"].append(tokens)
                        cols["sentence_ends"].append(ends)
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
    _worker_builder = InstanceBuilder(load_tokenizer(vocab_file, data.do_lower_case), data, seed)


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

    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise AlbertError(f"prepared data directory {data_dir} not found (make one with albertctl prepare)")
    if not data_dir.is_dir():
        raise AlbertError(f"{data_dir}: expected a prepared data directory, got a file")
    path = data_dir / MANIFEST
    try:
        manifest = read_json(path, "corrupt manifest")
    except FileNotFoundError:
        raise AlbertError(
            f"{data_dir}: not a prepared data directory (no {MANIFEST}; make one with albertctl prepare)"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AlbertError(f"{path}: not a prepared-data manifest (format should be '{FORMAT}')")
    if manifest.get("version") != FORMAT_VERSION:
        raise AlbertError(
            f"{path}: format version {manifest.get('version')}, this albertctl reads {FORMAT_VERSION} "
            "(run albertctl prepare again)"
        )
    return manifest


def vocab_file(data_dir: Path, manifest: dict[str, Any]) -> Path:
    """The vocabulary a prepared data directory's ids refer to, as its manifest names it."""
    return Path(data_dir) / str(manifest.get("vocab", {}).get("file", SPM))


def check_data_matches(data_dir: Path, vocab_size: int, max_positions: int, what: str) -> dict[str, Any]:
    """The prepared data must use the model's vocabulary size and fit its positions."""
    manifest = read_manifest(data_dir)
    have = int(manifest.get("vocab", {}).get("vocab_size", -1))
    if have != vocab_size:
        raise AlbertError(
            f"{data_dir}: vocabulary has {have} tokens but {what} has model.vocab_size={vocab_size} "
            f"(prepare the data with a matching vocabulary, or --set model.vocab_size={have})"
        )
    length = int(manifest.get("data", {}).get("max_seq_length", 0))
    if length > max_positions:
        raise AlbertError(
            f"{data_dir}: sequences of up to {length} tokens, but {what} has "
            f"model.max_position_embeddings={max_positions}"
        )
    return manifest


def pretraining_data_record(data_dir: Path, manifest: dict[str, Any], builtin: bool) -> dict[str, Any]:
    """What `pretrain` writes into its model dirs' head, so that `eval --model M` finds the data."""
    return {
        "path": str(Path(data_dir).resolve()),
        "builtin": builtin,
        "vocab_sha256": manifest.get("vocab", {}).get("sha256"),
    }


def check_split(data_dir: Path, split: str) -> int:
    """Read a split's shards back with pyarrow alone (no `datasets`: `prepare` stays light) and
    check their row count against the manifest; returns it."""
    import pyarrow as pa

    data_dir = Path(data_dir)
    splits = read_manifest(data_dir).get("splits", {})
    if split not in splits:
        raise AlbertError(f"{data_dir}: no split '{split}' (have: {', '.join(splits) or 'none'})")
    rows = 0
    for name in splits[split]["shards"]:
        shard = data_dir / name
        if not shard.is_file():
            raise AlbertError(f"{shard}: listed in {MANIFEST} but missing")
        try:
            with pa.memory_map(str(shard)) as source:
                rows += sum(batch.num_rows for batch in pa.ipc.open_stream(source))
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise AlbertError(
                f"{data_dir}: unreadable shard in split '{split}' ({str(err).splitlines()[0]})"
            ) from None
    if rows != splits[split]["instances"]:
        raise AlbertError(
            f"{data_dir}: split '{split}' has {rows} rows, {MANIFEST} says {splits[split]['instances']}"
        )
    return rows


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


def rows_at(dataset: Any, indices: list[int]) -> list[dict[str, Any]]:
    """Rows `indices` of a `load_split` dataset, in that order (repeats allowed): one columnar
    read instead of a read per row, which is most of the cost of fetching a batch."""
    if not indices or not hasattr(dataset, "column_names"):  # empty, or a plain list of rows
        return [dataset[i] for i in indices]
    columns = dataset[indices]
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


# --------------------------------------------------------------------------- collator


class PretrainingCollator:
    """Examples (rows of `load_split`) -> a padded batch of tensors for `pretraining_loss`.

    `collator(examples, batch_index)` returns `input_ids`, `token_type_ids`,
    `attention_mask` (B, T; padded with <pad> to the longest example), `masked_lm_positions`,
    `masked_lm_ids` (B, P; long) and `masked_lm_weights` (B, P; float, 0 for padding) with
    P = `num_to_mask(T, data)` (or more, for stored masks), and `sentence_order_labels` (B,).

    Rows with stored pairs and masks (static masking) are used as they are. Rows of dynamic
    masking hold a chunk: `instances` pairs it (`pair_chunk`) and masks it with a generator
    derived from (seed, batch_index, the row's uid), so every pass over the data sees new
    A/B splits, sentence-order swaps (or NSP partners) and masks, and a resumed run sees
    exactly those of the uninterrupted one. NSP takes its random B from another row of the
    same batch (from another document), so no dataset access is needed here.
    """

    def __init__(self, tokenizer: Tokenizer, data: DataConfig, seed: int) -> None:
        self.data = data
        self.seed = seed
        self.pad_id = tokenizer.pad_id
        self.cls_id, self.sep_id = tokenizer.cls_id, tokenizer.sep_id
        self.vocab = MaskingVocab.from_tokenizer(tokenizer)

    def instances(
        self, examples: list[dict[str, Any]], batch_index: int
    ) -> list[tuple[list[int], list[int], list[int], list[int], int]]:
        """(input_ids, token_type_ids, masked positions, their original ids, label) per row."""
        out = []
        for k, ex in enumerate(examples):
            if ex.get("masked_lm_positions") is not None:
                out.append(
                    (
                        list(ex["input_ids"]),
                        list(ex["token_type_ids"]),
                        list(ex["masked_lm_positions"]),
                        list(ex["masked_lm_ids"]),
                        int(ex["sentence_order_label"]),
                    )
                )
                continue
            uid = int(ex.get("uid", k))
            rng = derive_rng(self.seed, "dynamic", batch_index, uid)
            others = [o for o in examples if o.get("tokens") is not None and o["document"] != ex["document"]]

            def other_text(rng: random.Random, others: list[dict[str, Any]] = others) -> list[int] | None:
                if not others:
                    return None
                o = others[rng.randrange(len(others))]
                return text_from(o["tokens"], o["sentence_ends"], rng)

            pair = pair_chunk(
                ex["tokens"], ex["sentence_ends"], self.data, self.vocab.word_start, rng, other_text
            )
            ids = [self.cls_id, *pair.tokens_a, self.sep_id, *pair.tokens_b, self.sep_id]
            types = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
            m = mask_sequence(ids, len(pair.tokens_a), self.vocab, self.data, rng)
            out.append((m.input_ids, types, m.positions, m.labels, pair.label))
        return out

    def __call__(self, examples: list[dict[str, Any]], batch_index: int) -> dict[str, torch.Tensor]:
        import torch

        if not examples:
            raise ValueError("PretrainingCollator needs at least one example")
        rows = self.instances(examples, batch_index)
        T = max(len(r[0]) for r in rows)
        P = max(num_to_mask(T, self.data), max(len(r[2]) for r in rows))
        pad = self.pad_id
        # One tensor per field from padded lists: the same values as filling row by row, at a
        # fraction of the per-row tensor calls (this runs on the training step's critical path).
        input_ids = torch.tensor([[*r[0], *[pad] * (T - len(r[0]))] for r in rows], dtype=torch.long)
        token_type_ids = torch.tensor([[*r[1], *[0] * (T - len(r[1]))] for r in rows], dtype=torch.long)
        attention_mask = torch.tensor(
            [[1] * len(r[0]) + [0] * (T - len(r[0])) for r in rows], dtype=torch.long
        )
        positions = torch.tensor([[*r[2], *[0] * (P - len(r[2]))] for r in rows], dtype=torch.long)
        label_ids = torch.tensor([[*r[3], *[0] * (P - len(r[3]))] for r in rows], dtype=torch.long)
        weights = torch.tensor(
            [[1.0] * len(r[2]) + [0.0] * (P - len(r[2])) for r in rows], dtype=torch.float32
        )
        labels = torch.tensor([r[4] for r in rows], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "masked_lm_positions": positions,
            "masked_lm_ids": label_ids,
            "masked_lm_weights": weights,
            "sentence_order_labels": labels,
        }
