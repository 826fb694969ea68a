"""The CMRC 2018 answer scoring (Chinese SQuAD-format QA), on cases computed by hand."""

from __future__ import annotations

import pytest

from albertctl.tasks import squad
from albertctl.tasks.base import TaskConfig


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("北京大学。", ["北", "京", "大", "学"]),
        ("ALBERT模型2019年", ["albert", "模", "型", "2019", "年"]),
        ("hello, world!", ["hello", ",", "world", "!"]),  # ASCII , ! are not in the script's list
        ("《三体》—刘慈欣", ["三", "体", "—", "刘", "慈", "欣"]),  # — (U+2014) is not either
        ("a-b_c 12：30", ["abc", "1230"]),  # listed punctuation goes before segmenting
    ],
)
def test_segments(text, segments):
    assert squad.cmrc_segments(text) == segments


@pytest.mark.parametrize(
    ("gold", "pred", "exact", "f1"),
    [
        ("北京大学", "北京大学。", 1, 1.0),
        ("北京大学", "北京", 0, 2 / 3),  # lcs 2: p 2/2, r 2/4
        ("ALBERT模型2019年", "albert 模型", 0, 0.75),  # lcs 3 of 5 and 3: p 1, r 3/5
        ("甲乙丙丁", "甲丙丁", 0, 4 / 7),  # the longest common *run* is 丙丁: p 2/3, r 2/4
        ("hello, world", "hello world", 0, 0.4),  # lcs 1: p 1/2, r 1/3
        ("“三体”", "三体", 1, 1.0),
        ("三体", "地球", 0, 0.0),
    ],
)
def test_exact_and_f1(gold, pred, exact, f1):
    assert squad.cmrc_exact(gold, pred) == exact
    assert squad.cmrc_f1(gold, pred) == pytest.approx(f1, abs=1e-12)


def test_best_over_golds_and_percentages():
    golds = {"q1": ["北京", "北京大学"], "q2": ["甲乙丙丁"], "q3": ["三体"]}
    preds = {"q1": "北京大学", "q2": "甲丙丁"}  # q3 unanswered: 0
    got = squad.squad_scores(golds, preds, version=1, metric="cmrc")
    assert got == pytest.approx({"exact": 100 / 3, "f1": 100 * (1 + 4 / 7) / 3})


def test_auto_picks_cmrc_for_chinese_answers_only():
    english = {"q": ["the cat"]}
    assert squad.squad_scores(english, {"q": "cat"}, version=1, metric="auto") == {
        "exact": 100.0,
        "f1": 100.0,
    }
    assert squad.squad_scores(english, {"q": "cat"}, version=1, metric="cmrc") == pytest.approx(
        {"exact": 0.0, "f1": 200 / 3}
    )  # lcs 1: p 1, r 1/2
    chinese = {"q": ["甲乙丙丁"]}
    auto = squad.squad_scores(chinese, {"q": "甲丙丁"}, version=1)
    assert auto == squad.squad_scores(chinese, {"q": "甲丙丁"}, version=1, metric="squad")  # default: squad
    assert (
        squad.resolve_metric("auto", chinese) == "cmrc" and squad.resolve_metric("auto", english) == "squad"
    )
    # a prediction carries task.metric from decoding to scoring
    example = squad.SquadExample("q", "问题", "甲乙丙丁", (("甲乙丙丁", 0),))
    for metric, f1 in (("auto", 100 * 4 / 7), ("squad", 0.0)):
        pred = squad.SquadPrediction("甲丙丁", "甲丙丁", metric=metric)
        assert squad.prediction_metrics(1, [example], [pred])["f1"] == pytest.approx(f1)
    assert TaskConfig(epochs=1).metric == "auto"
