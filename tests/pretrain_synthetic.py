"""Synthetic pretraining batches of the data contract's shapes, for loop and launcher tests.

Example i is generated from i alone, so any split of a global batch over ranks and
accumulation steps sees the same examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from albertctl.core.config import Profile, profile_from_dict
from albertctl.core.modeldir import save_model_dir
from albertctl.model.albert import AlbertForPreTraining
from albertctl.pipelines.pretrain import MASKED_COUNT_KEY, mlm_sop_loss
from albertctl.training.batches import IndexedBatches
from albertctl.training.checkpoint import checkpoint_name
from albertctl.training.loop import RunSpec

V, T, P = 64, 16, 4


def profile(model: dict[str, Any] | None = None, **train: Any) -> Profile:
    """`model` overrides the network shape (e.g. no dropout where ranks must agree)."""
    return profile_from_dict(
        {
            "name": "synthetic",
            "model": {
                "vocab_size": V,
                "embedding_size": 16,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": T,
                **(model or {}),
            },
            "data": {"max_seq_length": T, "max_predictions_per_seq": P},
            "train": {
                "learning_rate": 0.01,
                "warmup_steps": 2,
                "train_steps": 6,
                "global_batch_size": 4,
                "micro_batch_size": 4,
                "save_every": 3,
                "keep_last": 2,
                "log_every": 1,
                **train,
            },
        },
        source="test",
    )


def example(i: int, shape: tuple[int, int, int] = (V, T, P)) -> dict[str, torch.Tensor]:
    """Example `i` with `shape` (vocabulary, sequence length, masked positions)."""
    V, T, P = shape  # the module's names, at another size
    g = torch.Generator().manual_seed(i)
    ids = torch.randint(5, V, (T,), generator=g)
    ids[0] = 2
    positions = (torch.randperm(T - 1, generator=g)[:P] + 1).sort().values
    labels = ids[positions].clone()
    inputs = ids.clone()
    inputs[positions] = 4
    weights = (torch.arange(P) < 1 + i % P).float()  # 1..P real predictions: uneven counts
    mask = torch.ones(T, dtype=torch.long)
    mask[T - (i % 3) :] = 0
    return {
        "input_ids": inputs,
        "token_type_ids": (torch.arange(T) >= T // 2).long(),
        "attention_mask": mask,
        "masked_lm_positions": positions,
        "masked_lm_ids": labels,
        "masked_lm_weights": weights,
        "sentence_order_labels": torch.tensor(i % 2),
    }


def collate(examples: list[dict[str, torch.Tensor]], g: int) -> dict[str, torch.Tensor]:
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


def model(p: Profile, seed: int = 0) -> AlbertForPreTraining:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AlbertForPreTraining(p.model)


def spec(
    p: Profile,
    out_dir: Path,
    rank: int = 0,
    world_size: int = 1,
    shape: tuple[int, int, int] = (V, T, P),
    **kw: Any,
) -> RunSpec:
    batches = IndexedBatches(
        64,
        lambda idx: [example(i, shape) for i in idx],
        collate,
        p.train.micro_batch_size,
        rank,
        world_size,
        seed=p.train.seed,
    )

    def save(state: dict[str, torch.Tensor], target: Path) -> None:
        save_model_dir(target, p, state, None)

    args: dict[str, Any] = dict(
        model=model(p),
        batches=batches,
        loss=mlm_sop_loss,
        save_model=save,
        out_dir=out_dir,
        step_totals=(MASKED_COUNT_KEY,),
        identity={"profile": p.name, "model": p.to_dict()["model"]},
    )
    args.update(kw)
    return RunSpec(**args)


def load_weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    """The model weights of checkpoint `step` of the run in `run`."""
    return load_file(str(run / "checkpoints" / checkpoint_name(step) / "model" / "model.safetensors"))
