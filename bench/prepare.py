"""`albertctl prepare` against a straightforward single-process, in-memory implementation of
the original `create_pretraining_data.py` algorithm, on the same corpus, in the same run.

    python bench/prepare.py                      # corpus = the sample corpus x1 and x4
    python bench/prepare.py --sizes 1 4 16 --num-proc 2 --dupe-factor 2

Each measurement runs in a fresh process; the parent samples the resident memory of that
process and all its children every 20 ms, so peaks include worker processes. Throughput is
input MB/s and instances/s of the work itself (interpreter start-up and imports excluded;
pool start-up included). Static masking with the same `dupe_factor` is the like-for-like
comparison; dynamic masking (our default) stores each chunk once and pairs and masks it at load time.

The reference (written here, from the algorithm's description; not the original's code):
read every line into memory and tokenise it, shuffle the documents, make instances for
`dupe_factor` passes over all documents (chunks of sentences, random A/B split, a random
document's text as B for one-sentence chunks, SOP swap, truncation from a random end, n-gram
masking with candidate lists built per sequence and numpy draws per span), shuffle all
instances, then write them as one Arrow file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ----------------------------------------------------------------------------- the reference


def reference_prepare(corpus: Path, vocab: Path, out: Path, seed: int, data) -> int:
    import numpy as np
    import pyarrow as pa

    from albertctl.data.pretraining import is_start_piece
    from albertctl.data.tokenizer import Tokenizer

    tok = Tokenizer(vocab, data.do_lower_case)
    starts = [is_start_piece(tok.id_to_piece(i)) for i in range(tok.vocab_size)]  # the original's word starts
    rng = random.Random(seed)
    np_rng = np.random.RandomState(seed)
    documents: list[list[list[int]]] = [[]]
    with corpus.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                documents.append([])
                continue
            ids = tok.encode(line)
            if ids:
                documents[-1].append(ids)
    documents = [d for d in documents if d]
    rng.shuffle(documents)
    instances = []
    for _ in range(data.dupe_factor):
        for index in range(len(documents)):
            instances.extend(_reference_document(documents, index, data, tok, starts, rng, np_rng))
    rng.shuffle(instances)
    columns = {
        k: [inst[k] for inst in instances]
        for k in ("input_ids", "token_type_ids", "label", "masked_lm_positions", "masked_lm_ids")
    }
    table = pa.table(columns)
    with pa.OSFile(str(out / "reference.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return len(instances)


def _reference_document(documents, index, data, tok, starts, rng, np_rng):
    document = documents[index]
    max_num_tokens = data.max_seq_length - 3
    target = rng.randint(2, max_num_tokens) if rng.random() < data.short_seq_prob else max_num_tokens
    out = []
    chunk, length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            a = [t for s in chunk[:a_end] for t in s]
            b: list[int] = []
            label = 0
            if len(chunk) == 1:  # the original: a random document supplies B, labelled "random"
                label = 1
                other = index
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                rdoc = documents[other]
                for s in rdoc[rng.randint(0, len(rdoc) - 1) :]:
                    b.extend(s)
                    if len(b) >= target - len(a):
                        break
                i -= len(chunk) - a_end
            elif rng.random() < 0.5:
                label = 1
                b = a
                a = [t for s in chunk[a_end:] for t in s]
            else:
                b = [t for s in chunk[a_end:] for t in s]
            while len(a) + len(b) > max_num_tokens:
                longer = a if len(a) > len(b) else b
                if rng.random() < 0.5:
                    del longer[0]
                else:
                    longer.pop()
            ids = [tok.cls_id, *a, tok.sep_id, *b, tok.sep_id]
            types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            ids, positions, labels = _reference_mask(ids, data, tok, starts, rng, np_rng)
            out.append(
                {
                    "input_ids": ids,
                    "token_type_ids": types,
                    "label": label,
                    "masked_lm_positions": positions,
                    "masked_lm_ids": labels,
                }
            )
            chunk, length = [], 0
        i += 1
    return out


def _reference_mask(tokens, data, tok, starts, rng, np_rng):
    import numpy as np

    cand = []
    for i, t in enumerate(tokens):
        if t in (tok.cls_id, tok.sep_id):
            continue
        if cand and not starts[t]:
            cand[-1].append(i)
        else:
            cand.append([i])
    output = list(tokens)
    num_to_predict = min(data.max_predictions_per_seq, max(1, int(round(len(tokens) * data.masked_lm_prob))))
    ngrams = np.arange(1, data.ngram + 1, dtype=np.int64)
    pvals = 1.0 / ngrams
    pvals /= pvals.sum()
    ngram_indexes = [[cand[idx : idx + n] for n in ngrams] for idx in range(len(cand))]
    rng.shuffle(ngram_indexes)
    masked, covered = [], set()
    for cand_index_set in ngram_indexes:
        if len(masked) >= num_to_predict:
            break
        if not cand_index_set:
            continue
        n = np_rng.choice(
            ngrams[: len(cand_index_set)], p=pvals[: len(cand_index_set)] / pvals[: len(cand_index_set)].sum()
        )
        index_set = sum(cand_index_set[n - 1], [])
        n -= 1
        while len(masked) + len(index_set) > num_to_predict:
            if n == 0:
                break
            index_set = sum(cand_index_set[n - 1], [])
            n -= 1
        if len(masked) + len(index_set) > num_to_predict or any(i in covered for i in index_set):
            continue
        for i in index_set:
            covered.add(i)
            if rng.random() < 0.8:
                replacement = tok.mask_id
            elif rng.random() < 0.5:
                replacement = tokens[i]
            else:
                replacement = rng.randint(0, tok.vocab_size - 1)
            output[i] = replacement
            masked.append((i, tokens[i]))
    masked.sort()
    return output, [p for p, _ in masked], [t for _, t in masked]


# ----------------------------------------------------------------------------- one measurement


def child(
    kind: str, corpus: Path, vocab: Path, out: Path, num_proc: int, dupe_factor: int, seed: int
) -> None:
    from albertctl.core.config import load_profile
    from albertctl.pipelines import prepare

    masking = "dynamic" if kind == "ours-dynamic" else "static"
    # dynamic: one chunking per document, paired and masked at load time
    sets = [f"data.dupe_factor={dupe_factor}", f"data.masking={masking}", "data.pair_copies=1"]
    profile = load_profile("tiny", sets)
    start = time.perf_counter()
    if kind == "reference":
        out.mkdir(parents=True)
        instances = reference_prepare(corpus, vocab, out, seed, profile.data)
    else:
        instances = prepare.run(profile, [corpus], out, vocab, num_proc=num_proc, seed=seed)["instances"]
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "instances": instances}))


def measure(
    kind: str, corpus: Path, vocab: Path, out: Path, num_proc: int, dupe_factor: int, seed: int
) -> dict:
    import psutil

    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--corpus",
        str(corpus),
        "--vocab",
        str(vocab),
        "--out",
        str(out),
        "--num-proc",
        str(num_proc),
        "--dupe-factor",
        str(dupe_factor),
        "--seed",
        str(seed),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ALBERTCTL_NO_PROGRESS": "1"},
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = parent.memory_info().rss + sum(
                    c.memory_info().rss for c in parent.children(recursive=True)
                )
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, stderr = proc.communicate()
    done.set()
    t.join()
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{stderr}")
    result = json.loads(stdout.strip().splitlines()[-1])
    mb = corpus.stat().st_size / 1e6
    return {
        "kind": kind,
        "num_proc": num_proc,
        "input_mb": mb,
        "seconds": result["seconds"],
        "instances": result["instances"],
        "mb_per_s": mb / result["seconds"],
        "instances_per_s": result["instances"] / result["seconds"],
        "peak_rss_bytes": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 4], help="corpus = sample corpus repeated N times"
    )
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--dupe-factor", type=int, default=2, help="static copies (the tiny profile's value)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--rounds", type=int, default=2, help="runs per configuration; the fastest counts")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "prepare.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.corpus, args.vocab, args.out, args.num_proc, args.dupe_factor, args.seed)
        return

    from rich.console import Console
    from rich.table import Table

    from albertctl.core.config import load_profile
    from albertctl.data.corpus import sample_corpus_path
    from albertctl.pipelines import vocab as vocab_pipeline
    from bench.common import machine, write_json

    rows = []
    with tempfile.TemporaryDirectory(prefix="albertctl-bench-prepare-") as tmp_name:
        tmp = Path(tmp_name)
        sample = sample_corpus_path()
        vocab = Path(vocab_pipeline.run(load_profile("tiny"), [sample], tmp / "spiece")["model"])
        text = sample.read_bytes()
        for size in args.sizes:
            corpus = tmp / f"corpus-x{size}.txt"
            corpus.write_bytes(text * size)
            configs = (
                ("reference", 1),
                ("ours-static", 1),
                ("ours-static", args.num_proc),
                ("ours-dynamic", 1),
                ("ours-dynamic", args.num_proc),
            )
            best: dict[tuple[str, int], dict] = {}
            for r in range(args.rounds):  # interleaved; the fastest round counts (shared machine)
                for kind, procs in configs:
                    out = tmp / f"out-{kind}-{procs}-{size}-{r}"
                    m = measure(kind, corpus, vocab, out, procs, args.dupe_factor, args.seed)
                    shutil.rmtree(out, ignore_errors=True)
                    key = (kind, procs)
                    if key not in best or m["seconds"] < best[key]["seconds"]:
                        best[key] = {
                            **m,
                            "peak_rss_bytes": max(m["peak_rss_bytes"], best.get(key, m)["peak_rss_bytes"]),
                        }
            rows.extend({"corpus_x": size, **best[key]} for key in configs)
    ref = {r["corpus_x"]: r for r in rows if r["kind"] == "reference"}
    for r in rows:
        r["speedup_vs_reference"] = ref[r["corpus_x"]]["seconds"] / r["seconds"]
    table = Table(
        title=f"prepare throughput (tiny profile, dupe_factor {args.dupe_factor}, {os.cpu_count()} cores)"
    )
    for col in ("corpus", "implementation", "procs", "MB/s", "instances/s", "peak RSS MiB", "speed-up"):
        table.add_column(col, justify="right" if col not in ("implementation",) else "left")
    for r in rows:
        table.add_row(
            f"{r['input_mb']:.1f} MB",
            r["kind"],
            str(r["num_proc"]),
            f"{r['mb_per_s']:.2f}",
            f"{r['instances_per_s']:,.0f}",
            f"{r['peak_rss_bytes'] / 2**20:,.0f}",
            f"{r['speedup_vs_reference']:.1f}x",
        )
    Console().print(table)
    write_json(
        args.json,
        {
            "machine": machine(),
            "dupe_factor": args.dupe_factor,
            "rounds": args.rounds,
            "load_average": os.getloadavg(),
            "rows": rows,
        },
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
