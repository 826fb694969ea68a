"""Your own data (tasks/custom.py): each kind learns a synthetic rule from a file of another
format, evaluates and predicts one row per input row; labels round-trip through the model
directory; bad files give one-line errors naming file, row and column."""

import csv
import json
import random

import pytest
from glue_fixtures import FILLER, NEGATIVE, POSITIVE, task_world

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.pipelines import finetune
from albertctl.tasks import custom
from albertctl.tasks.base import TaskConfig, get_task, load_task_config


def short(rng: random.Random, positive: bool) -> str:
    """Two filler words and one positive or negative word."""
    words = rng.sample(FILLER, 2)
    words.insert(rng.randint(0, 2), rng.choice(POSITIVE if positive else NEGATIVE))
    return " ".join(words)


def learn(epochs: int, lr: float = 3e-3, batch: int = 16, length: int = 16) -> list[str]:
    return [
        f"task.max_seq_length={length}",
        f"task.epochs={epochs}",
        f"task.batch_size={batch}",
        "task.warmup_proportion=0.1",
        "task.eval_every=12",
        f"task.learning_rate={lr}",
    ]


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return task_world(tmp_path_factory.mktemp("own"))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# each kind learns, evaluates and predicts


def test_classify_csv_learns_and_predicts_in_input_order(world, tmp_path):
    rng = random.Random(0)

    def rows(n):
        return [(f"r{i}", short(rng, bool(i % 2)), "positive" if i % 2 else "negative") for i in range(n)]

    train = write_csv(tmp_path / "train.csv", ["id", "review", "stars"], rows(64))
    rows_of = rows(32)
    dev = write_csv(tmp_path / "dev.csv", ["id", "review", "stars"], rows_of)
    own = {"validation": str(dev), "text_column": "review", "label_column": "stars"}
    [r] = finetune.run("classify", world["model"], tmp_path / "run", train, learn(12, lr=1.5e-3), own=own)
    assert r.metrics["accuracy"] > 0.85 and set(r.metrics) == {"accuracy", "macro_f1"}, r
    head = load_model_dir(r.model_dir).head
    assert head["labels"] == ["negative", "positive"]
    assert head["data"] == {
        "kind": "classify",
        "text_columns": ["review"],
        "label_column": "stars",
        "id_column": None,
        "label_values": ["negative", "positive"],
    }

    again = finetune.evaluate("classify", tmp_path / "run", dev)
    assert again["metrics"] == pytest.approx(r.metrics)
    [table] = again["report"].values()
    assert [row["label"] for row in table] == ["negative", "positive"]
    assert [row["support"] for row in table] == [16, 16]

    # the dev rows reversed, unlabelled, as JSONL: one prediction per row, in input order, with ids
    dev_rows = rows_of[::-1]
    new = write_jsonl(
        tmp_path / "new.jsonl", [{"idx": 100 - i, "review": t} for i, (_, t, _) in enumerate(dev_rows)]
    )
    out = finetune.evaluate("classify", tmp_path / "run", new, tmp_path / "pred")
    assert out["metrics"] == {} and [p.split("/")[-1] for p in out["predictions"]] == [
        "predictions.jsonl",
        "predictions.csv",
    ]
    records = read_jsonl(tmp_path / "pred" / "predictions.jsonl")
    assert [(x["row"], x["id"]) for x in records] == [(i, str(100 - i)) for i in range(32)]
    for x in records:
        probs = x["probabilities"]
        assert sum(probs.values()) == pytest.approx(1.0) and x["prediction"] == max(probs, key=probs.get)
    right = sum(x["prediction"] == gold for x, (_, _, gold) in zip(records, dev_rows, strict=True))
    assert right / 32 == r.metrics["accuracy"]  # the same rows, reordered: the same answers
    with open(tmp_path / "pred" / "predictions.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["row", "id", "prediction", "p_negative", "p_positive", "truncated"]
    assert [t["prediction"] for t in table] == [x["prediction"] for x in records]


def test_regress_jsonl_pairs_learns_with_mse_picking_best(world, tmp_path):
    rng = random.Random(1)

    def rows(n):
        out = []
        for i in range(n):
            y = i % 2
            out.append(
                {"a": short(rng, bool(y)), "b": short(rng, rng.random() < 0.5), "score": 4.0 * y - 2.0}
            )
        return out

    train = write_jsonl(tmp_path / "train.jsonl", rows(64))
    dev = write_jsonl(tmp_path / "dev.jsonl", rows(32))
    own = {"validation": str(dev), "text_column": "a,b", "label_column": "score"}
    [r] = finetune.run(
        "regress", world["model"], tmp_path / "run", train, learn(20, lr=1.5e-3, length=24), own=own
    )
    assert r.main_metric == "mse" and r.metrics["pearson"] > 0.4 and r.metrics["mse"] < 3.5, (
        r
    )  # the mean: 4.0, r 0
    events = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert r.metrics["mse"] == min(e["mse"] for e in evals)  # lowest wins for mse
    unlabelled = write_jsonl(tmp_path / "new.jsonl", [{"a": "good movie", "b": "the plot"}])
    finetune.evaluate("regress", tmp_path / "run", unlabelled, tmp_path / "pred")
    [record] = read_jsonl(tmp_path / "pred" / "predictions.jsonl")
    assert set(record) == {"row", "prediction", "truncated"} and record["prediction"] > 0.0


def test_choice_parquet_learns_and_answers_in_the_users_format(world, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rng = random.Random(2)

    def rows(n):
        out = []
        for _ in range(n):
            opts = [rng.choice(POSITIVE), *rng.sample(NEGATIVE, 2)]
            rng.shuffle(opts)
            right = next(k for k, o in enumerate(opts) if o in POSITIVE)
            out.append({"q": "which was nice", "x": opts[0], "y": opts[1], "z": opts[2], "ans": "ABC"[right]})
        return out

    def parquet(name, data):
        pq.write_table(pa.Table.from_pylist(data), tmp_path / name)
        return tmp_path / name

    train, dev = parquet("train.parquet", rows(48)), parquet("dev.parquet", rows(24))
    own = {"validation": str(dev), "question_column": "q", "option_columns": "x,y,z", "label_column": "ans"}
    [r] = finetune.run("choice", world["model"], tmp_path / "run", train, learn(12, batch=8), own=own)
    assert r.metrics["accuracy"] > 0.7, r  # chance: 1/3
    assert load_model_dir(r.model_dir).head["data"]["label_format"] == "letter"
    new = [{k: v for k, v in row.items() if k != "ans"} for row in rows(6)]
    finetune.evaluate("choice", tmp_path / "run", parquet("new.parquet", new), tmp_path / "pred")
    records = read_jsonl(tmp_path / "pred" / "predictions.jsonl")
    assert len(records) == 6 and all(
        x["prediction"] in "ABC" and len(x["probabilities"]) == 3 for x in records
    )


def test_qa_squad_json_learns_and_predicts_unlabelled_questions(world, tmp_path):
    rng = random.Random(3)

    def squad_file(path, n, answers=True):
        paragraphs = []
        for i in range(n):
            word = rng.choice(POSITIVE)
            words = rng.sample(FILLER, 4)
            words.insert(rng.randint(0, 4), word)
            context = " ".join(words)
            qa = {"id": f"q{i}", "question": "what was nice ?"}
            if answers:
                qa["answers"] = [{"text": word, "answer_start": context.index(word)}]
            paragraphs.append({"context": context, "qas": [qa]})
        path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}), encoding="utf-8")
        return path

    train, dev = squad_file(tmp_path / "train.json", 48), squad_file(tmp_path / "dev.json", 16)
    [r] = finetune.run(
        "qa",
        world["model"],
        tmp_path / "run",
        train,
        learn(12, lr=5e-3, length=24),
        own={"validation": str(dev)},
    )
    assert r.main_metric == "f1" and r.metrics["exact"] > 60, r  # v1: percentages
    assert load_model_dir(r.model_dir).head["data"] == {"kind": "qa", "qa_version": 1}
    finetune.evaluate("qa", tmp_path / "run", squad_file(tmp_path / "new.json", 5, False), tmp_path / "pred")
    records = read_jsonl(tmp_path / "pred" / "predictions.jsonl")
    assert [x["id"] for x in records] == [f"q{i}" for i in range(5)]
    assert all(isinstance(x["prediction"], str) and 0 < x["probability"] <= 1 for x in records)


# ---------------------------------------------------------------------------------------------
# labels, sources and columns, without a model


def test_labels_are_discovered_in_order_given_or_kept_as_the_users_values(tmp_path):
    ints = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": v} for v in (10, 2, 1, 2)])
    task = custom.bind("classify", {"train": ints}, {}, None)
    assert task.labels == ("1", "2", "10") and task.spec["label_values"] == [1, 2, 10]
    strings = write_csv(tmp_path / "t.csv", ["text", "label"], [("a", "pos"), ("b", "neg"), ("c", "mid")])
    assert custom.bind("classify", {"train": strings}, {}, None).labels == ("mid", "neg", "pos")
    given = custom.bind("classify", {"train": strings}, {"labels": "pos,neg,mid,unused"}, None)
    assert given.labels == ("pos", "neg", "mid", "unused") and given.num_labels == 4
    # eval: the manifest's labels; a dev file lacking some of them is fine
    stored = {"data": given.spec}
    dev = write_csv(tmp_path / "d.csv", ["text", "label"], [("x", "neg")])
    bound = custom.bind("classify", {"dev": dev}, {}, stored)
    assert bound.labels == given.labels and bound.read_own("dev")[0].label == "neg"
    # predictions map back to the user's own values (integers stay integers)
    int_task = custom.bind("classify", {"train": ints}, {}, None)
    import numpy as np

    from albertctl.tasks.base import Feature

    examples = int_task.read_own("train")[:1]
    [pred] = int_task.predict(
        examples, [Feature([2], [0], 0, 0)], [np.array([0.0, 0.0, 3.0])], TaskConfig(epochs=1)
    )
    assert pred.value == 10 and pred.label == "10"


def test_sources_tsv_json_saved_dataset_and_split(tmp_path):
    tsv = write_csv(tmp_path / "a.tsv", ["id", "text", "label"], [("1", 'he said "hi"', "x")], delimiter="\t")
    table = custom.read_table(str(tsv), "train")
    assert table.rows == [{"id": "1", "text": 'he said "hi"', "label": "x"}] and table.where == [f"{tsv}:2"]
    as_list = tmp_path / "b.json"
    as_list.write_text(json.dumps({"rows": [{"text": "a", "label": 1}]}))
    assert custom.read_table(str(as_list), "train").rows == [{"text": "a", "label": 1}]
    lines = tmp_path / "c.json"
    lines.write_text('{"text": "a"}\n{"text": "b", "label": 2}\n')
    assert custom.read_table(str(lines), "train").columns == ("text", "label")
    datasets = pytest.importorskip("datasets")
    d = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}),
            "validation": datasets.Dataset.from_dict({"text": ["c"], "label": [1]}),
        }
    )
    d.save_to_disk(str(tmp_path / "saved"))
    task = custom.bind("classify", {"train": tmp_path / "saved", "dev": tmp_path / "saved"}, {}, None)
    assert [e.texts for e in task.read_own("dev")] == [("c",)] and task.labels == ("0", "1")
    other = custom.read_table(f"{tmp_path / 'saved'}:validation", "train")
    assert other.rows == [{"text": "c", "label": 1}]
    with pytest.raises(AlbertError, match=r"saved: no split 'test' \(have: train, validation\)"):
        custom.read_table(str(tmp_path / "saved"), "test")


def test_long_rows_are_truncated_and_flagged_never_dropped(world, tmp_path):
    rows = [("good " * 40, "1"), ("bad movie", "0")]
    task = custom.bind(
        "classify", {"train": write_csv(tmp_path / "t.csv", ["text", "label"], rows)}, {}, None
    )
    from albertctl.tasks.base import featurise_all

    warned: list[str] = []
    config = TaskConfig(epochs=1, max_seq_length=16)
    feats = featurise_all(task, task.read_own("train"), world["tok"], config, warned.append)
    short_len = len(world["tok"].encode("bad movie")) + 2
    assert [len(f.input_ids) for f in feats] == [16, short_len] and [f.extra["truncated"] for f in feats] == [
        True,
        False,
    ]
    assert "1 of 2 examples are longer than task.max_seq_length (16 tokens) and were truncated" in warned


def test_profiles_and_best_metric():
    cfg = load_task_config(get_task("classify"))
    assert (cfg.epochs, cfg.warmup_proportion, cfg.best_metric) == (3.0, 0.1, "accuracy")
    assert load_task_config(get_task("regression")).best_metric == "mse"
    assert get_task("multiple-choice").name == "choice" and get_task("qa").head == "span"
    bound = custom._bound("classify", custom.Columns("classify", label_values=["a", "b"]), {})
    assert bound.best_metric(TaskConfig(epochs=1, best_metric="macro_f1")) == "macro_f1"
    with pytest.raises(
        AlbertError, match=r"task.best_metric: task classify has no metric 'f1' \(have: accuracy, macro_f1\)"
    ):
        bound.best_metric(TaskConfig(epochs=1, best_metric="f1"))


# ---------------------------------------------------------------------------------------------
# bad files: one line naming file, row and column


def _bad(tmp_path):
    p = tmp_path
    return [
        (
            "classify",
            {"train": write_csv(p / "m.csv", ["text", "stars"], [("a", "1")])},
            {},
            f"{p}/m.csv: no column 'label' (have: text, stars)",
        ),
        (
            "classify",
            {"train": write_csv(p / "e.csv", ["text", "label"], [("a", "1"), ("b", " ")])},
            {},
            f"{p}/e.csv:3: column 'label': empty label",
        ),
        (
            "classify",
            {"train": write_jsonl(p / "x.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "one"}])},
            {},
            f"{p}/x.jsonl:2: column 'label': label 'one' is a str but {p}/x.jsonl:1 holds a int (mixed types)",
        ),
        (
            "classify",
            {
                "train": write_csv(p / "t.csv", ["text", "label"], [("a", "pos"), ("b", "neg")]),
                "dev": write_csv(p / "d.csv", ["text", "label"], [("a", "pos"), ("c", "meh")]),
            },
            {},
            f"{p}/d.csv:3: column 'label': label 'meh' is not among the training labels (have: neg, pos)",
        ),
        (
            "classify",
            {"train": write_csv(p / "w.csv", ["text", "label"], [("a", "1"), ("b", "0", "extra")])},
            {},
            f"{p}/w.csv:3: 3 fields, but the header has 2 (text, label)",
        ),
        (
            "classify",
            {"train": write_csv(p / "h.csv", ["text", "label"], [])},
            {},
            f"{p}/h.csv: empty file (a header, no data rows)",
        ),
        ("regress", {"train": write_jsonl(p / "z.jsonl", [])}, {}, f"{p}/z.jsonl: empty file (no data rows)"),
        (
            "regress",
            {"train": write_csv(p / "r.csv", ["text", "label"], [("a", "1.5"), ("b", "high")])},
            {},
            f"{p}/r.csv:3: column 'label': 'high' is not a number",
        ),
        (
            "choice",
            {"train": write_jsonl(p / "c.jsonl", [{"question": "q", "a": "x", "b": "y", "label": "C"}])},
            {"option_columns": "a,b"},
            f"{p}/c.jsonl:1: column 'label': answer 'C' is not one of A, B or an option index 0-1",
        ),
        (
            "classify",
            {"train": write_csv(p / "o.csv", ["text", "label"], [("a", "1")])},
            {"option_columns": "a,b"},
            "--option-columns does not apply to classify (it takes --text-column, --label-column, --id-column, --labels)",
        ),
        ("classify", {"train": p / "nope.csv"}, {}, f"{p}/nope.csv: file not found"),
    ]


def test_bad_files_give_one_line_errors(tmp_path):
    for kind, sources, options, message in _bad(tmp_path):
        with pytest.raises(AlbertError) as err:
            custom.bind(kind, sources, options, None)
        assert str(err.value) == message


def test_cli_bad_file_and_misplaced_flag_exit_2(world, tmp_path, run_cli):
    train = write_csv(tmp_path / "t.csv", ["review", "stars"], [("good", "1")])
    result = run_cli(
        [
            "finetune",
            "classify",
            "--model",
            str(world["model"]),
            "--data",
            str(train),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert (result.exit_code, result.stderr.strip().splitlines()) == (
        2,
        [f"error: {train}: no column 'text' (have: review, stars)"],
    )
    result = run_cli(["finetune", "rte", "--model", str(world["model"]), "--text-column", "x"])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "--text-column applies to tasks over your own files (classify, regress, qa, choice), not rte"
        )
    )
