"""`albertctl eval`: the pretraining report of a model on held-out data, and training curves.

    albertctl eval --model DIR --data DIR     the original's report (SPEC section 4):
        global_step, loss, masked_lm_accuracy, masked_lm_loss, sentence_order_accuracy,
        sentence_order_loss; plus the accuracy of always predicting the most frequent masked
        token, the floor a model has to beat.
    albertctl eval --plot RUN_DIR             metrics.jsonl -> RUN_DIR/curves.png

Task evaluation (`albertctl eval TASK --model DIR`) lives with fine-tuning
(`pipelines.finetune`); the CLI sends a TASK argument there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albertctl.core.config import Overrides, parse_overrides, with_overrides
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import load_model_dir
from albertctl.core.results import Result
from albertctl.core.safeload import BadJson, decode_json, parse_yaml
from albertctl.data.pretraining import (
    PretrainingCollator,
    check_data_matches,
    load_split,
    read_manifest,
    vocab_file,
)
from albertctl.data.tokenizer import load_tokenizer
from albertctl.model.albert import AlbertForPreTraining
from albertctl.tasks.pretraining import EVAL_BATCH_SIZE, pretraining_metrics
from albertctl.training.run import set_unpad

REPORT_KEYS = (
    "global_step",
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "sentence_order_accuracy",
    "sentence_order_loss",
)


def original_report(report: dict[str, Any]) -> dict[str, Any]:
    """The keys the original's eval printed, in its order, from a fuller report."""
    return {k: report[k] for k in REPORT_KEYS if k in report}


NO_DATA = "eval --model DIR needs --data DIR (the output of albertctl prepare) for the pretraining report"


def recorded_data(model_dir: Path, head: Mapping[str, Any]) -> Path:
    """The prepared data a model was pretrained on, as its model dir records it, if it is still
    there with the same vocabulary; otherwise the one-line error asking for --data."""
    record = head.get("pretraining_data")
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise AlbertError(NO_DATA)
    path = Path(record["path"])
    what = "the built-in sample corpus prepared" if record.get("builtin") else "data prepared"
    try:
        manifest = read_manifest(path)
    except AlbertError:
        raise AlbertError(
            f"{model_dir} was pretrained on {what} in {path}, which is no longer there; {NO_DATA}"
        ) from None
    if record.get("vocab_sha256") and manifest.get("vocab", {}).get("sha256") != record["vocab_sha256"]:
        raise AlbertError(
            f"{model_dir} was pretrained on {what} in {path}, which now holds another vocabulary; {NO_DATA}"
        )
    return path


def global_step_of(model_dir: Path, head: Mapping[str, Any]) -> int:
    """A checkpoint's model dir knows its step from ../state.yaml; an exported one from its head."""
    if "global_step" in head:
        return int(head["global_step"])
    state = model_dir.parent / "state.yaml"
    if state.is_file():
        try:
            return int(parse_yaml(state.read_text(encoding="utf-8"), str(state)).get("step", 0))
        except (AlbertError, AttributeError, ValueError, TypeError):
            return 0
    return 0


@dataclass(frozen=True)
class PretrainingReport(Result):
    """What `albertctl eval --model DIR` prints; `to_dict()` (its --json output) is flat:
    global_step, data, then the metrics."""

    global_step: int
    data: str  # the prepared data scored (its held-out split)
    metrics: dict[str, Any]  # pretraining_metrics(): losses, accuracies, eval_examples, ...

    def to_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "data": self.data, **self.metrics}


def run_pretraining(
    model_dir: Path,
    data_dir: Path | None,
    batch_size: int = EVAL_BATCH_SIZE,
    max_examples: int | None = None,
    overrides: Overrides = (),
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> PretrainingReport:
    """`albertctl eval --model DIR --data DIR`: the report on the data's held-out split.
    Without `data_dir`: the data the model was pretrained on, when its model dir records it
    (`pretrain` does) and it is still there.

    Dynamically masked data is masked with the model profile's `data` recipe; `overrides`
    (`data.key=value` only) change it, e.g. to score a model under another masking."""
    overrides = parse_overrides(overrides)
    for o in overrides:
        if o.section != "data" or len(o.keys) != 2:
            raise AlbertError(
                f"--set {o.text!r}: the pretraining report takes data.KEY=VALUE only (the held-out masking, "
                "e.g. --set data.ngram=1)"
            )
    md = load_model_dir(model_dir)
    if md.head.kind != "pretraining":
        raise AlbertError(
            f"{model_dir}: a fine-tuned {md.head.kind} model; evaluate it with albertctl eval TASK"
        )
    if data_dir is None:
        data_dir = recorded_data(Path(model_dir), md.head)
    cfg = md.profile.model
    manifest = check_data_matches(data_dir, cfg.vocab_size, cfg.max_position_embeddings, f"model {model_dir}")
    model = AlbertForPreTraining(cfg)
    missing, unexpected = model.load_state_dict(md.state_dict, strict=False)
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise AlbertError(
            f"{model_dir}: weights do not fit an ALBERT pretraining model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. {name})"
        )
    profile = with_overrides(md.profile, overrides)
    set_unpad(model, profile.train.unpad)
    recipe = profile.data
    tokenizer = load_tokenizer(vocab_file(data_dir, manifest), recipe.do_lower_case)
    collator = PretrainingCollator(tokenizer, recipe, md.profile.train.seed)
    report = pretraining_metrics(
        model,
        load_split(data_dir, "eval"),
        collator,
        batch_size,
        max_examples=max_examples,
        progress=progress,
    )
    return PretrainingReport(global_step_of(Path(model_dir), md.head), str(data_dir), report)


# --------------------------------------------------------------------------- curves


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise AlbertError(
            f"{run_dir}: no metrics.jsonl (expected the --out directory of albertctl pretrain or finetune)"
        )
    events = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(decode_json(line))
        except BadJson:
            raise AlbertError(f"{path}: line {n} is not JSON") from None
    return events


def plot(run_dir: Path, output: Path | None = None) -> Path:
    """Training curves (loss, accuracies, learning rate) and eval points as a PNG."""
    events = read_metrics(run_dir)
    train = _last_per_step([e for e in events if e.get("event") == "train"])
    evals = _last_per_step([e for e in events if e.get("event") == "eval"])
    if not train:
        raise AlbertError(f"{run_dir}/metrics.jsonl: no training events to plot")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AlbertError("eval --plot needs matplotlib: pip install 'albertctl[plot]'") from None
    names = ["loss"] + sorted({k for e in train for k in e if k.endswith("accuracy")}) + ["lr"]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.4 * len(names)), sharex=True)
    for ax, name in zip(axes, names, strict=True):
        steps = [e["step"] for e in train if name in e]
        ax.plot(steps, [e[name] for e in train if name in e], label=f"train {name}")
        if any(name in e for e in evals):
            ax.plot(
                [e["step"] for e in evals if name in e],
                [e[name] for e in evals if name in e],
                "o-",
                label=f"held-out {name}",
            )
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    output = Path(output) if output else Path(run_dir) / "curves.png"
    try:
        fig.savefig(output, dpi=100)
    except OSError as err:
        raise AlbertError(f"could not write {output}: {err.strerror or err}") from None
    finally:
        plt.close(fig)
    return output


def _last_per_step(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A resumed run logs some steps twice; keep the later line for each step."""
    by_step = {e["step"]: e for e in events if "step" in e}
    return [by_step[s] for s in sorted(by_step)]
