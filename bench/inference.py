"""Eval-mode throughput for sequence classification: albertctl vs transformers.

A realistic length mix (many short sentences, a few long ones, like SST-2/MRPC dev) run through
the same weights. albertctl batches by length with dynamic padding (what `albertctl eval`
does); transformers is run the two ways its examples do: padded to max_seq_length (run_glue's
default) and padded to the longest sequence of each batch in dataset order. The ratio is taken
against the faster of the two. Peak memory of each is measured in a fresh process.

    python bench/inference.py                    # base, fp32, CPU
    python bench/inference.py --profile tiny --examples 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, child_peak_memory, hf_config, machine, median, peak_memory, write_json  # noqa: E402

from albertctl.core.config import load_profile  # noqa: E402
from albertctl.model.heads import AlbertForTask  # noqa: E402


def length_mix(n: int, max_len: int, seed: int = 0) -> list[int]:
    """Lengths drawn like single-sentence GLUE dev sets: log-normal around ~25 tokens, capped."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.exp(torch.randn(n, generator=g) * 0.6 + 3.2).round().clamp(4, max_len).long()
    return lengths.tolist()


def sequences(lengths: list[int], vocab: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, vocab, (n,), generator=g) for n in lengths]


def pad(batch: list[torch.Tensor], to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    width = to or max(len(s) for s in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, s in enumerate(batch):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def albertctl_batches(seqs: list[torch.Tensor], batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [pad([seqs[i] for i in order[k : k + batch_size]]) for k in range(0, len(order), batch_size)]


def hf_batches(seqs, batch_size: int, to: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [pad(seqs[k : k + batch_size], to) for k in range(0, len(seqs), batch_size)]


def build(profile: str, only: str | None = None, seq: int = 128):
    cfg = load_profile(profile).model
    cfg = dataclasses.replace(cfg, max_position_embeddings=max(cfg.max_position_embeddings, seq))
    torch.manual_seed(0)
    ours = AlbertForTask(cfg, "classify", num_labels=2).eval()
    if only == "albertctl":
        return cfg, ours, None
    import transformers

    hf_cfg = hf_config(cfg)
    hf_cfg.num_labels = 2
    hf = transformers.AlbertForSequenceClassification(hf_cfg).eval()
    state = {k.replace("head.classifier", "classifier"): v for k, v in ours.state_dict().items()}
    hf.load_state_dict(state, strict=True)
    return cfg, ours, hf


def run_ours(model, batches):
    with torch.inference_mode():
        return torch.cat([model(ids, None, mask).argmax(-1) for ids, mask in batches])


def run_hf(model, batches):
    with torch.inference_mode():
        return torch.cat(
            [model(input_ids=ids, attention_mask=mask).logits.argmax(-1) for ids, mask in batches]
        )


def length_mix_args(doc: str, examples: int, out: str) -> argparse.Namespace:
    """The options of the length-mix benchmarks (this one and bench/finetune_step.py)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--profile", default="base")
    ap.add_argument("--examples", type=int, default=examples)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(out))
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child-impl", choices=["albertctl", "transformers"])
    return ap.parse_args()


def length_mix_report(
    args: argparse.Namespace,
    script: str,
    lengths: list[int],
    runs: dict[str, Callable[[], object]],
    extra: dict[str, float] | None = None,
) -> None:
    """Time `runs` (albertctl and the two transformers paddings) alternately, measure each
    implementation's peak memory in a fresh `script --child-impl` process, print the table and
    write args.out."""
    times = alternate(runs, args.rounds, torch.device("cpu"))
    real_tokens = sum(lengths)
    tps = {k: real_tokens / median(v) for k, v in times.items()}
    best_hf = max(tps["transformers_padded_to_max"], tps["transformers_dynamic_padding"])
    result = {
        "profile": args.profile,
        "examples": args.examples,
        "mean_length": real_tokens / len(lengths),
        **(extra or {}),
        "real_tokens_per_s": tps,
        "ratio_vs_best_transformers": tps["albertctl"] / best_hf,
    }
    if not args.no_memory:
        base = [
            "--profile",
            args.profile,
            "--examples",
            str(args.examples),
            "--batch-size",
            str(args.batch_size),
            "--max-seq-length",
            str(args.max_seq_length),
        ]
        result["peak_memory"] = {
            impl: child_peak_memory(Path(script).resolve(), [*base, "--child-impl", impl])
            for impl in ("albertctl", "transformers")
        }
    for k, v in tps.items():
        print(f"{k:30s} {v:10.0f} real tokens/s")
    notes = "".join(f" ({k.replace('_', ' ')}: {v:.1%})" for k, v in (extra or {}).items())
    print(f"ratio vs best transformers: {result['ratio_vs_best_transformers']:.2f}x{notes}")
    if "peak_memory" in result:
        print(
            "peak memory MiB: " + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in result["peak_memory"].items())
        )
    write_json(args.out, {"machine": machine(), **result})
    print(f"wrote {args.out}")


def main() -> None:
    args = length_mix_args(__doc__, 512, "bench/results/inference.json")

    lengths = length_mix(args.examples, args.max_seq_length)
    if args.child_impl:
        cfg, ours, hf = build(args.profile, only=args.child_impl, seq=args.max_seq_length)
        seqs = sequences(lengths, cfg.vocab_size)
        if args.child_impl == "albertctl":
            run_ours(ours, albertctl_batches(seqs, args.batch_size))
        else:
            run_hf(hf, hf_batches(seqs, args.batch_size, None))
        print(json.dumps({"peak_memory": peak_memory(torch.device("cpu"))}))
        return

    cfg, ours, hf = build(args.profile, seq=args.max_seq_length)
    seqs = sequences(lengths, cfg.vocab_size)
    ours_b = albertctl_batches(seqs, args.batch_size)
    hf_fixed = hf_batches(seqs, args.batch_size, args.max_seq_length)
    hf_dynamic = hf_batches(seqs, args.batch_size, None)
    # same predictions, whatever the batching
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    ours_pred = torch.empty(len(seqs), dtype=torch.long)
    ours_pred[torch.tensor(order)] = run_ours(ours, ours_b)
    agree = (ours_pred == run_hf(hf, hf_dynamic)).float().mean().item()

    runs = {
        "albertctl": lambda: run_ours(ours, ours_b),
        "transformers_padded_to_max": lambda: run_hf(hf, hf_fixed),
        "transformers_dynamic_padding": lambda: run_hf(hf, hf_dynamic),
    }
    length_mix_report(args, __file__, lengths, runs, {"prediction_agreement": agree})


if __name__ == "__main__":
    main()
