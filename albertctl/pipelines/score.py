"""`albertctl eval squad1|squad2 --predictions FILE --data FILE`: score a predictions file.

No model and no torch: the official SQuAD scoring of `{question id: answer}` against the
task's dev data, so it runs in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from albertctl.core.errors import AlbertError
from albertctl.core.results import Result
from albertctl.tasks.base import Warn, get_task, read_split


@dataclass(frozen=True)
class ScoreResult(Result):
    task: str
    predictions: str  # the file scored
    metrics: dict[str, float]


def score_predictions(
    task_name: str,
    predictions: Path,
    data: Path | None,
    na_probs: Path | None = None,
    warn: Warn | None = None,
) -> ScoreResult:
    """Scores of a predictions file ({question id: answer}) against a span task's dev data;
    `na_probs` ({id: no-answer probability}) adds the best-threshold scores of squad2. What the
    dev data's reader skipped, and the questions without a prediction, go to `warn`."""
    from albertctl.tasks import squad

    task = get_task(task_name)
    version = squad.VERSIONS.get(task.name)
    if version is None:
        raise AlbertError(f"--predictions scores SQuAD predictions files (squad1, squad2), not {task.name}")
    if na_probs is not None and version == 1:
        raise AlbertError("--na-probs applies to squad2 (v1.1 has no unanswerable questions)")
    examples = read_split(task, data, "dev", warn)
    metrics = squad.score_files(version, examples, Path(predictions), na_probs, warn=warn)
    return ScoreResult(task.name, str(predictions), metrics)
