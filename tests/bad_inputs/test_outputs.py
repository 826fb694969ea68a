"""Outputs albertctl may not write, one row each: every command that writes may replace only
what it recognisably wrote itself (or an empty directory), never an input, the working
directory or a path under a file. Each row prepares the working directory (a user's files, a
copy of a model, ...), runs the command there and checks: exit code 2, one line on stderr with
the expected message, no traceback, and every file in the working directory and the assets
byte-identical afterwards (nothing added, nothing removed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from bad_input_assets import TF, base_assets, write_text
from glue_fixtures import write_glue

from albertctl.core.modeldir import load_model_dir, save_model_dir
from albertctl.model.heads import AlbertForTask
from albertctl.pipelines import finetune
from albertctl.tasks.base import get_task, load_task_config


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    a, spm, model = base_assets(tmp_path_factory)
    write_glue(a / "glue")
    # a model fine-tuned on SST-2 (random weights): what `eval sst-2 --predict` needs
    md = load_model_dir(model)
    task = get_task("sst-2")
    config = load_task_config(task, ["task.max_seq_length=64"])
    head = AlbertForTask(md.profile.model, task.head, task.num_labels)
    save_model_dir(a / "sst2", md.profile, head.state_dict(), spm, head=finetune.head_info(task, config))
    return a


def _model(cwd: Path, a: Path, name: str) -> None:
    shutil.copytree(a / "model", cwd / name)


def _hf_export(cwd: Path, a: Path, name: str) -> None:
    """What `convert --to hf` writes (config.json with its "albertctl" section)."""
    (cwd / name).mkdir()
    shutil.copyfile(a / "model" / "model.safetensors", cwd / name / "model.safetensors")
    write_text(cwd / name / "config.json", json.dumps({"model_type": "albert", "albertctl": {}}))


# Each setup makes the working directory's contents: "file" entries are user files, "model:"
# a copy of the tiny model dir, "hf:" an HF export, "dir" an empty directory, "link:" a link.
SETUPS = {
    "docs": {"docs/note.txt": "my notes\n", "docs/sub/plan.txt": "plan\n"},
    "afile": {"afile": "a user's file\n"},
    "model": {"m": "model:"},
    "model+notes": {"m": "model:", "m/notes.txt": "mine\n"},
    "hf": {"h": "hf:"},
    "hf+notes": {"h": "hf:", "h/README.md": "mine\n"},
    "two-models": {"m": "model:", "m2": "model:"},
    "link": {"docs/note.txt": "my notes\n", "out": "link:docs"},
    "vocab-in-docs": {"docs/note.txt": "my notes\n", "docs/m.model": "spm:"},
    "notes.model": {"notes.model": "not a sentencepiece model\n"},
    "notes.vocab": {"notes.vocab": "this is prose, not pieces\n"},
    "corpus.vocab": {"corpus.vocab": "Some text.\nMore text here.\n\nAnother document.\n"},
    "spm.model-dir": {"spm.model/keep.txt": "mine\n"},
    "run-user-model": {"run/model/weights.bin": "user weights\n", "run/metrics.jsonl": ""},
    "run-model-copy": {"run/model": "model:"},
    "run-metrics": {"run/metrics.jsonl": "hello, this is not JSON\n"},
    "run-user-best": {"run/best/notes.txt": "mine\n"},
    "run-best-copy": {"run/best": "model:"},
    "glue-user-best": {"glue-run/sst-2/best/notes.txt": "mine\n"},
    "predict-user-file": {"out/SST-2.tsv": "my own table\n"},
    "sst2-copy": {"ft": "sst2:"},
    "corpus-dir": {"corpus/a.txt": "One sentence here.\nAnother one there.\n\nA second document.\n"},
}


def _setup(cwd: Path, a: Path, name: str | None) -> None:
    for rel, content in SETUPS.get(name, {}).items():
        path = cwd / rel
        if content == "model:":
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(a / "model", path)
        elif content == "sst2:":
            shutil.copytree(a / "sst2", path)
        elif content == "hf:":
            _hf_export(cwd, a, rel)
        elif content == "spm:":
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(a / "spm" / "m.model", path)
        elif content.startswith("link:"):
            os.symlink(content.removeprefix("link:"), path)
        else:
            write_text(path, content)


def _tree(root: Path) -> dict[str, str]:
    """Every entry under `root`: files by sha256, links by target, directories by name."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


SPM64 = ["--set", "model.vocab_size=64"]
SHORT = ["--set", "task.max_seq_length=64"]
# (id, setup, argv, the one-line message after "error: "); "{A}" stands for the assets
# directory, "{TF}" for tests/fixtures/tf and "{CWD}" for the working directory
ROWS: list[tuple[str, str | None, list[str], str]] = [
    # ---------------------------------------------------------------- convert
    ("convert-tf-over-user-dir", "docs", ["convert", "{TF}/classifier", "--from", "tf", "--out", "docs"], "docs exists and is not an albertctl model directory; choose another --out or remove it"),
    ("convert-hf-over-user-dir", "docs", ["convert", "{A}/model", "--to", "hf", "--out", "docs"], "docs exists and is not a Hugging Face directory albertctl exported; choose another --out or remove it"),
    ("convert-out-is-the-input", "model", ["convert", "m", "--to", "hf", "--out", "m"], "--out m is the input m; choose another --out"),
    ("convert-out-dot", None, ["convert", "{A}/model", "--to", "hf", "--out", "."], "--out . is the working directory or contains it; choose a new directory"),
    ("convert-out-dot-with-input-inside", "model", ["convert", "m", "--to", "hf", "--out", "."], "--out . contains the input m; choose another --out"),
    ("convert-out-dotdot", None, ["convert", "{A}/model", "--to", "hf", "--out", ".."], "--out .. is the working directory or contains it; choose a new directory"),
    ("convert-out-pwd", "model", ["convert", "m", "--to", "hf", "--out", "{CWD}"], "--out {CWD} contains the input m; choose another --out"),
    ("convert-out-parent-of-cwd-via-subdir", "docs", ["convert", "{A}/model", "--to", "hf", "--out", "docs/.."], "--out docs/.. is the working directory or contains it; choose a new directory"),
    ("convert-hf-over-model-dir", "two-models", ["convert", "m", "--to", "hf", "--out", "m2"], "m2 exists and is not a Hugging Face directory albertctl exported; choose another --out or remove it"),
    ("convert-albertctl-over-hf-export", "hf", ["convert", "{TF}/classifier", "--from", "tf", "--out", "h"], "h exists and is not an albertctl model directory; choose another --out or remove it"),
    ("convert-over-model-with-user-file", "model+notes", ["convert", "{TF}/classifier", "--from", "tf", "--out", "m"], "m exists and is not an albertctl model directory; choose another --out or remove it"),
    ("convert-hf-over-export-with-user-file", "hf+notes", ["convert", "{A}/model", "--to", "hf", "--out", "h"], "h exists and is not a Hugging Face directory albertctl exported; choose another --out or remove it"),
    ("convert-out-is-a-link", "link", ["convert", "{A}/model", "--to", "hf", "--out", "out"], "out is a symbolic link; give --out the path it points to"),
    ("convert-out-is-a-file", "afile", ["convert", "{A}/model", "--to", "hf", "--out", "afile"], "afile is a file; --out must name a directory"),
    ("convert-out-under-a-file", "afile", ["convert", "{A}/model", "--to", "hf", "--out", "afile/x"], "--out afile/x: afile is a file, not a directory"),
    ("convert-out-deep-under-a-file", "afile", ["convert", "{TF}/classifier", "--from", "tf", "--out", "afile/x/y"], "--out afile/x/y: afile is a file, not a directory"),
    # ---------------------------------------------------------------- prepare
    ("prepare-over-user-dir", "docs", ["prepare", "{A}/spm/corpus.txt", "--vocab", "{A}/spm/m.model", *SPM64, "-o", "docs"], "docs exists and is not prepared data; choose another --output or remove it"),
    ("prepare-output-holds-the-vocab", "vocab-in-docs", ["prepare", "{A}/spm/corpus.txt", "--vocab", "docs/m.model", *SPM64, "-o", "docs"], "--output docs contains the input docs/m.model; choose another --output"),
    ("prepare-output-is-a-model-dir", "model", ["prepare", "{A}/spm/corpus.txt", "--vocab", "{A}/spm/m.model", *SPM64, "-o", "m"], "m exists and is not prepared data; choose another --output or remove it"),
    ("prepare-output-dot", None, ["prepare", "{A}/spm/corpus.txt", "--vocab", "{A}/spm/m.model", *SPM64, "-o", "."], "--output . is the working directory or contains it; choose a new directory"),
    ("prepare-output-under-a-file", "afile", ["prepare", "{A}/spm/corpus.txt", "--vocab", "{A}/spm/m.model", *SPM64, "-o", "afile/x"], "--output afile/x: afile is a file, not a directory"),
    ("prepare-output-inside-an-input-directory", "corpus-dir", ["prepare", "corpus", "--vocab", "{A}/spm/m.model", *SPM64, "-o", "corpus/data"], "--output corpus/data is inside the input directory corpus, whose files are all read; choose another --output"),
    # ---------------------------------------------------------------- vocab
    ("vocab-over-user-model-file", "notes.model", ["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "-o", "notes"], "notes.model exists and is not a SentencePiece vocabulary file; choose another --output or remove it"),
    ("vocab-over-user-vocab-file", "notes.vocab", ["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "-o", "notes"], "notes.vocab exists and is not a SentencePiece vocabulary file; choose another --output or remove it"),
    ("vocab-output-is-the-input", "corpus.vocab", ["vocab", "corpus.vocab", "--vocab-size", "64", "-o", "corpus"], "--output corpus.vocab is the input corpus.vocab; choose another --output"),
    ("vocab-output-is-a-directory", "spm.model-dir", ["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "-o", "spm"], "spm.model is a directory, not a file; choose another --output"),
    ("vocab-output-under-a-file", "afile", ["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "-o", "afile/spm"], "--output afile/spm.model: afile is a file, not a directory"),
    ("vocab-output-inside-an-input-directory", "corpus-dir", ["vocab", "corpus", "--vocab-size", "64", "-o", "corpus/spm"], "--output corpus/spm.model is inside the input directory corpus, whose files are all read; choose another --output"),
    # ---------------------------------------------------------------- pretrain
    ("pretrain-keeps-user-model-dir", "run-user-model", ["pretrain", "--out", "run"], "run/model exists and is not an albertctl model directory; choose another --out or remove it"),
    ("pretrain-init-is-the-model-it-replaces", "run-model-copy", ["pretrain", "-p", "{A}/model/profile.yaml", "--init", "run/model", "--out", "run"], "--out run/model is the input run/model; choose another --out"),
    ("pretrain-user-metrics-file", "run-metrics", ["pretrain", "--out", "run"], "run/metrics.jsonl exists and is not an albertctl metrics log; choose another --out"),
    ("pretrain-out-is-a-file", "afile", ["pretrain", "--out", "afile"], "afile is a file; --out must name a directory"),
    ("pretrain-out-under-a-file", "afile", ["pretrain", "--out", "afile/run"], "--out afile/run: afile is a file, not a directory"),
    ("pretrain-out-is-the-init", "model", ["pretrain", "-p", "{A}/model/profile.yaml", "--init", "m", "--out", "m"], "--out m is the input m; choose another --out"),
    # ---------------------------------------------------------------- finetune
    ("finetune-keeps-user-best-dir", "run-user-best", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", *SHORT, "--out", "run"], "run/best exists and is not an albertctl model directory; choose another --out or remove it"),
    ("finetune-model-is-the-best-it-replaces", "run-best-copy", ["finetune", "sst-2", "--model", "run/best", "--data", "{A}/glue", *SHORT, "--out", "run"], "--out run/best is the input run/best; choose another --out"),
    ("finetune-out-is-the-model", "model", ["finetune", "sst-2", "--model", "m", "--data", "{A}/glue", *SHORT, "--out", "m"], "--out m is the input m; choose another --out"),
    ("finetune-glue-keeps-a-task-best-dir", "glue-user-best", ["finetune", "glue", "--model", "{A}/model", "--data", "{A}/glue", *SHORT, "--out", "glue-run"], "glue-run/sst-2/best exists and is not an albertctl model directory; choose another --out or remove it"),
    ("finetune-out-under-a-file", "afile", ["finetune", "sst-2", "--model", "{A}/model", "--data", "{A}/glue", *SHORT, "--out", "afile/run"], "--out afile/run: afile is a file, not a directory"),
    # ---------------------------------------------------------------- eval --predict
    ("eval-predict-is-a-file", "afile", ["eval", "sst-2", "--model", "{A}/sst2", "--data", "{A}/glue", "--predict", "afile"], "afile is a file; --predict must name a directory"),
    ("eval-predict-under-a-file", "afile", ["eval", "sst-2", "--model", "{A}/sst2", "--data", "{A}/glue", "--predict", "afile/out"], "--predict afile/out: afile is a file, not a directory"),
    ("eval-predict-is-the-model", "sst2-copy", ["eval", "sst-2", "--model", "ft", "--data", "{A}/glue", "--predict", "ft"], "--predict ft is the input ft; choose another --predict"),
    ("eval-predict-keeps-user-file", "predict-user-file", ["eval", "sst-2", "--model", "{A}/sst2", "--data", "{A}/glue", "--predict", "out"], "out/SST-2.tsv exists and is not a predictions file albertctl wrote; choose another --predict or remove it"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "argv", "message"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_refused_output(setup, argv, message, assets, run_cli, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    _setup(cwd, assets, setup)
    before, assets_before = _tree(cwd), _tree(assets)
    fill = {"{A}": str(assets), "{TF}": str(TF), "{CWD}": str(cwd)}
    for key, value in fill.items():
        argv = [a.replace(key, value) for a in argv]
        message = message.replace(key, value)
    result = run_cli(argv, cwd=cwd, env={"ALBERTCTL_CACHE": str(tmp_path / "never")})
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0] == f"error: {message}"
    assert _tree(cwd) == before  # nothing replaced, added or left half-written
    assert _tree(assets) == assets_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing beside it either
