"""Progress as plain log lines when stderr is not a terminal (nohup, SLURM, CI logs)."""

from __future__ import annotations

import pytest

from albertctl.core import console
from albertctl.core.errors import AlbertError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(console.time, "monotonic", c)
    return c


def test_non_terminal_progress_writes_throttled_lines_and_a_final_one(monkeypatch, capsys, clock):
    monkeypatch.delenv("ALBERTCTL_NO_PROGRESS", raising=False)
    monkeypatch.setenv("ALBERTCTL_LOG_INTERVAL", "30")
    bar = console.progress()
    assert isinstance(bar, console.LineProgress)  # pytest's captured stderr is not a terminal
    with bar:
        task = bar.add_task("pretrain", total=100, completed=20, rate="", metrics="")
        for step in range(21, 61):  # 40 steps, one second each
            clock.now += 1.0
            bar.update(task, completed=step, rate=f"{step * 10:,} tok/s", metrics=f"loss {step / 10:.4f}")
    lines = capsys.readouterr().err.splitlines()
    # the first update, the first one 30 s after it, and the state at the end
    assert lines == [
        "pretrain 21/100 (21.0%) | 210 tok/s | loss 2.1000 | elapsed 0:00:01 eta 0:01:19",
        "pretrain 51/100 (51.0%) | 510 tok/s | loss 5.1000 | elapsed 0:00:31 eta 0:00:49",
        "pretrain 60/100 (60.0%) | 600 tok/s | loss 6.0000 | elapsed 0:00:40 eta 0:00:40",
    ]


def test_unknown_total_and_no_progress(monkeypatch, capsys, clock):
    monkeypatch.delenv("ALBERTCTL_NO_PROGRESS", raising=False)
    monkeypatch.setenv("ALBERTCTL_LOG_INTERVAL", "0")
    with console.progress(transient=True) as bar:
        task = bar.add_task("prepare", total=None, rate="")
        clock.now += 5
        bar.update(task, completed=2048, rate="3 docs/s")
    assert capsys.readouterr().err.splitlines() == ["prepare 2048 | 3 docs/s | elapsed 0:00:05"]
    monkeypatch.setenv("ALBERTCTL_NO_PROGRESS", "1")
    assert not isinstance(console.progress(), console.LineProgress)


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_log_interval_is_one_line(monkeypatch, value):
    monkeypatch.delenv("ALBERTCTL_NO_PROGRESS", raising=False)
    monkeypatch.setenv("ALBERTCTL_LOG_INTERVAL", value)
    with pytest.raises(AlbertError, match="ALBERTCTL_LOG_INTERVAL must be a number of seconds >= 0"):
        console.progress()


def test_settings_print_as_they_are_and_measurements_rounded(capsys):
    data = {
        "learning_rate": 0.00176,
        "seed": 12345,
        "layer_norm_eps": 1e-12,
        "flops": 529287858.0,
        "ok": True,
    }
    console.show(console.key_value_table("train", data, exact=True))
    shown = capsys.readouterr().out
    for text in ("0.00176", "12345", "1e-12", "529287858", "True"):
        assert f" {text} " in shown
    assert "0.0018" not in shown and "12,345" not in shown and "529287858.0" not in shown
    console.show(console.key_value_table("report", {"masked_lm_accuracy": 0.153312, "tokens": 123456}))
    shown = capsys.readouterr().out
    assert " 0.1533 " in shown and " 123,456 " in shown


def test_a_stage_shows_its_last_state_before_the_next_starts(monkeypatch, capsys, clock):
    monkeypatch.delenv("ALBERTCTL_NO_PROGRESS", raising=False)
    monkeypatch.setenv("ALBERTCTL_LOG_INTERVAL", "30")
    with console.progress() as bar:
        prep = bar.add_task("prepare", total=10, rate="")
        for done in (4, 10):
            clock.now += 1
            bar.update(prep, completed=done)
        clock.now += 1
        bar.add_task("pretrain", total=5, completed=0, rate="")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["prepare 4/10 (40.0%)", "prepare 10/10 (100.0%)"]


def test_an_evaluation_row_starts_over_and_shows_when_done(monkeypatch, capsys, clock):
    monkeypatch.delenv("ALBERTCTL_NO_PROGRESS", raising=False)
    monkeypatch.setenv("ALBERTCTL_LOG_INTERVAL", "30")
    with console.progress() as bar:
        row = bar.add_task("eval dev", total=8, rate="")
        for done in (2, 4, 8):  # the finished state is shown at once, not 30 s later
            clock.now += 1
            bar.update(row, completed=done)
        clock.now += 100
        bar.reset(row, total=6, description="eval dev_mismatched")
        clock.now += 2
        bar.update(row, completed=6)
    assert capsys.readouterr().err.splitlines() == [
        "eval dev 2/8 (25.0%) | elapsed 0:00:01 eta 0:00:03",
        "eval dev 8/8 (100.0%) | elapsed 0:00:03 eta 0:00:00",
        "eval dev_mismatched 6/6 (100.0%) | elapsed 0:00:02 eta 0:00:00",
    ]


def test_human_duration():
    assert [console.human_duration(s) for s in (0.0421, 150, 31_248, 3_568_320, 9.1e10)] == [
        "0.0421 s",
        "2.5 min",
        "8.68 h",
        "41.3 days",
        "2.88e+03 years",
    ]
