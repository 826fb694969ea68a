"""Where the loop's micro-batches come from: a `BatchSource` addresses them by a counter, so
the data position of a run is one integer and a resumed run sees exactly the batches it would
have seen. `IndexedBatches` shuffles and shards a list of examples (pretraining uses it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from albertctl.core.errors import AlbertError

Batch = Mapping[str, torch.Tensor]


class BatchSource(Protocol):
    """Micro-batches of one rank, addressed by a counter (0, 1, 2, ...).

    `micro_batch(i)` must return the same tensors for the same `i` every time (seed the
    shuffling and masking from `i`), and different ranks must see different data: build the
    source with the rank and world size (see `IndexedBatches`). The loop asks for
    `i = step * accumulation + k` and records the next `i` as the data position.
    """

    def micro_batch(self, index: int) -> Batch: ...


class IndexedBatches:
    """A `BatchSource` over `num_examples` examples: shuffled per epoch from `seed`, sharded
    over ranks, collated per micro-batch.

    Global micro-batch g = i * world_size + rank holds stream positions
    [g * micro_batch_size, (g + 1) * micro_batch_size); position p is example
    `permutation(epoch = p // num_examples)[p % num_examples]`. One rank with accumulation k*n
    therefore sees exactly the examples n ranks with accumulation k see, step for step.
    `collate(examples, g)` gets the global micro-batch number (use it to seed masking).
    """

    def __init__(
        self,
        num_examples: int,
        fetch: Callable[[list[int]], list[dict[str, Any]]],
        collate: Callable[[list[dict[str, Any]], int], Batch],
        micro_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if num_examples < 1:
            raise AlbertError("no training examples")
        self.num_examples, self.fetch, self.collate = num_examples, fetch, collate
        self.micro_batch_size, self.rank, self.world_size = micro_batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self._epoch = -1
        self._order: list[int] = []

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._order = torch.randperm(self.num_examples, generator=g).tolist()
            else:
                self._order = list(range(self.num_examples))
            self._epoch = epoch
        return self._order

    def indices(self, index: int) -> tuple[int, list[int]]:
        g = index * self.world_size + self.rank
        out = []
        for p in range(g * self.micro_batch_size, (g + 1) * self.micro_batch_size):
            out.append(self._permutation(p // self.num_examples)[p % self.num_examples])
        return g, out

    def micro_batch(self, index: int) -> Batch:
        g, idx = self.indices(index)
        return self.collate(self.fetch(idx), g)
