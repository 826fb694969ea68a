"""`albertctl prepare`: text -> sharded pretraining data (SOP/NSP pairs, n-gram masks).

The work is `data/preparation.py`'s (`pretrain` prepares its built-in sample corpus with it
too): the vocabulary (the given one, or a SentencePiece model trained on the same input), the
documents in chunks through `num_proc` workers, the Arrow shards of both splits and the
manifest, renamed into place whole. With a given vocabulary the output is byte-identical for a
seed whatever `num_proc`; a vocabulary trained here depends on it (SentencePiece's threads).
"""

from __future__ import annotations

from albertctl.data.preparation import prepare_data as run

__all__ = ["run"]
