"""The shared task framework: TaskConfig loading, registry, collate, batching, losses."""

import random

import numpy as np
import pytest
import torch

from albertctl.core.errors import AlbertError
from albertctl.model import heads
from albertctl.tasks import base
from albertctl.tasks.base import Feature, Task, TaskConfig


def _toy_task(name="toy-pairs", **kw):
    return Task(
        name=name,
        display="TOY",
        head="classify",
        num_labels=2,
        main_metric="accuracy",
        read_files=lambda d, s: [],
        featurise=lambda e, t, c: [],
        metrics=lambda e, p: {},
        labels=("no", "yes"),
        **kw,
    )


def test_task_config_needs_steps_or_epochs():
    assert TaskConfig(train_steps=10).total_steps(1000) == 10
    assert TaskConfig(epochs=2.0, batch_size=48).total_steps(100) == 5  # ceil(200 / 48)
    assert TaskConfig(epochs=2.0, warmup_proportion=0.1).warmup(50) == 5
    with pytest.raises(AlbertError, match="exactly one of task.train_steps and task.epochs"):
        TaskConfig(train_steps=10, epochs=1.0)
    with pytest.raises(AlbertError, match="not both"):
        TaskConfig(train_steps=10, warmup_steps=2, warmup_proportion=0.1)
    with pytest.raises(AlbertError, match="multiple of task.micro_batch_size"):
        TaskConfig(train_steps=10, batch_size=32, micro_batch_size=5)
    assert TaskConfig(train_steps=1, batch_size=8, micro_batch_size=32).micro_batch == 8  # never above batch
    assert TaskConfig(train_steps=1, batch_size=32, micro_batch_size=8).micro_batch == 8


def test_load_task_config_yaml_and_set(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("description: toy\ntask:\n  learning_rate: 3e-5\n  train_steps: 100\n  batch_size: 8\n")
    cfg = base.load_task_config(_toy_task(), ["task.batch_size=4", "train.seed=1"], path=path)
    assert (cfg.learning_rate, cfg.train_steps, cfg.batch_size) == (3e-5, 100, 4)

    with pytest.raises(AlbertError, match=r"unknown key task.lerning_rate \(did you mean learning_rate\?\)"):
        base.load_task_config(_toy_task(), ["task.lerning_rate=1"], path=path)
    path.write_text("task:\n  train_step: 100\n")
    with pytest.raises(
        AlbertError, match=r"toy.yaml: unknown key task.train_step \(did you mean train_steps\?\)"
    ):
        base.load_task_config(_toy_task(), path=path)
    path.write_text("task:\n  train_steps: lots\n")
    with pytest.raises(AlbertError, match=r"toy.yaml: task.train_steps must be an integer, got 'lots'"):
        base.load_task_config(_toy_task(), path=path)


def test_split_overrides():
    assert base.split_overrides(["task.seed=1", "model.classifier_dropout_prob=0"]) == (
        ["task.seed=1"],
        ["model.classifier_dropout_prob=0"],
    )


def test_registry_did_you_mean():
    task = base.register(_toy_task(aliases=("toypairs",)))
    assert base.get_task("TOY-PAIRS") is task and base.get_task("toypairs") is task
    with pytest.raises(AlbertError, match=r"^unknown task 'toy-pair' \(did you mean 'toy-pairs'\?\)$"):
        base.get_task("toy-pair")


def test_collate_pads_to_longest_in_batch():
    feats = [Feature([2, 5, 3], [0, 0, 0], 1), Feature([2, 5, 6, 7, 3], [0, 0, 0, 1, 1], 0)]
    batch = base.collate(feats, pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 3, 0, 0], [2, 5, 6, 7, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert batch["labels"].dtype == torch.long

    reg = base.collate([Feature([2, 3], [0, 0], 0.5)], pad_id=0)
    assert reg["labels"].dtype == torch.float32
    assert "labels" not in base.collate([Feature([2, 3], [0, 0])], pad_id=0)

    choice = base.collate([Feature([[2, 3], [2, 9, 9, 3]], [[0, 0], [0, 1, 1, 1]], 1)], pad_id=0)
    assert choice["input_ids"].shape == (1, 2, 4)
    assert choice["attention_mask"].tolist() == [[[1, 1, 0, 0], [1, 1, 1, 1]]]

    span = base.collate([Feature([2, 3, 4], [0, 0, 1], (1, 2))], pad_id=0)
    assert span["labels"].tolist() == [[1, 2]]


def test_length_grouped_batches_cover_everything_once():
    rng = random.Random(0)
    lengths = [rng.randint(3, 100) for _ in range(1000)]
    batches = base.length_grouped_batches(lengths, 16, random.Random(1), megabatch=8)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    naive = sum(16 * max(lengths[i * 16 : (i + 1) * 16]) for i in range(63)) + 8 * max(lengths[-8:])
    assert padded < 0.75 * naive  # grouping saves a good share of the padding
    assert batches != base.length_grouped_batches(lengths, 16, random.Random(2), megabatch=8)


def test_head_losses_and_default_postprocess():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1])
    assert heads.head_loss("classify")(logits, labels).item() == pytest.approx(
        np.log(1 + np.exp(-2)), rel=1e-5
    )
    assert heads.head_loss("regress")(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])).item() == 2.0
    task = _toy_task()
    feats = [Feature([2], [0], example_index=0), Feature([2], [0], example_index=1)]
    outs = heads.output_arrays("classify", logits, torch.ones(2, 1))
    assert task.predict([None, None], feats, outs, TaskConfig(train_steps=1)) == ["no", "yes"]
    assert base.accuracy(["a", "b"], ["a", "a"]) == 0.5


def test_hub_failure_is_one_error_without_retry_logs(monkeypatch, caplog):
    import logging

    import datasets

    def offline(name, config):
        logging.getLogger("huggingface_hub").warning("retrying in 1s")
        raise ConnectionError("Couldn't reach the hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    task = base.get_task("mnli")
    level = logging.getLogger("huggingface_hub").level
    with caplog.at_level(logging.WARNING), pytest.raises(AlbertError) as err:
        base.open_dataset(task, None)
    assert str(err.value).startswith(
        "cannot load dataset nyu-mll/glue/mnli from the hub (Couldn't reach the hub);"
    )
    assert "retrying" not in caplog.text
    assert logging.getLogger("huggingface_hub").level == level  # restored afterwards
