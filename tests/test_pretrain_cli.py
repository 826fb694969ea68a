"""`albertctl pretrain` and `albertctl eval` end to end on the built-in sample corpus, the
--dry-run plan, and bad inputs (one line, exit 2, nothing half-written)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albertctl.core.modeldir import load_model_dir
from albertctl.data.pretraining import FORMAT, FORMAT_VERSION

# A few steps of the tiny profile; the eval split is cut by nothing, so keep steps few.
QUICK = ["--profile", "tiny", "--set", "train.log_every=1", "--set", "train.save_every=2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """ALBERTCTL_CACHE for the module: the sample corpus is prepared on first use (~10 s)."""
    return tmp_path_factory.mktemp("cache")


def fake_data(path: Path, vocab_size: int) -> Path:
    path.mkdir()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "vocab": {"vocab_size": vocab_size},
        "data": {"max_seq_length": 64},
        "splits": {},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


BAD = [
    (
        ["pretrain", "--data", "nope"],
        "prepared data directory nope not found (make one with albertctl prepare)",
    ),
    (
        ["pretrain", "--data", "empty"],
        "empty: not a prepared data directory (no manifest.json; make one with albertctl prepare)",
    ),
    (
        ["pretrain", "--data", "v500"],
        "v500: vocabulary has 500 tokens but profile 'tiny' has model.vocab_size=4000 (prepare the data with a "
        "matching vocabulary, or --set model.vocab_size=500)",
    ),
    (["pretrain", "--data", "v4000", "--init", "nomodel"], "model directory nomodel not found"),
    (
        ["pretrain", "--profile", "base", "--num-gpus", "3", "--dry-run"],
        "train.global_batch_size (4096) must be a multiple of train.micro_batch_size x world size (32 x 3 = 96)",
    ),
    (
        ["eval"],
        "eval needs --model DIR (with --data DIR for the pretraining report, or a TASK), or --plot RUN_DIR",
    ),
    (["eval", "--model", "nomodel", "--data", "v4000"], "model directory nomodel not found"),
    (
        ["eval", "--model", "nomodel", "--data", "v4000", "--set", "model.hidden_size=8"],
        "--set 'model.hidden_size=8': the pretraining report takes data.KEY=VALUE only (the held-out masking, "
        "e.g. --set data.ngram=1)",
    ),
    (
        ["eval", "--plot", "norun"],
        "norun: no metrics.jsonl (expected the --out directory of albertctl pretrain or finetune)",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_user_error(argv, message, run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    fake_data(tmp_path / "v500", 500)
    fake_data(tmp_path / "v4000", 4000)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(argv, cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip().splitlines()[-1]) == (2, f"error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory, nothing half-written


def test_dry_run_plan(run_cli, tmp_path):
    result = run_cli(
        ["pretrain", "--profile", "base", "--num-gpus", "8", "--dry-run", "--json"], cwd=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {
        k: plan[k]
        for k in (
            "world_size",
            "micro_batch_size",
            "gradient_accumulation_steps",
            "global_batch_size",
            "train_steps",
            "parameters",
            "tokens_per_step",
        )
    } == {
        "world_size": 8,
        "micro_batch_size": 32,
        "gradient_accumulation_steps": 16,
        "global_batch_size": 4096,
        "train_steps": 125000,
        "parameters": 11_683_584,
        "tokens_per_step": 4096 * 512,
    }
    assert plan["memory_per_gpu_bytes"] > 0
    assert list(tmp_path.iterdir()) == []


def test_pretrain_builtin_default_then_eval_plot_and_resume(run_cli, tmp_path, cache):
    env = {"ALBERTCTL_CACHE": str(cache)}
    result = run_cli(
        ["pretrain", *QUICK, "--set", "train.train_steps=2", "--out", "run", "--json"], cwd=tmp_path, env=env
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert (out["global_step"], out["stopped"]) == (2, "finished")
    report = out["eval"]
    assert set(report) >= {
        "global_step",
        "loss",
        "masked_lm_accuracy",
        "masked_lm_loss",
        "sentence_order_accuracy",
        "sentence_order_loss",
        "most_frequent_token_accuracy",
    }
    assert 0 < report["most_frequent_token_accuracy"] < 1
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]
    data = Path(out["data_dir"])

    # no --data: the model dir records the (built-in) data it was pretrained on
    assert load_model_dir(run / "model").head["pretraining_data"] == {
        "path": str(data.resolve()),
        "builtin": True,
        "vocab_sha256": json.loads((data / "manifest.json").read_text())["vocab"]["sha256"],
    }
    ev = run_cli(["eval", "--model", str(run / "model"), "--json"], cwd=tmp_path)
    assert ev.exit_code == 0, ev.stderr[-3000:]
    again = json.loads(ev.stdout)
    assert again["data"] == str(data.resolve()) and again["global_step"] == 2
    assert again["masked_lm_accuracy"] == pytest.approx(report["masked_lm_accuracy"])
    assert again["loss"] == pytest.approx(report["loss"], rel=1e-5)

    table = run_cli(["eval", "--model", str(run / "checkpoints/step-00000002/model")], cwd=tmp_path)
    assert table.exit_code == 0 and "masked_lm_accuracy" in table.stdout and "global_step" in table.stdout
    assert f"on {data.resolve()} (held-out split)" in " ".join(table.stdout.split())

    # the held-out split under another masking: single words, twice the rate
    recipe = [
        "--set",
        "data.ngram=1",
        "--set",
        "data.masked_lm_prob=0.3",
        "--set",
        "data.max_predictions_per_seq=40",
    ]
    other_masks = run_cli(
        ["eval", "--model", str(run / "model"), "--data", str(data), "--json", *recipe], cwd=tmp_path
    )
    assert other_masks.exit_code == 0, other_masks.stderr[-3000:]
    wider = json.loads(other_masks.stdout)
    assert wider["eval_examples"] == again["eval_examples"]
    assert 1.6 < wider["eval_masked_tokens"] / again["eval_masked_tokens"] < 2.4

    plot = run_cli(["eval", "--plot", "run"], cwd=tmp_path)
    assert plot.exit_code == 0, plot.stderr
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"

    other = run_cli(
        [
            "pretrain",
            *QUICK,
            "--set",
            "model.hidden_size=64",
            "--set",
            "model.num_attention_heads=2",
            "--set",
            "train.train_steps=4",
            "--out",
            "run",
            "--resume",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert other.exit_code == 2
    assert other.stderr.strip().splitlines()[-1] == (
        "error: run/checkpoints/step-00000002 was written by a different run (model.hidden_size=128, "
        "model.num_attention_heads=4; this run: model.hidden_size=64, model.num_attention_heads=2); "
        "use a new --out or the matching profile"
    )

    more = run_cli(
        ["pretrain", *QUICK, "--set", "train.train_steps=3", "--out", "run", "--resume", "--json"],
        cwd=tmp_path,
        env=env,
    )
    assert more.exit_code == 0, more.stderr[-3000:]
    assert json.loads(more.stdout)["global_step"] == 3

    # A named checkpoint into a new run directory, under another ZeRO stage.
    named = ["pretrain", *QUICK, "--set", "train.train_steps=3", "--set", "deepspeed.zero_stage=2"]
    moved = run_cli(
        [*named, "--out", "moved", "--resume-from", "run/checkpoints/step-00000002", "--json"],
        cwd=tmp_path,
        env=env,
    )
    assert moved.exit_code == 0, moved.stderr[-3000:]
    assert json.loads(moved.stdout)["global_step"] == 3
    assert sorted(p.name for p in (tmp_path / "moved/checkpoints").iterdir()) == ["step-00000003"]
    not_one = run_cli([*named, "--out", "moved2", "--resume-from", "run"], cwd=tmp_path, env=env)
    assert not_one.exit_code == 2
    assert not_one.stderr.strip().splitlines()[-1] == (
        "error: run is a run directory, not a checkpoint: pass one of run/checkpoints/step-N, "
        "or --resume --out run for its latest"
    )

    init = run_cli(
        [
            "pretrain",
            *QUICK,
            "--set",
            "train.train_steps=1",
            "--init",
            "run/model",
            "--out",
            "run2",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert init.exit_code == 0, init.stderr[-3000:]
    assert json.loads(init.stdout)["global_step"] == 1


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, cache):
    env = {**os.environ, "ALBERTCTL_NO_PROGRESS": "1", "COLUMNS": "200", "ALBERTCTL_CACHE": str(cache)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "albertctl",
            "pretrain",
            *QUICK,
            "--set",
            "train.train_steps=10000",
            "--set",
            "train.save_every=10000",
            "--out",
            "run",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, (
            proc.stderr.read() if proc.poll() else "timeout"
        )
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted at step ") and "continue with --resume --out run" in last
    step = int(last.split("interrupted at step ")[1].split(";")[0])
    ckpt = tmp_path / "run" / "checkpoints" / f"step-{step:08d}"
    assert (ckpt / "state.yaml").is_file() and (ckpt / "model" / "model.safetensors").is_file()
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]


def test_pretrain_writes_plain_progress_lines_when_not_on_a_terminal(run_cli, tmp_path, cache):
    """Under nohup/SLURM/CI stderr is a file: each logged step becomes a plain line (no live bar)."""
    env = {"ALBERTCTL_CACHE": str(cache), "ALBERTCTL_NO_PROGRESS": "0", "ALBERTCTL_LOG_INTERVAL": "0"}
    result = run_cli(
        ["pretrain", *QUICK, "--set", "train.train_steps=2", "--set", "deepspeed.zero_stage=1", "--out", "run"],
        cwd=tmp_path,
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("pretrain ")]
    assert [line.split(" | ")[0] for line in lines] == ["pretrain 1/2 (50.0%)", "pretrain 2/2 (100.0%)"]
    for line in lines:
        fields = line.split(" | ")
        assert fields[1].endswith(" tok/s") and fields[2].startswith("loss ") and " lr " in fields[2]
        assert fields[3].startswith("elapsed ")
    assert " eta " in lines[0]
    # tiny warms up over 100 steps: longer than this 2-step run, so it is fitted and said
    assert "warning: warm-up of 100 steps is not shorter than the run (2 steps)" in result.stderr
    # DeepSpeed's start-up chatter goes to the run's deepspeed.log, not to the user
    assert "DeepSpeed" not in result.stderr and "warning: preparing" not in result.stderr
    # (ZeRO 1 with albertctl's own LAMB: DeepSpeed warns that the optimiser is untested)
    assert "untested optimizer" in (tmp_path / "run" / "deepspeed.log").read_text()
    # the run header: device, world size and the time to expect
    assert re.search(r"^cpu: .+, world size 1: estimated .+ per step, .+ for 2 steps ", result.stderr, re.M)


def test_eval_without_data_uses_the_recorded_data_while_it_is_there(tmp_path):
    from albertctl.core.errors import AlbertError
    from albertctl.data.pretraining import pretraining_data_record
    from albertctl.pipelines.evaluate import NO_DATA, recorded_data

    data = fake_data(tmp_path / "data", 4000)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["vocab"]["sha256"] = "ab" * 32
    (data / "manifest.json").write_text(json.dumps(manifest))
    head = {"kind": "pretraining", "pretraining_data": pretraining_data_record(data, manifest, builtin=False)}
    assert recorded_data(tmp_path / "m", head) == data.resolve()
    with pytest.raises(AlbertError) as err:  # a model that records nothing (converted, older)
        recorded_data(tmp_path / "m", {"kind": "pretraining"})
    assert str(err.value) == NO_DATA
    manifest["vocab"]["sha256"] = "cd" * 32  # prepared again with another vocabulary
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AlbertError) as err:
        recorded_data(tmp_path / "m", head)
    assert str(err.value) == (
        f"{tmp_path / 'm'} was pretrained on data prepared in {data.resolve()}, which now holds another "
        f"vocabulary; {NO_DATA}"
    )
    (data / "manifest.json").unlink()
    with pytest.raises(AlbertError) as err:
        recorded_data(
            tmp_path / "m", {**head, "pretraining_data": {**head["pretraining_data"], "builtin": True}}
        )
    assert str(err.value) == (
        f"{tmp_path / 'm'} was pretrained on the built-in sample corpus prepared in {data.resolve()}, which is "
        f"no longer there; {NO_DATA}"
    )
