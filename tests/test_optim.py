"""LAMB and AdamW against google-research/albert's rules (tests/original_optimizers.py): by
hand, on one nn.Linear, through the training loop (ZeRO 0) and on DeepSpeed-style flat tensors;
parameter groups and the LR schedule. (Two ranks each holding half a flat buffer, under ZeRO-2
and ZeRO-3: tests/test_train_launcher.py.)"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace
from typing import Any

import original_optimizers as O
import pretrain_synthetic as S
import pytest
import torch
from torch import nn

from albertctl.core.config import ModelConfig, TrainConfig
from albertctl.core.errors import AlbertError
from albertctl.model.albert import AlbertForPreTraining
from albertctl.training import loop
from albertctl.training.optim import (
    AdamWeightDecay,
    FlatLayout,
    Lamb,
    build_optimizer,
    flat_layouts,
    learning_rate_at,
    parameter_groups,
)

NO_DROPOUT = {"classifier_dropout_prob": 0.0}


def test_lamb_one_step_matches_the_original_rule_by_hand():
    w0 = [3.0, -4.0]  # ||w|| = 5
    g = [0.5, 1.0]
    lr, wd, eps, b1, b2 = 0.1, 0.01, 1e-6, 0.9, 0.999
    p = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    Lamb([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd).step()

    # By hand: one step without bias correction, m = (1 - b1) g and v = (1 - b2) g^2.
    m = [(1 - b1) * x for x in g]
    v = [(1 - b2) * x * x for x in g]
    u = [mi / (math.sqrt(vi) + eps) + wd * w for mi, vi, w in zip(m, v, w0, strict=True)]
    ratio = math.sqrt(sum(w * w for w in w0)) / math.sqrt(sum(x * x for x in u))  # 5 / ~4.41
    expected = [w - lr * ratio * x for w, x in zip(w0, u, strict=True)]
    assert p.detach().tolist() == pytest.approx(expected, rel=1e-12)


def test_lamb_bias_correction_and_clamp_are_settings():
    w0, g = [3.0, -4.0], [0.5, 1.0]
    p = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    Lamb([p], lr=0.1, eps=1e-6, weight_decay=0.01, bias_correction=True).step()
    # With bias correction, after one step m_hat = g and v_hat = g^2.
    u = [x / (abs(x) + 1e-6) + 0.01 * w for x, w in zip(g, w0, strict=True)]
    ratio = 5.0 / math.sqrt(sum(x * x for x in u))
    assert p.detach().tolist() == pytest.approx([w - 0.1 * ratio * x for w, x in zip(w0, u, strict=True)])

    def one_step(**kw: object) -> float:
        q = nn.Parameter(torch.tensor([1000.0], dtype=torch.float64))
        q.grad = torch.tensor([1.0], dtype=torch.float64)
        Lamb([q], lr=0.1, eps=0.0, **kw).step()
        return q.item()

    u = 0.1 / math.sqrt(0.001)  # first step without bias correction: u = (1 - b1) / sqrt(1 - b2)
    assert one_step() == pytest.approx(1000.0 - 0.1 * 1000.0)  # ratio 1000 / u: no bound by default
    assert one_step(clamp=(0.01, 10.0)) == pytest.approx(1000.0 - 0.1 * 10.0 * u)  # FusedLamb's bound


def test_lamb_trust_ratio_is_one_for_zero_weights_and_for_groups_without_adaptation():
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    p.grad = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    u = 0.1 / math.sqrt(0.001)  # first step without bias correction: u = sign(g) (1 - b1) / sqrt(1 - b2)
    Lamb([p], lr=0.5, eps=0.0).step()  # ||w|| = 0 -> ratio 1: w = -lr * u
    assert p.detach().tolist() == pytest.approx([-0.5 * u, 0.5 * u, -0.5 * u])

    q = nn.Parameter(torch.tensor([1000.0], dtype=torch.float64))
    q.grad = torch.tensor([1.0], dtype=torch.float64)
    Lamb([{"params": [q], "adapt": False}], lr=0.1, eps=0.0).step()  # ratio 1, not 1000 / u
    assert q.item() == pytest.approx(1000.0 - 0.1 * u)


def linear_with_gradients(seed: int = 0, steps: int = 20) -> tuple[nn.Linear, list[dict[str, torch.Tensor]]]:
    """nn.Linear(64, 64) with the bias at zero (as ALBERT initialises biases) and 20 gradients."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layer = nn.Linear(64, 64)
    with torch.no_grad():
        layer.bias.zero_()
    grads = [
        {"weight": torch.randn(64, 64, generator=g), "bias": torch.randn(64, generator=g)}
        for _ in range(steps)
    ]
    return layer, grads


def run_linear(train: TrainConfig, lr: float = 0.00176) -> nn.Linear:
    layer, grads = linear_with_gradients()
    optimizer = build_optimizer(layer, train)
    for step_grads in grads:
        for name, param in layer.named_parameters():
            param.grad = step_grads[name].clone()
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
    return layer


def run_linear_original(lamb: bool, lr: float = 0.00176) -> dict[str, torch.Tensor]:
    layer, grads = linear_with_gradients()
    original = O.Original(lamb=lamb)
    values = {n: p.detach().clone() for n, p in layer.named_parameters()}
    for step_grads in grads:
        values = {n: original.new_value(n, w, step_grads[n], lr) for n, w in values.items()}
    return values


def test_lamb_on_a_linear_layer_follows_the_original_and_its_bias_learns():
    original = run_linear_original(lamb=True)
    ours = run_linear(TrainConfig())
    torch.testing.assert_close(ours.weight.detach(), original["weight"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.bias.detach(), original["bias"], rtol=0, atol=1e-6)
    # The bias (from zero) takes full Adam steps, no trust ratio: norm 0.455 after 20 steps.
    assert float(ours.bias.detach().norm()) > 0.4
    # FusedLamb's rule (every setting flipped) gives the bias a ratio ||b|| / ||u|| that keeps it
    # near its first step; the weight barely differs.
    fused = run_linear(
        TrainConfig(
            lamb_bias_correction=True, lamb_exclude_from_adaptation=False, lamb_clamp_trust_ratio=True
        )
    )
    assert float(fused.bias.detach().norm()) < 0.1 * float(original["bias"].norm())
    torch.testing.assert_close(fused.weight.detach(), original["weight"], rtol=0, atol=1e-4)


def test_adamw_follows_the_originals_adam_weight_decay_and_bias_correction_is_torchs():
    original = run_linear_original(lamb=False, lr=1e-3)
    ours = run_linear(TrainConfig(optimizer="adamw"), lr=1e-3)
    assert isinstance(build_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="adamw")), AdamWeightDecay)
    torch.testing.assert_close(ours.weight.detach(), original["weight"], rtol=0, atol=1e-7)
    torch.testing.assert_close(ours.bias.detach(), original["bias"], rtol=0, atol=1e-7)
    torch_style = build_optimizer(nn.Linear(2, 2), TrainConfig(optimizer="adamw", adamw_bias_correction=True))
    assert type(torch_style) is torch.optim.AdamW


@pytest.mark.parametrize("optimizer", ["lamb", "adamw"])
def test_training_loop_zero0_matches_the_original_optimiser(optimizer, tmp_path):
    """A 2-layer ALBERT, 4 steps of 8 sequences (micro-batch 4, accumulation 2), clipping at 1.0."""
    p = S.profile(NO_DROPOUT, optimizer=optimizer, global_batch_size=8, train_steps=4, save_every=4)
    result = loop.train(S.spec(p, tmp_path / "run"), p.train, p.deepspeed)
    assert result.global_step == 4
    ours = S.load_weights(tmp_path / "run", 4)
    expected = O.synthetic_run(p)
    assert set(ours) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(ours[name], value, rtol=0, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


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


def test_a_flat_group_without_adaptation_makes_the_plain_update_and_keeps_its_padding():
    g = torch.Generator().manual_seed(1)
    params = [nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64) * 9) for _ in range(2)]
    flat = nn.Parameter(
        torch.cat([params[0].detach(), torch.zeros(2, dtype=torch.float64), params[1].detach()])
    )
    layout = FlatLayout(((0, 4, 0), (6, 4, 1)), 2)
    per_param = Lamb([{"params": params, "adapt": False}], lr=0.05)
    flat_lamb = Lamb([{"params": [flat], "adapt": False}], lr=0.05)
    flat_lamb.set_layouts({id(flat): layout})
    assert not flat_lamb.adapts
    for _ in range(3):
        grads = [torch.randn(4, generator=g, dtype=torch.float64) for _ in params]
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        flat.grad = torch.cat([grads[0], torch.ones(2, dtype=torch.float64), grads[1]])
        per_param.step()
        flat_lamb.step()
    torch.testing.assert_close(flat.detach()[:4], params[0].detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(flat.detach()[6:], params[1].detach(), rtol=1e-12, atol=0)
    assert flat.detach()[4:6].tolist() == [0.0, 0.0]


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
    assert (decay["adapt"], skip["adapt"]) == (True, False)  # the trust ratio follows the same split
    assert [g["adapt"] for g in parameter_groups(model, 0.0, exclude_from_adaptation=False)] == [True, True]
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in skip["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert skipped == {n for n in names.values() if O.excluded(n)}  # the original's name rule, same split
    assert "predictions.bias" in skipped and "albert.embeddings.word_embeddings.weight" in decayed
    assert len(skipped) + len(decayed) == len(list(model.parameters()))


def test_learning_rate_warmup_then_linear_decay():
    lrs = [learning_rate_at(s, 1.0, 4, 10) for s in range(10)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert learning_rate_at(5, 1.0, 0, 10, power=2.0) == pytest.approx(0.25)
    assert learning_rate_at(12, 1.0, 0, 10) == 0.0


def test_finetuning_builds_the_originals_adamw_unless_the_profile_asks_for_torchs():
    from albertctl.pipelines.finetune import to_train_config
    from albertctl.tasks.base import TaskConfig

    task = TaskConfig(train_steps=10)
    model = nn.Linear(2, 2)
    assert type(build_optimizer(model, to_train_config(task, TrainConfig(), 10))) is AdamWeightDecay
    torch_style = dataclasses.replace(TrainConfig(), adamw_bias_correction=True)
    assert type(build_optimizer(model, to_train_config(task, torch_style, 10))) is torch.optim.AdamW


def test_a_loaded_optimiser_state_keeps_the_configured_rule_and_the_saved_moments():
    def stepped(**kw: Any) -> Lamb:
        p = nn.Parameter(torch.tensor([3.0, -4.0], dtype=torch.float64))
        p.grad = torch.tensor([0.5, 1.0], dtype=torch.float64)
        optimizer = Lamb([p], lr=0.1, **kw)
        optimizer.step()
        return optimizer

    saved = stepped(bias_correction=True, clamp=(0.01, 10.0)).state_dict()
    resumed = Lamb([nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=0.1)  # the default rule, no state
    resumed.load_state_dict(saved)
    group = resumed.param_groups[0]
    assert (group["bias_correction"], group["clamp"], group["adapt"]) == (False, None, True)
    moments = next(iter(resumed.state.values()))
    torch.testing.assert_close(moments["exp_avg"], saved["state"][0]["exp_avg"], rtol=0, atol=0)


def test_a_rule_setting_that_is_not_true_or_false_is_refused():
    with pytest.raises(AlbertError, match=r"train.lamb_bias_correction must be true or false, got 'yes'"):
        S.profile(lamb_bias_correction="yes")
