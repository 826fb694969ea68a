"""`--report-to`: MLflow (file store) and W&B (offline) get exactly the metrics of metrics.jsonl."""

from __future__ import annotations

import importlib.util
import json

import pretrain_synthetic as S
import pytest

from albertctl.core.errors import AlbertError
from albertctl.training import loop, trackers


def recorded(run) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {EVENT/FIELD: {step: value}}."""
    out: dict[str, dict[int, float]] = {}
    for event in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()):
        for key, value in trackers.numeric_fields(event).items():
            out.setdefault(key, {})[event["step"]] = value
    return out


def test_parse_report_to(monkeypatch):
    assert trackers.parse_report_to(["none"]) == ()
    assert trackers.parse_report_to(["mlflow, MLflow"]) == ("mlflow",)
    monkeypatch.setattr(trackers, "_installed", lambda name: name != "tensorboard")
    assert trackers.parse_report_to([]) == trackers.parse_report_to(["auto"]) == ()
    assert trackers.parse_report_to(["wandb", "mlflow"]) == ("wandb", "mlflow")
    with pytest.raises(AlbertError, match=r"^--report-to tensorboard needs the tensorboard package \(pip"):
        trackers.parse_report_to(["tensorboard"])
    with pytest.raises(AlbertError, match=r"^--report-to: 'auto' and 'none' stand alone"):
        trackers.parse_report_to(["none,mlflow"])
    monkeypatch.setattr(trackers, "_installed", lambda name: True)
    assert trackers.parse_report_to([]) == ("tensorboard",)
    assert trackers.numeric_fields({"event": "checkpoint", "step": 3, "x": 1.0}) == {}
    assert trackers.numeric_fields({"event": "eval", "step": 3, "acc": 0.5, "ok": True, "n": 7}) == {
        "eval/acc": 0.5,
        "eval/n": 7.0,
    }


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_mlflow_file_store_records_the_metrics_of_metrics_jsonl(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the client below reads the same store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "albertctl-test")
    p = S.profile(train_steps=4, log_every=2, save_every=100)
    run = tmp_path / "run"
    loop.train(S.spec(p, run, report_to=("mlflow",)), p.train, p.deepspeed)
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("albertctl-test")
    (only,) = client.search_runs([experiment.experiment_id])
    assert (only.info.run_name, only.info.status) == ("run", "FINISHED")
    assert only.data.params["train.learning_rate"] == "0.01" and only.data.params["profile"] == "synthetic"
    expected = recorded(run)
    assert set(expected) >= {"train/loss", "train/lr", "train/tokens_per_second"}
    assert set(only.data.metrics) == set(expected)
    for key, by_step in expected.items():
        history = {m.step: m.value for m in client.get_metric_history(only.info.run_id, key)}
        assert history == pytest.approx(by_step), key
    assert sorted(expected["train/loss"]) == [2, 4]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed")
def test_wandb_offline_run_holds_every_metric(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    p = S.profile(train_steps=2, log_every=1, save_every=100)
    run = tmp_path / "run"
    loop.train(S.spec(p, run, report_to=("wandb",)), p.train, p.deepspeed)
    (offline,) = (run / "wandb").glob("offline-run-*")  # offline: nothing was sent anywhere
    (records,) = offline.glob("run-*.wandb")
    # W&B keeps each history value as its JSON text inside the run's protobuf records
    raw = records.read_bytes()
    for key, by_step in recorded(run).items():
        assert key.encode() in raw, key
        for value in by_step.values():
            assert json.dumps(value).encode() in raw, (key, value)


def test_unknown_tracker_is_one_line(run_cli, tmp_path):
    result = run_cli(["finetune", "rte", "--model", "nope", "--report-to", "comet"], cwd=tmp_path)
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "error: --report-to: unknown tracker 'comet' (choose from auto, none, tensorboard, mlflow, wandb)",
    )
    assert list(tmp_path.iterdir()) == []
