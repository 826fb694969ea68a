"""RACE: the release layout read (bad files skipped and counted), blank filling, truncation that
keeps question and option whole, accuracy by level by hand, a tiny model learning a synthetic
4-way task, and `finetune race` + `eval race --json` on the command line."""

import json
import random
from pathlib import Path

import pytest
from glue_fixtures import FILLER, NEGATIVE, POSITIVE, task_world

from albertctl.core.errors import AlbertError
from albertctl.core.net import free_port
from albertctl.pipelines import finetune
from albertctl.tasks import race
from albertctl.tasks.base import TaskConfig, get_task, load_task_config


def passage(rng: random.Random, fid: str, n_questions: int = 2) -> dict:
    """Right option = the one positive word; the article mentions it among negative ones."""
    questions, options, answers = [], [], []
    words = []
    for q in range(n_questions):
        right = rng.choice(POSITIVE)
        opts = [right, *rng.sample(NEGATIVE, 3)]
        rng.shuffle(opts)
        words.append(right)
        questions.append("the story was _ ." if q % 2 else "what was the film")
        options.append(opts)
        answers.append("ABCD"[opts.index(right)])
    article = " ".join(rng.sample(FILLER, 4) + words + rng.sample(NEGATIVE, 2))
    return {"answers": answers, "options": options, "questions": questions, "article": article, "id": fid}


def write_race(root: Path, n: dict[str, int], seed: int = 0) -> Path:
    """RACE/{split}/{level}/N.txt, one JSON object per file (the release layout)."""
    rng = random.Random(seed)
    for split, count in n.items():
        for level in ("middle", "high"):
            folder = root / "RACE" / split / level
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, count + 1):
                body = passage(rng, f"{level}{i}.txt")
                (folder / f"{i}.txt").write_text(json.dumps(body), encoding="utf-8")
    return root / "RACE"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = task_world(tmp_path_factory.mktemp("race"))
    world["race"] = write_race(world["root"] / "small", {"train": 4, "dev": 3, "test": 2})
    return world


def test_registry_and_profile():
    assert get_task("race").head == "choice" and get_task("race").num_labels == 4
    assert get_task("RACE-middle").name == "race-middle"
    cfg = load_task_config(get_task("race-high"))
    assert (cfg.max_seq_length, cfg.max_qa_length, cfg.batch_size) == (512, 128, 32)
    assert (cfg.learning_rate, cfg.train_steps, cfg.warmup_steps) == (1e-5, 12000, 1000)


def test_reader_layout_levels_and_parent(world):
    examples = race.read_files(race.LEVELS, world["race"], "dev")
    assert len(examples) == 3 * 2 * 2  # 3 files per level, 2 questions each
    assert [e.level for e in examples[:6]] == ["middle"] * 6
    assert examples[0].guid == "middle1.txt-0" and len(examples[0].options) == 4
    assert len(race.read_files(race.LEVELS, world["race"].parent, "dev")) == 12  # parent of RACE/
    assert {e.level for e in race.read_files(("high",), world["race"], "test")} == {"high"}


def test_bad_files_skipped_and_counted(tmp_path):
    root = write_race(tmp_path, {"dev": 3})
    good = json.loads((root / "dev/middle/1.txt").read_text())
    five = dict(good, options=[o + ["extra"] for o in good["options"]])
    letter_e = dict(good, answers=["E"] * len(good["answers"]))
    no_article = {k: v for k, v in good.items() if k != "article"}
    (root / "dev/middle/1.txt").write_text(json.dumps(five))
    (root / "dev/middle/2.txt").write_text(json.dumps(letter_e))
    (root / "dev/high/1.txt").write_text('{"article": "oops", ')
    (root / "dev/high/2.txt").write_text(json.dumps(no_article))
    report = race.read_dir(root, "dev")
    err = "\n".join(report.warnings)
    assert report.files == 6 and len(report.skipped) == 4 and len(report.examples) == 4
    reasons = dict(report.skipped)
    assert "expected 4 options, got 5" in reasons[str(root / "dev/middle/1.txt")]
    assert "'E' is not one of A, B, C, D" in reasons[str(root / "dev/middle/2.txt")]
    assert "malformed JSON" in reasons[str(root / "dev/high/1.txt")]
    assert "missing field 'article'" in reasons[str(root / "dev/high/2.txt")]
    assert str(root / "dev/high/1.txt") in err and "skipped 4 bad file(s) of 6" in err
    for path in ("dev/middle/3.txt", "dev/high/3.txt"):
        (root / path).write_text("not json")
    with pytest.raises(AlbertError, match="no valid RACE files"):
        race.read_dir(root, "dev")
    with pytest.raises(AlbertError, match="expected the RACE layout"):
        race.read_dir(root, "train")


def test_blank_filling():
    assert race.question_option("The story was _ .", "good") == "The story was good ."
    assert race.question_option("What was the film?", "a plot") == "What was the film? a plot"


def test_truncation_keeps_question_and_option_cuts_article(world):
    tok = world["tok"]
    cfg = TaskConfig(train_steps=1, max_seq_length=32, max_qa_length=12)
    article = " ".join(["movie"] * 40)
    ex = race.RaceExample("x-0", "middle", article, "it was the film", ("good", "bad", "sad", "dull"), 0)
    [f] = race.choice_features(ex, tok, cfg)
    assert len(f.input_ids) == 4
    for ids, types, option in zip(f.input_ids, f.token_type_ids, ex.options, strict=True):
        assert len(ids) == 32
        qa = tok.encode(f"it was the film {option}")
        assert len(qa) <= 12
        assert ids[-len(qa) - 1 : -1] == qa  # question and option whole
        assert types == [0] * (32 - len(qa) - 1) + [1] * (len(qa) + 1)
        assert ids[: 32 - len(qa) - 2] == [tok.cls_id, *tok.encode(article)[: 32 - len(qa) - 3]]
    # a question longer than max_qa_length loses question tokens, never the option
    long_q = " ".join(["story"] * 12) + " _ it"
    qa = race.qa_tokens(tok, long_q, "great", 8)
    assert len(qa) == 8 and tok.encode("great")[0] in qa and qa[-1] == tok.encode("it")[-1]
    qa = race.qa_tokens(tok, " ".join(["story"] * 12), "great film", 5)
    assert len(qa) == 5 and qa[-len(tok.encode("great film")) :] == tok.encode("great film")


def test_level_accuracy_by_hand():
    def ex(level, label):
        return race.RaceExample("g", level, "a", "q", ("a", "b", "c", "d"), label)

    examples = [ex("middle", 0), ex("middle", 1), ex("high", 2), ex("high", 3), ex("high", 0), ex("high", 1)]
    preds = [0, 0, 2, 3, 1, 1]  # middle 1/2, high 3/4
    m = race.level_accuracy(examples, preds)
    assert m == {"accuracy": 4 / 6, "accuracy_middle": 0.5, "accuracy_high": 0.75}
    # all = question-weighted mean of the levels
    assert m["accuracy"] == pytest.approx((2 * 0.5 + 4 * 0.75) / 6)
    with pytest.raises(AlbertError):
        race.level_accuracy([ex("high", None)], [0])


def test_tiny_model_learns_synthetic_race(world, tmp_path):
    data = write_race(tmp_path / "learn", {"train": 60, "dev": 25}, seed=3)
    learn = [
        "task.max_seq_length=32",
        "task.max_qa_length=12",
        "task.train_steps=60",
        "task.batch_size=16",
        "task.warmup_steps=5",
        "task.eval_every=0",
        "task.learning_rate=3e-3",
    ]
    [result] = finetune.run("race", world["model"], tmp_path / "run", data, learn)
    assert result.metrics["accuracy"] > 0.9, result
    assert {"accuracy_middle", "accuracy_high"} <= set(result.metrics)


def test_cli_finetune_and_eval_json(world, tmp_path, run_cli):
    out = tmp_path / "run"
    quick = [
        "task.max_seq_length=32",
        "task.max_qa_length=12",
        "task.train_steps=2",
        "task.batch_size=4",
        "task.warmup_steps=1",
    ]
    argv = [
        "finetune",
        "race",
        "--model",
        str(world["model"]),
        "--data",
        str(world["race"]),
        "--out",
        str(out),
    ]
    result = run_cli(
        argv + ["--json"] + [f"--set={s}" for s in quick],
        cwd=tmp_path,
        env={"MASTER_PORT": str(free_port())},
    )
    assert result.exit_code == 0, result.stderr
    [r] = json.loads(result.stdout)["results"]
    assert r["task"] == "race" and "accuracy_high" in r["metrics"]
    result = run_cli(
        ["eval", "race", "--model", str(out / "best"), "--data", str(world["race"]), "--json"], cwd=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body["metrics"]) >= {"accuracy", "accuracy_middle", "accuracy_high"}, body
    result = run_cli(
        ["eval", "race", "--model", str(out / "best"), "--data", str(world["race"])], cwd=tmp_path
    )
    assert result.exit_code == 0 and "accuracy_middle" in result.stdout, result.stdout
    predict = ["eval", "race", "--model", str(out / "best"), "--data", str(world["race"]), "--predict", "sub"]
    result = run_cli(predict, cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(x) for x in (tmp_path / "sub" / "race_test.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 2 * 2  # test: 2 files per level, 2 questions each
    assert lines[0]["id"] == "middle1.txt-0" and lines[0]["level"] == "middle"
    assert {x["prediction"] for x in lines} <= set("ABCD")


def test_datasets_source_offline(tmp_path):
    import datasets

    rows = {
        "example_id": ["middle1.txt", "middle1.txt", "high2.txt"],
        "article": ["good movie", "good movie", "sad film"],
        "question": ["it was _ .", "the film", "it was"],
        "options": [["good", "bad", "sad", "dull"]] * 3,
        "answer": ["A", "B", "C"],
    }
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "ds"))
    from albertctl.tasks.base import read_split

    examples = read_split(get_task("race"), tmp_path / "ds", "dev")
    assert [(e.guid, e.level, e.label) for e in examples] == [
        ("middle1.txt-0", "middle", 0),
        ("middle1.txt-1", "middle", 1),
        ("high2.txt-0", "high", 2),
    ]
    assert [e.level for e in read_split(get_task("race-high"), tmp_path / "ds", "dev")] == ["high"]
