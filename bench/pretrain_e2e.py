"""`albertctl pretrain` end to end against a plain transformers loop, and against albertctl's own step.

Three contenders per configuration, alternating in one process, each from the same initial weights:

- `albertctl`: `pipelines.pretrain.run`, the function `albertctl pretrain` calls, on the built-in sample
  corpus prepared for the configuration (cached once). Timed: the second of two log windows, so DeepSpeed's
  start, the first steps, the final checkpoint and the held-out evaluation are outside the timing; inside are
  everything the loop does per step (batch building and dynamic masking, forward, backward, clipping, the
  optimiser, logging).
- `transformers`: `transformers.AlbertForPreTraining` + `torch.optim.AdamW` + `clip_grad_norm_` on the very
  micro-batches albertctl trains on, collated in advance (so its data costs nothing: the strict comparison).
  bf16 runs under `torch.autocast`.
- `step`: albertctl's model step alone (bench/pretrain_step.py's loop) on a synthetic full batch of the
  same shape: what `pretrain` would reach with no overhead at all.

- `albertctl_padded` (where the profile has `train.unpad`, base and larger): the same run with it off,
  every layer also computing the padding: what unpadding gains.

`albertctl` and `transformers` count real (non-padding) tokens and sequences of the same batches; the
`step` comparison is given in sequences/s and in real tokens/s (every row of the step bench is full length, so
all of the step's tokens are real). LAMB rows show LAMB's
cost against albertctl's AdamW row; the transformers loop always uses AdamW (transformers has no LAMB).

    python bench/pretrain_e2e.py                                  # tiny and base, fp32 and bf16, AdamW and LAMB
    python bench/pretrain_e2e.py --profiles base --precisions fp32 --optimizers adamw --rounds 5
    python bench/pretrain_e2e.py --device cuda --profiles base --precisions bf16   # on a GPU (not yet run)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import copy_weights, hf_config, machine, median, write_json  # noqa: E402
from pretrain_step import make_batch, predictions, step_fns  # noqa: E402

# Shapes: base is the (8 sequences of 128 tokens; the sample corpus holds ~21k sentences, so its
# vocabulary stops at 7,800); tiny is the built-in default's own shape.
SHAPES = {
    "base": [
        "model.vocab_size=7800",
        "data.max_seq_length=128",
        "train.micro_batch_size=8",
        "train.global_batch_size=8",
    ],
    "tiny": [],
}


def single_process(device: torch.device) -> None:
    from albertctl.core.net import free_port

    if device.type == "cpu":  # albertctl's run then trains on the CPU like the other two
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def config(profile: str, precision: str, optimizer: str, steps: int):
    from albertctl.core.config import load_profile

    sets = [
        *SHAPES[profile],
        f"train.precision={precision}",
        f"train.optimizer={optimizer}",
        f"train.train_steps={2 * steps}",
        f"train.log_every={steps}",
        f"train.save_every={10 * steps}",
        "train.warmup_steps=1",
    ]
    return load_profile(profile, overrides=sets)


def prepared(profile) -> Path:
    from albertctl.pipelines import pretrain
    from albertctl.training import distributed

    return pretrain.builtin_data(profile, distributed.init_distributed(), None)


def padded(profile):
    """`profile` with train.unpad off."""
    return dataclasses.replace(profile, train=dataclasses.replace(profile.train, unpad=False))


def real_fraction(batches: list[dict[str, torch.Tensor]]) -> float:
    """Real tokens over all token slots of the collated micro-batches."""
    real = sum(float(b["attention_mask"].sum()) for b in batches)
    return real / sum(b["attention_mask"].numel() for b in batches)


def albertctl_run(profile, data: Path, work: Path) -> dict:
    """One `pretrain` run; the second log window's rates."""
    from albertctl.pipelines import pretrain

    out = work / f"run-{time.monotonic_ns()}"
    events: list[dict] = []
    pretrain.run(profile, data, out, progress=events.append)
    shutil.rmtree(out, ignore_errors=True)
    windows = [e for e in events if e.get("event") == "train"]
    last = windows[-1]
    return {"tokens": last["tokens_per_second"], "sequences": last["sequences_per_second"]}


def training_batches(profile, data: Path, count: int) -> list[dict[str, torch.Tensor]]:
    """The first `count` micro-batches albertctl trains on (rank 0 of 1)."""
    from albertctl.data.pretraining import PretrainingCollator, load_split, read_manifest, vocab_file
    from albertctl.data.tokenizer import load_tokenizer
    from albertctl.training.batches import IndexedBatches

    ds = load_split(data, "train")
    tok = load_tokenizer(vocab_file(data, read_manifest(data)), profile.data.do_lower_case)
    collator = PretrainingCollator(tok, profile.data, profile.train.seed)
    t = profile.train
    source = IndexedBatches(
        len(ds), lambda idx: [ds[i] for i in idx], collator, t.micro_batch_size, seed=t.seed
    )
    return [source.micro_batch(i) for i in range(count)]


def hf_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    labels = torch.full_like(batch["input_ids"], -100)
    real = batch["masked_lm_weights"] > 0
    rows = torch.arange(labels.shape[0]).unsqueeze(1).expand_as(batch["masked_lm_positions"])
    labels[rows[real], batch["masked_lm_positions"][real]] = batch["masked_lm_ids"][real]
    return {
        "input_ids": batch["input_ids"],
        "token_type_ids": batch["token_type_ids"],
        "attention_mask": batch["attention_mask"],
        "labels": labels,
        "sentence_order_label": batch["sentence_order_labels"],
    }


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference(profile, batches: list[dict[str, torch.Tensor]], steps: int, device: torch.device):
    """The plain loop over batches[steps:2 * steps] (the first `steps` warm it up), as a callable
    returning real tokens/s and sequences/s of the timed half."""
    import transformers

    from albertctl.pipelines.pretrain import build_model

    t = profile.train
    hf = transformers.AlbertForPreTraining(hf_config(profile.model)).train()
    copy_weights(build_model(profile, None), hf)
    hf.to(device)
    opt = torch.optim.AdamW(
        hf.parameters(),
        lr=t.learning_rate,
        betas=(t.beta1, t.beta2),
        eps=t.epsilon,
        weight_decay=t.weight_decay,
    )
    inputs = [{k: v.to(device) for k, v in hf_inputs(b).items()} for b in batches]
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if t.precision == "bf16"
        else contextlib.nullcontext
    )

    def one(b: dict[str, torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = hf(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), t.max_grad_norm)
        opt.step()

    def run() -> dict:
        hf.load_state_dict(state)
        opt.state.clear()
        for b in inputs[:steps]:
            one(b)
        sync(device)
        start = time.perf_counter()
        for b in inputs[steps : 2 * steps]:
            one(b)
        sync(device)
        seconds = time.perf_counter() - start
        timed = batches[steps : 2 * steps]
        return {
            "tokens": sum(float(b["attention_mask"].sum()) for b in timed) / seconds,
            "sequences": sum(b["input_ids"].shape[0] for b in timed) / seconds,
        }

    return run


def step_alone(profile, steps: int, seq: int, device: torch.device):
    """albertctl's model step (bench/pretrain_step.py) on a synthetic full batch of the run's shape."""
    from albertctl.pipelines.pretrain import build_model

    t = profile.train
    ours = build_model(profile, None).to(device).train()
    batch = make_batch(profile.model.vocab_size, t.micro_batch_size, seq, predictions(seq), device)
    fn = step_fns(ours, torch.nn.Linear(1, 1), batch, t.precision, device)["albertctl"]

    def run() -> dict:
        for _ in range(steps):
            fn()
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        seconds = time.perf_counter() - start
        return {"sequences": t.micro_batch_size * steps / seconds}

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["tiny", "base"], choices=sorted(SHAPES))
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--optimizers", nargs="+", default=["adamw", "lamb"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="timed steps per run (default: 100 tiny, 4 base)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/pretrain_e2e.json"))
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        choices=["cpu", "cuda"],
        help="where all three run; albertctl trains on the GPU whenever one is visible",
    )
    args = ap.parse_args()
    if args.device == "cpu" and torch.cuda.is_available():
        ap.error("albertctl trains on a visible GPU: for a CPU comparison run with CUDA_VISIBLE_DEVICES=")
    device = torch.device(args.device)
    single_process(device)
    info = machine()
    rows = []
    from albertctl.training.device import cpu_emulates

    skipped = [p for p in args.precisions if device.type == "cpu" and cpu_emulates(p)]
    if skipped:  # tens of times slower than fp32: nothing a user would run
        print(f"skipping {', '.join(skipped)}: this CPU has no instructions for it (emulated)", flush=True)
        info["skipped_precisions"] = skipped
    args.precisions = [p for p in args.precisions if p not in skipped]
    with tempfile.TemporaryDirectory(prefix="albertctl-bench-") as tmp:
        for name in args.profiles:
            steps = args.steps or (100 if name == "tiny" else 4)
            for precision in args.precisions:
                for optimizer in args.optimizers:
                    profile = config(name, precision, optimizer, steps)
                    data = prepared(profile)
                    batches = training_batches(profile, data, 2 * steps)
                    seq = profile.data.max_seq_length
                    runs = {
                        "albertctl": lambda p=profile, d=data: albertctl_run(p, d, Path(tmp)),
                        "transformers": reference(profile, batches, steps, device),
                        "step": step_alone(profile, steps, seq, device),
                    }
                    if profile.train.unpad:  # the same run on the padding too: what unpadding gains
                        plain = padded(profile)
                        runs["albertctl_padded"] = lambda p=plain, d=data: albertctl_run(p, d, Path(tmp))
                    got: dict[str, list[dict]] = {k: [] for k in runs}
                    for _ in range(args.rounds):
                        for k, fn in runs.items():
                            got[k].append(fn())
                    med = {k: {m: median([r[m] for r in v]) for m in v[0]} for k, v in got.items()}
                    row = {
                        "profile": name,
                        "precision": precision,
                        "optimizer": optimizer,
                        "micro_batch": profile.train.micro_batch_size,
                        "seq": seq,
                        "vocab": profile.model.vocab_size,
                        "steps_timed": steps,
                        "rounds": args.rounds,
                        "albertctl_tokens_per_s": med["albertctl"]["tokens"],
                        "transformers_tokens_per_s": med["transformers"]["tokens"],
                        "albertctl_sequences_per_s": med["albertctl"]["sequences"],
                        "step_sequences_per_s": med["step"]["sequences"],
                        "ratio_vs_transformers": med["albertctl"]["tokens"] / med["transformers"]["tokens"],
                        "fraction_of_step": med["albertctl"]["sequences"] / med["step"]["sequences"],
                        # real tokens/s against the step's, whose synthetic batches are all real tokens
                        "token_fraction_of_step": med["albertctl"]["tokens"]
                        / (med["step"]["sequences"] * seq),
                        "real_token_fraction": real_fraction(batches),
                        "runs": got,
                    }
                    if "albertctl_padded" in med:
                        row["albertctl_padded_tokens_per_s"] = med["albertctl_padded"]["tokens"]
                        row["unpad_speedup"] = med["albertctl"]["tokens"] / med["albertctl_padded"]["tokens"]
                    rows.append(row)
                    print(
                        f"{name:5s} {precision:5s} {optimizer:6s} albertctl {row['albertctl_tokens_per_s']:9.0f} tok/s  "
                        f"transformers {row['transformers_tokens_per_s']:9.0f} tok/s  "
                        f"ratio {row['ratio_vs_transformers']:.2f}x  of step {row['fraction_of_step']:.1%} (sequences), "
                        f"{row['token_fraction_of_step']:.1%} (real tokens)"
                        + (f"  unpad {row['unpad_speedup']:.2f}x" if "unpad_speedup" in row else ""),
                        flush=True,
                    )
    for row in rows:  # LAMB's cost over AdamW, same profile and precision
        if row["optimizer"] == "lamb":
            twin = next(
                (
                    r
                    for r in rows
                    if r["optimizer"] == "adamw"
                    and r["profile"] == row["profile"]
                    and r["precision"] == row["precision"]
                ),
                None,
            )
            if twin:
                row["lamb_over_adamw"] = row["albertctl_tokens_per_s"] / twin["albertctl_tokens_per_s"]
    write_json(args.out, {"machine": info, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
