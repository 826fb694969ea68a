"""LAMB against the trust-ratio formula by hand, parameter groups, and the LR schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from albertctl.core.config import ModelConfig
from albertctl.model.albert import AlbertForPreTraining
from albertctl.training.optim import Lamb, learning_rate_at, parameter_groups


def test_lamb_one_step_matches_the_trust_ratio_by_hand():
    w0 = [3.0, -4.0]  # ||w|| = 5
    g = [0.5, 1.0]
    lr, wd, eps, b1, b2 = 0.1, 0.01, 1e-6, 0.9, 0.999
    p = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    Lamb([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd).step()

    # By hand: after one step with bias correction, m_hat = g and v_hat = g^2.
    m_hat = g
    v_hat = [x * x for x in g]
    u = [m / (math.sqrt(v) + eps) + wd * w for m, v, w in zip(m_hat, v_hat, w0, strict=True)]
    w_norm = math.sqrt(sum(w * w for w in w0))
    u_norm = math.sqrt(sum(x * x for x in u))
    ratio = w_norm / u_norm  # 5 / ~1.3930 = ~3.589, inside [0.01, 10]
    expected = [w - lr * ratio * x for w, x in zip(w0, u, strict=True)]
    assert 0.01 < ratio < 10
    assert p.detach().tolist() == pytest.approx(expected, rel=1e-12)


def test_lamb_trust_ratio_is_one_for_zero_weights_and_clamped_when_large():
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    p.grad = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    Lamb([p], lr=0.5, eps=0.0).step()  # ||w|| = 0 -> ratio 1: w = -lr * sign(g)
    assert p.detach().tolist() == pytest.approx([-0.5, 0.5, -0.5])

    q = nn.Parameter(torch.tensor([1000.0], dtype=torch.float64))
    q.grad = torch.tensor([1.0], dtype=torch.float64)
    Lamb([q], lr=0.1, eps=0.0).step()  # ratio 1000 / 1 clamped to 10
    assert q.item() == pytest.approx(1000.0 - 0.1 * 10 * 1.0)


def test_no_weight_decay_for_layernorm_and_biases():
    model = AlbertForPreTraining(
        ModelConfig(
            vocab_size=50,
            embedding_size=8,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
    )
    decay, skip = parameter_groups(model, 0.01)
    assert (decay["weight_decay"], skip["weight_decay"]) == (0.01, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in skip["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert all(n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n for n in skipped)
    assert all(not n.endswith("bias") and "LayerNorm" not in n for n in decayed)
    assert "predictions.bias" in skipped and "albert.embeddings.word_embeddings.weight" in decayed
    assert len(skipped) + len(decayed) == len(list(model.parameters()))


def test_learning_rate_warmup_then_linear_decay():
    lrs = [learning_rate_at(s, 1.0, 4, 10) for s in range(10)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert learning_rate_at(5, 1.0, 0, 10, power=2.0) == pytest.approx(0.25)
    assert learning_rate_at(12, 1.0, 0, 10) == 0.0
