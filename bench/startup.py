"""Start-up of the commands that need no model, as whole processes, beside the interpreter floor.

    python bench/startup.py                                  # --help, profile show, prepare
    python bench/startup.py --runs 9 \\
        --squad-data ../shared/data/squad/dev-v1.1.slice.json \\
        --squad-predictions ../shared/data/squad/predictions/v1.1-bert-ensemble.slice.json

Every measurement is a fresh `python -m albertctl ...` process timed from spawn to exit, as a
user's shell sees it; rounds interleave the commands (floor, help, profile, eval, prepare,
floor, ...) so a neighbour's load hits them alike, and the report gives medians with the
floor (`python -c pass`) measured in the same run, and each process's CPU time (user +
system, from wait4), which a busy machine inflates much less than wall time. One warm-up
round is not counted; it writes the bytecode caches, which the children always use (an
installed environment has them), whatever PYTHONDONTWRITEBYTECODE says.

`prepare` start-up is the time from spawn until the first document of the input has been read
(parsed up to its closing blank line): a wrapper process replaces the corpus reader with one
that ends the process with exit code 99 on the first document it yields, then runs the real
`albertctl prepare` entry point. So it covers interpreter start, imports, option parsing,
profile loading, the output-directory checks and loading the --vocab model, and nothing of
the pass over the data. It runs once with a 300-piece vocabulary and once with 30,000 pieces
(ALBERT's size), since loading the vocabulary grows with it. The wrapper's own cost is one
import of the light corpus module, which prepare imports anyway.

Targets (issue 21): --help and profile show <= 0.5 s over the floor; eval --predictions on
the 4,961-question SQuAD v1.1 slice <= 1.5 s; prepare start-up <= 0.5 s (over the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REACHED_FIRST_DOCUMENT = 99
# Bytecode caches on, as in any installed environment (some shells here set
# PYTHONDONTWRITEBYTECODE, which would recompile every module of albertctl on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

_PREPARE_UNTIL_FIRST_DOCUMENT = f"""
import os, sys
import albertctl.data.corpus as corpus

_read = corpus.iter_file_documents


def _first_document_then_exit(files, stats):
    for _ in _read(files, stats):
        sys.stdout.flush()
        os._exit({REACHED_FIRST_DOCUMENT})
    yield from ()


corpus.iter_file_documents = _first_document_then_exit
from albertctl.cli import main

sys.argv = ["albertctl", "prepare", *sys.argv[1:]]
main()
"""


def _machine() -> dict:
    info = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _time(cmd: list[str], cwd: Path, expect: int = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one process, from spawn to exit."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != expect:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)}: exit {proc.returncode}, expected {expect}\n{err.read().decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _workdir(tmp: Path, vocab_sizes: list[int]) -> dict[int, list[str]]:
    """A small corpus and one vocabulary per size for prepare (made once, not timed): prepare's
    arguments per size. Loading the vocabulary is part of start-up, and its cost grows with the
    number of pieces: ALBERT's models have 30,000. The small corpus has too few distinct words
    for that many pieces, so larger vocabularies are trained on text drawn from a lexicon of
    60,000 made-up words (with numbers and digit-comma pieces, which the tokenizer treats apart)."""
    from tests.prepare_fixtures import documents, write_corpus

    corpus = write_corpus(tmp / "corpus.txt", documents(200, (4, 10), (5, 15)))
    lexicon = _lexicon_text(tmp / "lexicon.txt", lines=48_000) if max(vocab_sizes) > 300 else None
    args = {}
    for size in vocab_sizes:
        text = corpus if size <= 300 else lexicon
        vocab = [
            sys.executable,
            "-m",
            "albertctl",
            "vocab",
            str(text),
            "--vocab-size",
            str(size),
            "-o",
            f"sp{size}",
        ]
        subprocess.run(vocab, cwd=tmp, env=ENV, check=True, capture_output=True)
        out = ["-o", f"prepared{size}", "--set", f"model.vocab_size={size}"]
        args[size] = [str(corpus), "--vocab", f"sp{size}.model", *out]
    return args


def _lexicon_text(path: Path, lines: int) -> Path:
    import random
    import string

    rng = random.Random(0)
    lexicon = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(60_000)]

    def word() -> str:
        r = rng.random()
        if r < 0.06:
            return f"{rng.randint(1, 2030)},"
        if r < 0.09:
            return f"{rng.randint(1, 999)},{rng.randint(100, 999)}"
        return rng.choice(lexicon)

    sentences = (" ".join(word() for _ in range(rng.randint(6, 18))).capitalize() + "." for _ in range(lines))
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed rounds (plus one warm-up)")
    ap.add_argument("--profile", default="tiny", help="the profile `profile show` prints")
    ap.add_argument("--squad-data", type=Path, help="SQuAD v1.1 dev JSON (e.g. the 4,961-question slice)")
    ap.add_argument("--squad-predictions", type=Path, help="{id: answer} predictions for --squad-data")
    ap.add_argument("--reference-torch", action="store_true", help="also time `python -c 'import torch'`")
    ap.add_argument(
        "--prepare-vocab-sizes",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[300, 30_000],
        help="vocabulary sizes prepare starts with, comma-separated (default 300,30000: ALBERT's is 30,000)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = ap.parse_args()

    py = [sys.executable]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        prepare_args = _workdir(tmp, args.prepare_vocab_sizes)
        commands: dict[str, tuple[list[str], int, float | None]] = {  # argv, exit code, target over floor
            "python -c pass (floor)": ([*py, "-c", "pass"], 0, None),
            "albertctl --help": ([*py, "-m", "albertctl", "--help"], 0, 0.5),
            f"albertctl profile show {args.profile}": (
                [*py, "-m", "albertctl", "profile", "show", args.profile],
                0,
                0.5,
            ),
        }
        if args.squad_data and args.squad_predictions:
            eval_cmd = [
                *py,
                "-m",
                "albertctl",
                "eval",
                "squad1",
                "--predictions",
                str(args.squad_predictions),
            ]
            commands["albertctl eval squad1 --predictions (SQuAD file)"] = (
                [*eval_cmd, "--data", str(args.squad_data)],
                0,
                None,  # its target is absolute: 1.5 s
            )
        for size, size_args in prepare_args.items():
            commands[f"albertctl prepare, start-up to the first document ({size:,}-piece vocabulary)"] = (
                [*py, "-c", _PREPARE_UNTIL_FIRST_DOCUMENT, *size_args],
                REACHED_FIRST_DOCUMENT,
                0.5,
            )
        if args.reference_torch:
            commands["python -c 'import torch' (reference)"] = ([*py, "-c", "import torch"], 0, None)

        env_note = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        for round_ in range(args.runs + 1):
            for key, (cmd, expect, _) in commands.items():
                wall, cpu_seconds = _time(cmd, tmp, expect)
                if round_:  # round 0 warms the bytecode and file caches
                    times[key].append(wall)
                    cpu[key].append(cpu_seconds)

    floor = statistics.median(times["python -c pass (floor)"])
    rows = []
    for key, (_, _, target) in commands.items():
        med = statistics.median(times[key])
        row = {
            "command": key,
            "median_s": round(med, 4),
            "min_s": round(min(times[key]), 4),
            "max_s": round(max(times[key]), 4),
            "over_floor_s": round(med - floor, 4),
            "cpu_median_s": round(statistics.median(cpu[key]), 4),  # user + system: less load-sensitive
        }
        if target is not None:
            row["target_over_floor_s"] = target
            row["meets_target"] = med - floor <= target
        elif key.startswith("albertctl eval"):
            row["target_s"] = 1.5
            row["meets_target"] = med <= 1.5
        rows.append(row)
    result = {
        "machine": {**_machine(), "load_average": list(os.getloadavg()), **env_note},
        "runs": args.runs,
        "floor_s": round(floor, 4),
        "squad": {"data": str(args.squad_data), "predictions": str(args.squad_predictions)}
        if args.squad_data
        else None,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    width = max(len(r["command"]) for r in rows)
    print(f"{'command':<{width}}  median   over floor  CPU      target")
    for r in rows:
        target = (
            f"<= {r['target_over_floor_s']} s over floor"
            if "target_over_floor_s" in r
            else (f"<= {r['target_s']} s" if "target_s" in r else "")
        )
        verdict = "" if "meets_target" not in r else ("ok" if r["meets_target"] else "MISSED")
        print(
            f"{r['command']:<{width}}  {r['median_s']:.3f} s  {r['over_floor_s']:+.3f} s   "
            f"{r['cpu_median_s']:.3f} s  {target} {verdict}"
        )
    print(f"runs {args.runs} (medians), load average {os.getloadavg()[0]:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
