"""SQuAD v1.1 and v2.0: extractive question answering over context windows, as data.

Files are the official JSON (`{"version", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}`).
`--data` is one such file or a directory holding `train-v1.1.json` / `dev-v1.1.json`
(`-v2.0` for squad2). The `squad` / `squad_v2` datasets in `datasets` are the other source.
An answer whose `answer_start` does not point at its text in the context is skipped with a
warning naming the file and question id (a question left without answers is skipped too);
a paragraph with no context is skipped; missing fields stop the read with one line.

Each question becomes one or more windows `[CLS] question [SEP] context-window [SEP]`: the
question cut to `max_query_length` tokens, the context in windows of the room left in
`max_seq_length`, each starting `doc_stride` tokens after the previous one. Character spans
come from the tokenizer's offsets, so an answer maps to the tokens covering its characters and
a predicted span maps back to the user's exact text. A window without the answer (and every
window of an unanswerable v2 question) is labelled ([CLS], [CLS]).

Decoding (postprocess): per window the n_best_size top starts and ends (or the v2 beam head's
top-5 x top-5), kept when start <= end, both inside the context, the answer at most
max_answer_length tokens, and the start in the window where it has the most context; the best
span over all windows wins. v2 adds a null score per question: the simple head's
min-over-windows of start[CLS] + end[CLS] minus the best span's score, or the beam head's
answerability logit (min over windows); the question is predicted unanswerable when it exceeds
`task.null_threshold`.

Metrics follow the official evaluate-v2.0.py (percentages): exact, f1 (best over the golds,
after lower-casing and dropping punctuation, articles and extra whitespace); squad2 adds
HasAns_/NoAns_ splits and best_exact / best_f1 with the null-score threshold that gives them.
Chinese data (CMRC 2018 uses the SQuAD v1 format) is scored as the official CMRC 2018 script
does (`task.metric`: cmrc, or auto when the gold answers hold Chinese characters): text is cut
into segments (each Chinese character one, a run of letters/digits one, every other symbol
one), its punctuation list dropped; F1 comes from the longest common run of segments, EM
compares the texts without that punctuation.
"""

from __future__ import annotations

import collections
import json
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from albertctl.core.errors import AlbertError
from albertctl.core.safeload import read_json
from albertctl.data.tokenizer import Encoding, Tokenizer
from albertctl.model.head_kinds import unpack_beam
from albertctl.tasks.base import Feature, ReadReport, Task, TaskConfig, Warn, dataset_split, pass_on, register

FILES = {
    1: {"train": "train-v1.1.json", "dev": "dev-v1.1.json"},
    2: {"train": "train-v2.0.json", "dev": "dev-v2.0.json"},
}
HUB_SPLITS = {"train": "train", "dev": "validation"}
VERSIONS = {"squad1": 1, "squad2": 2}  # task name -> SQuAD version


@dataclass(frozen=True)
class SquadExample:
    qid: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]  # (text, answer_start in characters); () when impossible
    is_impossible: bool = False
    title: str = ""


@dataclass(frozen=True)
class SquadPrediction:
    text: str  # the answer given: best_text, or "" when v2 says unanswerable
    best_text: str  # the best non-null span ("" when no window offers one)
    null_odds: float | None = None  # v2: higher = more likely unanswerable; None for v1
    threshold: float = 0.0  # null_odds above it -> "" (task.null_threshold)
    nbest: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "auto"  # how the answer is scored (task.metric)


@dataclass
class SquadReadReport(ReadReport[SquadExample]):
    """What one file held: examples, and answers / questions / paragraphs skipped."""

    bad_answers: int = 0
    skipped_questions: int = 0
    skipped_paragraphs: int = 0


# ---------------------------------------------------------------------------------------------
# reading


def data_file(version: int, data: Path, split: str) -> Path:
    """`data` itself when it is a file, else the official file name of `split` inside it."""
    if data.is_file():
        return data
    if split not in FILES[version]:
        raise AlbertError(f"SQuAD has no split '{split}' here (have: {', '.join(FILES[version])})")
    path = data / FILES[version][split]
    if not path.is_file():
        raise AlbertError(f"{data}: no {FILES[version][split]} (give the file itself or its directory)")
    return path


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise AlbertError(f"{where}: missing field '{key}'")
    if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
        name = "/".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise AlbertError(f"{where}: field '{key}' must be a {name}, got {type(obj[key]).__name__}")
    return obj[key]


def _check_version(obj: dict, source: str, version: int) -> None:
    """The file's own `version` field against the task's, as the official v1.1 script checks it.
    A v1.1 file is a valid v2.0 input (every question answerable); a v2.0 file is not a v1.1 one."""
    stated = obj.get("version")
    if version == 1 and isinstance(stated, str) and stated.lstrip("v").startswith("2"):
        raise AlbertError(
            f"{source}: a SQuAD {stated} file, but task squad1 reads v1.1 "
            "(its unanswerable questions would be scored as answerable; use the squad2 task)"
        )


def parse_squad(obj: Any, source: str, version: int) -> SquadReadReport:
    """Examples of an official SQuAD JSON object; `source` names it in messages (and in the
    report's warnings about what was skipped)."""
    report = SquadReadReport(examples=[])
    articles = _require(obj, "data", list, source)
    _check_version(obj, source, version)
    for a, article in enumerate(articles):
        title = article.get("title", "") if isinstance(article, dict) else ""
        paragraphs = _require(article, "paragraphs", list, f"{source}: article {a}")
        for p, paragraph in enumerate(paragraphs):
            where = f"{source}: article {a} paragraph {p}"
            context = _require(paragraph, "context", str, where)
            qas = _require(paragraph, "qas", list, where)
            if not context.strip():
                report.skipped_paragraphs += 1
                report.skipped_questions += len(qas)
                report.warnings.append(f"{where}: empty context, skipped with its {len(qas)} question(s)")
                continue
            for q, qa in enumerate(qas):
                qid = str(_require(qa, "id", (str, int), f"{where} question {q}"))
                question = _require(qa, "question", str, f"{source}: question {qid}")
                impossible = bool(qa.get("is_impossible", False))
                if impossible and version == 1:
                    raise AlbertError(
                        f"{source}: question {qid} is marked is_impossible, which only SQuAD v2.0 has "
                        "(score or train it with the squad2 task)"
                    )
                raw = _require(qa, "answers", list, f"{source}: question {qid}")
                answers = []
                for answer in raw:
                    text = _require(answer, "text", str, f"{source}: question {qid} answer")
                    start = _require(answer, "answer_start", int, f"{source}: question {qid} answer")
                    if context[start : start + len(text)] != text or not text:
                        report.bad_answers += 1
                        report.warnings.append(
                            f"{source}: question {qid}: answer {text!r} does not match the context "
                            f"at answer_start {start}; answer skipped"
                        )
                        continue
                    answers.append((text, start))
                if impossible:
                    answers = []
                elif not answers and raw:  # every answer was bad: nothing to learn or score
                    report.skipped_questions += 1
                    continue
                elif not answers and version == 2:
                    impossible = True
                report.examples.append(
                    SquadExample(qid, question, context, tuple(answers), impossible, title)
                )
    if report.bad_answers or report.skipped_questions:
        report.warnings.append(
            f"{source}: skipped {report.bad_answers} answer(s) whose answer_start does not match "
            f"the context and {report.skipped_questions} question(s) of {len(report.examples) + report.skipped_questions}"
        )
    return report


def read_file(path: Path, version: int) -> SquadReadReport:
    obj = read_json(path, "not JSON")
    return parse_squad(obj, str(path), version)


def read_files(version: int, data: Path, split: str, warn: Warn | None = None) -> list[SquadExample]:
    path = data_file(version, data, split)
    report = read_file(path, version)
    pass_on(warn, report.warnings)
    examples = report.examples
    if not examples:
        raise AlbertError(f"{path}: no usable SQuAD questions")
    return examples


def read_datasets(version: int, dataset: Any, split: str, warn: Warn | None = None) -> list[SquadExample]:
    """Examples from a `squad` / `squad_v2` DatasetDict (id, title, context, question, answers)."""
    hub_split = HUB_SPLITS.get(split, split)
    part = dataset_split(dataset, hub_split, ("id", "context", "question", "answers"))
    obj: dict[str, list[Any]] = {"data": [{"title": "", "paragraphs": []}]}
    for row in part:
        answers = row["answers"] or {"text": [], "answer_start": []}
        qa = {
            "id": row["id"],
            "question": row["question"],
            "answers": [
                {"text": t, "answer_start": s}
                for t, s in zip(answers["text"], answers["answer_start"], strict=True)
            ],
            "is_impossible": not answers["text"],
        }
        obj["data"][0]["paragraphs"].append({"context": row["context"], "qas": [qa]})
    report = parse_squad(obj, f"dataset split {hub_split}", version)
    pass_on(warn, report.warnings)
    examples = report.examples
    if not examples:
        raise AlbertError(f"dataset split {hub_split}: no usable SQuAD questions")
    return examples


# ---------------------------------------------------------------------------------------------
# features


@lru_cache(maxsize=32)  # consecutive questions share a paragraph: tokenise it once
def _context_encoding(tokenizer: Tokenizer, context: str) -> Encoding:
    return tokenizer.encode_with_offsets(context)


def answer_token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """First and last token whose characters overlap [start, end) of the context."""
    hits = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    return (hits[0], hits[-1]) if hits else None


def doc_windows(n_tokens: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each context window: `room` tokens, `doc_stride` apart, the last
    one ending at the context's end."""
    spans, start = [], 0
    while True:
        length = min(room, n_tokens - start)
        spans.append((start, length))
        if start + length >= n_tokens:
            return spans
        start += min(length, doc_stride)


def max_context(spans: Sequence[tuple[int, int]], window: int, position: int) -> bool:
    """Whether `window` is the one where token `position` has the most context on its
    smaller side (ties: the longer window), as the original check_is_max_context."""
    best, best_window = None, None
    for w, (start, length) in enumerate(spans):
        if not start <= position < start + length:
            continue
        score = min(position - start, start + length - 1 - position) + 0.01 * length
        if best is None or score > best:
            best, best_window = score, w
    return best_window == window


def span_features(example: SquadExample, tokenizer: Tokenizer, config: TaskConfig) -> list[Feature]:
    """One feature per context window; label (start, end) token positions, or (0, 0) when the
    window lacks the answer; the beam head adds is_impossible as a third value. `extra`
    holds each position's character span in the context ((-1, -1) outside it) and whether
    the window is that token's max-context one."""
    question = tokenizer.encode(example.question)[: config.max_query_length]
    enc = _context_encoding(tokenizer, example.context)
    room = config.max_seq_length - len(question) - 3
    if room < 1:
        raise AlbertError(
            f"task.max_seq_length ({config.max_seq_length}) leaves no room for context after a "
            f"{len(question)}-token question: raise it or lower task.max_query_length"
        )
    gold = None
    if example.answers:
        text, start = example.answers[0]  # training uses the first answer, as the original
        gold = answer_token_span(enc.offsets, start, start + len(text))
    spans = doc_windows(len(enc.ids), room, config.doc_stride) if enc.ids else [(0, 0)]
    beam = config.span_head == "beam"
    out = []
    for w, (start, length) in enumerate(spans):
        ids, types = tokenizer.build_inputs(question, enc.ids[start : start + length])
        first = len(question) + 2  # [CLS] question [SEP]
        offsets = [(-1, -1)] * first + list(enc.offsets[start : start + length]) + [(-1, -1)]
        is_max = [False] * first + [max_context(spans, w, start + i) for i in range(length)] + [False]
        if gold is not None and start <= gold[0] and gold[1] < start + length:
            label: tuple[int, ...] = (gold[0] - start + first, gold[1] - start + first)
            impossible = 0
        else:
            label, impossible = (0, 0), 1
        if beam:
            label = (*label, impossible)
        has_label = example.answers or example.is_impossible
        out.append(
            Feature(
                ids, types, label if has_label else None, extra={"offsets": offsets, "max_context": is_max}
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# decoding


def _candidates(
    feature: Feature, pairs: Sequence[tuple[int, int, float, float]], config: TaskConfig
) -> list[tuple[int, int, float, float]]:
    """The (start, end, start score, end score) pairs that make a valid answer."""
    offsets, is_max = feature.extra["offsets"], feature.extra["max_context"]
    out = []
    for s, e, ss, es in pairs:
        if s >= len(offsets) or e >= len(offsets) or offsets[s][0] < 0 or offsets[e][0] < 0:
            continue
        if e < s or e - s + 1 > config.max_answer_length or not is_max[s]:
            continue
        out.append((s, e, ss, es))
    return out


def _softmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [x / total for x in exps]


def decode(
    version: int,
    examples: Sequence[SquadExample],
    features: Sequence[Feature],
    outputs: Sequence[np.ndarray],
    config: TaskConfig,
) -> list[SquadPrediction]:
    """One prediction per example from its windows' outputs: (2, T) start/end logits of the
    simple head, or the beam head's packed top-k vector (model/heads.py pack_beam)."""
    by_example: dict[int, list[int]] = collections.defaultdict(list)
    for i, f in enumerate(features):
        by_example[f.example_index].append(i)
    beam = config.span_head == "beam"
    names = ("start_log_prob", "end_log_prob") if beam else ("start_logit", "end_logit")
    preds = []
    for index, example in enumerate(examples):
        spans: list[tuple[float, str, float, float]] = []
        null = math.inf
        for i in by_example.get(index, []):
            feature, out = features[i], outputs[i]
            if beam:
                start_top, start_index, end_top, end_index, cls = unpack_beam(out)
                pairs = [
                    (int(start_index[a]), int(end_index[a, b]), float(start_top[a]), float(end_top[a, b]))
                    for a in range(len(start_index))
                    for b in range(end_index.shape[1])
                ]
                null = min(null, cls)
            else:
                start, end = out[0], out[1]
                n = config.n_best_size
                best_starts = np.argsort(-start, kind="stable")[:n]
                best_ends = np.argsort(-end, kind="stable")[:n]
                pairs = [
                    (int(s), int(e), float(start[s]), float(end[e])) for s in best_starts for e in best_ends
                ]
                null = min(null, float(start[0] + end[0]))
            offsets = feature.extra["offsets"]
            for s, e, ss, es in _candidates(feature, pairs, config):
                spans.append((ss + es, example.context[offsets[s][0] : offsets[e][1]], ss, es))
        spans.sort(key=lambda x: -x[0])
        nbest, seen = [], set()
        for score, text, ss, es in spans:
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, names[0]: ss, names[1]: es, "score": score})
            if len(nbest) == config.n_best_size:
                break
        best_text = nbest[0]["text"] if nbest else ""
        null_odds = None
        if version == 2:
            if beam:
                null_odds = null if math.isfinite(null) else 0.0
            else:  # the null score relative to the best span, as the BERT/ALBERT v2 scripts
                best_score = nbest[0]["score"] if nbest else -math.inf
                null_odds = null - best_score if nbest else math.inf
                if math.isfinite(null) and not any(x["text"] == "" for x in nbest):
                    nbest.append({"text": "", names[0]: float(null), names[1]: 0.0, "score": float(null)})
                    nbest.sort(key=lambda x: -x["score"])
        for entry, p in zip(nbest, _softmax([x["score"] for x in nbest]), strict=True):
            entry["probability"] = p
            del entry["score"]
        text = best_text
        if null_odds is not None and null_odds > config.null_threshold:
            text = ""
        preds.append(SquadPrediction(text, best_text, null_odds, config.null_threshold, nbest, config.metric))
    return preds


# ---------------------------------------------------------------------------------------------
# metrics: the official evaluate-v2.0.py semantics


PUNCTUATION = frozenset(string.punctuation)


@lru_cache(maxsize=1 << 16)  # scoring normalises each gold text and prediction ~5 times
def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)
    return " ".join(text.split())


def exact_score(gold: str, pred: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(pred))


def f1_score(gold: str, pred: str) -> float:
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(pred).split()
    if not gold_toks or not pred_toks:  # a no-answer on either side scores 1 only if both are
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


# The CMRC 2018 script (cmrc2018_evaluate.py). Its punctuation list, as it spells it; its
# "……" entry is two characters and never matches one, so it is not here.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
CMRC_HAN = re.compile(r"[\u4e00-\u9fa5]")  # the script's range of Chinese characters
# Between Chinese characters the script runs nltk.word_tokenize; we take a run of letters and
# digits as one segment and any other symbol as one (the same on words and integers; nltk keeps
# "3.14" and "u.s." whole, and splits English contractions, which we do not).
_CMRC_RUN = re.compile(r"\w+|[^\w\s]")


def cmrc_segments(text: str) -> list[str]:
    """Lower-cased segments without the script's punctuation: 北京ALBERT-2 -> 北 京 albert2."""
    out: list[str] = []
    run: list[str] = []
    for ch in text.lower().strip():
        if ch in CMRC_PUNCTUATION:  # dropped before segmenting: "a-b" is one run "ab"
            continue
        if CMRC_HAN.match(ch):
            out.extend(_CMRC_RUN.findall("".join(run)))
            run = []
            out.append(ch)
        else:
            run.append(ch)
    out.extend(_CMRC_RUN.findall("".join(run)))
    return out


def cmrc_exact(gold: str, pred: str) -> int:
    """1 when the lower-cased texts are equal once the script's punctuation is removed."""

    def strip(text: str) -> str:
        return "".join(ch for ch in text.lower().strip() if ch not in CMRC_PUNCTUATION)

    return int(strip(gold) == strip(pred))


def cmrc_f1(gold: str, pred: str) -> float:
    """F1 of the longest common contiguous run of segments (not SQuAD's bag of tokens)."""
    g, p = cmrc_segments(gold), cmrc_segments(pred)
    if not g or not p:  # a no-answer on either side scores 1 only if both are (as f1_score)
        return float(g == p)
    longest, prev = 0, [0] * (len(p) + 1)
    for a in g:
        row = [0] * (len(p) + 1)
        for j, b in enumerate(p):
            if a == b:
                row[j + 1] = prev[j] + 1
                longest = max(longest, row[j + 1])
        prev = row
    if longest == 0:
        return 0.0
    precision, recall = longest / len(p), longest / len(g)
    return 2 * precision * recall / (precision + recall)


SCORERS = {  # metric -> (what makes a gold answer non-empty, exact, f1)
    "squad": (normalize_answer, exact_score, f1_score),
    "cmrc": (cmrc_segments, cmrc_exact, cmrc_f1),
}


def resolve_metric(metric: str, golds: dict[str, list[str]]) -> str:
    """`task.metric`; auto is cmrc when any gold answer holds a Chinese character."""
    if metric != "auto":
        return metric
    chinese = any(CMRC_HAN.search(a) for answers in golds.values() for a in answers)
    return "cmrc" if chinese else "squad"


def best_threshold(
    preds: dict[str, str], scores: dict[str, float], na_probs: dict[str, float], has_ans: dict[str, bool]
) -> tuple[float, float]:
    """The score (percent) and null-probability threshold maximising it, by sweeping the
    threshold over the sorted null scores (the official find_best_thresh)."""
    current = best = sum(1 for q in scores if not has_ans[q])
    thresh = 0.0
    for qid in sorted(scores, key=lambda q: na_probs[q]):
        if has_ans[qid]:
            current += scores[qid]
        elif preds[qid]:
            current -= 1
        if current > best:
            best, thresh = current, na_probs[qid]
    return 100.0 * best / len(scores), thresh


def squad_scores(
    golds: dict[str, list[str]],
    preds: dict[str, str],
    na_probs: dict[str, float] | None = None,
    na_prob_thresh: float = 1.0,
    version: int = 2,
    metric: str = "squad",
) -> dict[str, float]:
    """exact, f1 (percent) of `preds` against each question's gold answer texts; v2 adds
    HasAns_/NoAns_ splits and, when `na_probs` is given, best_exact/best_f1 with their
    thresholds (as the official script, which sweeps only with an na-prob file; a question
    missing from `na_probs` counts 0). A question with no prediction scores 0. `metric`:
    squad, cmrc, or auto (`resolve_metric`)."""
    if not golds:
        raise AlbertError("no questions to score")
    non_empty, exact_of, f1_of = SCORERS[resolve_metric(metric, golds)]
    sweep = na_probs is not None
    na_probs = na_probs or {}
    has_ans = {q: bool(g) for q, g in golds.items()}
    exact, f1, probs, given = {}, {}, {}, {}
    for qid, answers in golds.items():
        texts = [a for a in answers if non_empty(a)] or [""]
        pred = preds.get(qid, "")
        given[qid] = pred
        probs[qid] = float(na_probs.get(qid, 0.0))
        exact[qid] = float(max(exact_of(a, pred) for a in texts))
        f1[qid] = max(f1_of(a, pred) for a in texts)
        if qid not in preds:
            exact[qid] = f1[qid] = 0.0
    applied_exact = {q: float(not has_ans[q]) if probs[q] > na_prob_thresh else s for q, s in exact.items()}
    applied_f1 = {q: float(not has_ans[q]) if probs[q] > na_prob_thresh else s for q, s in f1.items()}

    def mean(values: dict[str, float], qids: Sequence[str]) -> float:
        return 100.0 * sum(values[q] for q in qids) / len(qids)

    qids = list(golds)
    out = {"exact": mean(applied_exact, qids), "f1": mean(applied_f1, qids)}
    if version == 1:
        return out
    out["total"] = len(qids)
    for name, subset in (
        ("HasAns", [q for q in qids if has_ans[q]]),
        ("NoAns", [q for q in qids if not has_ans[q]]),
    ):
        if subset:
            out[f"{name}_exact"] = mean(applied_exact, subset)
            out[f"{name}_f1"] = mean(applied_f1, subset)
            out[f"{name}_total"] = len(subset)
    if sweep:
        out["best_exact"], out["best_exact_thresh"] = best_threshold(given, exact, probs, has_ans)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(given, f1, probs, has_ans)
    return out


def gold_texts(examples: Sequence[SquadExample]) -> dict[str, list[str]]:
    return {e.qid: [t for t, _ in e.answers] for e in examples}


def prediction_metrics(
    version: int, examples: Sequence[SquadExample], preds: Sequence[SquadPrediction]
) -> dict[str, float]:
    """A model's scores: v1 exact/f1 of its answers; v2 scores its best spans with the null
    odds as na_probs at the threshold it decided with, and the dev-tuned best thresholds."""
    golds = gold_texts(examples)
    metric = preds[0].metric if preds else "auto"
    if version == 1:
        texts = {e.qid: p.text for e, p in zip(examples, preds, strict=True)}
        return squad_scores(golds, texts, version=1, metric=metric)
    texts = {e.qid: p.best_text for e, p in zip(examples, preds, strict=True)}
    odds = {
        e.qid: float(p.null_odds if p.null_odds is not None else -math.inf)
        for e, p in zip(examples, preds, strict=True)
    }
    threshold = preds[0].threshold if preds else 0.0
    return squad_scores(golds, texts, odds, threshold, version=2, metric=metric)


def read_json_map(path: Path, what: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise AlbertError(f"{what} file {path} not found")
    obj = read_json(Path(path), f"not a JSON object of question id -> {what}")
    if not isinstance(obj, dict):
        raise AlbertError(
            f"{path}: expected a JSON object of question id -> {what}, got {type(obj).__name__}"
        )
    return obj


def score_files(
    version: int,
    examples: Sequence[SquadExample],
    predictions: Path,
    na_probs: Path | None = None,
    metric: str = "auto",
    warn: Warn | None = None,
) -> dict[str, float]:
    """Score an official-format predictions file ({id: text}) and optional na-prob file; the
    questions it has no answer for go to `warn`."""
    preds = read_json_map(predictions, "answer text")
    bad = [k for k, v in preds.items() if not isinstance(v, str)]
    if bad:
        raise AlbertError(f"{predictions}: question {bad[0]}: the answer must be a string")
    probs = None
    if na_probs is not None:
        probs = read_json_map(na_probs, "no-answer probability")
        bad = [k for k, v in probs.items() if not isinstance(v, int | float)]
        if bad:
            raise AlbertError(f"{na_probs}: question {bad[0]}: the probability must be a number")
    missing = [e.qid for e in examples if e.qid not in preds]
    if missing:
        pass_on(
            warn,
            [f"{predictions}: no prediction for {len(missing)} of {len(examples)} question(s) (scored 0)"],
        )
    return squad_scores(gold_texts(examples), preds, probs, 1.0, version, metric)


def write_predictions(
    out_dir: Path, split: str, examples: Sequence[SquadExample], preds: Sequence[SquadPrediction]
) -> Path:
    """predictions.json ({id: text}), nbest_predictions.json and, for v2, null_odds.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "" if split == "dev" else f"{split}_"
    answers = {e.qid: p.text for e, p in zip(examples, preds, strict=True)}
    nbest = {e.qid: p.nbest for e, p in zip(examples, preds, strict=True)}
    (out_dir / f"{prefix}nbest_predictions.json").write_text(
        json.dumps(nbest, indent=2) + "\n", encoding="utf-8"
    )
    if preds and preds[0].null_odds is not None:
        odds = {e.qid: p.null_odds for e, p in zip(examples, preds, strict=True)}
        (out_dir / f"{prefix}null_odds.json").write_text(json.dumps(odds, indent=2) + "\n", encoding="utf-8")
    path = out_dir / f"{prefix}predictions.json"
    path.write_text(json.dumps(answers, indent=2) + "\n", encoding="utf-8")
    return path


def _task(name: str, display: str, version: int, aliases: tuple[str, ...]) -> Task:
    return register(
        Task(
            name=name,
            display=display,
            head="span",
            num_labels=1,
            main_metric="f1" if version == 1 else "best_f1",
            read_files=partial(read_files, version),
            featurise=span_features,
            metrics=partial(prediction_metrics, version),
            read_datasets=partial(read_datasets, version),
            hub=("rajpurkar/squad", "plain_text") if version == 1 else ("rajpurkar/squad_v2", "squad_v2"),
            dev_splits={"dev": ""},
            test_splits=("dev",),  # no public test set: --predict writes the dev predictions
            postprocess=partial(decode, version),
            write_predictions=write_predictions,
            span_heads={"simple": "span", "beam": "squad2-beam"} if version == 2 else {"simple": "span"},
            aliases=aliases,
        )
    )


SQUAD1 = _task("squad1", "SQuAD1.1", 1, ("squad", "squad-v1.1", "squad1.1"))
SQUAD2 = _task("squad2", "SQuAD2.0", 2, ("squad-v2.0", "squad2.0", "squad-v2"))
