"""Fine-tuning step throughput for sequence classification: albertctl vs transformers.

One optimiser step (forward, cross-entropy, backward, AdamW) per batch over a realistic length mix
(the same one as bench/inference.py). albertctl trains on length-grouped batches with dynamic
padding, as `albertctl finetune` does; transformers is run padded to max_seq_length (run_glue's
default) and padded to the longest sequence of each batch in dataset order; the ratio is taken
against the faster of the two. Both start from the same weights.

    python bench/finetune_step.py                  # base, fp32, CPU
    python bench/finetune_step.py --profile tiny --examples 512
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_memory  # noqa: E402
from inference import (  # noqa: E402
    albertctl_batches,
    build,
    hf_batches,
    length_mix,
    length_mix_args,
    length_mix_report,
    sequences,
)


def ours_epoch(model, batches, labels, opt):
    for (ids, mask), y in zip(batches, labels, strict=True):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids, None, mask), y).backward()
        opt.step()


def hf_epoch(model, batches, labels, opt):
    for (ids, mask), y in zip(batches, labels, strict=True):
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=mask, labels=y).loss.backward()
        opt.step()


def batch_labels(order: list[int], labels: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [labels[order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


def main() -> None:
    args = length_mix_args(__doc__, 256, "bench/results/finetune_step.json")

    lengths = length_mix(args.examples, args.max_seq_length)
    labels = torch.randint(0, 2, (args.examples,), generator=torch.Generator().manual_seed(2))
    identity = list(range(args.examples))
    order = sorted(identity, key=lambda i: lengths[i])
    if args.child_impl:
        cfg, ours, hf = build(args.profile, only=args.child_impl, seq=args.max_seq_length)
        seqs = sequences(lengths, cfg.vocab_size)
        if args.child_impl == "albertctl":
            ours.train()
            opt = torch.optim.AdamW(ours.parameters(), lr=1e-5)
            ours_epoch(
                ours,
                albertctl_batches(seqs, args.batch_size),
                batch_labels(order, labels, args.batch_size),
                opt,
            )
        else:
            hf.train()
            opt = torch.optim.AdamW(hf.parameters(), lr=1e-5)
            hf_epoch(
                hf,
                hf_batches(seqs, args.batch_size, None),
                batch_labels(identity, labels, args.batch_size),
                opt,
            )
        print(json.dumps({"peak_memory": peak_memory(torch.device("cpu"))}))
        return

    cfg, ours, hf = build(args.profile, seq=args.max_seq_length)
    ours.train()
    hf.train()
    seqs = sequences(lengths, cfg.vocab_size)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-5)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-5)
    ours_b, ours_y = albertctl_batches(seqs, args.batch_size), batch_labels(order, labels, args.batch_size)
    hf_fixed = hf_batches(seqs, args.batch_size, args.max_seq_length)
    hf_dynamic = hf_batches(seqs, args.batch_size, None)
    hf_y = batch_labels(identity, labels, args.batch_size)
    runs = {
        "albertctl": lambda: ours_epoch(ours, ours_b, ours_y, opt_ours),
        "transformers_padded_to_max": lambda: hf_epoch(hf, hf_fixed, hf_y, opt_hf),
        "transformers_dynamic_padding": lambda: hf_epoch(hf, hf_dynamic, hf_y, opt_hf),
    }
    length_mix_report(args, __file__, lengths, runs)


if __name__ == "__main__":
    main()
