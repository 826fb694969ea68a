"""What a run reports, on rank 0 only: metrics.jsonl, the experiment trackers, the progress
callback, and DeepSpeed's start-up text in deepspeed.log. `Window` sums one log interval."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from albertctl.training import distributed, trackers
from albertctl.training.batches import Batch

if TYPE_CHECKING:
    from albertctl.training.loop import LossOutput, ProgressFn


class RunLog:
    """metrics.jsonl, TensorBoard when installed, and the progress callback: rank 0 only."""

    def __init__(self, out_dir: Path, rank: int, progress: ProgressFn | None) -> None:
        self.enabled = rank == 0
        self.progress = progress
        self.path = out_dir / "metrics.jsonl"
        self.trackers: list[trackers.Tracker] = []
        if self.enabled:
            out_dir.mkdir(parents=True, exist_ok=True)

    def third_party(self) -> None:
        """Move what DeepSpeed printed while starting into RUN/deepspeed.log."""
        text = distributed.take_chatter()
        if self.enabled and text:
            with (self.path.parent / "deepspeed.log").open("a", encoding="utf-8") as f:
                f.write(text)

    def open_trackers(self, names: tuple[str, ...], params: dict[str, Any]) -> None:
        if self.enabled:
            self.trackers = trackers.open_trackers(names, self.path.parent, params)

    def event(self, event: dict[str, Any], record: bool = True) -> None:
        if not self.enabled:
            return
        if record:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
            metrics = trackers.numeric_fields(event)
            if metrics:
                for tracker in self.trackers:
                    tracker.log(metrics, int(event.get("step", 0)))
        if self.progress is not None:
            self.progress(event)

    def warn(self, message: str) -> None:
        self.event({"event": "warning", "message": message}, record=False)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


class Window:
    """Sums over one log interval on this rank."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.steps = 0
        self.micro = 0
        self.loss = 0.0
        self.tokens = 0.0
        self.sequences = 0.0
        self.metrics: dict[str, list[float]] = {}

    def add(self, out: LossOutput, batch: Batch, token_key: str | None) -> None:
        for name, (num, den) in out.metrics.items():
            acc = self.metrics.setdefault(name, [0.0, 0.0])
            acc[0] += float(num)
            acc[1] += float(den)
        first = next(v for v in batch.values() if isinstance(v, torch.Tensor))
        self.sequences += first.shape[0]
        if token_key is not None and token_key in batch:
            self.tokens += float((batch[token_key] != 0).sum())

    def report(self, step: int, lr: float, total_steps: int) -> dict[str, float]:
        names = sorted(self.metrics)
        flat = [self.loss, self.micro, self.tokens, self.sequences]
        for n in names:
            flat += self.metrics[n]
        flat = distributed.all_reduce_sum(flat)
        seconds = max(time.perf_counter() - self.start, 1e-9)
        out: dict[str, Any] = {"step": step, "loss": flat[0] / max(flat[1], 1)}
        for i, n in enumerate(names):
            num, den = flat[4 + 2 * i], flat[5 + 2 * i]
            out[n] = num / den if den else float("nan")
        out["lr"] = lr
        out["tokens_per_second"] = flat[2] / seconds
        out["sequences_per_second"] = flat[3] / seconds
        out["eta_seconds"] = seconds / max(self.steps, 1) * (total_steps - step)
        return out
