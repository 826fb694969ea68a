"""Experiment trackers fed by the training loop's event stream (the events of metrics.jsonl).

`--report-to` names them: `tensorboard`, `mlflow`, `wandb`, `none`, or `auto` (the default:
TensorBoard when it is installed, nothing else). Each is an optional extra
(`pip install 'albertctl[tracking]'`) and each works offline:

- tensorboard: event files in `RUN/tensorboard`.
- mlflow: `MLFLOW_TRACKING_URI` when set, else a file store in `RUN/mlruns` (MLflow 3 keeps it in
  maintenance mode: albertctl sets `MLFLOW_ALLOW_FILE_STORE=true` for it; `mlflow ui
  --backend-store-uri RUN/mlruns`); experiment `MLFLOW_EXPERIMENT_NAME` or "albertctl".
- wandb: project `WANDB_PROJECT` or "albertctl", files in `RUN/wandb`; offline unless `WANDB_MODE`
  or `WANDB_API_KEY` says otherwise (`wandb sync RUN/wandb/offline-run-*` uploads later).

Every numeric field of a `train` or `eval` event is logged as `EVENT/FIELD` at the event's step,
so the trackers hold exactly what metrics.jsonl holds. Only rank 0 writes.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from albertctl.core.errors import AlbertError

CHOICES = ("auto", "none", "tensorboard", "mlflow", "wandb")
# the import that proves a tracker is installed, and the pip extra that brings it
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
LOGGED_EVENTS = ("train", "eval")


class Tracker(Protocol):
    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def parse_report_to(values: Sequence[str]) -> tuple[str, ...]:
    """`--report-to` values (repeatable, or comma-separated) as the trackers to open, checked
    for spelling and for the package each needs before any training starts."""
    names: list[str] = []
    for value in values:
        names += [v.strip().lower() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in CHOICES:
            raise AlbertError(
                f"--report-to: unknown tracker '{name[:40]}' (choose from {', '.join(CHOICES)})"
            )
    if not names or names == ["auto"]:
        return ("tensorboard",) if _installed("tensorboard") else ()
    if len(names) > 1 and ("auto" in names or "none" in names):
        raise AlbertError("--report-to: 'auto' and 'none' stand alone, not beside other trackers")
    if names == ["none"]:
        return ()
    for name in names:
        if not _installed(name):
            raise AlbertError(
                f"--report-to {name} needs the {_PACKAGES[name]} package "
                f"(pip install 'albertctl[tracking]' or pip install {_PACKAGES[name]})"
            )
    return tuple(dict.fromkeys(names))


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[name]) is not None


def numeric_fields(event: Mapping[str, Any]) -> dict[str, float]:
    """`EVENT/FIELD: value` for every number in a train/eval event except its step."""
    kind = event.get("event")
    if kind not in LOGGED_EVENTS:
        return {}
    return {
        f"{kind}/{k}": float(v)
        for k, v in event.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"
    }


def open_trackers(names: Sequence[str], run_dir: Path, params: Mapping[str, Any]) -> list[Tracker]:
    """The trackers named (see `parse_report_to`), writing for the run in `run_dir`."""
    makers = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _WandB}
    return [makers[name](run_dir, params) for name in names]


class _TensorBoard:
    def __init__(self, run_dir: Path, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, run_dir: Path, params: Mapping[str, Any]) -> None:
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the offline default: MLflow 3 keeps its file store, behind an opt-in
            uri = (run_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.tracking.MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "albertctl")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class _WandB:
    def __init__(self, run_dir: Path, params: Mapping[str, Any]) -> None:
        import wandb

        online = os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online"
        (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "albertctl"),
            name=run_dir.name,
            dir=str(run_dir),
            config=dict(params),
            mode=os.environ.get("WANDB_MODE") or ("online" if online else "offline"),
            settings=wandb.Settings(silent=True, console="off"),  # albertctl owns the terminal
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        import wandb

        self.run.finish()
        wandb.teardown()  # W&B's service writes the offline run file only when it stops
