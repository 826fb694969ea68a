"""LAMB against the trust-ratio formula by hand and on DeepSpeed-style flat tensors, parameter
groups, and the LR schedule. (Two ranks each holding half a flat buffer, under ZeRO-2 and
ZeRO-3: tests/test_train_launcher.py.)"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from albertctl.core.config import ModelConfig
from albertctl.core.errors import AlbertError
from albertctl.model.albert import AlbertForPreTraining
from albertctl.training.optim import FlatLayout, Lamb, flat_layouts, learning_rate_at, parameter_groups


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


def test_lamb_on_a_flat_tensor_with_its_layout_makes_the_per_parameter_update():
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 3), (4,), (5,)]
    params = [
        nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64) * (i + 1)) for i, s in enumerate(shapes)
    ]
    # Flat buffer as DeepSpeed builds it: parameter 0, 2 padding, parameter 1, parameter 2, 3 padding.
    starts = [0, 8, 12]
    flat = nn.Parameter(torch.zeros(20, dtype=torch.float64))
    with torch.no_grad():
        for p, start in zip(params, starts, strict=True):
            flat[start : start + p.numel()] = p.reshape(-1)
    layout = FlatLayout(
        tuple((start, p.numel(), j) for j, (p, start) in enumerate(zip(params, starts, strict=True))), 3
    )
    kw = dict(lr=0.05, weight_decay=0.01, eps=1e-6)
    per_param, flat_lamb = Lamb(params, **kw), Lamb([flat], **kw)
    flat_lamb.set_layouts({id(flat): layout})
    for _ in range(3):
        grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        flat.grad = torch.zeros_like(flat)
        for p, grad, start in zip(params, grads, starts, strict=True):
            p.grad = grad
            flat.grad[start : start + p.numel()] = grad.reshape(-1)
        per_param.step()
        flat_lamb.step()
    for p, start in zip(params, starts, strict=True):
        torch.testing.assert_close(
            flat.detach()[start : start + p.numel()], p.detach().reshape(-1), rtol=1e-12, atol=0
        )
    assert flat.detach()[[6, 7, 17, 18, 19]].tolist() == [0.0] * 5  # padding untouched
    # One ratio for the whole buffer (what the wrapper would give plain LAMB) is a different update.
    whole = nn.Parameter(flat.detach().clone())
    whole.grad = flat.grad.clone()
    Lamb([whole], **kw).step()
    assert not torch.allclose(whole, flat)


def test_flat_layouts_maps_a_wrappers_flat_groups_and_refuses_one_that_does_not_match():
    a, b = torch.arange(6.0).reshape(2, 3), torch.tensor([10.0, 11.0])
    flat = torch.cat([a.reshape(-1), b])
    wrapper = SimpleNamespace(fp32_groups_flat=[flat], fp16_groups=[[a, b]])  # DeepSpeed's FP16_Optimizer
    assert flat_layouts(wrapper) == {id(flat): FlatLayout(((0, 6, 0), (6, 2, 1)), 2)}
    wrong = SimpleNamespace(fp32_groups_flat=[flat], fp16_groups=[[b, a]])
    with pytest.raises(
        AlbertError,
        match=r"lamb: cannot map DeepSpeed .*SimpleNamespace flat tensors .*not where .*train.optimizer=adamw",
    ):
        flat_layouts(wrong)
    assert flat_layouts(Lamb([nn.Parameter(a.clone())])) == {}  # fp32 without ZeRO: the parameters themselves


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
