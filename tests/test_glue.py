"""GLUE: readers on every task's real layout, bad inputs, metrics worked out by hand,
submission files, and `eval` of a fine-tuned model dir."""

import math

import pytest
import torch
from glue_fixtures import MICRO, pretrained_dir, train_spm, write_glue

from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import save_model_dir
from albertctl.data.tokenizer import Tokenizer
from albertctl.pipelines import finetune
from albertctl.tasks import glue
from albertctl.tasks.base import TaskConfig, featurise_all, get_task, groups, read_split

ALL = ["cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte", "wnli"]


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue(tmp_path_factory.mktemp("glue") / "glue_data")


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    return train_spm(tmp_path_factory.mktemp("spm"))


def test_registry_has_every_glue_task():
    assert [t.name for t in groups()["glue"]] == [
        "mnli",
        "qnli",
        "qqp",
        "rte",
        "sst-2",
        "mrpc",
        "cola",
        "sts-b",
        "wnli",
        "ax",
    ]
    assert get_task("SST2") is glue.SST2 and get_task("STS-B").head == "regress"
    with pytest.raises(AlbertError, match=r"^unknown task 'mnlii' \(did you mean 'mnli'\?\)$"):
        get_task("mnlii")


@pytest.mark.parametrize("name", ALL)
def test_readers_on_real_layouts(glue_dir, name):
    task = get_task(name)
    for split in [task.train_split, *task.dev_splits]:
        examples = read_split(task, glue_dir, split)
        assert len(examples) == (16 if split == "train" else 8)
        assert all(e.label is not None for e in examples)
        if task.head == "classify":
            assert {e.label for e in examples} <= set(task.labels)
    for split in task.test_splits:
        examples = read_split(task, glue_dir, split)
        assert [e.guid for e in examples] == [str(i) for i in range(5)]
        assert all(e.label is None for e in examples)
    # the task's own folder works as --data too
    assert read_split(
        task,
        glue_dir / {"sst-2": "SST-2", "sts-b": "STS-B", "cola": "CoLA"}.get(name, name.upper()),
        task.test_splits[0],
    )


def test_reader_details(glue_dir):
    mrpc = read_split(glue.MRPC, glue_dir, "train")  # BOM stripped, bare quotes kept
    assert mrpc[0].text_a.startswith('"') and mrpc[0].text_b.endswith('"')
    cola = read_split(glue.COLA, glue_dir, "dev")  # no header, no final newline
    assert len(cola) == 8 and cola[-1].where.endswith(":8")
    stsb = read_split(glue.STSB, glue_dir, "train")
    assert all(isinstance(e.label, float) for e in stsb)
    mnli = read_split(glue.MNLI, glue_dir, "dev_mismatched")
    assert {e.label for e in mnli} == {"contradiction", "entailment", "neutral"}
    ax = read_split(glue.AX, glue_dir, "test")
    assert len(ax) == 5 and ax[0].text_b


def _bad(tmp_path, folder, name, text):
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


BAD = [
    (
        "rte",
        "RTE",
        "dev.tsv",
        "index\tsentence1\tlabel\n0\ta\tentailment\n",
        "{p}: line 1: missing column 'sentence2' (header has: index, sentence1, label)",
    ),
    (
        "rte",
        "RTE",
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n",
        "{p}:3: unknown label 'maybe' (expected one of: entailment, not_entailment)",
    ),
    ("sst-2", "SST-2", "dev.tsv", "", "{p}: empty file (no data rows)"),
    ("sst-2", "SST-2", "dev.tsv", "sentence\tlabel\n", "{p}: empty file (no data rows)"),
    (
        "cola",
        "CoLA",
        "dev.tsv",
        "gj04\t1\t\tfine\ngj04\t1\n",
        "{p}:2: expected at least 4 tab-separated columns, got 2",
    ),
    (
        "sts-b",
        "STS-B",
        "dev.tsv",
        glue_row := (
            "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
            "0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n"
        ),
        "{p}:2: label 'five' is not a number (STS-B scores are 0-5)",
    ),
    (
        "wnli",
        "WNLI",
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t2\n",
        "{p}:2: unknown label '2' (expected one of: 0, 1)",
    ),
]


@pytest.mark.parametrize(("task", "folder", "name", "text", "message"), BAD)
def test_bad_files(tmp_path, task, folder, name, text, message):
    path = _bad(tmp_path, folder, name, text)
    with pytest.raises(AlbertError) as err:
        read_split(get_task(task), tmp_path, "dev")
    assert str(err.value) == message.format(p=path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(AlbertError, match=r"MNLI/dev_matched.tsv: not found"):
        read_split(glue.MNLI, tmp_path, "dev_matched")


# -- metrics, worked out by hand -------------------------------------------------------------


class E:
    def __init__(self, label):
        self.label = label


def _ex(labels):
    return [E(label) for label in labels]


def test_f1_accuracy_by_hand():
    # tp=2 fp=1 fn=1 -> P = R = 2/3, F1 = 2/3; 3 of 5 right
    m = glue.f1_accuracy(_ex(["1", "1", "0", "0", "1"]), ["1", "0", "0", "1", "1"])
    assert m == pytest.approx({"f1": 2 / 3, "accuracy": 0.6})


def test_matthews_by_hand():
    # TP=1 TN=2 FP=0 FN=1: (1*2 - 0*1) / sqrt((1+0)(1+1)(2+0)(2+1)) = 2 / sqrt(12)
    m = glue.matthews(_ex(["1", "1", "0", "0"]), ["1", "0", "0", "0"])
    assert m["mcc"] == pytest.approx(2 / math.sqrt(12)) and m["accuracy"] == 0.75
    assert glue.matthews(_ex(["1", "0"]), ["1", "1"])["mcc"] == 0.0  # one predicted class


def test_pearson_spearman_by_hand():
    # gold deviations (-1, 0, 1), predicted (-4/3, -1/3, 5/3): cov 3, var 2 and 42/9
    m = glue.pearson_spearman(_ex([1.0, 2.0, 3.0]), [1.0, 2.0, 4.0])
    assert m["pearson"] == pytest.approx(3 / math.sqrt(2 * 42 / 9)) and m["spearman"] == pytest.approx(1.0)
    assert glue.pearson_spearman(_ex([1.0, 2.0, 3.0, 4.0]), [4.0, 3.0, 2.0, 1.0])[
        "spearman"
    ] == pytest.approx(-1.0)
    assert glue.pearson_spearman(_ex([1.0, 2.0]), [3.0, 3.0]) == {"pearson": 0.0, "spearman": 0.0}


def test_accuracy_needs_labels():
    with pytest.raises(AlbertError, match="without labels"):
        glue.accuracy_metrics(_ex([None]), ["1"])


# -- featurising and submission files --------------------------------------------------------


def test_pair_features(glue_dir, spm_model):
    tok = Tokenizer(spm_model)
    cfg = TaskConfig(train_steps=1, max_seq_length=12)
    examples = read_split(glue.MNLI, glue_dir, "dev_matched")
    feats = featurise_all(glue.MNLI, examples, tok, cfg)
    assert [f.example_index for f in feats] == list(range(8))
    f = feats[0]
    assert f.input_ids[0] == tok.cls_id and f.input_ids.count(tok.sep_id) == 2 and len(f.input_ids) <= 12
    assert f.label == glue.MNLI.labels.index(examples[0].label)
    assert set(f.token_type_ids) == {0, 1}
    single = featurise_all(glue.SST2, read_split(glue.SST2, glue_dir, "dev"), tok, cfg)[0]
    assert set(single.token_type_ids) == {0} and single.input_ids.count(tok.sep_id) == 1
    stsb = featurise_all(glue.STSB, read_split(glue.STSB, glue_dir, "dev"), tok, cfg)[0]
    assert isinstance(stsb.label, float)


def _finetuned_dir(tmp_path, spm_model, task):
    """A fine-tuned-looking model dir (random head) for `task`, as finetune would save it."""
    src = finetune.load_model_dir(pretrained_dir(tmp_path / "pre", spm_model))
    network = finetune.build_model(task, src.profile, src)
    config = TaskConfig(train_steps=1, max_seq_length=64, eval_batch_size=3)
    return save_model_dir(
        tmp_path / f"ft-{task.name}",
        src.profile,
        network.state_dict(),
        src.spm_model,
        head=finetune.head_info(task, config),
    )


SUBMISSIONS = {
    "cola": (["CoLA.tsv"], {"0", "1"}),
    "sst-2": (["SST-2.tsv"], {"0", "1"}),
    "mrpc": (["MRPC.tsv"], {"0", "1"}),
    "qqp": (["QQP.tsv"], {"0", "1"}),
    "qnli": (["QNLI.tsv"], {"entailment", "not_entailment"}),
    "rte": (["RTE.tsv"], {"entailment", "not_entailment"}),
    "wnli": (["WNLI.tsv"], {"0", "1"}),
    "mnli": (["MNLI-m.tsv", "MNLI-mm.tsv"], {"entailment", "neutral", "contradiction"}),
}


@pytest.mark.parametrize("name", [*SUBMISSIONS, "sts-b"])
def test_eval_and_submission_files(tmp_path, glue_dir, spm_model, name):
    task = get_task(name)
    model = _finetuned_dir(tmp_path, spm_model, task)
    out = tmp_path / "submit"
    result = finetune.evaluate(name, model, glue_dir, predict_dir=out)
    metric_keys = set(result["metrics"])
    assert task.main_metric in metric_keys
    if name == "sts-b":
        files, labels = ["STS-B.tsv"], None
    else:
        files, labels = SUBMISSIONS[name]
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for f in files:
        lines = (out / f).read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) == 6
        assert [line.split("\t")[0] for line in lines[1:]] == ["0", "1", "2", "3", "4"]
        preds = [line.split("\t")[1] for line in lines[1:]]
        if labels is None:
            assert all(len(p.split(".")[1]) == 3 for p in preds)  # scores, 3 decimals
        else:
            assert set(preds) <= labels


def test_ax_uses_the_mnli_model(tmp_path, glue_dir, spm_model):
    model = _finetuned_dir(tmp_path, spm_model, glue.MNLI)
    result = finetune.evaluate("ax", model, glue_dir, predict_dir=tmp_path / "out")
    assert [p.rsplit("/", 1)[1] for p in result["predictions"]] == ["AX.tsv"]
    with pytest.raises(AlbertError, match="no labelled split: give --predict OUT"):
        finetune.evaluate("ax", model, glue_dir)
    with pytest.raises(
        AlbertError, match="model is fine-tuned on mnli; task rte needs a model fine-tuned on rte"
    ):
        finetune.evaluate("rte", model, glue_dir)


def test_vocab_mismatch_is_one_line(tmp_path, spm_model):
    other = train_spm(tmp_path / "other", vocab_size=60)
    model = pretrained_dir(tmp_path / "pre", spm_model)  # 64 embeddings
    bad = tmp_path / "bad"  # spm of 60 pieces beside 64-row weights
    src = finetune.load_model_dir(model)
    save_model_dir(bad, src.profile, src.state_dict, other)
    with pytest.raises(AlbertError) as err:
        finetune.load_tokenizer(finetune.load_model_dir(bad), src.profile)
    assert str(err.value) == (
        f"{bad / 'spiece.model'}: vocabulary has 60 pieces but the model in {bad} has 64 token embeddings "
        "(vocab_size 64): the checkpoint and its tokenizer do not belong together"
    )


def test_micro_profile_matches_fixture():
    assert "model.hidden_size=32" in MICRO and torch.get_num_threads() >= 1


SPEC5 = {  # task: (warmup, lr, steps, batch), SPEC section 5
    "sst-2": (1256, 1e-5, 20935, 32),
    "mnli": (1000, 3e-5, 10000, 128),
    "cola": (320, 1e-5, 5336, 16),
    "qnli": (1986, 1e-5, 33112, 32),
    "qqp": (1000, 5e-5, 14000, 128),
    "rte": (200, 3e-5, 800, 32),
    "sts-b": (214, 2e-5, 3598, 16),
    "mrpc": (200, 2e-5, 800, 32),
}


@pytest.mark.parametrize("name", [*SPEC5, "wnli", "ax"])
def test_task_yaml_defaults(name):
    from albertctl.tasks.base import load_task_config

    cfg = load_task_config(get_task(name))
    assert cfg.max_seq_length == 512 and cfg.optimizer == "adamw"
    if name in SPEC5:
        assert (cfg.warmup_steps, cfg.learning_rate, cfg.train_steps, cfg.batch_size) == SPEC5[name]
    assert load_task_config(get_task(name), ["task.train_steps=7"]).train_steps == 7


def test_datasets_source_offline(tmp_path):
    """A `glue` DatasetDict saved with save_to_disk: int labels become our label strings."""
    datasets = pytest.importorskip("datasets")
    nli = datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])  # the hub's order
    feats = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": nli,
            "idx": datasets.Value("int32"),
        }
    )
    part = {
        "premise": ["a b", "c d", "e f"],
        "hypothesis": ["x", "y", "z"],
        "label": [0, 1, 2],
        "idx": [0, 1, 2],
    }
    test = {**part, "label": [-1, -1, -1]}
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(part, features=feats),
            "validation_matched": datasets.Dataset.from_dict(part, features=feats),
            "test_matched": datasets.Dataset.from_dict(test, features=feats),
        }
    )
    dd.save_to_disk(str(tmp_path / "mnli"))
    dev = read_split(glue.MNLI, tmp_path / "mnli", "dev_matched")
    assert [e.label for e in dev] == ["entailment", "neutral", "contradiction"]
    assert (dev[0].text_a, dev[0].text_b) == ("a b", "x")
    assert [e.label for e in read_split(glue.MNLI, tmp_path / "mnli", "test_matched")] == [None] * 3
    with pytest.raises(AlbertError, match="dataset has no split 'validation_mismatched'"):
        read_split(glue.MNLI, tmp_path / "mnli", "dev_mismatched")

    sst = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )
    datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                {"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]}, features=sst
            )
        }
    ).save_to_disk(str(tmp_path / "sst2"))
    assert [e.label for e in read_split(glue.SST2, tmp_path / "sst2", "dev")] == ["1", "0"]

    datasets.DatasetDict(
        {
            "validation": datasets.Dataset.from_dict(
                {"sentence1": ["a"], "sentence2": ["b"], "label": [3.5], "idx": [0]}
            )
        }
    ).save_to_disk(str(tmp_path / "stsb"))
    assert read_split(glue.STSB, tmp_path / "stsb", "dev")[0].label == 3.5


def test_datasets_parquet_files_offline(tmp_path):
    """The hub's parquet layout downloaded by hand: DIR/rte/validation-00000-of-00001.parquet."""
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
            "idx": datasets.Value("int32"),
        }
    )
    part = datasets.Dataset.from_dict(
        {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0], "idx": [0, 1]}, features=feats
    )
    (tmp_path / "rte").mkdir()
    part.to_parquet(str(tmp_path / "rte" / "validation-00000-of-00001.parquet"))
    dev = read_split(glue.RTE, tmp_path, "dev")
    assert [e.label for e in dev] == ["not_entailment", "entailment"]
