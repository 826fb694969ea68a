"""GLUE: nine sentence(-pair) tasks and the AX diagnostic, as data.

Files come in the layout `download_glue_data.py` writes (`glue_data/MNLI/dev_matched.tsv`, ...);
each task's real columns are declared once in a `Layout`. Files are split on tabs with no
quoting (MRPC and SST-2 sentences hold bare `"`), as the original readers do. The `glue` dataset
in `datasets` is the other source: its integer labels are mapped to the same label strings.

Label strings are those of the TSV files and of the GLUE submission format; the logit order
follows the original `classifier_utils.py` (MNLI: contradiction, entailment, neutral).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from albertctl.core.errors import AlbertError
from albertctl.core.safeload import quote
from albertctl.data.tokenizer import Tokenizer
from albertctl.model.head_kinds import KINDS, HeadKind
from albertctl.tasks.base import Feature, Metrics, Task, TaskConfig, Warn, accuracy, dataset_split, register


@dataclass(frozen=True)
class PairExample:
    guid: str  # the test files' `index` (the submission id), else the row number
    text_a: str
    text_b: str | None
    label: str | float | None  # label string, STS-B score, or None (test)
    where: str = ""  # "file:line", for error messages


@dataclass(frozen=True)
class Layout:
    """Where a split's fields are: header names, or column numbers for header-less files."""

    text_a: str | int
    text_b: str | int | None = None
    label: str | int | None = None
    index: str | int | None = None  # test files: the id the submission file repeats
    header: bool = True


# ---------------------------------------------------------------------------------------------
# reading TSV files


def task_file(data: Path, folder: str, name: str) -> Path:
    """`data` is the glue_data root (holding MNLI/, CoLA/, ...) or one task's own folder."""
    if not (data / folder).is_dir() and (data / name).is_file():
        return data / name
    return data / folder / name


def read_tsv(path: Path, layout: Layout, task: Task) -> list[PairExample]:
    if not path.is_file():
        raise AlbertError(
            f"{path}: not found (expected the GLUE layout, e.g. glue_data/MNLI/dev_matched.tsv)"
        )
    try:  # utf-8-sig: MRPC's train and dev files begin with a byte-order mark
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise AlbertError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines or (layout.header and len(lines) == 1):
        raise AlbertError(f"{path}: empty file (no data rows)")
    columns: dict[str | int, int] = {}
    if layout.header:
        header = lines[0][1].split("\t")
        for key in (layout.text_a, layout.text_b, layout.label, layout.index):
            if key is None:
                continue
            if isinstance(key, int):
                columns[key] = key
            elif key in header:
                columns[key] = header.index(key)
            else:
                raise AlbertError(f"{path}: line 1: missing column '{key}' (header has: {', '.join(header)})")
        lines = lines[1:]
    else:
        columns = {k: k for k in (layout.text_a, layout.text_b, layout.label, layout.index) if k is not None}
    need = max(columns.values()) + 1
    examples = []
    for row, (n, line) in enumerate(lines):
        fields = line.split("\t")
        where = f"{path}:{n}"
        if len(fields) < need:
            raise AlbertError(f"{where}: expected at least {need} tab-separated columns, got {len(fields)}")
        label = None
        if layout.label is not None:
            label = _parse_label(fields[columns[layout.label]], task, where)
        examples.append(
            PairExample(
                guid=fields[columns[layout.index]] if layout.index is not None else str(row),
                text_a=fields[columns[layout.text_a]],
                text_b=fields[columns[layout.text_b]] if layout.text_b is not None else None,
                label=label,
                where=where,
            )
        )
    return examples


SCORE_RANGE = (0.0, 5.0)  # STS-B similarity scores (the one regression task)


def _parse_label(raw: str, task: Task, where: str) -> str | float:
    raw = raw.strip()
    if task.kind.regression:
        try:
            score = float(raw[:100])
        except ValueError:
            raise AlbertError(f"{where}: label {quote(raw)} is not a number (STS-B scores are 0-5)") from None
        return check_score(score, raw, where)
    if raw not in task.labels:
        raise AlbertError(f"{where}: unknown label {quote(raw)} (expected one of: {', '.join(task.labels)})")
    return raw


def check_score(score: float, raw: object, where: str) -> float:
    """A regression target inside SCORE_RANGE: NaN, inf or 7.5 are refused here, at read
    time, not as a non-finite loss once training has started."""
    low, high = SCORE_RANGE
    if not low <= score <= high:  # False for NaN too
        raise AlbertError(f"{where}: label {quote(raw)} is outside 0-5 (STS-B scores are 0-5)")
    return score


@dataclass(frozen=True)
class GlueSpec:
    """One GLUE task's files: its folder, the layout of labelled and of test files, file names."""

    folder: str
    labelled: Layout
    test: Layout
    files: dict[str, str]  # split -> file name (relative to the folder)
    hub_splits: dict[str, str]  # our split -> the `glue` dataset's split
    hub_columns: tuple[str, str | None]


def read_files(
    spec: GlueSpec, task_name: str, data: Path, split: str, warn: Warn | None = None
) -> list[PairExample]:
    """Examples of one split's TSV file; a bad row is an error, so nothing goes to `warn`."""
    task = TASKS[task_name]
    if split not in spec.files:
        raise AlbertError(f"task {task.name} has no split '{split}' (have: {', '.join(spec.files)})")
    layout = spec.test if split.startswith("test") else spec.labelled
    path = task_file(data, spec.folder, spec.files[split])
    if task.name == "ax" and not path.is_file():  # also accept AX/AX.tsv or a lone AX.tsv
        for alt in (task_file(data, "AX", "AX.tsv"), task_file(data, "AX", "test.tsv")):
            if alt.is_file():
                path = alt
                break
    return read_tsv(path, layout, task)


def read_datasets(
    spec: GlueSpec, task_name: str, dataset: Any, split: str, warn: Warn | None = None
) -> list[PairExample]:
    """Examples from a `glue` DatasetDict; its integer labels become our label strings (a bad
    row is an error, so nothing goes to `warn`)."""
    task = TASKS[task_name]
    hub_split = spec.hub_splits.get(split)
    a, b = spec.hub_columns
    columns = [c for c in (a, b, "label") if c is not None]
    part = dataset_split(dataset, hub_split, columns, split, f" for task {task.name}")
    names = getattr(part.features["label"], "names", None)
    to_label = _hub_label_map(task, names)
    examples = []
    for i, row in enumerate(part):
        raw = row["label"]
        if task.kind.regression:
            label = (
                None
                if split.startswith("test") or raw is None or raw < 0
                else check_score(float(raw), raw, f"{hub_split} row {i}")
            )
        else:
            label = None if raw is None or raw < 0 else to_label(raw, f"{hub_split} row {i}")
        examples.append(
            PairExample(
                guid=str(row.get("idx", i)),
                text_a=row[a],
                text_b=row[b] if b is not None else None,
                label=label,
                where=f"{hub_split} row {i}",
            )
        )
    return examples


def _hub_label_map(task: Task, names: list[str] | None):
    """ClassLabel ints -> our strings: by name when the names are ours (MNLI, QNLI, RTE),
    else the integer itself (CoLA, SST-2, MRPC, QQP, WNLI use 0/1 in the TSV files too)."""
    by_name = names is not None and all(n in task.labels for n in names)

    def convert(value: int, where: str) -> str:
        text = names[value] if by_name else str(value)  # type: ignore[index]
        if text not in task.labels:
            raise AlbertError(f"{where}: unknown label {text!r} (expected one of: {', '.join(task.labels)})")
        return text

    return convert


# ---------------------------------------------------------------------------------------------
# features, metrics, submissions


def pair_features(
    task_name: str, example: PairExample, tokenizer: Tokenizer, config: TaskConfig
) -> list[Feature]:
    """`[CLS] a [SEP] b [SEP]`, the longer side truncated first; label -> class id or score."""
    ids, types = tokenizer.encode_pair(example.text_a, example.text_b, config.max_seq_length)
    task = TASKS[task_name]
    if example.label is None:
        label = None
    elif task.kind.regression:
        label = float(example.label)
    else:
        label = task.label_id(str(example.label))
    return [Feature(ids, types, label)]


def _golds(examples: Sequence[PairExample]) -> list[Any]:
    golds = [e.label for e in examples]
    if any(g is None for g in golds):
        raise AlbertError("cannot score a split without labels (test sets are for --predict)")
    return golds


def accuracy_metrics(examples: Sequence[PairExample], preds: Sequence[str]) -> dict[str, float]:
    return {"accuracy": accuracy(_golds(examples), preds)}


def f1_accuracy(examples: Sequence[PairExample], preds: Sequence[str]) -> dict[str, float]:
    """MRPC and QQP: F1 of the positive class "1", and accuracy."""
    from sklearn.metrics import f1_score  # ~2 s to import: only when a GLUE metric runs

    golds = _golds(examples)
    f1 = f1_score(golds, list(preds), pos_label="1", labels=["0", "1"], zero_division=0.0)
    return {"f1": float(f1), "accuracy": accuracy(golds, preds)}


def matthews(examples: Sequence[PairExample], preds: Sequence[str]) -> dict[str, float]:
    """CoLA: Matthews correlation (0 when every prediction is the same class)."""
    from sklearn.metrics import matthews_corrcoef

    golds = _golds(examples)
    return {"mcc": float(matthews_corrcoef(golds, list(preds))), "accuracy": accuracy(golds, preds)}


def pearson_spearman(examples: Sequence[PairExample], preds: Sequence[float]) -> dict[str, float]:
    """STS-B: Pearson and Spearman correlation of predicted and gold scores."""
    from scipy.stats import pearsonr, spearmanr  # ~3 s to import: only when STS-B is scored

    golds = np.asarray(_golds(examples), dtype=np.float64)
    scores = np.asarray(preds, dtype=np.float64)
    if len(golds) < 2 or np.ptp(scores) == 0 or np.ptp(golds) == 0:
        return {"pearson": 0.0, "spearman": 0.0}  # undefined for constant inputs; report no correlation
    return {"pearson": float(pearsonr(golds, scores)[0]), "spearman": float(spearmanr(golds, scores)[0])}


# submission file names of the GLUE server, per (task, test split)
SUBMISSION_NAMES = {
    ("mnli", "test_matched"): "MNLI-m.tsv",
    ("mnli", "test_mismatched"): "MNLI-mm.tsv",
}


def submission_name(task: Task, split: str) -> str:
    return SUBMISSION_NAMES.get((task.name, split), f"{task.display}.tsv")


def write_submission(
    task_name: str, out_dir: Path, split: str, examples: Sequence[PairExample], preds: Sequence[Any]
) -> Path:
    """`index<TAB>prediction` rows: label strings, or STS-B scores with 3 decimals."""
    task = TASKS[task_name]
    path = Path(out_dir) / submission_name(task, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["index\tprediction"]
    for example, pred in zip(examples, preds, strict=True):
        rows.append(f"{example.guid}\t{pred:.3f}" if task.kind.regression else f"{example.guid}\t{pred}")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# the tasks

TASKS: dict[str, Task] = {}
_PAIR = ("sentence1", "sentence2")
_NLI_LABELS = ("contradiction", "entailment", "neutral")


def _glue(
    name: str,
    display: str,
    spec: GlueSpec,
    labels: tuple[str, ...],
    metrics: Metrics,
    main_metric: str,
    head: HeadKind = "classify",
    hub_config: str | None = None,
    dev_splits: dict[str, str] | None = None,
    test_splits: tuple[str, ...] = ("test",),
    train_split: str | None = "train",
    model_from: str = "",
    config_name: str = "",
    aliases: tuple[str, ...] = (),
) -> Task:
    task = Task(
        name=name,
        display=display,
        head=head,
        num_labels=1 if KINDS[head].regression else len(labels),
        main_metric=main_metric,
        read_files=partial(read_files, spec, name),
        featurise=partial(pair_features, name),
        metrics=metrics,
        labels=labels,
        read_datasets=partial(read_datasets, spec, name),
        hub=("nyu-mll/glue", hub_config or name.replace("-", "")),
        train_split=train_split,
        dev_splits=dev_splits if dev_splits is not None else {"dev": ""},
        test_splits=test_splits,
        write_predictions=partial(write_submission, name),
        config_name=config_name,
        group="glue",
        aliases=aliases,
        model_from=model_from,
    )
    TASKS[name] = register(task)
    return task


def _spec(
    folder: str,
    labelled: Layout,
    test: Layout,
    splits: tuple[str, ...] = ("train", "dev", "test"),
    files: dict[str, str] | None = None,
    hub_columns: tuple[str, str | None] = _PAIR,
) -> GlueSpec:
    hub = {
        "train": "train",
        "dev": "validation",
        "test": "test",
        "dev_matched": "validation_matched",
        "dev_mismatched": "validation_mismatched",
        "test_matched": "test_matched",
        "test_mismatched": "test_mismatched",
    }
    return GlueSpec(
        folder,
        labelled,
        test,
        files or {s: f"{s}.tsv" for s in splits},
        {s: hub[s] for s in (files or {s: "" for s in splits})},
        hub_columns,
    )


_BINARY = ("0", "1")
_ENTAIL = ("entailment", "not_entailment")

MNLI = _glue(
    "mnli",
    "MNLI",
    _spec(
        "MNLI",
        labelled=Layout("sentence1", "sentence2", label="gold_label"),
        test=Layout("sentence1", "sentence2", index="index"),
        splits=("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"),
        hub_columns=("premise", "hypothesis"),
    ),
    labels=_NLI_LABELS,
    metrics=accuracy_metrics,
    main_metric="accuracy_m",
    dev_splits={"dev_matched": "m", "dev_mismatched": "mm"},
    test_splits=("test_matched", "test_mismatched"),
)
QNLI = _glue(
    "qnli",
    "QNLI",
    _spec(
        "QNLI",
        labelled=Layout("question", "sentence", label="label"),
        test=Layout("question", "sentence", index="index"),
        hub_columns=("question", "sentence"),
    ),
    labels=_ENTAIL,
    metrics=accuracy_metrics,
    main_metric="accuracy",
)
QQP = _glue(
    "qqp",
    "QQP",
    _spec(
        "QQP",
        labelled=Layout("question1", "question2", label="is_duplicate"),
        test=Layout("question1", "question2", index="id"),
        hub_columns=("question1", "question2"),
    ),
    labels=_BINARY,
    metrics=f1_accuracy,
    main_metric="accuracy",
)
RTE = _glue(
    "rte",
    "RTE",
    _spec(
        "RTE",
        labelled=Layout("sentence1", "sentence2", label="label"),
        test=Layout("sentence1", "sentence2", index="index"),
    ),
    labels=_ENTAIL,
    metrics=accuracy_metrics,
    main_metric="accuracy",
)
SST2 = _glue(
    "sst-2",
    "SST-2",
    _spec(
        "SST-2",
        labelled=Layout("sentence", label="label"),
        test=Layout("sentence", index="index"),
        hub_columns=("sentence", None),
    ),
    labels=_BINARY,
    metrics=accuracy_metrics,
    main_metric="accuracy",
    hub_config="sst2",
    aliases=("sst2", "sst"),
)
MRPC = _glue(
    "mrpc",
    "MRPC",
    _spec(
        "MRPC",
        labelled=Layout("#1 String", "#2 String", label="Quality"),
        test=Layout("#1 String", "#2 String", index="index"),
    ),
    labels=_BINARY,
    metrics=f1_accuracy,
    main_metric="accuracy",
)
COLA = _glue(
    "cola",
    "CoLA",
    _spec(
        "CoLA",
        # train and dev have no header: source, label, the original judgement mark, sentence
        labelled=Layout(3, label=1, header=False),
        test=Layout("sentence", index="index"),
        hub_columns=("sentence", None),
    ),
    labels=_BINARY,
    metrics=matthews,
    main_metric="mcc",
)
STSB = _glue(
    "sts-b",
    "STS-B",
    _spec(
        "STS-B",
        labelled=Layout("sentence1", "sentence2", label="score"),
        test=Layout("sentence1", "sentence2", index="index"),
    ),
    head="regress",
    labels=(),
    metrics=pearson_spearman,
    main_metric="pearson",
    hub_config="stsb",
    aliases=("stsb", "sts"),
)
WNLI = _glue(
    "wnli",
    "WNLI",
    _spec(
        "WNLI",
        labelled=Layout("sentence1", "sentence2", label="label"),
        test=Layout("sentence1", "sentence2", index="index"),
    ),
    labels=_BINARY,  # 1 = entailment, as the `glue` dataset's ClassLabel
    metrics=accuracy_metrics,
    main_metric="accuracy",
)
AX = _glue(  # the diagnostic set: test only, predicted with the MNLI model, MNLI's labels
    "ax",
    "AX",
    _spec(
        "diagnostic",
        labelled=Layout("sentence1", "sentence2"),
        test=Layout("sentence1", "sentence2", index="index"),
        files={"test": "diagnostic.tsv"},
        hub_columns=("premise", "hypothesis"),
    ),
    labels=_NLI_LABELS,
    metrics=accuracy_metrics,
    main_metric="accuracy",
    train_split=None,
    dev_splits={},
    model_from="mnli",
    config_name="mnli",
    aliases=("diagnostic",),
)


# ---------------------------------------------------------------------------------------------
# the paper's table


GLUE_COLUMNS = [  # (column, task, metric keys) in the ALBERT paper's order
    ("MNLI-m/mm", "mnli", ("accuracy_m", "accuracy_mm")),
    ("QNLI", "qnli", ("accuracy",)),
    ("QQP", "qqp", ("f1", "accuracy")),
    ("RTE", "rte", ("accuracy",)),
    ("SST-2", "sst-2", ("accuracy",)),
    ("MRPC", "mrpc", ("f1", "accuracy")),
    ("CoLA", "cola", ("mcc",)),
    ("STS-B", "sts-b", ("pearson", "spearman")),
    ("WNLI", "wnli", ("accuracy",)),
]


def paper_table(by_task: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The paper's GLUE table from each task's dev metrics, one row per task in its column
    order: scores x100, pairs as a/b, and the average (a pair counts as its mean, as the GLUE
    leaderboard averages)."""
    rows, scores = [], []
    for column, name, keys in GLUE_COLUMNS:
        if name not in by_task:
            continue
        values = [100 * by_task[name][k] for k in keys if k in by_task[name]]
        rows.append(
            {
                "task": column,
                "metrics": "/".join(k for k in keys if k in by_task[name]),
                "dev": "/".join(f"{v:.1f}" for v in values) if values else "-",
            }
        )
        if values:
            scores.append(float(np.mean(values)))
    return {"rows": rows, "average": round(float(np.mean(scores)), 1) if scores else None}
