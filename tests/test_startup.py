"""Commands that need no model never import the heavy libraries (issue 21).

Each case runs a fresh interpreter, as a user's shell would, and reads `sys.modules` after the
command: a stray top-level `import torch` anywhere on the path turns a 0.5 s command into 5 s.
Timing itself lives in bench/startup.py; these tests only check what gets imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prepare_fixtures import documents, write_corpus

HEAVY = ("torch", "deepspeed", "transformers", "datasets", "scipy", "sklearn")

# Runs the real entry point, then reports the heavy modules loaded (also after SystemExit).
_PROBE = """
import json, sys
from albertctl.cli import main
sys.argv = ["albertctl", *json.loads(sys.argv[1])]
try:
    main()
finally:
    loaded = sorted(m for m in {heavy!r} if m in sys.modules)
    sys.stderr.write("\\nLOADED=" + json.dumps(loaded) + "\\n")
"""


def _run(argv: list[str], cwd: Path) -> tuple[int, str, list[str]]:
    env = {**os.environ, "ALBERTCTL_NO_PROGRESS": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), json.dumps(argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    marker = proc.stderr.rsplit("LOADED=", 1)
    assert len(marker) == 2, proc.stderr
    return proc.returncode, proc.stdout, json.loads(marker[1])


def test_import_cli_loads_no_heavy_library():
    code = f"import sys, albertctl.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_and_profile_show(tmp_path):
    assert _run(["--help"], tmp_path)[0::2] == (0, [])
    code, stdout, loaded = _run(["profile", "show", "base", "--json"], tmp_path)
    assert (code, loaded) == (0, [])
    assert json.loads(stdout)["parameters"] == 11_683_584  # SPEC.md, counted without torch


def _squad_v1(tmp_path: Path) -> tuple[Path, Path]:
    context = "The black cat sat on the mat."
    qas = [
        {"id": "q1", "question": "Where?", "answers": [{"text": "the mat", "answer_start": 21}]},
        {"id": "q2", "question": "Who?", "answers": [{"text": "black cat", "answer_start": 4}]},
    ]
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    (tmp_path / "dev.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "pred.json").write_text(json.dumps({"q1": "mat", "q2": "cat"}), encoding="utf-8")
    return tmp_path / "pred.json", tmp_path / "dev.json"


def test_eval_predictions_scores_without_heavy_libraries(tmp_path):
    pred, dev = _squad_v1(tmp_path)
    argv = ["eval", "squad1", "--predictions", str(pred), "--data", str(dev), "--json"]
    code, stdout, loaded = _run(argv, tmp_path)
    assert (code, loaded) == (0, [])
    # q1: "mat" == "the mat" after normalisation; q2: "cat" vs "black cat" -> F1 2/3
    assert json.loads(stdout)["metrics"] == pytest.approx({"exact": 50.0, "f1": 100 * (1 + 2 / 3) / 2})


def test_vocab_and_prepare_without_heavy_libraries(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", documents(30, (4, 8), (5, 12)))
    code, _, loaded = _run(["vocab", str(corpus), "--vocab-size", "120", "-o", "sp"], tmp_path)
    assert (code, loaded) == (0, [])
    argv = ["prepare", str(corpus), "--vocab", "sp.model", "-o", "data", "--set", "model.vocab_size=120"]
    code, _, loaded = _run(argv, tmp_path)
    assert (code, loaded) == (0, [])
    assert (tmp_path / "data" / "manifest.json").is_file()
