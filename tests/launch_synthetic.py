"""Run by `deepspeed --num_gpus N` in test_train_launcher.py: synthetic pretraining runs, one
per JSON spec on the command line, each writing its run directory (metrics.jsonl)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pretrain_synthetic as S  # noqa: E402

from albertctl.training import distributed, loop  # noqa: E402


def main() -> None:
    dist = distributed.init_distributed()
    for arg in sys.argv[1:]:
        if arg.startswith("--local_rank"):
            continue
        run = json.loads(arg)
        p = S.profile(run.get("model"), **run.get("train", {})).replace(deepspeed=run.get("deepspeed", {}))
        spec = S.spec(
            p,
            Path(run["out"]),
            rank=dist.rank,
            world_size=dist.world_size,
            resume=run.get("resume", False),
            resume_from=Path(run["resume_from"]) if "resume_from" in run else None,
        )
        result = loop.train(spec, p.train, p.deepspeed)
        if dist.rank == 0:
            print("finished", run["out"], result.global_step, flush=True)
    if dist.rank == 0:
        print("launcher runs done", os.environ.get("WORLD_SIZE"))


if __name__ == "__main__":
    main()
