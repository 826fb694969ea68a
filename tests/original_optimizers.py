"""google-research/albert's two optimisers, transcribed for the tests in plain torch from the
facts of `lamb_optimizer.py` (LAMBOptimizer) and `optimization.py` (AdamWeightDecayOptimizer,
create_optimizer), one variable at a time; and the synthetic pretraining run of
pretrain_synthetic.py made with them, step by step, without DeepSpeed or albertctl's optimiser.

The facts: m and v are moving averages with no bias correction; the update is
m / (sqrt(v) + eps), plus weight_decay * w unless the variable's name contains "LayerNorm",
"layer_norm" or "bias"; LAMB multiplies it by ||w|| / ||update|| (1 when either norm is 0) for
the same variables only, with no bound; w -= lr * ratio * update. Gradients are clipped to a
global norm of 1.0 first (tf.clip_by_global_norm).
"""

from __future__ import annotations

import re

import pretrain_synthetic as S
import torch

from albertctl.core.config import Profile
from albertctl.pipelines.pretrain import MASKED_COUNT_KEY, mlm_sop_loss
from albertctl.training.batches import IndexedBatches
from albertctl.training.optim import learning_rate_at

EXCLUDED = ("LayerNorm", "layer_norm", "bias")  # create_optimizer's exclude_from_weight_decay


def excluded(name: str) -> bool:
    return any(re.search(pattern, name) for pattern in EXCLUDED)


class Original:
    """One optimiser of the original over named variables: `lamb` True for LAMBOptimizer, False
    for AdamWeightDecayOptimizer. `slots[name]` holds (m, v), as its adam_m / adam_v variables."""

    def __init__(
        self,
        lamb: bool,
        weight_decay: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
    ) -> None:
        self.lamb, self.weight_decay, self.beta1, self.beta2, self.eps = lamb, weight_decay, beta1, beta2, eps
        self.slots: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def new_value(self, name: str, w: torch.Tensor, g: torch.Tensor, lr: float) -> torch.Tensor:
        m, v = self.slots.get(name, (torch.zeros_like(w), torch.zeros_like(w)))
        m = self.beta1 * m + (1.0 - self.beta1) * g
        v = self.beta2 * v + (1.0 - self.beta2) * g * g
        self.slots[name] = (m, v)
        update = m / (torch.sqrt(v) + self.eps)
        if self.weight_decay and not excluded(name):
            update = update + self.weight_decay * w
        ratio = torch.ones((), dtype=w.dtype)
        if self.lamb and not excluded(name):
            w_norm, u_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(update)
            if w_norm > 0 and u_norm > 0:
                ratio = w_norm / u_norm
        return w - ratio * lr * update


def clip_by_global_norm(grads: list[torch.Tensor], clip_norm: float) -> list[torch.Tensor]:
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    return [g * (clip_norm / max(float(norm), clip_norm)) for g in grads]


def synthetic_run(p: Profile) -> dict[str, torch.Tensor]:
    """The weights after `p.train.train_steps` steps of the synthetic run (pretrain_synthetic),
    one global batch per step in one forward pass, made with the original optimiser."""
    t = p.train
    model = S.model(p)
    model.train()
    batches = IndexedBatches(
        64, lambda idx: [S.example(i) for i in idx], S.collate, t.global_batch_size, seed=t.seed
    )
    optimizer = Original(
        t.optimizer == "lamb", weight_decay=t.weight_decay, beta1=t.beta1, beta2=t.beta2, eps=t.epsilon
    )
    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]  # shared (tied) ones once
    for step in range(t.train_steps):
        batch = batches.micro_batch(step)
        batch[f"step_totals/{MASKED_COUNT_KEY}"] = batch[MASKED_COUNT_KEY].sum().clamp_min(1.0)
        model.zero_grad(set_to_none=True)
        mlm_sop_loss(model, batch).loss.backward()
        grads = [q.grad for _, q in named]
        if t.max_grad_norm:
            grads = clip_by_global_norm(grads, t.max_grad_norm)
        lr = learning_rate_at(step, t.learning_rate, t.warmup_steps, t.train_steps, t.poly_power)
        with torch.no_grad():
            for (name, q), g in zip(named, grads, strict=True):
                q.copy_(optimizer.new_value(name, q.detach().clone(), g, lr))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
