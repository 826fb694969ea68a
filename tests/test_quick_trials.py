"""Quick trials (issue 22): task.max_train_samples / task.max_eval_samples take the first N
examples in file order, and task.early_stopping_patience stops after N dev evaluations without a
new best."""

import json

import pytest
from glue_fixtures import task_world, write_glue

from albertctl.core.modeldir import load_model_dir
from albertctl.pipelines import finetune

QUICK = [
    "task.max_seq_length=32",
    "task.batch_size=4",
    "task.warmup_steps=1",
    "task.eval_batch_size=5",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return task_world(tmp_path_factory.mktemp("quick"))


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_first_n_examples_for_training_and_scoring(world, tmp_path):
    data = write_glue(tmp_path / "glue", n_train=20, n_dev=10, seed=5)
    subset = ["task.max_train_samples=6", "task.max_eval_samples=4"]
    [r] = finetune.run(
        "sst-2", world["model"], tmp_path / "run", data, [*QUICK, "task.train_steps=2", *subset]
    )
    assert (r.extra["train_examples"], r.extra["train_features"], r.steps) == (6, 6, 2)

    # the same dev file cut to its first 4 rows scores the same
    cut = tmp_path / "cut" / "SST-2"
    cut.mkdir(parents=True)
    lines = (data / "SST-2" / "dev.tsv").read_text().splitlines(keepends=True)
    (cut / "dev.tsv").write_text("".join(lines[:5]))
    (cut / "train.tsv").write_text((data / "SST-2" / "train.tsv").read_text())
    assert r.metrics == finetune.evaluate("sst-2", r.model_dir, cut.parent)["metrics"]
    events = []
    four = finetune.evaluate(
        "sst-2", r.model_dir, data, overrides=["task.max_eval_samples=4"], progress=events.append
    )
    assert four["metrics"] == r.metrics
    # `eval` shows progress: a start event, then one per batch of 5 (eval_batch_size)
    assert events == [{"event": "evaluating", "split": "dev", "done": done, "total": 4} for done in (0, 4)]
    # recorded with the model, but `eval` scores every dev example unless told again
    saved = load_model_dir(r.model_dir)
    assert saved.head["task_config"]["max_train_samples"] == 6
    assert finetune.stored_task_config(saved, []).max_eval_samples == 0
    assert finetune.first([1, 2, 3], 0) == [1, 2, 3] and finetune.first([1, 2, 3], 2) == [1, 2]


def test_early_stopping_after_patience_evaluations_without_a_new_best(world, tmp_path):
    data = write_glue(tmp_path / "glue", n_train=12, n_dev=6, seed=5)
    # a learning rate too small to change a prediction: every evaluation equals the first
    still = [*QUICK, "task.train_steps=10", "task.eval_every=1", "task.learning_rate=1e-12"]
    shown = []
    [r] = finetune.run(
        "rte",
        world["model"],
        tmp_path / "run",
        data,
        [*still, "task.early_stopping_patience=2"],
        progress=shown.append,
    )
    assert [e["event"] for e in shown].count("early_stop") == 1
    assert (r.steps, r.extra["stopped"], r.extra["best_step"]) == (3, "early", 1)
    events = _events(tmp_path / "run")
    assert [e["step"] for e in events if e["event"] == "eval"] == [1, 2, 3]
    # dev evaluation during fine-tuning shows progress: rte dev has 6 examples, batches of 5
    assert [(e["done"], e["total"]) for e in shown if e["event"] == "evaluating"] == [
        (0, 6),
        (5, 6),
        (6, 6),
    ] * 3
    [stop] = [e for e in events if e["event"] == "early_stop"]
    assert (stop["step"], stop["patience"], stop["best"]["step"]) == (3, 2, 1)
    # off (0, the default): all ten steps
    [full] = finetune.run("rte", world["model"], tmp_path / "full", data, still)
    assert (full.steps, full.extra["stopped"]) == (10, "finished")


def test_eval_cli_writes_progress_lines_when_not_on_a_terminal(world, tmp_path, run_cli):
    data = write_glue(tmp_path / "glue", n_train=8, n_dev=7, seed=5)
    [r] = finetune.run("wnli", world["model"], tmp_path / "run", data, [*QUICK, "task.train_steps=1"])
    env = {"ALBERTCTL_NO_PROGRESS": "0", "ALBERTCTL_LOG_INTERVAL": "30"}
    result = run_cli(
        ["eval", "wnli", "--model", str(r.model_dir), "--data", str(data)], env=env, cwd=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    lines = [line.split(" | ")[0] for line in result.stderr.splitlines() if line.startswith("eval ")]
    assert lines == ["eval dev 5/7 (71.4%)", "eval dev 7/7 (100.0%)"]
