"""Training throughput of one MLM+SOP optimiser step: albertctl vs transformers.AlbertForPreTraining.

Same config, weights, batch, sequence length, masked positions, precision and optimiser (AdamW),
alternating runs in one process. Prints tokens/s, the ratio, MFU (achieved FLOP/s over a
matmul peak measured in the same run) and peak memory of each in a fresh process.

    python bench/pretrain_step.py                       # tiny and base, fp32 and bf16, seq 128
    python bench/pretrain_step.py --profiles base --precisions bf16 --device cuda --seq 512
    python bench/pretrain_step.py --profiles base large --device cuda --seq 512 --batch 32

On a GPU each row also gives MFU against the bf16 matmul peak measured in the same run
(`mfu_vs_bf16_peak`), the yardstick of issue 21's >= 50% goal, whatever the step's precision.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    alternate,
    child_peak_memory,
    copy_weights,
    hf_config,
    machine,
    median,
    peak_memory,
    write_json,
)

from albertctl.core.config import load_profile  # noqa: E402
from albertctl.model.albert import AlbertForPreTraining, pretraining_loss, training_flops_per_token  # noqa: E402
from albertctl.training.device import matmul_peak  # noqa: E402

BATCH = {"tiny": 32, "base": 8, "large": 4, "xlarge": 2, "xxlarge": 1}


def make_batch(vocab: int, batch: int, seq: int, predictions: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    types = torch.zeros_like(ids)
    types[:, seq // 2 :] = 1
    mask = torch.ones_like(ids)
    positions = torch.stack([torch.randperm(seq - 1, generator=g)[:predictions] + 1 for _ in range(batch)])
    positions, _ = positions.sort(dim=1)
    targets = torch.gather(ids, 1, positions)
    labels = torch.full_like(ids, -100).scatter(1, positions, targets)
    sop = torch.randint(0, 2, (batch,), generator=g)
    b = dict(ids=ids, types=types, mask=mask, positions=positions, targets=targets, labels=labels, sop=sop)
    return {k: v.to(device) for k, v in b.items()}


def build(profile: str, device: torch.device, only: str | None = None, seq: int = 128):
    """Both models with the same weights; `only` builds just one (for memory measurements).
    Position tables are widened to `seq` where a profile's are shorter (tiny trains at 64)."""
    cfg = load_profile(profile).model
    cfg = dataclasses.replace(cfg, max_position_embeddings=max(cfg.max_position_embeddings, seq))
    torch.manual_seed(0)
    ours = AlbertForPreTraining(cfg).to(device).train()
    if only == "albertctl":
        return cfg, ours, torch.nn.Linear(1, 1)
    import transformers

    hf = transformers.AlbertForPreTraining(hf_config(cfg)).to(device).train()
    copy_weights(ours, hf)
    if only == "transformers":
        return cfg, torch.nn.Linear(1, 1), hf
    return cfg, ours, hf


def step_fns(ours, hf, batch, precision: str, device: torch.device):
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]

    def autocast():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    weights = torch.ones_like(batch["targets"], dtype=torch.float32)

    def ours_step():
        opt_ours.zero_grad(set_to_none=True)
        with autocast():
            out = ours_forward(ours, batch)
            loss = pretraining_loss(out, batch["targets"], weights, batch["sop"]).loss
        loss.backward()
        opt_ours.step()

    def hf_step():
        opt_hf.zero_grad(set_to_none=True)
        with autocast():
            out = hf(
                input_ids=batch["ids"],
                token_type_ids=batch["types"],
                attention_mask=batch["mask"],
                labels=batch["labels"],
                sentence_order_label=batch["sop"],
            )
        out.loss.backward()
        opt_hf.step()

    return {"albertctl": ours_step, "transformers": hf_step}


def ours_forward(ours, batch):
    """albertctl's pretraining forward as `albertctl pretrain` runs it (sparse last layer)."""
    return ours(batch["ids"], batch["types"], batch["mask"], batch["positions"], sparse_last_layer=True)


def losses_agree(ours, hf, batch) -> float:
    """Sanity check: both compute the same loss on the same weights (fp32, eval mode)."""
    ours.eval()
    hf.eval()
    with torch.no_grad():
        out = ours_forward(ours, batch)
        a = pretraining_loss(
            out, batch["targets"], torch.ones_like(batch["targets"], dtype=torch.float32), batch["sop"]
        ).loss
        ref = hf(input_ids=batch["ids"], token_type_ids=batch["types"], attention_mask=batch["mask"])
        mlm = F.cross_entropy(
            ref.prediction_logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100
        )
        b = mlm + F.cross_entropy(ref.sop_logits, batch["sop"])
    ours.train()
    hf.train()
    return abs(a.item() - b.item())


def child(args) -> None:
    device = torch.device(args.device)
    cfg, ours, hf = build(args.child_profile, device, only=args.child_impl, seq=args.seq)
    seq = args.seq
    batch = make_batch(cfg.vocab_size, args.batch or BATCH[args.child_profile], seq, predictions(seq), device)
    fns = step_fns(ours, hf, batch, args.child_precision, device)
    for _ in range(3):
        fns[args.child_impl]()
    print(json.dumps({"peak_memory": peak_memory(device)}))


def predictions(seq: int) -> int:
    return max(1, min(20, round(seq * 0.15)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["tiny", "base"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per timed run")
    ap.add_argument("--batch", type=int, help="sequences per step (default: per profile, sized for a CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("bench/results/pretrain_step.json"))
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child-impl", choices=["albertctl", "transformers"])
    ap.add_argument("--child-profile")
    ap.add_argument("--child-precision")
    args = ap.parse_args()
    if args.child_impl:
        child(args)
        return
    device = torch.device(args.device)
    info = machine()
    rows = []
    peaks = {
        p: matmul_peak(
            device.type, p, n=8192 if device.type == "cuda" else 2048, repeats=5, cpu_in_precision=True
        )
        for p in {*args.precisions, *(["bf16"] if device.type == "cuda" else [])}
    }
    for profile in args.profiles:
        cfg, ours, hf = build(profile, device, seq=args.seq)
        bsz, seq = args.batch or BATCH[profile], args.seq
        batch = make_batch(cfg.vocab_size, bsz, seq, predictions(seq), device)
        diff = losses_agree(ours, hf, batch)
        for precision in args.precisions:
            fns = step_fns(ours, hf, batch, precision, device)
            runs = {k: (lambda f=f: [f() for _ in range(args.steps)]) for k, f in fns.items()}
            times = alternate(runs, args.rounds, device)
            tokens = bsz * seq * args.steps
            tps = {k: tokens / median(v) for k, v in times.items()}
            flops = training_flops_per_token(cfg, seq, predictions(seq) / seq)
            row = {
                "profile": profile,
                "precision": precision,
                "batch": bsz,
                "seq": seq,
                "albertctl_tokens_per_s": tps["albertctl"],
                "transformers_tokens_per_s": tps["transformers"],
                "ratio": tps["albertctl"] / tps["transformers"],
                "mfu": tps["albertctl"] * flops / peaks[precision],
                "matmul_peak_flops": peaks[precision],
                **(
                    {
                        "mfu_vs_bf16_peak": tps["albertctl"] * flops / peaks["bf16"],
                        "bf16_peak_flops": peaks["bf16"],
                    }
                    if "bf16" in peaks
                    else {}
                ),
                "loss_abs_diff_fp32": diff,
            }
            if not args.no_memory:
                script = Path(__file__).resolve()
                for impl in ("albertctl", "transformers"):
                    row[f"{impl}_peak_memory"] = child_peak_memory(
                        script,
                        [
                            "--child-impl",
                            impl,
                            "--child-profile",
                            profile,
                            "--child-precision",
                            precision,
                            "--seq",
                            str(seq),
                            "--device",
                            args.device,
                            *(["--batch", str(args.batch)] if args.batch else []),
                        ],
                    )
            rows.append(row)
            print(
                f"{profile:6s} {precision:5s} albertctl {tps['albertctl']:10.0f} tok/s  transformers "
                f"{tps['transformers']:10.0f} tok/s  ratio {row['ratio']:.2f}x  MFU {row['mfu']:.1%}"
                + (
                    f"  peak mem {row['albertctl_peak_memory'] / 2**20:.0f} vs {row['transformers_peak_memory'] / 2**20:.0f} MiB"
                    if not args.no_memory
                    else ""
                ),
                flush=True,
            )
    write_json(args.out, {"machine": info, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
