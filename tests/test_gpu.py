"""GPU checks of the training path (issue 21): run them with `bash bench/gpu.sh` on a CUDA machine.

Real profiles (base, large; xxlarge for memory) at sequence length 512, through the one
training loop and DeepSpeed on one GPU, on the synthetic batches of pretrain_synthetic.py:

- ZeRO stages 0-3 give the same losses and weights, for fp32, bf16 and fp16, within the
  precision's tolerance. With LAMB this also compares both sides of DeepSpeed's flattening:
  fp32 under ZeRO-0 steps the parameters themselves, every other case steps flat buffers
  (our Lamb with per-parameter layouts).
- LAMB on a flat buffer equals LAMB on the parameters on CUDA tensors.
- A run interrupted and resumed ends with the same losses and weights as a straight run.
- Activation checkpointing on and off give the same losses and weights; so do train.unpad on and off.
- xxlarge fits under ZeRO-3 and steps.

Without a GPU (CI), these tests are collected and skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pretrain_synthetic as S
import pytest
import torch

from albertctl.core.config import Profile, load_profile, with_overrides
from albertctl.model.albert import AlbertForPreTraining
from albertctl.training import checkpoint as ckpt
from albertctl.training import loop
from albertctl.training.optim import Lamb, flat_layouts

# cuBLAS needs this before its first call for deterministic results (resume-exact check);
# bench/gpu.sh sets it too. Collection imports this module before any test touches CUDA.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

_NO_GPU = (
    "needs a CUDA GPU and DeepSpeed's CUDA accelerator (DS_ACCELERATOR unset): run `bash bench/gpu.sh`"
    " on a GPU machine"
)
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or os.environ.get("DS_ACCELERATOR", "cuda") != "cuda", reason=_NO_GPU
    ),
]

SEQ = 512
# (loss, weights) tolerances per precision, relative and absolute. fp32 differs across ZeRO
# stages only by summation order; bf16 keeps 8 mantissa bits, fp16 11.
TOL = {
    "fp32": ({"rtol": 1e-5, "atol": 1e-5}, {"rtol": 1e-4, "atol": 1e-6}),
    "bf16": ({"rtol": 2e-2, "atol": 2e-2}, {"rtol": 2e-2, "atol": 2e-3}),
    "fp16": ({"rtol": 5e-3, "atol": 5e-3}, {"rtol": 5e-3, "atol": 1e-3}),
}


def gpu_profile(name: str, precision: str, zero: int, steps: int = 3, **train: object) -> Profile:
    """A built-in profile at a few steps' scale: warm-up of one step, then linear decay."""
    sets = {
        "train.precision": precision,
        "train.train_steps": steps,
        "train.warmup_steps": 1,
        "train.global_batch_size": 8,
        "train.micro_batch_size": 8,
        "train.save_every": 1000,
        "train.log_every": 1,
        "deepspeed.zero_stage": zero,
        **{f"train.{k}": v for k, v in train.items()},
    }
    return with_overrides(load_profile(name), [f"{k}={v}" for k, v in sets.items()])


def shape(p: Profile) -> tuple[int, int, int]:
    return (p.model.vocab_size, SEQ, p.data.max_predictions_per_seq)


def losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [e["loss"] for e in map(json.loads, lines) if e["event"] == "train"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    latest = ckpt.latest_names(run / "checkpoints")[0]
    return load_file(str(run / "checkpoints" / latest / "model" / "model.safetensors"))


def train(p: Profile, out: Path, **spec: object) -> loop.TrainResult:
    try:
        return loop.train(S.spec(p, out, shape=shape(p), **spec), p.train, p.deepspeed)
    finally:
        torch.cuda.empty_cache()


def assert_same_run(a: Path, b: Path, precision: str, what: str) -> None:
    loss_tol, weight_tol = TOL[precision]
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) > 0, what
    torch.testing.assert_close(torch.tensor(lb), torch.tensor(la), **loss_tol, msg=lambda m: f"{what}: {m}")
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys(), what
    for k in wa:
        torch.testing.assert_close(
            wb[k].float(), wa[k].float(), **weight_tol, msg=lambda m, k=k: f"{what} {k}: {m}"
        )


CASES = [
    ("base", "fp32"),
    ("base", "bf16"),
    ("base", "fp16"),
    ("large", "bf16"),
    ("large", "fp32"),
]


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_zero_stages_agree(tmp_path, name, precision):
    runs = {}
    for zero in range(4):
        p = gpu_profile(name, precision, zero)
        runs[zero] = tmp_path / f"zero{zero}"
        result = train(p, runs[zero])
        assert (result.global_step, result.stopped) == (3, "finished")
        assert all(x == x and x < 20 for x in losses(runs[zero])), losses(runs[zero])
    for zero in (1, 2, 3):
        assert_same_run(runs[0], runs[zero], precision, f"{name} {precision}: ZeRO-{zero} vs ZeRO-0")


def test_lamb_on_flat_buffers_equals_lamb_on_parameters_cuda():
    """One model's parameters stepped two ways, on CUDA: our Lamb per parameter and our Lamb on
    one flat fp32 buffer with its layout (as under ZeRO). (DeepSpeed's FusedLamb is not used: its
    bias correction and clamp differ from the original's rule, training/optim.py.)"""
    torch.manual_seed(0)
    model = AlbertForPreTraining(load_profile("base").model).cuda()
    names = [n for n, _ in model.named_parameters()]
    kw = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6}

    def copies():
        return [p.detach().clone().requires_grad_(True) for p in model.parameters()]

    per_param = copies()
    flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    views = [t.detach() for t in copies()]  # the shapes the layout is checked against
    offsets = [0]
    for p in views:
        offsets.append(offsets[-1] + p.numel())
    wrapper = SimpleNamespace(fp32_groups_flat=[flat], fp16_groups=[views])  # as DeepSpeed's wrappers

    def group(params):  # weight decay on every tensor, the same on each side
        return [{"params": params, "weight_decay": 0.01}]

    ours, flat_lamb = Lamb(group(per_param), **kw), Lamb(group([flat]), **kw)
    flat_lamb.set_layouts(flat_layouts(wrapper))
    g = torch.Generator(device="cuda").manual_seed(1)
    for _ in range(3):
        grads = [torch.randn(p.shape, device="cuda", generator=g) * 1e-2 for p in per_param]
        for p, grad in zip(per_param, grads, strict=True):
            p.grad = grad.clone()
        flat.grad = torch.cat([grad.reshape(-1) for grad in grads])
        ours.step()
        flat_lamb.step()
    for i, p in enumerate(per_param):
        piece = flat.detach()[offsets[i] : offsets[i + 1]].view_as(p)
        torch.testing.assert_close(
            piece, p.detach(), rtol=1e-5, atol=1e-7, msg=lambda m, i=i: f"flat {names[i]}: {m}"
        )


@pytest.mark.parametrize(("precision", "zero"), [("fp32", 1), ("bf16", 2), ("bf16", 3)])
def test_resume_after_interrupt_is_exact(tmp_path, precision, zero):
    p = gpu_profile("base", precision, zero, steps=4)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        straight = tmp_path / "straight"
        train(p, straight)

        split = tmp_path / "split"
        base = S.spec(p, split, shape=shape(p))
        calls = {"n": 0}
        original = base.batches.micro_batch

        def counting(i):
            calls["n"] += 1
            if calls["n"] == 2:  # Ctrl-C during step 2: it finishes, saves, returns
                os.kill(os.getpid(), signal.SIGINT)
            return original(i)

        base.batches.micro_batch = counting
        first = loop.train(S.spec(p, split, shape=shape(p), batches=base.batches), p.train, p.deepspeed)
        assert (first.global_step, first.stopped) == (2, "interrupted")
        second = train(p, split, resume=True)
        assert (second.global_step, second.stopped) == (4, "finished")
    finally:
        torch.use_deterministic_algorithms(False)
    assert losses(split) == losses(straight)
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_activation_checkpointing_on_and_off_agree(tmp_path, precision):
    runs = {}
    for on in (False, True):
        p = gpu_profile("base", precision, 1, activation_checkpointing=str(on).lower())
        runs[on] = tmp_path / f"checkpointing-{on}"
        train(p, runs[on])
    assert_same_run(runs[False], runs[True], precision, f"base {precision}: activation checkpointing")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_unpad_on_and_off_agree(tmp_path, precision):
    """train.unpad (linear layers on the real tokens only) against the padded encoder; the
    synthetic batches carry padding."""
    runs = {}
    for unpad in (False, True):
        runs[unpad] = tmp_path / str(unpad)
        train(gpu_profile("base", precision, 1, unpad=str(unpad).lower()), runs[unpad])
    assert_same_run(runs[False], runs[True], precision, f"unpad, {precision}")


def test_xxlarge_fits_under_zero3_and_steps(tmp_path):
    total = torch.cuda.get_device_properties(0).total_memory
    if total < 40 * 2**30:
        pytest.skip(f"xxlarge at sequence 512 wants a 40 GiB+ GPU, this one has {total / 2**30:.0f} GiB")
    p = gpu_profile("xxlarge", "bf16", 3, steps=2, micro_batch_size=2, activation_checkpointing="true")
    torch.cuda.reset_peak_memory_stats()
    result = train(p, tmp_path / "xxlarge")
    peak = torch.cuda.max_memory_allocated()
    assert (result.global_step, result.stopped) == (2, "finished")
    assert all(x == x and x < 20 for x in losses(tmp_path / "xxlarge"))
    print(
        f"xxlarge bf16 ZeRO-3, micro-batch 2, seq {SEQ}: peak {peak / 2**30:.1f} GiB of {total / 2**30:.0f}"
    )
