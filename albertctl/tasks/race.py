"""RACE: reading comprehension with four options per question, as data.

Files come in the release layout `RACE/{train,dev,test}/{middle,high}/N.txt`, each one passage as
a JSON object with `article`, `questions`, `options` (four per question), `answers` (A-D) and
`id`. `--data` is `RACE/` or its parent. A bad file (not JSON, a missing field, not four options,
an answer outside A-D) is skipped with a warning naming it; the rest are still read. The `race`
dataset in `datasets` (configs all, middle, high) is the other source.

Each option becomes one sequence `[CLS] article [SEP] question+option [SEP]`: a question with a
blank (`_`) has the option put in the blank, else the option follows the question. The
question+option part is cut to `max_qa_length` tokens by dropping question tokens (never the
option); then the article is cut from its end so the whole fits `max_seq_length`.

`race` scores middle and high together; `race-middle` and `race-high` read one level.
Metrics: `accuracy` (all questions), `accuracy_middle`, `accuracy_high` (each level's questions;
so `accuracy` is the question-weighted mean of the two).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from albertctl.core.errors import AlbertError
from albertctl.core.safeload import BadJson, decode_json
from albertctl.data.tokenizer import Tokenizer
from albertctl.tasks.base import (
    Feature,
    ReadReport,
    Task,
    TaskConfig,
    Warn,
    accuracy,
    dataset_split,
    pass_on,
    register,
)

LETTERS = "ABCD"
LEVELS = ("middle", "high")
SPLITS = ("train", "dev", "test")
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


@dataclass(frozen=True)
class RaceExample:
    guid: str  # "<file id>-<question number>", e.g. "middle7351.txt-2"
    level: str  # "middle" | "high"
    article: str
    question: str
    options: tuple[str, ...]
    label: int | None  # index of the right option; None when unknown


@dataclass
class RaceReadReport(ReadReport[RaceExample]):
    """What a directory read found: examples, files read, bad files skipped (path, reason)."""

    files: int = 0
    skipped: list[tuple[str, str]] | None = None


# ---------------------------------------------------------------------------------------------
# reading


def race_root(data: Path) -> Path:
    """`data` is RACE/ (holding train/, dev/, test/) or its parent."""
    if (data / "RACE").is_dir() and not any((data / s).is_dir() for s in SPLITS):
        return data / "RACE"
    return data


def parse_passage(text: str, level: str) -> list[RaceExample]:
    """One file's examples; ValueError with the reason when the file is bad."""
    try:
        obj = decode_json(text)
    except BadJson as err:
        raise ValueError(f"malformed JSON ({err.detail})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in ("article", "questions", "options", "answers"):
        if key not in obj:
            raise ValueError(f"missing field '{key}'")
    article, questions, options, answers = obj["article"], obj["questions"], obj["options"], obj["answers"]
    if not isinstance(article, str) or not isinstance(questions, list):
        raise ValueError("'article' must be a string and 'questions' a list")
    if not isinstance(options, list) or not isinstance(answers, list):
        raise ValueError("'options' and 'answers' must be lists")
    if not (len(questions) == len(options) == len(answers)):
        raise ValueError(
            f"{len(questions)} questions, {len(options)} option lists and {len(answers)} answers"
        )
    fid = str(obj.get("id", ""))
    out = []
    for q, (question, opts, answer) in enumerate(zip(questions, options, answers, strict=True)):
        if not isinstance(opts, list) or len(opts) != 4 or not all(isinstance(o, str) for o in opts):
            n = len(opts) if isinstance(opts, list) else "no"
            raise ValueError(f"question {q + 1}: expected 4 options, got {n}")
        if not isinstance(answer, str) or answer.strip() not in LETTERS or not answer.strip():
            raise ValueError(f"question {q + 1}: answer {answer!r} is not one of A, B, C, D")
        if not isinstance(question, str):
            raise ValueError(f"question {q + 1}: not a string")
        out.append(
            RaceExample(f"{fid}-{q}", level, article, question, tuple(opts), LETTERS.index(answer.strip()))
        )
    return out


def read_dir(
    data: Path, split: str, levels: Sequence[str] = LEVELS, warn: Warn | None = None
) -> RaceReadReport:
    """Every valid file of `split` at `levels`, in (level, file number) order; bad files
    counted in `skipped` and named in `warnings` (also handed to `warn`)."""
    root = race_root(data)
    report = RaceReadReport(examples=[], skipped=[])
    found_dir = False
    for level in levels:
        folder = root / split / level
        if not folder.is_dir():
            continue
        found_dir = True
        files = sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
        for path in files:
            report.files += 1
            try:
                text = path.read_text(encoding="utf-8")
                report.examples.extend(parse_passage(text, level))
            except (ValueError, UnicodeDecodeError) as err:
                reason = str(err) if isinstance(err, ValueError) else "not UTF-8 text"
                report.skipped.append((str(path), reason))  # type: ignore[union-attr]
                report.warnings.append(f"{path}: skipped ({reason})")
    if not found_dir:
        raise AlbertError(
            f"{root}: no {split}/{{{','.join(levels)}}} folders (expected the RACE layout, "
            f"e.g. RACE/{split}/middle/1.txt)"
        )
    if report.skipped:
        report.warnings.append(f"{root / split}: skipped {len(report.skipped)} bad file(s) of {report.files}")
    pass_on(warn, report.warnings)  # before the error below too: they say why no file was valid
    if not report.examples:
        raise AlbertError(
            f"{root / split}: no valid RACE files ({report.files} found, {len(report.skipped or [])} bad)"
        )
    return report


def read_files(levels: Sequence[str], data: Path, split: str, warn: Warn | None = None) -> list[RaceExample]:
    if split not in SPLITS:
        raise AlbertError(f"RACE has no split '{split}' (have: {', '.join(SPLITS)})")
    return read_dir(data, split, levels, warn).examples


def read_datasets(
    levels: Sequence[str], dataset: Any, split: str, warn: Warn | None = None
) -> list[RaceExample]:
    """Examples from a `race` DatasetDict (columns example_id, article, question, options, answer);
    each bad row goes to `warn`."""
    hub_split = HUB_SPLITS.get(split, split)
    part = dataset_split(dataset, hub_split, ("article", "question", "options", "answer"))
    out, bad = [], 0
    counter: dict[str, int] = {}
    for i, row in enumerate(part):
        eid = str(row.get("example_id") or f"row{i}")
        level = "high" if eid.startswith("high") else "middle"
        if level not in levels:
            continue
        answer = (row["answer"] or "").strip()
        if len(row["options"]) != 4 or (answer and answer not in LETTERS):
            bad += 1
            pass_on(warn, [f"{hub_split} row {i}: skipped (need 4 options and an answer A-D)"])
            continue
        n = counter.get(eid, 0)
        counter[eid] = n + 1
        label = LETTERS.index(answer) if answer else None
        out.append(
            RaceExample(f"{eid}-{n}", level, row["article"], row["question"], tuple(row["options"]), label)
        )
    if not out:
        raise AlbertError(f"dataset split {hub_split}: no valid RACE questions ({bad} bad)")
    return out


# ---------------------------------------------------------------------------------------------
# features


def question_option(question: str, option: str) -> str:
    """The option in the question's blank (`_`), else after the question."""
    return question.replace("_", option) if "_" in question else f"{question} {option}"


def qa_tokens(tokenizer: Tokenizer, question: str, option: str, max_qa_length: int) -> list[int]:
    """question+option tokens, at most max_qa_length: question tokens are dropped (before the
    blank from its start, after it from its end), never the option's."""
    ids = tokenizer.encode(question_option(question, option))
    if len(ids) <= max_qa_length:
        return ids
    opt = tokenizer.encode(option)
    room = max(0, max_qa_length - len(opt))
    if "_" in question:
        before, _, after = question.partition("_")
        after = after.replace("_", option)
        left, right = tokenizer.encode(before), tokenizer.encode(after)
        while len(left) + len(right) > room:
            if len(left) >= len(right):
                left = left[1:]
            else:
                right = right[:-1]
        return left + opt + right
    q = tokenizer.encode(question)
    return (q[len(q) - room :] if room else []) + opt


def choice_features(example: RaceExample, tokenizer: Tokenizer, config: TaskConfig) -> list[Feature]:
    """One feature with C=4 rows `[CLS] article [SEP] qa [SEP]`; the article cut from its end."""
    article = tokenizer.encode(example.article)
    ids, types = [], []
    for option in example.options:
        qa = qa_tokens(tokenizer, example.question, option, config.max_qa_length)
        room = config.max_seq_length - 3 - len(qa)
        if room < 0:  # an option longer than the whole sequence: the last resort is to cut it
            qa, room = qa[: config.max_seq_length - 3], 0
        row_ids, row_types = tokenizer.build_inputs(article[:room], qa)
        ids.append(row_ids)
        types.append(row_types)
    return [Feature(ids, types, example.label)]


# ---------------------------------------------------------------------------------------------
# metrics


def level_accuracy(examples: Sequence[RaceExample], preds: Sequence[int]) -> dict[str, float]:
    """accuracy over all questions, and accuracy_<level> for each level present."""
    golds = [e.label for e in examples]
    if any(g is None for g in golds):
        raise AlbertError("cannot score RACE questions without answers")
    out = {"accuracy": accuracy(golds, list(preds))}
    for level in LEVELS:
        idx = [i for i, e in enumerate(examples) if e.level == level]
        if idx:
            out[f"accuracy_{level}"] = accuracy([golds[i] for i in idx], [preds[i] for i in idx])
    return out


def write_answers(out_dir: Path, split: str, examples: Sequence[RaceExample], preds: Sequence[int]) -> Path:
    """`race_<split>.jsonl`: one {"id", "level", "prediction": "A".."D"} per question."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"race_{split}.jsonl"
    lines = [
        json.dumps({"id": e.guid, "level": e.level, "prediction": LETTERS[int(p)]})
        for e, p in zip(examples, preds, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _task(name: str, display: str, levels: tuple[str, ...], hub_config: str) -> Task:
    return register(
        Task(
            name=name,
            display=display,
            head="choice",
            num_labels=4,
            main_metric="accuracy",
            read_files=partial(read_files, levels),
            featurise=choice_features,
            metrics=level_accuracy,
            read_datasets=partial(read_datasets, levels),
            hub=("ehovy/race", hub_config),
            dev_splits={"dev": ""},
            test_splits=("test",),
            write_predictions=write_answers,
            config_name="race",
        )
    )


RACE = _task("race", "RACE", LEVELS, "all")
RACE_MIDDLE = _task("race-middle", "RACE-middle", ("middle",), "middle")
RACE_HIGH = _task("race-high", "RACE-high", ("high",), "high")
