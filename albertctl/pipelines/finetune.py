"""`albertctl finetune TASK --model DIR` and `albertctl eval TASK --model DIR`: the recipe.

    load the model dir -> its tokenizer (vocab checked against the weights) -> the task's
    hyperparameters (profiles/tasks/<task>.yaml + --set task.key=value) -> read and featurise
    train and dev -> the one training loop (training/loop.py) with length-grouped, dynamically
    padded batches, evaluating every `eval_every` steps and keeping `best/` by the task's main
    metric -> metrics of the best model.

The fine-tuned model is an albertctl model dir whose manifest `head` names the task, head
kind, labels and the task config it was trained with, so `eval` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from albertctl.core import outputs
from albertctl.core.config import (
    Overrides,
    Profile,
    TrainConfig,
    build_section,
    parse_overrides,
    with_overrides,
)
from albertctl.core.errors import AlbertError
from albertctl.core.modeldir import (
    HEAD_FIELDS,
    MANIFEST,
    HeadRecord,
    ModelDir,
    load_model_dir,
    save_model_dir,
)
from albertctl.core.results import Result
from albertctl.data import tokenizer as tokenizers
from albertctl.data.tokenizer import Tokenizer
from albertctl.model.heads import AlbertForTask
from albertctl.tasks.base import (
    Feature,
    Task,
    TaskConfig,
    Warn,
    collate,
    featurise_all,
    get_task,
    groups,
    length_grouped_batches,
    load_task_config,
    lower_is_better,
    read_split,
    split_overrides,
)
from albertctl.tasks.glue import paper_table
from albertctl.tasks.predict import dev_metrics, predict_outputs
from albertctl.training import checkpoint as ckpt
from albertctl.training import distributed, loop, trackers
from albertctl.training.run import set_unpad

ProgressFn = Callable[[dict[str, Any]], None]
EMBEDDINGS_KEY = "albert.embeddings.word_embeddings.weight"


@dataclass
class TaskResult:
    task: str
    display: str
    metrics: dict[str, float]  # dev metrics of the best checkpoint (suffixed per dev split)
    main_metric: str
    model_dir: Path | None  # the fine-tuned model (out_dir/best)
    steps: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model_dir"] = str(self.model_dir) if self.model_dir else None
        return out


@dataclass(frozen=True)
class EvalResult(Result):
    """What `albertctl eval TASK` prints; `to_dict()` is its --json output."""

    task: str
    model: str
    metrics: dict[str, float]  # dev metrics ({} when only predicting)
    predictions: list[str]  # files written under --predict
    report: dict[str, list[dict[str, Any]]] | None = None  # per-class rows by split, for tasks that have one

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.report is None:
            del out["report"]
        return out


# ---------------------------------------------------------------------------------------------
# finetune


def run(
    task_name: str,
    model: Path,
    out_dir: Path,
    data: Path | None = None,
    overrides: Overrides = (),
    resume: bool = False,
    progress: ProgressFn | None = None,
    own: dict[str, Any] | None = None,
    report_to: Sequence[str] = (),
    resume_from: Path | None = None,
) -> list[TaskResult]:
    """Fine-tune on one task, or on every task of a group (`glue`), in sequence. `own`: the
    options of a task over your own files (validation, text_column, ...; see tasks/custom.py);
    `report_to`: experiment trackers for the metrics (training.trackers; default: auto);
    `resume_from`: continue from this checkpoint directory (one task; any world size and ZeRO stage)."""
    used = trackers.parse_report_to(report_to)
    group = groups().get(task_name.strip().lower())
    if group is None:
        task = get_task(task_name)
        return [
            finetune_task(task, model, out_dir, data, overrides, resume, progress, own, used, resume_from)
        ]
    if resume_from is not None:
        raise AlbertError(
            f"--resume-from names one checkpoint: fine-tune one task of {task_name} with it, not the group"
        )
    bind_task(group[0], {}, own, None)  # column options do not apply to a group
    tasks = [t for t in group if t.train_split is not None]  # AX: `eval ax --predict` with the MNLI model
    task_overrides, _ = split_overrides(overrides)
    for task in tasks:  # every task's settings and run directory are checked before hours of training
        load_task_config(task, task_overrides)
        ckpt.check_run_directory(Path(out_dir) / task.name, ("best",), [model, data])
    return [
        finetune_task(t, model, out_dir / t.name, data, overrides, resume, progress, own, used) for t in tasks
    ]


def finetune_task(
    task: Task,
    model_path: Path,
    out_dir: Path,
    data: Path | None = None,
    overrides: Overrides = (),
    resume: bool = False,
    progress: ProgressFn | None = None,
    own: dict[str, Any] | None = None,
    report_to: tuple[str, ...] = (),
    resume_from: Path | None = None,
) -> TaskResult:
    if task.train_split is None:
        source = get_task(task.model_from).name if task.model_from else "another task"
        raise AlbertError(
            f"task {task.name} has no training data: fine-tune {source}, then "
            f"`albertctl eval {task.name} --model DIR --predict OUT`"
        )
    task_overrides, profile_overrides = split_overrides(overrides)
    config = load_task_config(task, task_overrides)
    own = dict(own or {})
    validation = own.pop("validation", None)
    warn = warner(progress)
    task = bind_task(task, {"train": data, "dev": validation}, own, None, warn)  # your own files: read now
    task = task.with_config(config)  # squad2: the beam or the simple span head
    source = load_model_dir(model_path)
    profile = with_overrides(source.profile, profile_overrides)
    check_length(config, profile, source.path)
    # checked and locked before hours of work (one line, quickly); rank 0 holds the lock
    with ckpt.run_directory(
        Path(out_dir), ("best",), [model_path, data], hold=os.environ.get("RANK", "0") == "0"
    ):
        return _finetune(
            task, config, source, profile, out_dir, data, resume, progress, report_to, resume_from
        )


def _finetune(
    task: Task,
    config: TaskConfig,
    source: ModelDir,
    profile: Profile,
    out_dir: Path,
    data: Path | None,
    resume: bool,
    progress: ProgressFn | None,
    report_to: tuple[str, ...],
    resume_from: Path | None = None,
) -> TaskResult:
    """Read and featurise the data, then the loop, keeping `out_dir/best`."""
    tokenizer = load_tokenizer(source, profile)
    best_metric = task.best_metric(config)
    warn = warner(progress)

    started = time.monotonic()
    train_examples = first(read_split(task, data, task.train_split, warn), config.max_train_samples)
    train_features = featurise_all(task, train_examples, tokenizer, config, warn)
    dev = {s: first(read_split(task, data, s, warn), config.max_eval_samples) for s in task.dev_splits}
    dev_features = {split: featurise_all(task, ex, tokenizer, config, warn) for split, ex in dev.items()}

    network = build_model(task, profile, source, config.seed)
    head = head_info(task, config)
    total = config.total_steps(len(train_features))
    dist = distributed.init_distributed()  # this rank's share of the batches (one process: rank 0 of 1)
    micro = rank_micro_batch(config, dist.world_size)
    train_config = to_train_config(config, profile.train, total, micro)

    def evaluate(module: nn.Module, step: int) -> dict[str, float]:
        shown = progress if dist.rank == 0 else None  # one rank's bar
        return dev_metrics(task, module, dev, dev_features, config, tokenizer.pad_id, progress=shown)

    def save(state_dict: dict[str, torch.Tensor], target: Path) -> None:
        save_model_dir(target, profile, state_dict, source.spm_model, head=head)

    spec = loop.RunSpec(
        model=network,
        batches=GroupedBatches(
            train_features, micro, tokenizer.pad_id, config.seed, dist.rank, dist.world_size
        ),
        loss=task_loss(task),
        save_model=save,
        out_dir=Path(out_dir),
        evaluate=evaluate if dev else None,
        best_metric=best_metric if dev else None,
        best_mode="min" if lower_is_better(best_metric) else "max",
        patience=config.early_stopping_patience,
        show_metrics=("accuracy",) if task.kind.argmax else (),
        resume=resume,
        resume_from=resume_from,
        report_to=report_to,
        identity={"task": task.name, "model": str(source.path)},
    )
    result = loop.train(spec, train_config, profile.deepspeed, progress)
    metrics = dict(result.best if result.best is not None else result.eval_metrics)
    best_step = int(metrics.pop("step", result.global_step))
    return TaskResult(
        task=task.name,
        display=task.display,
        metrics=metrics,
        main_metric=best_metric,
        model_dir=result.best_dir or result.checkpoint,
        steps=result.global_step,
        seconds=time.monotonic() - started,
        extra={
            "best_step": best_step,
            "stopped": result.stopped,
            "train_examples": len(train_examples),
            "train_features": len(train_features),
        },
    )


def warner(progress: ProgressFn | None) -> Warn | None:
    """Where the readers' warnings go: `warning` events to `progress`, which the CLI prints.
    Rank 0's only: under the launcher every rank reads the same data."""
    if progress is None or os.environ.get("RANK", "0") != "0":
        return None
    return lambda message: progress({"event": "warning", "message": message})


def first(examples: Sequence[Any], n: int) -> Sequence[Any]:
    """The first `n` examples in file order (task.max_train_samples / max_eval_samples); 0 = all."""
    return examples[:n] if n else examples


def check_length(config: TaskConfig, profile: Profile, where: Path) -> None:
    limit = profile.model.max_position_embeddings
    if config.max_seq_length > limit:
        raise AlbertError(
            f"task.max_seq_length ({config.max_seq_length}) exceeds the model's max_position_embeddings "
            f"({limit}) in {where}: use --set task.max_seq_length={limit}"
        )


def load_tokenizer(source: ModelDir, profile: Profile) -> Tokenizer:
    """The model dir's spiece.model (or WordPiece vocab.txt); its size must equal the model's vocabulary."""
    if source.spm_model is None:
        raise AlbertError(f"{source.path}: no spiece.model beside the weights (needed to tokenize task data)")
    tokenizer = tokenizers.load_tokenizer(source.spm_model, do_lower_case=profile.data.do_lower_case)
    weights = source.state_dict.get(EMBEDDINGS_KEY)
    rows = int(weights.shape[0]) if weights is not None else profile.model.vocab_size
    if tokenizer.vocab_size != rows or rows != profile.model.vocab_size:
        raise AlbertError(
            f"{source.spm_model}: vocabulary has {tokenizer.vocab_size} pieces but the model in "
            f"{source.path} has {rows} token embeddings (vocab_size {profile.model.vocab_size}): "
            "the checkpoint and its tokenizer do not belong together"
        )
    return tokenizer


def build_model(task: Task, profile: Profile, source: ModelDir, seed: int = 0) -> AlbertForTask:
    """The encoder from `source` (pretrained or converted) under a fresh head for `task`,
    initialised from `seed`; a model already fine-tuned on this task keeps its head too."""
    with torch.random.fork_rng(devices=[]):  # the head's init depends on the seed alone
        torch.manual_seed(seed)
        network = AlbertForTask(profile.model, task.head, task.num_labels)
    same_head = (
        source.head.task == task.name
        and source.head.kind == task.head
        and (source.head.labels if "labels" in source.head else []) == list(task.labels)
    )
    wanted = network.state_dict()
    state = {
        k: v for k, v in source.state_dict.items() if k in wanted and (same_head or k.startswith("albert."))
    }
    missing = sorted(k for k in wanted if k.startswith("albert.") and k not in state)
    if missing:
        raise AlbertError(
            f"{source.path}: weights lack {len(missing)} encoder tensors (first: {missing[0]}); "
            "is it an albertctl model dir of this profile?"
        )
    for key, value in state.items():
        if value.shape != wanted[key].shape:
            raise AlbertError(
                f"{source.path}: {key} has shape {tuple(value.shape)}, the profile needs {tuple(wanted[key].shape)}"
            )
    network.load_state_dict(state, strict=False)
    return network


def head_info(task: Task, config: TaskConfig) -> HeadRecord:
    return HeadRecord(
        kind=task.head,
        task=task.name,
        num_labels=task.num_labels,
        labels=list(task.labels),
        task_config=dataclasses.asdict(config),
        extra={"data": task.spec} if task.spec else {},
        order=HEAD_FIELDS,
    )


def bind_task(
    task: Task,
    sources: dict[str, Any],
    own: dict[str, Any] | None,
    stored: HeadRecord | None,
    warn: Warn | None = None,
) -> Task:
    """A task over your own files bound to them (and to the columns in `own`), what reading
    them skipped going to `warn`; any other task as it is, refusing column options that
    would be ignored."""
    options = {k: v for k, v in (own or {}).items() if v not in (None, "", (), [])}
    if task.bind is not None:
        return task.bind(sources, options, stored, warn)
    if options:
        flag = "--" + next(iter(options)).replace("_", "-")
        raise AlbertError(
            f"{flag} applies to tasks over your own files (classify, regress, qa, choice), not {task.name}"
        )
    return task


def rank_micro_batch(config: TaskConfig, world_size: int) -> int:
    """Sequences per forward pass on each rank: task.micro_batch_size, or, when it is 0 (no
    accumulation), the global task.batch_size split evenly over the ranks."""
    if config.micro_batch_size == 0 and config.batch_size % world_size == 0:
        return config.batch_size // world_size
    return config.micro_batch


def check_world_size(task_name: str, overrides: Overrides, world_size: int) -> None:
    """Before the launcher starts processes: each trained task's global batch must split into
    micro-batches over `world_size` ranks (one line naming the task settings otherwise)."""
    task_overrides, _ = split_overrides(overrides)
    group = groups().get(task_name.strip().lower()) or [get_task(task_name)]
    for task in group:
        if task.train_split is None:
            continue
        config = load_task_config(task, task_overrides)
        micro = rank_micro_batch(config, world_size)
        if config.batch_size % (micro * world_size):
            raise AlbertError(
                f"{task.name}: task.batch_size ({config.batch_size}) must be a multiple of "
                f"task.micro_batch_size x ranks ({micro} x {world_size} = {micro * world_size})"
            )


def to_train_config(
    config: TaskConfig, base: TrainConfig, total_steps: int, micro_batch: int | None = None
) -> TrainConfig:
    """The loop's TrainConfig for a task: the task's optimisation settings over the profile's
    bookkeeping (`micro_batch`: per rank, default task's). Checkpoints at every evaluation, so
    resume never loses more than that."""
    eval_every = config.eval_every if 0 < config.eval_every < total_steps else 0
    return dataclasses.replace(
        base,
        optimizer=config.optimizer,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup(total_steps),
        train_steps=total_steps,
        poly_power=1.0,  # linear decay to zero, as the original fine-tuning
        global_batch_size=config.batch_size,
        micro_batch_size=micro_batch or config.micro_batch,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        precision=config.precision,
        seed=config.seed,
        eval_every=eval_every,
        save_every=eval_every or total_steps,
        keep_last=1,
        log_every=max(1, min(base.log_every, total_steps // 10 or 1)),
    )


class GroupedBatches:
    """The loop's `BatchSource`: length-grouped, shuffled micro-batches, new order per epoch.

    Micro-batch i of this rank is global batch g = i * world_size + rank; epoch e = g // n
    reshuffles from (seed, e), so batch g is the same tensors on every call and after resume.
    """

    def __init__(
        self,
        features: Sequence[Feature],
        micro_batch_size: int,
        pad_id: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not features:
            raise AlbertError("no training examples")
        self.features = features
        self.lengths = [f.length for f in features]
        self.micro_batch_size = micro_batch_size
        self.pad_id = pad_id
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self._epoch: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = random.Random(self.seed * 1_000_003 + epoch)
            self._epoch = (epoch, length_grouped_batches(self.lengths, self.micro_batch_size, rng))
        return self._epoch[1]

    def __len__(self) -> int:
        return len(self._batches(0))

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        g = index * self.world_size + self.rank
        per_epoch = len(self._batches(0))
        batch = self._batches(g // per_epoch)[g % per_epoch]
        return collate([self.features[i] for i in batch], self.pad_id)


def task_loss(task: Task) -> loop.LossFn:
    def loss_fn(model: nn.Module, batch: loop.Batch) -> loop.LossOutput:
        labels = batch["labels"]
        inputs = (batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        if task.kind.gold_start:  # the end logits are conditioned on the gold start
            output = model(*inputs, start_positions=labels[:, 0])
        else:
            output = model(*inputs)
        loss = task.compute_loss(output, labels)
        n = labels.shape[0]
        metrics: dict[str, tuple[Any, Any]] = {}
        if task.kind.argmax:
            metrics["accuracy"] = ((output.argmax(-1) == labels).sum(), n)
        return loop.LossOutput(loss, metrics)

    return loss_fn


# ---------------------------------------------------------------------------------------------
# prediction and evaluation


def load_finetuned(path: Path) -> ModelDir:
    """A fine-tuned model dir, or a finetune output dir holding `best/`."""
    path = Path(path)
    if not (path / MANIFEST).is_file() and (path / "best" / MANIFEST).is_file():
        path = path / "best"
    return load_model_dir(path)


def evaluate(
    task_name: str,
    model: Path,
    data: Path | None = None,
    predict_dir: Path | None = None,
    overrides: Overrides = (),
    own: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Dev metrics of a fine-tuned model; with `predict_dir`, test-set submission files too.
    `progress` gets the `evaluating` events of every split scored or predicted.
    A task over your own files scores `data` (labelled), or with `predict_dir` writes one
    prediction per row of `data` (scored too when it has the label column)."""
    task = get_task(task_name)
    source = load_finetuned(model)
    trained_on = source.head.task
    expected = task.model_from or task.name
    if trained_on != expected:
        what = f"fine-tuned on {trained_on}" if trained_on else f"not fine-tuned (head: {source.head.kind})"
        raise AlbertError(
            f"{source.path}: model is {what}; task {task.name} needs a model fine-tuned on {expected}"
        )
    task_overrides, profile_overrides = split_overrides(overrides)
    config = stored_task_config(source, task_overrides)
    warn = warner(progress)
    task = bind_task(task, {"test" if predict_dir is not None else "dev": data}, own, source.head, warn)
    task = task.with_config(config)
    profile = with_overrides(source.profile, profile_overrides)
    tokenizer = load_tokenizer(source, profile)
    head_task = get_task(task.model_from).with_config(config) if task.model_from else task
    network = AlbertForTask(profile.model, head_task.head, head_task.num_labels)
    missing, unexpected = network.load_state_dict(source.state_dict, strict=False)
    if missing:
        raise AlbertError(f"{source.path}: weights lack {len(missing)} tensors (first: {missing[0]})")
    set_unpad(network, profile.train.unpad)
    network.eval()

    result: dict[str, Any] = {"task": task.name, "model": str(source.path), "metrics": {}, "predictions": []}
    if not task.dev_splits and predict_dir is None:
        raise AlbertError(
            f"task {task.name} has no labelled split: give --predict OUT to write its submission file"
        )
    inputs = [model, source.path, data]
    if predict_dir is not None:
        if task.write_predictions is None:
            raise AlbertError(f"task {task.name} has no submission format")
        outputs.check_output(Path(predict_dir), None, "", inputs=inputs, flag="--predict")
    dev = {s: first(read_split(task, data, s, warn), config.max_eval_samples) for s in task.dev_splits}
    features = {split: featurise_all(task, ex, tokenizer, config, warn) for split, ex in dev.items()}
    kept: dict[str, list[Any]] = {}
    result["metrics"] = dev_metrics(task, network, dev, features, config, tokenizer.pad_id, kept, progress)
    if task.report is not None and kept:
        result["report"] = {split: task.report(dev[split], preds) for split, preds in kept.items()}
    if predict_dir is not None:
        predicted = []
        for split in task.test_splits:
            examples = read_split(task, data, split, warn)
            feats = featurise_all(task, examples, tokenizer, config, warn)
            raw = predict_outputs(task, network, feats, config, tokenizer.pad_id, progress, split)
            preds = task.predict(examples, feats, raw, config)
            predicted.append((split, examples, preds))
        # every file is written, then each replaces only an earlier predictions file
        with outputs.atomic_files(
            Path(predict_dir),
            "predictions",
            is_predictions_file,
            PREDICTIONS,
            inputs=inputs,
            flag="--predict",
        ) as tmp:
            names = []
            for split, ex, preds in predicted:
                written = task.write_predictions(tmp, split, ex, preds)  # one file, or several (own data)
                names += [p.name for p in (written if isinstance(written, list) else [written])]
        result["predictions"] = [str(Path(predict_dir) / name) for name in names]
    return EvalResult(**result)


PREDICTIONS = "a predictions file albertctl wrote"


def is_predictions_file(path: Path) -> bool:
    """A file `eval --predict` wrote: a GLUE submission (`index<TAB>prediction` header), a
    SQuAD JSON object, RACE or own-data JSON lines with a prediction, or own-data CSV (a `row`
    and a `prediction` column)."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline(1 << 16)
            if path.suffix == ".tsv":
                return first.rstrip("\n") == "index\tprediction"
            if path.suffix == ".jsonl":
                return "prediction" in json.loads(first)
            if path.suffix == ".csv":
                return {"row", "prediction"} <= set(first.rstrip("\n").split(","))
            if path.suffix == ".json":
                f.seek(0)
                return isinstance(json.load(f), dict)
    except (OSError, ValueError, TypeError):
        return False
    return False


QUICK_TRIAL_KEYS = ("max_train_samples", "max_eval_samples", "early_stopping_patience")


def stored_task_config(source: ModelDir, overrides: Overrides) -> TaskConfig:
    """The TaskConfig the model was fine-tuned with, `--set task.key=value` on top."""
    stored = dict(source.head.task_config or {})
    for key in QUICK_TRIAL_KEYS:  # a quick trial's subset or patience says nothing about scoring
        stored.pop(key, None)
    valid = {f.name for f in dataclasses.fields(TaskConfig)}
    values = {k: v for k, v in stored.items() if k in valid}
    task = get_task(source.head.task)
    base = load_task_config(task, overrides)  # validates the overrides, gives defaults
    for o in parse_overrides(overrides):
        if o.section == "task":
            values[o.keys[1]] = getattr(base, o.keys[1])
    if not values:
        return base
    return build_section(TaskConfig, values, "task", str(source.path / MANIFEST))


# ---------------------------------------------------------------------------------------------
# the summary table


def summary(results: Sequence[TaskResult]) -> dict[str, Any]:
    """The paper's GLUE table of these results (tasks/glue.py paper_table)."""
    return paper_table({r.task: r.metrics for r in results})
