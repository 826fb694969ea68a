"""Fine-tuning through the one training loop: every GLUE task trains and evaluates, a tiny
model learns a separable task, the saved model dir evaluates to the same numbers, and the
command line turns mistakes into one-line errors (exit 2)."""

import json

import pytest
from glue_fixtures import task_world, train_spm, write_glue

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.core.net import free_port
from albertctl.pipelines import finetune
from albertctl.tasks import glue

QUICK = [  # a few steps of the micro model at short length
    "task.max_seq_length=32",
    "task.train_steps=3",
    "task.batch_size=8",
    "task.micro_batch_size=4",  # exercises gradient accumulation
    "task.warmup_steps=1",
    "task.eval_every=2",
    "task.eval_batch_size=5",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = task_world(tmp_path_factory.mktemp("ft"))
    world["glue"] = write_glue(world["root"] / "glue_data")
    return world


def test_every_glue_task_trains_and_evaluates(world, tmp_path):
    results = finetune.run("glue", world["model"], tmp_path / "runs", world["glue"], QUICK)
    assert [r.task for r in results] == [
        "mnli",
        "qnli",
        "qqp",
        "rte",
        "sst-2",
        "mrpc",
        "cola",
        "sts-b",
        "wnli",
    ]
    for r in results:
        task = glue.TASKS[r.task]
        assert r.steps == 3 and r.main_metric in r.metrics, r
        assert r.model_dir == tmp_path / "runs" / r.task / "best"
        saved = load_model_dir(r.model_dir)
        assert saved.head["task"] == r.task and saved.head["kind"] == task.head
        assert saved.head["labels"] == list(task.labels)
        assert saved.head["task_config"]["train_steps"] == 3
        # the saved best model re-evaluates to the metrics the loop recorded for it
        again = finetune.evaluate(r.task, r.model_dir, world["glue"])["metrics"]
        assert again == pytest.approx(r.metrics)
    mnli = results[0].metrics
    assert set(mnli) == {"accuracy_m", "accuracy_mm"}
    assert set(results[2].metrics) == {"f1", "accuracy"} and set(results[7].metrics) == {
        "pearson",
        "spearman",
    }
    assert set(results[6].metrics) == {"mcc", "accuracy"}
    table = finetune.summary(results)
    assert [r["task"] for r in table["rows"]] == [
        "MNLI-m/mm",
        "QNLI",
        "QQP",
        "RTE",
        "SST-2",
        "MRPC",
        "CoLA",
        "STS-B",
        "WNLI",
    ]
    assert table["rows"][0]["metrics"] == "accuracy_m/accuracy_mm" and table["rows"][0]["dev"].count("/") == 1
    assert isinstance(table["average"], float)

    # AX is predicted with the MNLI model
    ax = finetune.evaluate("ax", tmp_path / "runs" / "mnli", world["glue"], predict_dir=tmp_path / "sub")
    lines = (tmp_path / "sub" / "AX.tsv").read_text().splitlines()
    assert ax["predictions"] and lines[0] == "index\tprediction" and len(lines) == 6
    assert {line.split("\t")[1] for line in lines[1:]} <= {"entailment", "neutral", "contradiction"}


def test_tiny_model_learns_a_separable_task(world, tmp_path):
    """SST-2 layout, 200 train / 100 dev sentences; a positive word decides the label."""
    data = write_glue(tmp_path / "glue_data", n_train=200, n_dev=100, seed=3)
    learn = [
        "task.max_seq_length=32",
        "task.train_steps=160",
        "task.batch_size=16",
        "task.warmup_steps=5",
        "task.eval_every=40",
        "task.learning_rate=1.5e-3",  # the original AdamW (no bias correction): 3e-3 (tuned for torch's) stalls at 0.5
    ]
    [result] = finetune.run("sst-2", world["model"], tmp_path / "run", data, learn)
    assert result.metrics["accuracy"] > 0.9, result
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [40, 80, 120, 160]
    assert result.metrics["accuracy"] == max(e["accuracy"] for e in evals)  # best/ holds the best
    assert (
        finetune.evaluate("sst-2", tmp_path / "run", data)["metrics"]["accuracy"]
        == result.metrics["accuracy"]
    )


def test_grouped_batches_are_deterministic_and_cover_an_epoch():
    from albertctl.tasks.base import Feature

    feats = [Feature(list(range(2 + i % 7)), [0] * (2 + i % 7), i % 2) for i in range(40)]
    a = finetune.GroupedBatches(feats, 8, 0, seed=1)
    b = finetune.GroupedBatches(feats, 8, 0, seed=1)
    assert len(a) == 5
    for i in (0, 3, 7, 12):
        assert a.micro_batch(i)["input_ids"].tolist() == b.micro_batch(i)["input_ids"].tolist()
    seen = sorted(int(x) for i in range(5) for x in a.micro_batch(i)["input_ids"][:, 1:].sum(1))
    assert len(seen) == 40
    widths = [a.micro_batch(i)["input_ids"].shape[1] for i in range(5)]
    assert max(widths) == 8 and min(widths) < 8  # padded to each batch's own longest


def test_predict_only_and_length_errors(world, tmp_path):
    with pytest.raises(AlbertError, match=r"task ax has no training data: fine-tune mnli, then"):
        finetune.run("ax", world["model"], tmp_path / "o", world["glue"], QUICK)
    with pytest.raises(
        AlbertError, match=r"task.max_seq_length \(512\) exceeds the model's max_position_embeddings \(64\)"
    ):
        finetune.run("rte", world["model"], tmp_path / "o", world["glue"], ["task.train_steps=1"])
    assert not (tmp_path / "o").exists()


BAD_CLI = [
    (["finetune", "mnlii", "--model", "{model}"], "unknown task 'mnlii' (did you mean 'mnli'?)"),
    (
        ["finetune", "rte", "--model", "{root}/nope", "--data", "{glue}"],
        "model directory {root}/nope not found",
    ),
    (
        ["finetune", "rte", "--model", "{model}", "--data", "{glue}", "--set", "task.lerning_rate=1"],
        "--set 'task.lerning_rate=1': unknown key task.lerning_rate (did you mean learning_rate?)",
    ),
    (
        ["finetune", "rte", "--model", "{model}", "--data", "{bad}", "--set", "task.max_seq_length=32"],
        "{bad}/RTE/train.tsv:3: unknown label 'maybe' (expected one of: entailment, not_entailment)",
    ),
    (
        ["finetune", "sst-2", "--model", "{model}", "--data", "{bad}", "--set", "task.max_seq_length=32"],
        "{bad}/SST-2/train.tsv: empty file (no data rows)",
    ),
    (
        ["finetune", "mrpc", "--model", "{model}", "--data", "{bad}", "--set", "task.max_seq_length=32"],
        "{bad}/MRPC/train.tsv: line 1: missing column '#2 String' (header has: Quality, #1 ID, #2 ID, #1 String)",
    ),
    (
        ["finetune", "cola", "--model", "{mismatch}", "--data", "{glue}", "--set", "task.max_seq_length=32"],
        "{mismatch}/spiece.model: vocabulary has 60 pieces but the model in {mismatch} has 64 token embeddings "
        "(vocab_size 64): the checkpoint and its tokenizer do not belong together",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_CLI)
def test_cli_user_errors(world, tmp_path, run_cli, argv, message):
    root = world["root"]
    bad = root / "bad"
    if not bad.exists():
        (bad / "RTE").mkdir(parents=True)
        (bad / "RTE" / "train.tsv").write_text(
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n"
        )
        (bad / "SST-2").mkdir()
        (bad / "SST-2" / "train.tsv").write_text("")
        (bad / "MRPC").mkdir()
        (bad / "MRPC" / "train.tsv").write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\n1\t1\t2\ta\n")
    mismatch = root / "mismatch"
    if not mismatch.exists():
        import shutil

        shutil.copytree(world["model"], mismatch)
        other = train_spm(root / "spm60", vocab_size=60)
        shutil.copyfile(other, mismatch / "spiece.model")
        from albertctl.core.modeldir import write_manifest

        (mismatch / "manifest.json").unlink()
        write_manifest(mismatch, {"head": {"kind": "pretraining"}})
    fill = {"model": world["model"], "root": root, "glue": world["glue"], "bad": bad, "mismatch": mismatch}
    out = tmp_path / "out"
    result = run_cli([a.format(**fill) for a in argv] + ["--out", str(out)], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip().splitlines()[-1]) == (
        2,
        f"error: {message.format(**fill)}",
    )
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_cli_finetune_and_json(world, tmp_path, run_cli):
    out = tmp_path / "run"
    argv = [
        "finetune",
        "rte",
        "--model",
        str(world["model"]),
        "--data",
        str(world["glue"]),
        "--out",
        str(out),
        "--json",
    ]
    # an earlier in-process run left RANK/MASTER_PORT in os.environ (the port still held): a fresh one
    result = run_cli(
        argv + [f"--set={s}" for s in QUICK], cwd=tmp_path, env={"MASTER_PORT": str(free_port())}
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    [r] = body["results"]
    assert r["task"] == "rte" and "accuracy" in r["metrics"] and r["model_dir"] == str(out / "best")


def test_same_seed_same_run(world, tmp_path):
    """Head init, batch order and dropout all derive from task.seed: two runs log the same losses."""

    def losses(out):
        finetune.run("rte", world["model"], out, world["glue"], QUICK)
        events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [e["loss"] for e in events if e["event"] == "train"]

    first = losses(tmp_path / "a")
    assert len(first) == 3 and first == losses(tmp_path / "b")
    other = finetune.run("rte", world["model"], tmp_path / "c", world["glue"], [*QUICK, "task.seed=7"])
    assert other[0].steps == 3


def test_rerun_needs_resume(world, tmp_path):
    out = tmp_path / "run"
    finetune.run("wnli", world["model"], out, world["glue"], QUICK)
    with pytest.raises(AlbertError, match="already holds checkpoints; pass --resume"):
        finetune.run("wnli", world["model"], out, world["glue"], QUICK)
    [again] = finetune.run(
        "wnli", world["model"], out, world["glue"], [*QUICK, "task.train_steps=5"], resume=True
    )
    assert again.steps == 5 and "accuracy" in again.metrics


def test_resume_from_a_named_checkpoint_into_a_new_run(world, tmp_path):
    finetune.run("wnli", world["model"], tmp_path / "a", world["glue"], QUICK)  # keeps step 3 only
    named = tmp_path / "a" / "checkpoints" / "step-00000003"
    longer = [*QUICK, "task.train_steps=5"]
    [elsewhere] = finetune.run(
        "wnli", world["model"], tmp_path / "b", world["glue"], longer, resume_from=named
    )
    [in_place] = finetune.run("wnli", world["model"], tmp_path / "a", world["glue"], longer, resume=True)
    assert elsewhere.steps == in_place.steps == 5
    assert elsewhere.metrics == in_place.metrics

    def losses(out):
        events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return {e["step"]: e["loss"] for e in events if e["event"] == "train"}

    assert losses(tmp_path / "b") == {s: x for s, x in losses(tmp_path / "a").items() if s > 3}
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-00000005"]
    with pytest.raises(AlbertError, match="--resume-from names one checkpoint: fine-tune one task of glue"):
        finetune.run("glue", world["model"], tmp_path / "c", world["glue"], QUICK, resume_from=named)


def test_micro_batch_per_rank_splits_the_global_batch():
    from albertctl.tasks.base import TaskConfig

    assert finetune.rank_micro_batch(TaskConfig(train_steps=1, batch_size=32), 1) == 32
    assert finetune.rank_micro_batch(TaskConfig(train_steps=1, batch_size=32), 4) == 8  # no accumulation
    assert finetune.rank_micro_batch(TaskConfig(train_steps=1, batch_size=32, micro_batch_size=4), 4) == 4
    finetune.check_world_size("rte", ["task.batch_size=32"], 4)
    with pytest.raises(
        AlbertError, match=r"^rte: task.batch_size \(32\) must be a multiple of .* \(32 x 3 = 96\)$"
    ):
        finetune.check_world_size("rte", ["task.batch_size=32"], 3)
