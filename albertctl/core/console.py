"""All terminal output: the rich consoles, tables, JSON, progress bars and error lines.

Only `cli.py` and this module print. Library code returns data or takes a progress callback.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from albertctl.core.errors import AlbertError

if TYPE_CHECKING:
    from rich.progress import Progress

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr, `error: ...`, never a traceback."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def info(message: str) -> None:
    err.print(escape(message), highlight=False)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
        return f"{value:,}"
    return str(value)


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(_cell(v) for v in row))
    return t


def key_value_table(title: str, data: Mapping[str, Any], exact: bool = False) -> Table:
    """`exact`: values as they are (settings: 0.00176 stays 0.00176, 12345 has no separator);
    otherwise measured figures, floats to 4 decimals and large counts with separators."""
    if not exact:
        return table(title, ["key", "value"], data.items())
    return table(title, ["key", "value"], ((k, _exact(v)) for k, v in data.items()))


def _exact(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e6:
            return str(int(value))  # a computed count such as FLOPs per token
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts; a pipeline's result as its
    `to_dict()`."""
    if hasattr(data, "to_dict"):
        data = data.to_dict()
    print(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def show(renderable: Any) -> None:
    out.print(renderable)


def progress(transient: bool = False, *extra: Any) -> Progress | LineProgress:
    """A progress bar with count, throughput fields and ETA, on stderr.

    When stderr is not a terminal (nohup, a scheduler, a CI log) a live bar would print nothing
    until the end, so plain lines are written instead, at most one per `ALBERTCTL_LOG_INTERVAL`
    seconds (default 30) and one when the work ends.
    """
    disabled = os.environ.get("ALBERTCTL_NO_PROGRESS") == "1"
    if not disabled and not err.is_terminal:
        return LineProgress(_log_interval())
    from rich.progress import (  # only commands that show a live bar pay for it
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra,
        console=err,
        transient=transient,
        disable=disabled,
    )


def _log_interval() -> float:
    text = os.environ.get("ALBERTCTL_LOG_INTERVAL", "30")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds >= 0):
        raise AlbertError(f"ALBERTCTL_LOG_INTERVAL must be a number of seconds >= 0, got {text[:40]!r}")
    return seconds


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class _LineTask:
    description: str
    total: float | None
    completed: float
    fields: dict[str, Any]
    started: float
    start_completed: float
    shown_at: float | None = None
    shown_completed: float | None = None


class LineProgress:
    """The part of rich's Progress that albertctl uses, written as plain log lines:
    `description completed/total (pct) | fields | elapsed H:MM:SS eta H:MM:SS`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.console = err
        self._tasks: list[_LineTask] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._flush()

    def _flush(self) -> None:
        """The last state of every task not shown yet (a finished stage before the next starts)."""
        for task in self._tasks:
            if task.shown_completed != task.completed:
                self._show(task, time.monotonic())

    def add_task(
        self, description: str, total: float | None = None, completed: float = 0, **fields: Any
    ) -> int:
        self._flush()
        now = time.monotonic()
        task = _LineTask(description, total, completed, dict(fields), now, completed)
        task.shown_completed = completed  # nothing new to show until it moves
        self._tasks.append(task)
        return len(self._tasks) - 1

    def update(
        self, task_id: int, *, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        task = self._tasks[task_id]
        if completed is not None:
            task.completed = completed
        if total is not None:
            task.total = total
        task.fields.update(fields)
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        if task.shown_at is None or now - task.shown_at >= self.interval or finished:
            self._show(task, now)

    def reset(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float = 0,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        """Start a task over (rich's Progress.reset): the next evaluation on the same row."""
        self._flush()
        task = self._tasks[task_id]
        task.description = description or task.description
        task.total = total if total is not None else task.total
        task.completed = task.start_completed = task.shown_completed = completed
        task.started, task.shown_at = time.monotonic(), None
        task.fields.update(fields)

    def line(self, task_id: int) -> str:
        return self._line(self._tasks[task_id], time.monotonic())

    def _show(self, task: _LineTask, now: float) -> None:
        task.shown_at, task.shown_completed = now, task.completed
        self.console.print(escape(self._line(task, now)), highlight=False, soft_wrap=True)

    @staticmethod
    def _line(task: _LineTask, now: float) -> str:
        elapsed = now - task.started
        if task.total:
            count = (
                f"{_number(task.completed)}/{_number(task.total)} ({100 * task.completed / task.total:.1f}%)"
            )
        else:
            count = _number(task.completed)
        parts = [f"{task.description} {count}"]
        parts += [str(v) for v in task.fields.values() if str(v)]
        timing = f"elapsed {_clock(elapsed)}"
        done = task.completed - task.start_completed
        if task.total and done > 0 and elapsed > 0:
            timing += f" eta {_clock((task.total - task.completed) * elapsed / done)}"
        parts.append(timing)
        return " | ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float) -> str:
    """3 significant digits in the largest unit that keeps the number >= 1: 0.0421 s, 2.5 min,
    8.68 h, 41.3 days, 1.65e+03 years."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
