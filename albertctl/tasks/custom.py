"""Your own data: classification, regression, extractive QA and multiple choice, as data.

Four task templates are registered: `classify` (one text or a pair -> one of N labels),
`regress` (one text or a pair -> a number), `qa` (SQuAD-format JSON, v1 or v2 style) and
`choice` (a question, optionally a context, and N = 2-5 options per row). A template is bound
(`bind`) to the user's files and columns before use; the bound task is an ordinary `Task`, so
the one training loop, the heads, dynamic padding, checkpoints, resume and `--set task.*` work
as for GLUE. What it was bound with (kind, columns, labels in logit order, label format, SQuAD
version) goes into the fine-tuned model's manifest (`head.data`), so `eval` maps the model's
outputs back to the user's own label values.

Sources (`--data`, `--validation`, `eval --data`): CSV (`.csv`), TSV (`.tsv`, `.tab`) with a
header row and standard quoting; JSON Lines (`.jsonl`, `.ndjson`); JSON (`.json`: a list of
objects, an object holding one such list, or JSON Lines); Parquet; a `datasets` save_to_disk
directory; or a hub dataset name. `SOURCE:SPLIT` picks a split of a directory or hub dataset
(default: train for `--data`, validation for `--validation`, test for `eval --predict`).
`qa` reads SQuAD-format JSON files only (squad.py's reader; v2 when the training file has an
unanswerable question).

Labels: given in order with `--labels a,b,c`, else discovered from the training file and
sorted (numerically when every label is an integer, else as text). A label in the dev file
that training lacks is an error; labels absent from dev are fine. Choice labels are the right
option's letter (A-E) or its 0-based index, and predictions come back in the same form.

Long inputs are truncated, never dropped: a sentence pair loses tokens from the end of its
longer side until it fits `max_seq_length` (as GLUE); a choice row keeps question+option
(`max_qa_length`) and cuts the context from its end (as RACE); QA contexts are read in
overlapping windows (as SQuAD) and only an over-long question is cut (`max_query_length`).
Every truncated example is counted in a warning and flagged `truncated` in the predictions.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from albertctl.core.errors import AlbertError
from albertctl.data.tokenizer import Tokenizer, truncate_longest_first
from albertctl.tasks import race, squad
from albertctl.tasks.base import Feature, Task, TaskConfig, Warn, accuracy, pass_on, register
from albertctl.tasks.glue import pearson_spearman

HEADS = {"classify": "classify", "regress": "regress", "qa": "span", "choice": "choice"}
ID_COLUMNS = ("id", "idx", "guid")  # used as the row id when present and no --id-column is given
LETTERS = "ABCDE"
MAX_OPTIONS = len(LETTERS)
DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet")
# the column options each kind takes (CLI: --text-column, --label-column, ...)
OPTIONS = {
    "classify": ("text_column", "label_column", "id_column", "labels"),
    "regress": ("text_column", "label_column", "id_column"),
    "choice": ("text_column", "question_column", "option_columns", "label_column", "id_column"),
    "qa": (),
}
DEFAULTS = {"text_column": "text", "label_column": "label", "question_column": "question"}


# ---------------------------------------------------------------------------------------------
# tables: rows of named values from any source, each row with a location for messages


@dataclass(frozen=True)
class Table:
    source: str  # names the source in messages
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    where: list[str]  # per row: "train.csv:3", "data.parquet row 2"


def read_table(source: str, default_split: str) -> Table:
    """Rows of a CSV/TSV/JSONL/JSON/Parquet file, a save_to_disk directory or a hub dataset."""
    name, split = _split_source(str(source), default_split)
    path = Path(name)
    if path.is_dir():
        return _read_saved(path, split)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv", ".tab"):
            return _read_delimited(path, "," if suffix == ".csv" else "\t")
        if suffix in (".jsonl", ".ndjson"):
            return _read_json_lines(path, _read_text(path))
        if suffix == ".json":
            return _read_json(path)
        if suffix == ".parquet":
            return _read_parquet(path)
        raise AlbertError(
            f"{path}: unknown file type '{suffix or path.name}' (expected {', '.join(DATA_SUFFIXES)})"
        )
    if path.suffix.lower() in DATA_SUFFIXES or name.startswith((".", "/", "~")):
        raise AlbertError(f"{name}: file not found")
    return _read_hub(name, split)


def _split_source(source: str, default: str) -> tuple[str, str]:
    if Path(source).exists() or ":" not in source:
        return source, default
    name, _, split = source.rpartition(":")
    return name, split


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise AlbertError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _table(source: str, rows: list[dict[str, Any]], where: list[str]) -> Table:
    if not rows:
        raise AlbertError(f"{source}: empty file (no data rows)")
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return Table(source, tuple(columns), rows, where)


def _read_delimited(path: Path, delimiter: str) -> Table:
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows, where = [], []
    try:
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            if header is None:
                header = [h.strip() for h in fields]
                dupes = sorted({h for h in header if header.count(h) > 1})
                if dupes:
                    raise AlbertError(
                        f"{path}:{reader.line_num}: column '{dupes[0]}' appears twice in the header"
                    )
                continue
            if len(fields) != len(header):
                raise AlbertError(
                    f"{path}:{reader.line_num}: {len(fields)} fields, but the header has {len(header)} "
                    f"({', '.join(header)})"
                )
            rows.append(dict(zip(header, fields, strict=True)))
            where.append(f"{path}:{reader.line_num}")
    except csv.Error as err:
        raise AlbertError(f"{path}:{reader.line_num}: {err}") from None
    if header is not None and not rows:
        raise AlbertError(f"{path}: empty file (a header, no data rows)")
    return _table(str(path), rows, where)


def _object_rows(path: Path, items: list[Any], where: list[str]) -> Table:
    for item, at in zip(items, where, strict=True):
        if not isinstance(item, dict):
            raise AlbertError(f"{at}: expected a JSON object of column: value, got {type(item).__name__}")
    return _table(str(path), items, where)


def _read_json_lines(path: Path, text: str) -> Table:
    items, where = [], []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise AlbertError(f"{path}:{n}: not JSON ({err.msg} at column {err.colno})") from None
        where.append(f"{path}:{n}")
    return _object_rows(path, items, where)


def _read_json(path: Path) -> Table:
    text = _read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON Lines in a .json file (datasets' to_json writes these)
            return _read_json_lines(path, text)
        raise AlbertError(f"{path}: not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise AlbertError(f"{path}: expected a list of objects (or an object holding one list of them)")
        obj = lists[0]
    if not isinstance(obj, list):
        raise AlbertError(f"{path}: expected a list of objects, got {type(obj).__name__}")
    return _object_rows(path, obj, [f"{path} row {i}" for i in range(1, len(obj) + 1)])


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # a corrupt or foreign file is the user's to fix
        raise AlbertError(f"{path}: cannot read parquet ({str(err).splitlines()[0]})") from None
    return _table(str(path), rows, [f"{path} row {i}" for i in range(1, len(rows) + 1)])


def _dataset_table(source: str, dataset: Any) -> Table:
    rows = list(dataset)
    if not rows:
        raise AlbertError(f"{source}: no rows")
    return Table(
        source, tuple(dataset.column_names), rows, [f"{source} row {i}" for i in range(1, len(rows) + 1)]
    )


def _pick_split(dataset: Any, split: str, source: str) -> Any:
    if not hasattr(dataset, "column_names") or isinstance(dataset.column_names, dict):  # a DatasetDict
        if split not in dataset:
            raise AlbertError(
                f"{source}: no split '{split}' (have: {', '.join(dataset)}); give {source}:SPLIT"
            )
        return dataset[split]
    return dataset


def _read_saved(path: Path, split: str) -> Table:
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise AlbertError(f"{path}: not a saved datasets directory ({str(err).splitlines()[0]})") from None
    return _dataset_table(f"{path} split {split}", _pick_split(dataset, split, str(path)))


def _read_hub(name: str, split: str) -> Table:
    import datasets

    from albertctl.core.hub import quiet_hub_logs

    try:
        with quiet_hub_logs():
            dataset = datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, unknown name or split: all the user's to fix
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AlbertError(f"{name}: not a file, and cannot load it as a hub dataset ({first})") from None
    return _dataset_table(f"{name} split {split}", dataset)


def require_columns(table: Table, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in table.columns:
            raise AlbertError(f"{table.source}: no column '{column}' (have: {', '.join(table.columns)})")


def _value(table: Table, i: int, column: str) -> Any:
    row = table.rows[i]
    if column not in row:
        raise AlbertError(f"{table.where[i]}: no value for column '{column}'")
    return row[column]


def _text(table: Table, i: int, column: str) -> str:
    value = _value(table, i, column)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    what = "empty (null)" if value is None else f"a {type(value).__name__}"
    raise AlbertError(f"{table.where[i]}: column '{column}' is {what}, expected text")


def _label(table: Table, i: int, column: str) -> Any:
    """A non-empty scalar label value (strings stripped)."""
    value = _value(table, i, column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AlbertError(f"{table.where[i]}: column '{column}': empty label")
    if not isinstance(value, str | int | float | bool):
        raise AlbertError(f"{table.where[i]}: column '{column}': label is a {type(value).__name__}")
    return value.strip() if isinstance(value, str) else value


def _row_id(table: Table, i: int, column: str | None) -> str | None:
    if column is None:
        return None
    value = _value(table, i, column)
    return None if value is None else str(value)


def _id_column(table: Table, given: str | None) -> str | None:
    if given is not None:
        require_columns(table, [given])
        return given
    return next((c for c in ID_COLUMNS if c in table.columns), None)


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


# ---------------------------------------------------------------------------------------------
# examples and predictions


@dataclass(frozen=True)
class RowExample:
    """One row: classify/regress `texts` (one or two); choice: `texts` = (context,) or (),
    `question` and `options`. `label`: label string, float score, option index, or None."""

    row: int  # 0-based position in the source: predictions keep this order
    guid: str | None  # the id column's value
    texts: tuple[str, ...]
    label: str | float | int | None
    where: str
    question: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prediction:
    label: Any  # what metrics compare: label string, score, option index, answer text
    value: Any  # what the user gets back: their label value, score, A-E or index, answer text
    scores: dict[str, float] | list[float] | None = None  # class / option probabilities
    truncated: bool = False
    detail: Any = None  # qa: the SquadPrediction


def _labels_in_order(values: Sequence[Any]) -> list[Any]:
    """Distinct label values, sorted numerically when all are integers, else as text."""
    distinct: dict[str, Any] = {}
    for v in values:
        distinct.setdefault(str(v), v)

    def is_int(v: Any) -> bool:
        return (isinstance(v, int) and not isinstance(v, bool)) or bool(re.fullmatch(r"[-+]?\d+", str(v)))

    if all(is_int(v) for v in distinct.values()):
        return sorted(distinct.values(), key=lambda v: int(v))
    return sorted(distinct.values(), key=str)


def _check_types(table: Table, column: str, values: Sequence[Any]) -> None:
    first = type(values[0])
    for i, v in enumerate(values):
        if type(v) is not first:
            raise AlbertError(
                f"{table.where[i]}: column '{column}': label {v!r} is a {type(v).__name__} but "
                f"{table.where[0]} holds a {first.__name__} (mixed types)"
            )


def _score(table: Table, i: int, column: str) -> float:
    value = _label(table, i, column)
    try:
        if isinstance(value, bool):
            raise ValueError
        score = float(value)
    except ValueError:
        raise AlbertError(f"{table.where[i]}: column '{column}': {value!r} is not a number") from None
    if not math.isfinite(score):
        raise AlbertError(f"{table.where[i]}: column '{column}': {value!r} is not a finite number")
    return score


def _option_label(table: Table, i: int, column: str, n: int) -> tuple[int, str]:
    """(index, "letter" | "index") of a choice label: A-E (any case) or a 0-based index."""
    value = _label(table, i, column)
    text = str(value).strip()
    if isinstance(value, str) and len(text) == 1 and text.upper() in LETTERS[:n]:
        return LETTERS.index(text.upper()), "letter"
    if not isinstance(value, bool) and re.fullmatch(r"\d+", text) and int(text) < n:
        return int(text), "index"
    raise AlbertError(
        f"{table.where[i]}: column '{column}': answer {value!r} is not one of "
        f"{', '.join(LETTERS[:n])} or an option index 0-{n - 1}"
    )


# ---------------------------------------------------------------------------------------------
# reading each kind


@dataclass
class Columns:
    """The bound columns and labels; `to_spec` is what the manifest records."""

    kind: str
    text: tuple[str, ...] = ()
    label: str = "label"
    id: str | None = None
    question: str = "question"
    options: tuple[str, ...] = ()
    label_values: list[Any] | None = None  # classify: in logit order
    label_format: str = ""  # choice: "letter" | "index"
    qa_version: int = 0

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind}
        if self.kind != "qa":
            spec.update(text_columns=list(self.text), label_column=self.label, id_column=self.id)
        if self.kind == "choice":
            spec.update(question_column=self.question, option_columns=list(self.options))
            spec["label_format"] = self.label_format
        if self.kind == "classify":
            spec["label_values"] = self.label_values
        if self.kind == "qa":
            spec["qa_version"] = self.qa_version
        return spec


def _columns(kind: str, options: dict[str, Any], stored: Mapping[str, Any] | None) -> Columns:
    data = (stored or {}).get("data") or {}
    cols = Columns(kind)
    cols.text = _list(options.get("text_column")) or _list(data.get("text_columns"))
    if not cols.text and kind != "choice":
        cols.text = (DEFAULTS["text_column"],)
    if len(cols.text) > (1 if kind == "choice" else 2):
        most = "one context column" if kind == "choice" else "one text column or a pair"
        raise AlbertError(f"--text-column: give {most}, got {', '.join(cols.text)}")
    cols.label = options.get("label_column") or data.get("label_column") or DEFAULTS["label_column"]
    cols.id = options.get("id_column") or data.get("id_column")
    cols.question = (
        options.get("question_column") or data.get("question_column") or DEFAULTS["question_column"]
    )
    cols.options = _list(options.get("option_columns")) or _list(data.get("option_columns"))
    if kind == "choice" and not cols.options:
        raise AlbertError("choice needs --option-columns A,B,C (or one column holding a list of options)")
    if len(cols.options) > MAX_OPTIONS:
        raise AlbertError(f"--option-columns: at most {MAX_OPTIONS} options, got {len(cols.options)}")
    cols.label_values = data.get("label_values")
    cols.label_format = data.get("label_format", "")
    cols.qa_version = int(data.get("qa_version", 0))
    return cols


def _read_rows(cols: Columns, table: Table, labelled: bool, train: bool) -> list[RowExample]:
    needed = [*cols.text, *([cols.label] if labelled else [])]
    if cols.kind == "choice":
        needed += [cols.question, *cols.options]
    require_columns(table, needed)
    id_column = _id_column(table, cols.id) if not train else None
    n = len(table.rows)
    if cols.kind == "classify" and labelled:
        raw = [_label(table, i, cols.label) for i in range(n)]
        _check_types(table, cols.label, raw)
        if train and cols.label_values is None:
            cols.label_values = _labels_in_order(raw)
        known = [str(v) for v in cols.label_values or []]
        for i, v in enumerate(raw):
            if str(v) not in known:
                what = "the given --labels" if train else "the training labels"
                raise AlbertError(
                    f"{table.where[i]}: column '{cols.label}': label {v!r} is not among {what} "
                    f"(have: {', '.join(known)})"
                )
        labels: list[Any] = [str(v) for v in raw]
    elif cols.kind == "regress" and labelled:
        labels = [_score(table, i, cols.label) for i in range(n)]
    else:
        labels = [None] * n
    out = []
    for i in range(n):
        texts = tuple(_text(table, i, c) for c in cols.text)
        question, options = "", ()
        if cols.kind == "choice":
            question = _text(table, i, cols.question)
            options = _options(cols, table, i)
            if labelled:
                labels[i], form = _option_label(table, i, cols.label, len(options))
                if train and not cols.label_format:
                    cols.label_format = form
                elif form != cols.label_format:
                    raise AlbertError(
                        f"{table.where[i]}: column '{cols.label}': answer {_value(table, i, cols.label)!r} "
                        f"is an option {form} but the answers before are option {cols.label_format}s (mixed types)"
                    )
        out.append(
            RowExample(i, _row_id(table, i, id_column), texts, labels[i], table.where[i], question, options)
        )
    return out


def _options(cols: Columns, table: Table, i: int) -> tuple[str, ...]:
    if len(cols.options) == 1:  # one column holding the list of options
        value = _value(table, i, cols.options[0])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise AlbertError(
                f"{table.where[i]}: column '{cols.options[0]}' must hold a list of option texts"
            )
        options = tuple(value)
    else:
        options = tuple(_text(table, i, c) for c in cols.options)
    first = len(_options(cols, table, 0)) if i else len(options)
    if not 2 <= len(options) <= MAX_OPTIONS or len(options) != first:
        raise AlbertError(
            f"{table.where[i]}: {len(options)} options; every row needs the same number, 2-{MAX_OPTIONS} "
            f"({table.where[0]} has {first})"
        )
    return options


# ---------------------------------------------------------------------------------------------
# QA: SQuAD-format JSON through squad.py


def _read_squad(
    path: Any, version: int, labelled: bool | None, warn: Warn | None = None
) -> tuple[list[squad.SquadExample], bool]:
    """Examples of a SQuAD-format file; an unlabelled file (no question has `answers`) reads as
    questions without answers. Returns (examples, labelled); what was skipped goes to `warn`."""
    path = Path(str(path))
    if not path.is_file():
        raise AlbertError(f"{path}: file not found (qa reads SQuAD-format JSON files)")
    try:
        obj = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise AlbertError(f"{path}: not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    qas = [
        qa
        for article in (obj.get("data") if isinstance(obj, dict) else None) or []
        for paragraph in (article.get("paragraphs") or [] if isinstance(article, dict) else [])
        for qa in (paragraph.get("qas") or [] if isinstance(paragraph, dict) else [])
        if isinstance(qa, dict)
    ]
    has_answers = any("answers" in qa for qa in qas)
    if labelled is None:
        labelled = has_answers
    if not labelled:
        for qa in qas:
            qa["answers"] = []
            qa.pop("is_impossible", None)
    report = squad.parse_squad(obj, str(path), version)
    pass_on(warn, report.warnings)
    examples = report.examples
    if not examples:
        raise AlbertError(f"{path}: no usable SQuAD questions")
    return examples, labelled


def _qa_features(example: squad.SquadExample, tokenizer: Tokenizer, config: TaskConfig) -> list[Feature]:
    cut = len(tokenizer.encode(example.question)) > config.max_query_length
    return [
        replace(f, extra={**f.extra, "truncated": cut})
        for f in squad.span_features(example, tokenizer, config)
    ]


def _qa_postprocess(
    version: int,
    examples: Sequence[squad.SquadExample],
    features: Sequence[Feature],
    outputs: Sequence[np.ndarray],
    config: TaskConfig,
) -> list[Prediction]:
    cut = {f.example_index for f in features if f.extra.get("truncated")}
    return [
        Prediction(p.text, p.text, None, i in cut, p)
        for i, p in enumerate(squad.decode(version, examples, features, outputs, config))
    ]


def _qa_metrics(version: int, examples: Sequence[squad.SquadExample], preds: Sequence[Prediction]):
    return squad.prediction_metrics(version, examples, [p.detail for p in preds])


# ---------------------------------------------------------------------------------------------
# features, decoding, metrics


def text_features(
    kind: str, labels: tuple[str, ...], example: RowExample, tokenizer: Tokenizer, config: TaskConfig
):
    """`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, the longer side cut first (as GLUE)."""
    a = tokenizer.encode(example.texts[0])
    b = tokenizer.encode(example.texts[1]) if len(example.texts) > 1 else None
    if b is None:
        truncated = len(a) > config.max_seq_length - 2
        a = a[: config.max_seq_length - 2]
    else:
        total = len(a) + len(b)
        a, b = truncate_longest_first(a, b, config.max_seq_length - 3)
        truncated = len(a) + len(b) < total
    ids, types = tokenizer.build_inputs(a, b)
    label: int | float | None = None
    if example.label is not None:
        label = float(example.label) if kind == "regress" else labels.index(str(example.label))
    return [Feature(ids, types, label, extra={"truncated": truncated})]


def choice_features(example: RowExample, tokenizer: Tokenizer, config: TaskConfig) -> list[Feature]:
    """RACE's features: `[CLS] context [SEP] question+option [SEP]` per option."""
    context = example.texts[0] if example.texts else ""
    as_race = race.RaceExample(
        str(example.row),
        "",
        context,
        example.question,
        example.options,
        example.label,  # type: ignore[arg-type]
    )
    [feature] = race.choice_features(as_race, tokenizer, config)
    n_context = len(tokenizer.encode(context))
    truncated = any(
        (n := len(tokenizer.encode(race.question_option(example.question, o)))) > config.max_qa_length
        or 3 + n_context + n > config.max_seq_length
        for o in example.options
    )
    return [replace(feature, extra={"truncated": truncated})]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - np.max(x))
    return e / e.sum()


def postprocess(
    kind: str,
    labels: tuple[str, ...],
    values: tuple[Any, ...],
    label_format: str,
    examples: Sequence[RowExample],
    features: Sequence[Feature],
    outputs: Sequence[np.ndarray],
    config: TaskConfig,
) -> list[Prediction]:
    preds: list[Any] = [None] * len(examples)
    for feature, out in zip(features, outputs, strict=True):
        cut = bool(feature.extra.get("truncated"))
        if kind == "regress":
            pred = Prediction(float(out), float(out), None, cut)
        else:
            probs = _softmax(out)
            k = int(np.argmax(out))
            if kind == "classify":
                pred = Prediction(
                    labels[k], values[k], {labels[i]: float(p) for i, p in enumerate(probs)}, cut
                )
            else:
                pred = Prediction(
                    k, LETTERS[k] if label_format == "letter" else k, [float(p) for p in probs], cut
                )
        preds[feature.example_index] = pred
    return preds


def _golds(examples: Sequence[RowExample]) -> list[Any]:
    golds = [e.label for e in examples]
    if any(g is None for g in golds):
        raise AlbertError("cannot score rows without labels (give --predict OUT to predict them)")
    return golds


def classify_metrics(examples: Sequence[RowExample], preds: Sequence[Prediction]) -> dict[str, float]:
    """accuracy, and macro_f1 over the labels that occur in the gold or predicted labels."""
    from sklearn.metrics import f1_score

    golds, guesses = _golds(examples), [p.label for p in preds]
    present = sorted(set(golds) | set(guesses))
    f1 = f1_score(golds, guesses, labels=present, average="macro", zero_division=0.0)
    return {"accuracy": accuracy(golds, guesses), "macro_f1": float(f1)}


def per_class(
    labels: tuple[str, ...], examples: Sequence[RowExample], preds: Sequence[Prediction]
) -> list[dict[str, Any]]:
    """precision, recall, F1 and gold count of every label the model knows."""
    from sklearn.metrics import precision_recall_fscore_support

    golds, guesses = _golds(examples), [p.label for p in preds]
    p, r, f, n = precision_recall_fscore_support(golds, guesses, labels=list(labels), zero_division=0.0)
    return [
        {
            "label": label,
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(n[i]),
        }
        for i, label in enumerate(labels)
    ]


def regress_metrics(examples: Sequence[RowExample], preds: Sequence[Prediction]) -> dict[str, float]:
    """mse, and Pearson / Spearman correlation (0 for constant predictions)."""
    golds = np.asarray(_golds(examples), dtype=np.float64)
    scores = [p.label for p in preds]
    mse = float(np.mean((golds - np.asarray(scores, dtype=np.float64)) ** 2))
    return {"mse": mse, **pearson_spearman(examples, scores)}


def choice_metrics(examples: Sequence[RowExample], preds: Sequence[Prediction]) -> dict[str, float]:
    return {"accuracy": accuracy(_golds(examples), [p.label for p in preds])}


# ---------------------------------------------------------------------------------------------
# predictions files


def prediction_record(example: Any, pred: Prediction, row: int) -> dict[str, Any]:
    """One output row: the input position, the row's id when it has one, the prediction, the
    class/option probabilities (qa: the best answer's probability, v2 null odds), truncation."""
    record: dict[str, Any] = {"row": row}
    guid = example.qid if isinstance(example, squad.SquadExample) else example.guid
    if guid is not None:
        record["id"] = guid
    record["prediction"] = pred.value
    if pred.scores is not None:
        record["probabilities"] = pred.scores
    if isinstance(pred.detail, squad.SquadPrediction):
        record["probability"] = pred.detail.nbest[0]["probability"] if pred.detail.nbest else 0.0
        if pred.detail.null_odds is not None:
            record["null_odds"] = pred.detail.null_odds
    record["truncated"] = pred.truncated
    return record


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "probabilities":
            items = value.items() if isinstance(value, dict) else enumerate(value)
            out.update({f"p_{k}": v for k, v in items})
        else:
            out[key] = value
    return out


def write_predictions(
    out_dir: Path, split: str, examples: Sequence[Any], preds: Sequence[Prediction]
) -> list[Path]:
    """`predictions.jsonl` and `predictions.csv`: one row per input row, in input order
    (probabilities as `p_<label>` columns in the CSV)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "" if split == "test" else f"{split}_"
    records = [prediction_record(e, p, i) for i, (e, p) in enumerate(zip(examples, preds, strict=True))]
    jsonl = out_dir / f"{prefix}predictions.jsonl"
    _atomic_write(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    flat = [_flat(r) for r in records]
    header = list(dict.fromkeys(k for r in flat for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    table = out_dir / f"{prefix}predictions.csv"
    _atomic_write(table, buffer.getvalue())
    return [jsonl, table]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# binding a template to files


def bind(
    kind: str,
    sources: dict[str, Any],
    options: dict[str, Any],
    stored: Mapping[str, Any] | None,
    warn: Warn | None = None,
) -> Task:
    """The `kind` task over `sources` ({split: file or dataset}, splits train/dev/test).

    `options`: the column flags given (text_column, label_column, ...); `stored`: the fine-tuned
    model's manifest head (eval), whose columns and labels are the defaults and whose labels
    are fixed. Every source is read and checked here, before any model is built; what reading
    skipped goes to `warn`."""
    for key in options:
        if key not in OPTIONS[kind]:
            takes = ", ".join(f"--{k.replace('_', '-')}" for k in OPTIONS[kind]) or "no column options"
            raise AlbertError(f"--{key.replace('_', '-')} does not apply to {kind} (it takes {takes})")
    if stored is not None and "labels" in options:
        raise AlbertError("--labels is fixed when fine-tuning; the model's labels are in its manifest")
    if "train" in sources and sources["train"] is None:
        raise AlbertError(f"finetune {kind} needs --data FILE (your training data)")
    for split, source in sources.items():
        if source is None and split != "dev":
            raise AlbertError(f"eval {kind} needs --data FILE (the rows to score or predict)")
    sources = {s: v for s, v in sources.items() if v is not None}
    cols = _columns(kind, options, stored)
    if kind == "classify" and "labels" in options:
        cols.label_values = list(_list(options["labels"]))
        if len(set(cols.label_values)) != len(cols.label_values) or len(cols.label_values) < 2:
            raise AlbertError(f"--labels: give at least two distinct labels, got {options['labels']!r}")
    examples: dict[str, list[Any]] = {}
    if kind == "qa":
        version = cols.qa_version
        if "train" in sources:
            train, _ = _read_squad(sources["train"], 2, True, warn)
            version = 2 if any(e.is_impossible for e in train) else 1
            examples["train"] = train
        version = version or 2
        cols.qa_version = version
        if "dev" in sources:
            examples["dev"], _ = _read_squad(sources["dev"], version, True, warn)
        if "test" in sources:
            examples["test"], labelled = _read_squad(sources["test"], version, None, warn)
            if labelled:
                examples["dev"] = examples["test"]
    else:
        if "train" in sources:
            examples["train"] = _read_rows(cols, read_table(sources["train"], "train"), True, True)
        if "dev" in sources:
            examples["dev"] = _read_rows(cols, read_table(sources["dev"], "validation"), True, False)
        if "test" in sources:
            table = read_table(sources["test"], "test")
            labelled = cols.label in table.columns
            examples["test"] = _read_rows(cols, table, labelled, False)
            if labelled:
                examples["dev"] = examples["test"]
    return _bound(kind, cols, examples)


def _bound(kind: str, cols: Columns, examples: dict[str, list[Any]]) -> Task:
    labels = tuple(str(v) for v in cols.label_values or ())
    if kind == "classify" and len(labels) < 2:
        raise AlbertError(
            f"classify needs at least two labels in the training data, found {len(labels)}: {', '.join(labels)}"
        )
    n_options = len(next(iter(examples.values()))[0].options) if kind == "choice" else 0
    if kind == "qa":
        v = cols.qa_version
        featurise, metrics = _qa_features, partial(_qa_metrics, v)
        post = partial(_qa_postprocess, v)
        main, names = ("f1", ("exact", "f1")) if v == 1 else ("best_f1", ())
    else:
        featurise = choice_features if kind == "choice" else partial(text_features, kind, labels)
        metrics = {"classify": classify_metrics, "regress": regress_metrics, "choice": choice_metrics}[kind]
        post = partial(postprocess, kind, labels, tuple(cols.label_values or ()), cols.label_format)
        main, names = {
            "classify": ("accuracy", ("accuracy", "macro_f1")),
            "regress": ("mse", ("mse", "pearson", "spearman")),
            "choice": ("accuracy", ("accuracy",)),
        }[kind]

    def read_own(split: str, warn: Warn | None = None) -> list[Any]:  # read and warned about at bind
        if split not in examples:
            raise AlbertError(f"{kind}: no {split} data given")
        return examples[split]

    template = TEMPLATES[kind]
    return replace(
        template,
        num_labels=len(labels) if kind == "classify" else (n_options or 1),
        main_metric=main,
        featurise=featurise,
        metrics=metrics,
        labels=labels,
        dev_splits={"dev": ""} if "dev" in examples else {},
        test_splits=("test",) if "test" in examples else (),
        postprocess=post,
        bind=None,
        read_own=read_own,
        spec=cols.to_spec(),
        metric_names=names,
        report=partial(per_class, labels) if kind == "classify" else None,
    )


def _unbound(kind: str, data: Path, split: str, warn: Warn | None = None) -> list[Any]:
    raise AlbertError(f"task {kind} reads your own files: give --data FILE")


TEMPLATES: dict[str, Task] = {}
DISPLAY = {
    "classify": "classification",
    "regress": "regression",
    "qa": "extractive QA",
    "choice": "multiple choice",
}
ALIASES = {
    "classify": ("classification",),
    "regress": ("regression",),
    "qa": ("extractive-qa",),
    "choice": ("multiple-choice",),
}
for _kind, _head in HEADS.items():
    TEMPLATES[_kind] = register(
        Task(
            name=_kind,
            display=DISPLAY[_kind],
            head=_head,  # type: ignore[arg-type]
            num_labels=1,
            main_metric="accuracy",
            read_files=partial(_unbound, _kind),
            featurise=text_features,  # replaced when bound
            metrics=classify_metrics,  # replaced when bound
            dev_splits={},
            test_splits=(),
            write_predictions=write_predictions,  # type: ignore[arg-type]
            aliases=ALIASES[_kind],
            span_heads={"simple": "span", "beam": "squad2-beam"} if _kind == "qa" else {},
            bind=partial(bind, _kind),
        )
    )
