"""SQuAD v1.1/v2.0: official JSON read (bad answers skipped and counted), windows whose labels
map back to the exact answer characters, decoding and the official metrics worked out by hand,
the original v2 beam head (shapes, conditioning, converted TF names), a tiny model learning a
synthetic span task, and `eval squad2 --predictions --json` on the command line."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from glue_fixtures import FILLER, NEGATIVE, POSITIVE, task_world

from albertctl.convert import names as N
from albertctl.core.config import load_profile
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.model.heads import AlbertForTask, BeamSpanOutput, head_loss
from albertctl.pipelines import convert, finetune, score
from albertctl.tasks import squad
from albertctl.tasks.base import Feature, TaskConfig, get_task, load_task_config, read_split

TF_FIXTURES = Path(__file__).parent / "fixtures" / "tf"
MARKER = "cast"  # synthetic task: the answer is the word after the marker


def squad_json(paragraphs: list[tuple[str, list[dict]]], version: str = "1.1") -> dict:
    return {
        "version": version,
        "data": [{"title": "t", "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs]}],
    }


def qa(qid: str, question: str, answers: list[tuple[str, int]], impossible: bool | None = None) -> dict:
    out: dict = {
        "id": qid,
        "question": question,
        "answers": [{"text": t, "answer_start": s} for t, s in answers],
    }
    if impossible is not None:
        out["is_impossible"] = impossible
    return out


def synthetic(rng: random.Random, n: int, prefix: str) -> dict:
    """Contexts of filler words with MARKER once; the gold answer is the word after it."""
    paragraphs = []
    words = [w for w in FILLER if w not in (MARKER, "a", "the")]
    for i in range(n):
        ctx = rng.sample(words, 6)
        answer = rng.choice(POSITIVE + NEGATIVE)
        at = rng.randint(0, 5)
        ctx[at:at] = [MARKER, answer]
        context = " ".join(ctx)
        start = context.index(f"{MARKER} {answer}") + len(MARKER) + 1
        paragraphs.append((context, [qa(f"{prefix}{i}", "what was the cast ?", [(answer, start)])]))
    return squad_json(paragraphs)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return task_world(tmp_path_factory.mktemp("squad"))


def test_registry_and_profiles():
    assert get_task("squad").name == "squad1" and get_task("SQuAD-v2.0").name == "squad2"
    for name, head in (("squad1", "simple"), ("squad2", "beam")):
        cfg = load_task_config(get_task(name))
        assert (cfg.max_seq_length, cfg.doc_stride, cfg.max_query_length, cfg.batch_size) == (
            384,
            128,
            64,
            48,
        )
        assert (cfg.learning_rate, cfg.epochs, cfg.warmup_proportion) == (5e-5, 2, 0.1)
        assert (cfg.n_best_size, cfg.max_answer_length, cfg.span_head) == (20, 30, head)
    assert get_task("squad2").with_config(load_task_config(get_task("squad2"))).head == "squad2-beam"
    simple = load_task_config(get_task("squad2"), ["task.span_head=simple"])
    assert get_task("squad2").with_config(simple).head == "span"
    with pytest.raises(AlbertError, match="task squad1 has no task.span_head=beam"):
        get_task("squad1").with_config(load_task_config(get_task("squad1"), ["task.span_head=beam"]))


# ---------------------------------------------------------------------------------------------
# reading


def test_reader_file_and_directory(tmp_path):
    body = squad_json(
        [("good film here", [qa("a", "what?", [("good", 0)]), qa("b", "none?", [], True)])], "v2.0"
    )
    (tmp_path / "dev-v2.0.json").write_text(json.dumps(body), encoding="utf-8")
    from_dir = squad.read_files(2, tmp_path, "dev")
    from_file = squad.read_files(2, tmp_path / "dev-v2.0.json", "train")  # a file is read as given
    assert from_dir == from_file
    assert [(e.qid, e.answers, e.is_impossible) for e in from_dir] == [
        ("a", (("good", 0),), False),
        ("b", (), True),
    ]
    with pytest.raises(AlbertError, match=r"no train-v2.0.json \(give the file itself or its directory\)"):
        squad.read_files(2, tmp_path, "train")


def test_mismatched_answer_start_skipped_counted_and_warned(tmp_path):
    body = squad_json(
        [
            (
                "the movie was good",
                [qa("q1", "how?", [("good", 14), ("good", 3)]), qa("q2", "what?", [("movie", 0)])],
            ),
            ("nice plot", [qa("q3", "what?", [("plot", 5)])]),
        ]
    )
    path = tmp_path / "dev-v1.1.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    report = squad.read_file(path, 1)
    assert (report.bad_answers, report.skipped_questions) == (2, 1)
    assert [(e.qid, e.answers) for e in report.examples] == [("q1", (("good", 14),)), ("q3", (("plot", 5),))]
    err = "\n".join(report.warnings)
    assert f"{path}: question q1: answer 'good' does not match the context at answer_start 3" in err
    assert f"{path}: question q2: answer 'movie' does not match the context at answer_start 0" in err
    assert (
        f"{path}: skipped 2 answer(s) whose answer_start does not match the context and 1 question(s) of 3"
        in err
    )


BAD_FILES = [
    ({"version": "1.1"}, "missing field 'data'"),
    ({"data": [{"title": "x"}]}, "article 0: missing field 'paragraphs'"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, "article 0 paragraph 0: missing field 'context'"),
    (
        {"data": [{"paragraphs": [{"context": "a b", "qas": [{"id": "x", "answers": []}]}]}]},
        "question x: missing field 'question'",
    ),
    (
        {
            "data": [
                {
                    "paragraphs": [
                        {"context": "a b", "qas": [{"id": "x", "question": "q?", "answers": [{"text": "a"}]}]}
                    ]
                }
            ]
        },
        "question x answer: missing field 'answer_start'",
    ),
    ({"data": [{"paragraphs": [{"context": 3, "qas": []}]}]}, "field 'context' must be a str, got int"),
]


@pytest.mark.parametrize(("body", "message"), BAD_FILES)
def test_missing_fields_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(AlbertError) as err:
        squad.read_file(path, 1)
    assert str(err.value).endswith(message) and "\n" not in str(err.value)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(AlbertError, match=r"bad.json: not JSON \(Expecting property name"):
        squad.read_file(path, 1)


def test_empty_context_skipped_with_warning(tmp_path):
    body = squad_json([("  ", [qa("e1", "q?", [])]), ("good", [qa("ok", "q?", [("good", 0)])])])
    path = tmp_path / "d.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    report = squad.read_file(path, 1)
    assert [e.qid for e in report.examples] == ["ok"] and report.skipped_paragraphs == 1
    assert f"{path}: article 0 paragraph 0: empty context, skipped with its 1 question(s)" in report.warnings
    path.write_text(json.dumps(squad_json([("", [])])), encoding="utf-8")
    with pytest.raises(AlbertError, match="no usable SQuAD questions"):
        squad.read_files(1, path, "dev")


def test_datasets_source_offline(tmp_path):
    import datasets

    rows = {
        "id": ["a", "b"],
        "title": ["t", "t"],
        "context": ["good movie", "sad film"],
        "question": ["which?", "none?"],
        "answers": [{"text": ["movie"], "answer_start": [5]}, {"text": [], "answer_start": []}],
    }
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "ds"))
    from albertctl.tasks.base import read_split

    examples = read_split(get_task("squad2"), tmp_path / "ds", "dev")
    assert [(e.qid, e.answers, e.is_impossible) for e in examples] == [
        ("a", (("movie", 5),), False),
        ("b", (), True),
    ]


# ---------------------------------------------------------------------------------------------
# features


ROUND_TRIP = [  # (context, answer, answer_start): start, end, unicode, repeated words
    ("good film and the plot was really nice", "good", 0),
    ("the movie was a story and it was really grim", "grim", 40),
    ("Café Zürich showed a naïve   film, really “bright” today", "Zürich", 5),
    ("Café Zürich showed a naïve   film, really “bright” today", "naïve   film", 21),
    ("Café Zürich showed a naïve   film, really “bright” today", "bright", 43),
    (
        "the cast was happy and the cast was sad and the cast was dull and the plot was nice",
        "the cast was sad",
        23,
    ),
]


@pytest.mark.parametrize("max_seq_length", [16, 20, 64])
@pytest.mark.parametrize(("context", "answer", "start"), ROUND_TRIP)
def test_labels_map_back_to_the_exact_answer(world, context, answer, start, max_seq_length):
    assert context[start : start + len(answer)] == answer
    example = squad.SquadExample("x", "what was it ?", context, ((answer, start),))
    cfg = TaskConfig(epochs=1, max_seq_length=max_seq_length, doc_stride=3, max_query_length=4)
    features = squad.span_features(example, world["tok"], cfg)
    labelled = [f for f in features if f.label != (0, 0)]
    assert labelled, "some window holds the whole answer"
    for f in labelled:
        s, e = f.label
        assert context[f.extra["offsets"][s][0] : f.extra["offsets"][e][1]] == answer
    for f in features:
        assert len(f.input_ids) <= max_seq_length and f.input_ids[0] == world["tok"].cls_id
        assert f.input_ids[1 : 1 + 4] == world["tok"].encode("what was it ?")[:4]  # question cut to 4
    # every context token is max-context in exactly one window
    enc = world["tok"].encode_with_offsets(context)
    owners = [
        sum(
            1
            for f in features
            for o, m in zip(f.extra["offsets"], f.extra["max_context"], strict=True)
            if m and o == tuple(off)
        )
        for off in enc.offsets
    ]
    assert all(n >= 1 for n in owners)


def test_windows_stride_and_answer_across_a_boundary(world):
    tok = world["tok"]
    context = " ".join(["movie"] * 10 + ["happy", "sad"] + ["film"] * 10)
    question = "what ?"
    first = len(tok.encode(question)) + 2  # [CLS] question [SEP]
    cfg = TaskConfig(epochs=1, max_seq_length=first + 1 + 8, doc_stride=5, max_query_length=8)
    assert squad.doc_windows(22, 8, 5) == [(0, 8), (5, 8), (10, 8), (15, 7)]
    enc = tok.encode_with_offsets(context)
    start = context.index("happy")
    gold = squad.answer_token_span(enc.offsets, start, start + len("happy sad"))
    windows = squad.doc_windows(len(enc.ids), 8, 5)
    straddling = [w for w, (s, n) in enumerate(windows) if s <= gold[0] < s + n <= gold[1]]
    assert straddling, "the answer crosses some window's end"
    expected = [
        (gold[0] - s + first, gold[1] - s + first) if s <= gold[0] and gold[1] < s + n else (0, 0)
        for s, n in windows
    ]
    example = squad.SquadExample("x", question, context, (("happy sad", start),))
    features = squad.span_features(example, tok, cfg)
    assert [f.label for f in features] == expected
    assert all(expected[w] == (0, 0) for w in straddling) and any(e != (0, 0) for e in expected)
    assert [f.length for f in features] == [first + n + 1 for _, n in windows]
    assert windows[-1][0] + windows[-1][1] == len(enc.ids)  # the last window ends the context
    beam = TaskConfig(epochs=1, max_seq_length=first + 9, doc_stride=5, max_query_length=8, span_head="beam")
    labels = [f.label for f in squad.span_features(example, tok, beam)]
    assert labels == [(*e, int(e == (0, 0))) for e in expected]


def test_max_context_prefers_the_centred_window():
    spans = [(0, 8), (5, 8), (10, 8)]
    # token 6: window 0 has min(6, 1) = 1 context; window 1 has min(1, 6) = 1: ties -> first
    assert [squad.max_context(spans, w, 6) for w in range(3)] == [True, False, False]
    # token 9: window 0 min(9-0, 7-9) lacks it; window 1: min(4, 3)=3; window 2 lacks it
    assert [squad.max_context(spans, w, 9) for w in range(3)] == [False, True, False]


# ---------------------------------------------------------------------------------------------
# decoding


def _feature(offsets, max_context, index=0):
    return Feature(
        [0] * len(offsets), [0] * len(offsets), None, index, {"offsets": offsets, "max_context": max_context}
    )


def test_decode_simple_head_by_hand():
    context = "good film was nice"
    # positions: 0 [CLS], 1 q, 2 [SEP], 3 good, 4 film, 5 was, 6 nice, 7 [SEP]
    off = [(-1, -1)] * 3 + [(0, 4), (5, 9), (10, 13), (14, 18)] + [(-1, -1)]
    f1 = _feature(off, [False] * 3 + [True, True, False, False, False])
    f2 = _feature(off, [False] * 3 + [False, False, True, True, False])
    start1 = np.array([1.0, 9, 0, 2, 0, 0, 3, 0])  # position 1 (question) and 6 (not max) refused
    end1 = np.array([1.0, 0, 0, 0, 2.5, 0, 4, 0])
    start2 = np.array([0.5, 0, 0, 0, 0, 1, 0, 0])
    end2 = np.array([0.5, 0, 0, 0, 0, 0, 1.5, 0])
    ex = squad.SquadExample("q", "?", context, (("good film", 0),))
    cfg = TaskConfig(epochs=1, n_best_size=3, max_answer_length=2)
    [p] = squad.decode(1, [ex], [f1, f2], [np.stack([start1, end1]), np.stack([start2, end2])], cfg)
    # top-3 starts x top-3 ends. f1: starts 1 (question), 6 (not max context), 3; ends 6, 4, 0:
    # only (3, 4) = 2 + 2.5 is valid, (3, 6) is 4 tokens > 2. f2: starts 5, 0, 1; ends 6, 0, 1:
    # (5, 6) = 1 + 1.5
    assert p.text == "good film" and p.null_odds is None
    assert [(n["text"], n["start_logit"] + n["end_logit"]) for n in p.nbest] == [
        ("good film", 4.5),
        ("was nice", 2.5),
    ]
    assert sum(n["probability"] for n in p.nbest) == pytest.approx(1.0)
    # v2: null = min over windows of start[CLS] + end[CLS] = min(2, 1) = 1; odds = 1 - 4.5
    [p2] = squad.decode(2, [ex], [f1, f2], [np.stack([start1, end1]), np.stack([start2, end2])], cfg)
    assert p2.null_odds == pytest.approx(-3.5) and p2.text == "good film"
    [p3] = squad.decode(
        2,
        [ex],
        [f1, f2],
        [np.stack([start1, end1]), np.stack([start2, end2])],
        TaskConfig(epochs=1, n_best_size=3, max_answer_length=2, null_threshold=-4.0),
    )
    assert p3.text == "" and p3.best_text == "good film"


def test_decode_beam_head_by_hand():
    context = "good film was nice"
    off = [(-1, -1)] * 3 + [(0, 4), (5, 9), (10, 13), (14, 18)] + [(-1, -1)]
    f = _feature(off, [False] * 3 + [True] * 4 + [False])
    # k = 2 starts x k2 = 2 ends
    packed = np.concatenate(
        [[2, 2], [-0.1, -1.0], [5, 3], [[-0.2, -0.3], [-0.5, -2.0]], [[6, 5], [4, 3]], [0.7]], axis=None
    ).astype(np.float64)
    start_top, start_idx, end_top, end_idx, cls = squad.unpack_beam(packed)
    assert list(start_idx) == [5, 3] and end_idx.tolist() == [[6, 5], [4, 3]] and cls == 0.7
    ex = squad.SquadExample("q", "?", context, ())
    cfg = TaskConfig(epochs=1, span_head="beam")
    [p] = squad.decode(2, [ex], [f], [packed], cfg)
    # (5,6) -0.3, (5,5) -0.4, (3,4) -1.5, (3,3) -3.0; null odds = the answerability logit 0.7 > 0
    assert [n["text"] for n in p.nbest] == ["was nice", "was", "good film", "good"]
    assert (p.text, p.best_text, p.null_odds) == ("", "was nice", 0.7)


# ---------------------------------------------------------------------------------------------
# metrics


def test_normalisation_and_f1_by_hand():
    assert squad.normalize_answer("The  Cat's, hat!") == "cats hat"
    assert squad.normalize_answer("An apple a day") == "apple day"
    assert squad.f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)  # p 2/3, r 1
    assert squad.f1_score("", "") == 1.0 and squad.f1_score("", "cat") == 0.0
    assert squad.exact_score("The Denver Broncos.", "denver broncos") == 1


def test_v2_scores_by_hand():
    golds = {"q1": ["Paris"], "q2": [], "q3": ["blue sky", "sky"]}
    preds = {"q1": "paris", "q2": "", "q3": "the sky is blue"}
    m = squad.squad_scores(golds, preds)
    # q3: vs "blue sky" p 2/3 r 1 -> 0.8; vs "sky" p 1/3 r 1 -> 0.5; max 0.8
    assert m["exact"] == pytest.approx(200 / 3) and m["f1"] == pytest.approx(280 / 3)
    assert (m["HasAns_exact"], m["HasAns_f1"], m["NoAns_exact"], m["NoAns_f1"]) == pytest.approx(
        (50, 90, 100, 100)
    )
    assert (m["total"], m["HasAns_total"], m["NoAns_total"]) == (3, 2, 1)
    assert "best_f1" not in m  # as the official script: the threshold sweep needs na-probs
    assert squad.squad_scores(golds, preds, version=1) == {
        "exact": pytest.approx(200 / 3),
        "f1": pytest.approx(280 / 3),
    }
    # a gold list of only empty-after-normalisation answers scores as [""]
    assert squad.squad_scores({"q": ["The"]}, {"q": ""}, version=1)["exact"] == 100.0
    # a missing prediction scores 0
    assert squad.squad_scores({"a": ["x"], "b": ["y"]}, {"a": "x"}, version=1)["exact"] == 50.0


def test_threshold_tuning_by_hand():
    golds = {"q1": ["Paris"], "q2": [], "q3": ["blue sky"]}
    preds = {"q1": "paris", "q2": "rome", "q3": "wrong"}
    probs = {"q1": 0.1, "q2": 0.8, "q3": 0.5}
    m = squad.squad_scores(golds, preds, probs)
    assert m["exact"] == pytest.approx(100 / 3)  # na_prob_thresh 1.0: every answer stands
    # sweep: all-null 1/3; q1 (0.1) answered right -> 2/3; q3 (0.5) wrong -> 2/3; q2 (0.8) wrong -> 1/3
    assert (m["best_exact"], m["best_exact_thresh"]) == (pytest.approx(200 / 3), 0.1)
    assert (m["best_f1"], m["best_f1_thresh"]) == (pytest.approx(200 / 3), 0.1)
    applied = squad.squad_scores(golds, preds, probs, na_prob_thresh=0.3)  # q2, q3 -> no answer
    assert (applied["exact"], applied["NoAns_exact"], applied["HasAns_exact"]) == pytest.approx(
        (200 / 3, 100, 50)
    )
    # a model's predictions: best spans + null odds, scored at the threshold it decided with
    examples = [squad.SquadExample(q, "?", "c", tuple((t, 0) for t in g), not g) for q, g in golds.items()]
    model = [
        squad.SquadPrediction("" if probs[q] > 0.3 else preds[q], preds[q], probs[q], 0.3) for q in golds
    ]
    assert squad.prediction_metrics(2, examples, model) == applied


# ---------------------------------------------------------------------------------------------
# the original v2 head


def micro_config():
    return load_profile(
        "tiny",
        [
            "model.embedding_size=8",
            "model.hidden_size=16",
            "model.num_hidden_layers=1",
            "model.num_attention_heads=2",
            "model.intermediate_size=32",
            "model.vocab_size=40",
            "model.classifier_dropout_prob=0.0",
        ],
    ).model


def test_beam_head_shapes_and_conditioning():
    torch.manual_seed(0)
    model = AlbertForTask(micro_config(), "squad2-beam").eval()
    ids = torch.randint(5, 40, (2, 12))
    types = torch.tensor([[0] * 4 + [1] * 8, [0] * 4 + [1] * 6 + [0] * 2])
    mask = torch.tensor([[1] * 12, [1] * 10 + [0] * 2])
    out = model(ids, types, mask)
    assert isinstance(out, BeamSpanOutput)
    assert out.start_log_probs.shape == (2, 5) and out.end_log_probs.shape == (2, 5, 5)
    assert (
        out.start_top_index.shape == (2, 5)
        and out.end_top_index.shape == (2, 5, 5)
        and out.cls_logits.shape == (2,)
    )
    # answers only at [CLS] or context tokens (segment 1 without its closing [SEP]): 1 + 7 and 1 + 5
    allowed = [{0, *range(4, 11)}, {0, *range(4, 9)}]
    for b in range(2):
        assert set(out.start_top_index[b].tolist()) <= allowed[b]
        assert set(out.end_top_index[b].flatten().tolist()) <= allowed[b]
    # the beam's end scores for start s equal training-mode end scores given start s
    s = out.start_top_index[:, 1]
    train = model(ids, types, mask, start_positions=s)
    assert train.start_log_probs.shape == (2, 12) and train.end_log_probs.shape == (2, 12)
    for b in range(2):
        top = train.end_log_probs[b].topk(5)
        assert torch.allclose(top.values, out.end_log_probs[b, 1], atol=1e-5)
        assert top.indices.tolist() == out.end_top_index[b, 1].tolist()
    other = model(ids, types, mask, start_positions=out.start_top_index[:, 0])
    assert not torch.allclose(
        other.end_log_probs[:, 4:8], train.end_log_probs[:, 4:8]
    )  # conditioned on the start
    assert torch.equal(other.cls_logits, train.cls_logits)  # answerability does not depend on it
    labels = torch.tensor([[s[0].item(), s[0].item(), 0], [0, 0, 1]])
    loss = head_loss("squad2-beam")(train, labels)
    expected = (
        -(train.start_log_probs[0, s[0]] + train.start_log_probs[1, 0]) / 2
        - (train.end_log_probs[0, s[0]] + train.end_log_probs[1, 0]) / 2
    ) / 2 + 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(train.cls_logits, labels[:, 2].float())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_beam_head_names_match_the_converter_and_tf_weights_load(tmp_path):
    config = micro_config()
    ours = set(AlbertForTask(config, "squad2-beam").state_dict())
    assert ours == {n.key for n in N.tf_names(config, "squad2-beam")}
    out = tmp_path / "conv"
    result = convert.run("tf", str(TF_FIXTURES / "squad2"), out)
    assert result["head"]["kind"] == "squad2-beam" and "note" not in result["head"]
    md = load_model_dir(out)
    model = AlbertForTask(md.profile.model, "squad2-beam")
    model.load_state_dict(md.state_dict, strict=True)  # every tensor placed, none left over
    assert torch.equal(
        model.head.answer_class.dense_1.weight, md.state_dict["head.answer_class.dense_1.weight"]
    )
    assert model.head.answer_class.dense_1.bias is None


# ---------------------------------------------------------------------------------------------
# end to end


def write_split(folder: Path, version: str, body: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    split = "train" if body["data"][0]["paragraphs"][0]["qas"][0]["id"].startswith("t") else "dev"
    (folder / f"{split}-v{version}.json").write_text(json.dumps(body), encoding="utf-8")


LEARN = [
    "task.max_seq_length=32",
    "task.max_query_length=8",
    "task.doc_stride=8",
    "task.batch_size=16",
    "task.warmup_proportion=0.05",
    "task.learning_rate=3e-3",
    "task.eval_every=0",
]


def test_tiny_model_learns_synthetic_squad(world, tmp_path):
    rng = random.Random(7)
    data = tmp_path / "data"
    write_split(data, "1.1", synthetic(rng, 160, "t"))
    write_split(data, "1.1", synthetic(rng, 40, "d"))
    [result] = finetune.run("squad1", world["model"], tmp_path / "run", data, [*LEARN, "task.epochs=8"])
    assert result.metrics["exact"] > 90, result
    assert result.main_metric == "f1" and result.metrics["f1"] >= result.metrics["exact"]


def test_squad2_beam_end_to_end_writes_official_files(world, tmp_path):
    rng = random.Random(3)
    data = tmp_path / "data"
    train = synthetic(rng, 24, "t")
    dev = synthetic(rng, 6, "d")
    dev["data"][0]["paragraphs"][0]["qas"] = [qa("d-none", "what ?", [], True)]
    write_split(data, "2.0", train)
    write_split(data, "2.0", dev)
    [result] = finetune.run(
        "squad2",
        world["model"],
        tmp_path / "run",
        data,
        [*LEARN, "task.epochs=0", "task.train_steps=2", "task.warmup_proportion=0"],
    )
    assert {"best_f1", "best_f1_thresh", "HasAns_exact", "NoAns_exact"} <= set(result.metrics)
    manifest_head = load_model_dir(result.model_dir).head
    assert (manifest_head["kind"], manifest_head["task"]) == ("squad2-beam", "squad2")
    out = finetune.evaluate("squad2", result.model_dir, data, tmp_path / "pred")
    assert out["metrics"].keys() == result.metrics.keys()
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    odds = json.loads((tmp_path / "pred" / "null_odds.json").read_text())
    nbest = json.loads((tmp_path / "pred" / "nbest_predictions.json").read_text())
    assert set(preds) == set(odds) == set(nbest) == {"d-none", "d1", "d2", "d3", "d4", "d5"}
    assert all(isinstance(v, str) for v in preds.values()) and all(
        isinstance(v, float) for v in odds.values()
    )
    assert {"text", "probability", "start_log_prob", "end_log_prob"} <= set(nbest["d1"][0])
    # scoring our own files reproduces the model's metrics
    scored = score.score_predictions("squad2", tmp_path / "pred" / "predictions.json", data)
    assert scored["metrics"]["exact"] == pytest.approx(out["metrics"]["exact"])


def test_cli_eval_squad2_predictions_json(tmp_path, run_cli):
    dev = squad_json(
        [
            ("the film was good", [qa("a", "how?", [("good", 13)], False), qa("b", "why?", [], True)]),
            ("a nice plot", [qa("c", "what?", [("nice plot", 2), ("plot", 7)], False)]),
        ],
        "v2.0",
    )
    (tmp_path / "dev.json").write_text(json.dumps(dev), encoding="utf-8")
    (tmp_path / "pred.json").write_text(
        json.dumps({"a": "Good.", "b": "film", "c": "the plot"}), encoding="utf-8"
    )
    (tmp_path / "na.json").write_text(json.dumps({"a": 0.2, "b": 0.9, "c": 0.4}), encoding="utf-8")
    argv = [
        "eval",
        "squad2",
        "--predictions",
        "pred.json",
        "--data",
        "dev.json",
        "--na-probs",
        "na.json",
        "--json",
    ]
    result = run_cli(argv, cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    m = body["metrics"]
    # a exact; b wrong (answered); c "the plot" vs "plot" exact after normalisation
    assert (m["exact"], m["f1"], m["HasAns_exact"], m["NoAns_exact"]) == pytest.approx(
        (200 / 3, 200 / 3, 100, 0)
    )
    # sweep: all-null 1/3; a (0.2) +1 -> 2/3; c (0.4) +1 -> 3/3; b (0.9) -1 -> 2/3
    assert (m["best_exact"], m["best_exact_thresh"]) == (pytest.approx(100.0), 0.4)
    result = run_cli(["eval", "squad2", "--predictions", "missing.json", "--data", "dev.json"], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip()) == (2, "error: answer text file missing.json not found")
    result = run_cli(["eval", "mnli", "--predictions", "pred.json", "--data", "dev.json"], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: --predictions scores SQuAD predictions files (squad1, squad2), not mnli",
    )
    # a v2.0 file scored as v1.1 would count "b" as answerable: refused, as the official script warns
    result = run_cli(["eval", "squad1", "--predictions", "pred.json", "--data", "dev.json"], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: dev.json: a SQuAD v2.0 file, but task squad1 reads v1.1 (its unanswerable questions would "
        "be scored as answerable; use the squad2 task)",
    )


def test_cli_prints_the_readers_warnings_once(tmp_path, run_cli):
    """The reader returns its warnings; the CLI prints each once on stderr, stdout stays JSON."""
    dev = squad_json(
        [("the film was good", [qa("a", "how?", [("good", 13), ("film", 0)])]), ("  ", [qa("b", "q?", [])])]
    )
    (tmp_path / "dev.json").write_text(json.dumps(dev), encoding="utf-8")
    (tmp_path / "pred.json").write_text(json.dumps({}), encoding="utf-8")
    result = run_cli(
        ["eval", "squad1", "--predictions", "pred.json", "--data", "dev.json", "--json"], cwd=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metrics"] == {"exact": 0.0, "f1": 0.0}
    assert result.stderr.splitlines() == [
        "warning: dev.json: question a: answer 'film' does not match the context at answer_start 0; answer skipped",
        "warning: dev.json: article 0 paragraph 1: empty context, skipped with its 1 question(s)",
        "warning: dev.json: skipped 1 answer(s) whose answer_start does not match the context and 1 question(s) of 2",
        "warning: pred.json: no prediction for 1 of 1 question(s) (scored 0)",
    ]


def test_reader_warnings_reach_rank_0s_progress_only(tmp_path, monkeypatch):
    """finetune/eval hand the readers a warn that makes `warning` events, on rank 0 only."""
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad_json([("", [qa("e", "q?", [])]), ("ok", [qa("k", "q?", [("ok", 0)])])])))
    messages = [
        f"{path}: article 0 paragraph 0: empty context, skipped with its 1 question(s)",
        f"{path}: skipped 0 answer(s) whose answer_start does not match the context and 1 question(s) of 2",
    ]
    events: list[dict] = []
    monkeypatch.delenv("RANK", raising=False)
    examples = read_split(get_task("squad1"), path, "dev", finetune.warner(events.append))
    assert [e.qid for e in examples] == ["k"]
    assert events == [{"event": "warning", "message": m} for m in messages]
    monkeypatch.setenv("RANK", "1")
    assert finetune.warner(events.append) is None and finetune.warner(None) is None


def test_version_of_the_file_against_the_task():
    v2_body = squad_json([("the film", [qa("a", "what?", [], True)])], "v2.0")
    assert [e.is_impossible for e in squad.parse_squad(v2_body, "f.json", 2).examples] == [True]
    with pytest.raises(AlbertError, match=r"^f.json: a SQuAD v2.0 file, but task squad1 reads v1.1"):
        squad.parse_squad(v2_body, "f.json", 1)
    unlabelled = {"data": v2_body["data"]}  # no version field: the question itself gives it away
    with pytest.raises(
        AlbertError, match=r"^f.json: question a is marked is_impossible, which only SQuAD v2.0"
    ):
        squad.parse_squad(unlabelled, "f.json", 1)
    v1_body = squad_json([("the film", [qa("a", "what?", [("film", 4)])])], "1.1")
    for version in (1, 2):  # a v1.1 file is a valid v2.0 input: every question answerable
        examples = squad.parse_squad(v1_body, "f.json", version).examples
        assert [(e.answers, e.is_impossible) for e in examples] == [((("film", 4),), False)]
