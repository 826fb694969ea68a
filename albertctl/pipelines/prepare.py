"""`albertctl prepare`: text -> sharded pretraining data (SOP/NSP pairs, n-gram masks).

The work is `data/preparation.py`'s (`pretrain` prepares its built-in sample corpus with it
too): the vocabulary (the given one, or a SentencePiece model trained on the same input), the
documents in chunks through `num_proc` workers, the Arrow shards of both splits and the
manifest, renamed into place whole. The output is byte-identical for a seed whatever `num_proc`.
"""

from __future__ import annotations

from pathlib import Path

from albertctl.core.config import Profile
from albertctl.data.corpus import DatasetSource
from albertctl.data.preparation import CHUNK_DOCUMENTS, PrepareResult, ProgressFn, prepare_data


def run(
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
    return prepare_data(
        profile, inputs, output, vocab, num_proc, seed, progress, shard_bytes, chunk_documents
    )
