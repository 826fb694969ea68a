"""`albertctl eval TASK`: the dev metrics table and JSON, GLUE submission files, one-line errors."""

import json

import pytest
from glue_fixtures import pretrained_dir, train_spm, write_glue

from albertctl.core.net import free_port
from albertctl.pipelines import finetune

QUICK = ["task.max_seq_length=32", "task.train_steps=2", "task.batch_size=8", "task.eval_every=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    data = write_glue(root / "glue_data")
    model = pretrained_dir(root / "pre", train_spm(root / "spm"))
    runs = {name: finetune.run(name, model, root / name, data, QUICK)[0] for name in ("mnli", "sts-b")}
    return {"data": data, "runs": runs, "root": root}


def test_eval_json_matches_training(trained, run_cli, tmp_path):
    run = trained["runs"]["sts-b"]
    argv = [
        "eval",
        "sts-b",
        "--model",
        str(trained["root"] / "sts-b"),
        "--data",
        str(trained["data"]),
        "--json",
    ]
    result = run_cli(argv, cwd=tmp_path, env={"MASTER_PORT": str(free_port())})
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["task"] == "sts-b" and body["metrics"] == pytest.approx(run.metrics)


def test_eval_table_and_submissions(trained, run_cli, tmp_path):
    out = tmp_path / "submission"
    model = str(trained["root"] / "mnli" / "best")
    result = run_cli(
        ["eval", "mnli", "--model", model, "--data", str(trained["data"]), "--predict", str(out)],
        cwd=tmp_path,
        env={"MASTER_PORT": str(free_port())},
    )
    assert result.exit_code == 0, result.stderr
    assert "accuracy_m" in result.stdout and "accuracy_mm" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    result = run_cli(
        ["eval", "ax", "--model", model, "--data", str(trained["data"]), "--predict", str(out)],
        cwd=tmp_path,
        env={"MASTER_PORT": str(free_port())},
    )
    assert result.exit_code == 0, result.stderr
    lines = (out / "AX.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["eval", "ax", "--model", "{root}/mnli"],
            "task ax has no labelled split: give --predict OUT to write its submission file",
        ),
        (
            ["eval", "rte", "--model", "{root}/mnli"],
            "{root}/mnli/best: model is fine-tuned on mnli; task rte needs a model fine-tuned on rte",
        ),
        (["eval", "sst-3", "--model", "{root}/mnli"], "unknown task 'sst-3' (did you mean 'sst-2'?)"),
        (
            ["eval", "--model", "{root}/mnli", "--predict", "x"],
            "--predict needs a TASK, e.g. albertctl eval mnli --model DIR --predict OUT",
        ),
    ],
)
def test_eval_user_errors(trained, run_cli, tmp_path, argv, message):
    root = trained["root"]
    result = run_cli([a.format(root=root) for a in argv] + ["--data", str(trained["data"])], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip().splitlines()[-1]) == (
        2,
        f"error: {message.format(root=root)}",
    )
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []
