"""What a fine-tuning task is: data in, features, a head kind, a loss, predictions, metrics.

A task is a frozen `Task` value, registered by name. GLUE, SQuAD and RACE differ only in the
functions and numbers they put in it; the fine-tuning pipeline and the one training loop never
test a task's name. Each task's hyperparameters live in `profiles/tasks/<task>.yaml`, read into a
frozen `TaskConfig` and overridable with `--set task.key=value`.

The flow for one task (albertctl/pipelines/finetune.py runs it):

    examples = read_split(task, data, "train")           # reader: files (--data) or `datasets`
    features = task.featurise(example, tokenizer, cfg)   # one or more per example (SQuAD windows)
    batch    = collate(features, pad_id)                 # dynamic padding to the batch's longest
    loss     = task.loss(model(**inputs), batch["labels"])
    outputs  = one numpy array per feature               # logits, score, (2, T) span logits
    preds    = task.postprocess(examples, features, outputs, cfg)   # one per example
    metrics  = task.metrics(examples, preds)
    task.write_predictions(out_dir, split, examples, preds)         # submission files
"""

from __future__ import annotations

import difflib
import importlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np

from albertctl.core.config import (
    Overrides,
    load_section,
    parse_overrides,
    profiles_dir,
    read_yaml_mapping,
    suggest,
)
from albertctl.core.errors import AlbertError
from albertctl.core.hub import quiet_hub_logs
from albertctl.data.tokenizer import Tokenizer
from albertctl.model.head_kinds import KINDS, HeadKind, KindInfo

if TYPE_CHECKING:  # torch loads only where batches and losses are made (scoring a file needs none)
    import torch


Label = int | float | tuple[int, int] | None
ExampleT = TypeVar("ExampleT")


@dataclass
class ReadReport(Generic[ExampleT]):
    """What reading a task's files found: the examples and the warnings about what was skipped
    (the caller decides where they go); each reader adds its counts."""

    examples: list[ExampleT]
    warnings: list[str] = field(default_factory=list)


# Where a reader's or featuriser's warnings go. Library code never prints (every rank would
# under the launcher): the pipeline passes one down, rank 0's reaching the CLI; None drops them.
Warn = Callable[[str], None]


def pass_on(warn: Warn | None, messages: Sequence[str]) -> None:
    """Hand `messages` to `warn`, in order (nothing when there is no `warn`)."""
    if warn is not None:
        for message in messages:
            warn(message)


@dataclass(frozen=True)
class TaskConfig:
    """Fine-tuning hyperparameters of one task (SPEC section 5); `task.<key>` in `--set`.

    Give the length of training as `train_steps` (GLUE, RACE) or `epochs` (SQuAD), never both;
    warm-up as `warmup_steps` or `warmup_proportion` of the total, not both.
    """

    learning_rate: float = 2e-5
    batch_size: int = 32  # sequences per optimizer step (choice: questions, each C sequences)
    # sequences per forward pass, at most batch_size; 0 = batch_size (no gradient accumulation)
    micro_batch_size: int = 0
    eval_batch_size: int = 64
    max_seq_length: int = 512
    train_steps: int = 0  # 0: use epochs
    epochs: float = 0.0  # 0: use train_steps
    warmup_steps: int = 0
    warmup_proportion: float = 0.0  # of the total steps; used when warmup_steps is 0
    eval_every: int = 0  # steps between dev evaluations; 0 = only at the end
    optimizer: Literal["adamw", "lamb"] = "adamw"  # the original fine-tunes with AdamW
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 12345
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # span tasks (SQuAD)
    doc_stride: int = 128  # tokens between the starts of neighbouring context windows
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    # squad2: "beam" = the original v2 head (end conditioned on the start, top-5 x top-5 beam,
    # answerability classifier); "simple" = start/end logits with the [CLS] null score
    span_head: Literal["simple", "beam"] = "simple"
    null_threshold: float = 0.0  # v2: predict no answer when the null odds exceed this
    # answer scoring: squad (official SQuAD script), cmrc (the CMRC 2018 script, for Chinese),
    # auto = cmrc when the gold answers hold Chinese characters, else squad
    metric: Literal["auto", "squad", "cmrc"] = "auto"
    # multiple choice (RACE)
    max_qa_length: int = 128  # question + option tokens; the article is truncated, never these
    # the dev metric that picks the best checkpoint; "" = the task's main metric. Metrics whose
    # name starts with mse/mae/rmse/loss are minimised, every other one maximised
    best_metric: str = ""
    # quick trials: the first N training / dev examples in file order; 0 = all (not inherited by
    # `eval`, which scores every dev example unless given again with --set)
    max_train_samples: int = 0
    max_eval_samples: int = 0
    # stop after this many dev evaluations (every eval_every steps) without a new best; 0 = off
    early_stopping_patience: int = 0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise AlbertError(f"task.learning_rate must be positive, got {self.learning_rate}")
        for name in (
            "batch_size",
            "eval_batch_size",
            "max_seq_length",
            "doc_stride",
            "max_query_length",
            "max_answer_length",
            "n_best_size",
            "max_qa_length",
        ):
            if getattr(self, name) < 1:
                raise AlbertError(f"task.{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "micro_batch_size",
            "train_steps",
            "warmup_steps",
            "eval_every",
            "max_train_samples",
            "max_eval_samples",
            "early_stopping_patience",
        ):
            if getattr(self, name) < 0:
                raise AlbertError(f"task.{name} must not be negative, got {getattr(self, name)}")
        if (self.train_steps > 0) == (self.epochs > 0):
            raise AlbertError(
                "give exactly one of task.train_steps and task.epochs "
                f"(got train_steps={self.train_steps}, epochs={self.epochs})"
            )
        if self.epochs < 0:
            raise AlbertError(f"task.epochs must not be negative, got {self.epochs}")
        if not 0.0 <= self.warmup_proportion < 1.0:
            raise AlbertError(f"task.warmup_proportion must be in [0, 1), got {self.warmup_proportion}")
        if self.warmup_steps > 0 and self.warmup_proportion > 0:
            raise AlbertError("give task.warmup_steps or task.warmup_proportion, not both")
        if self.batch_size % self.micro_batch:
            raise AlbertError(
                f"task.batch_size ({self.batch_size}) must be a multiple of "
                f"task.micro_batch_size ({self.micro_batch_size})"
            )
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise AlbertError("task.weight_decay and task.max_grad_norm must not be negative")

    @property
    def micro_batch(self) -> int:
        return min(self.micro_batch_size or self.batch_size, self.batch_size)

    def total_steps(self, num_train_features: int) -> int:
        """Optimizer steps: `train_steps`, or `epochs` over the training features (rounded up)."""
        if self.train_steps:
            return self.train_steps
        return max(1, int(np.ceil(self.epochs * num_train_features / self.batch_size)))

    def warmup(self, total_steps: int) -> int:
        return self.warmup_steps or int(self.warmup_proportion * total_steps)


@dataclass(frozen=True)
class Feature:
    """One model input. Classify/regress/span: `input_ids` is (T,); choice: (C, T) as C lists.

    `label`: class index, float score, (start, end) token positions, or the right option;
    None when unlabelled (test sets). `example_index` says which example a feature came from
    (several SQuAD windows share one); `featurise_all` fills it in. `extra` carries what
    decoding needs (SQuAD offsets).
    """

    input_ids: list[int] | list[list[int]]
    token_type_ids: list[int] | list[list[int]]
    label: Label = None
    example_index: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        ids = self.input_ids
        return max(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


Featuriser = Callable[[Any, Tokenizer, TaskConfig], list[Feature]]
# readers: (data dir, split, warn) -> examples; (datasets.DatasetDict, split, warn) -> examples
FileReader = Callable[[Path, str, Warn | None], list[Any]]
DatasetReader = Callable[[Any, str, Warn | None], list[Any]]
PostProcess = Callable[[Sequence[Any], Sequence[Feature], Sequence[np.ndarray], TaskConfig], list[Any]]
Metrics = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]  # (examples, predictions)
Writer = Callable[
    [Path, str, Sequence[Any], Sequence[Any]], Path | list[Path]
]  # (out dir, split, examples, preds)
Loss = Callable[[Any, "torch.Tensor"], "torch.Tensor"]  # (model output, labels) -> scalar
Binder = Callable[[dict[str, Any], dict[str, Any], Mapping[str, Any] | None, Warn | None], "Task"]


@dataclass(frozen=True)
class Task:
    """A fine-tuning task as data. See the module docstring for how the pieces are used."""

    name: str  # registry key, lower case: "mnli", "sts-b", "squad2", "race"
    display: str  # as in papers and submission files: "MNLI", "STS-B"
    head: HeadKind  # "classify" | "regress" | "span" | "choice" (squad2-beam via span_heads)
    num_labels: int  # classify: classes; regress/span: 1; choice: options per question
    main_metric: str  # the dev metric that picks the best checkpoint (a key of `metrics`)
    read_files: FileReader
    featurise: Featuriser
    metrics: Metrics
    labels: tuple[str, ...] = ()  # label strings in logit order (classify)
    read_datasets: DatasetReader | None = None
    hub: tuple[str, str | None] | None = None  # (dataset name, config) for `datasets.load_dataset`
    train_split: str | None = "train"  # None: predict-only (AX)
    dev_splits: dict[str, str] = field(default_factory=lambda: {"dev": ""})  # split -> metric suffix
    test_splits: tuple[str, ...] = ("test",)
    postprocess: PostProcess | None = None  # None: argmax (classify, choice) or the score (regress)
    loss: Loss | None = None  # None: the head kind's usual loss
    write_predictions: Writer | None = None
    config_name: str = ""  # profiles/tasks/<config_name>.yaml; "" = name
    group: str = ""  # "glue": `finetune glue` runs every task of the group
    aliases: tuple[str, ...] = ()
    model_from: str = ""  # predict-only tasks: the task whose fine-tuned model they use (AX: mnli)
    span_heads: dict[str, HeadKind] = field(default_factory=dict)  # task.span_head -> head kind
    # tasks over the user's own files (custom.py): (sources {split: file}, column options, the
    # fine-tuned model's manifest head or None, warn) -> the task bound to those files and columns
    bind: Binder | None = None
    read_own: Callable[[str, Warn | None], list[Any]] | None = None  # a bound task's examples of a split
    spec: dict[str, Any] = field(default_factory=dict)  # what it was bound with, for the manifest
    metric_names: tuple[str, ...] = ()  # the keys `metrics` returns, when known up front
    report: Callable[[Sequence[Any], Sequence[Any]], list[dict[str, Any]]] | None = None  # eval table

    def with_config(self, config: TaskConfig) -> Task:
        """The task with the head kind `task.span_head` picks (squad2: span or squad2-beam)."""
        if not self.span_heads:
            if config.span_head != "simple":
                raise AlbertError(f"task.span_head applies to SQuAD tasks, not {self.name}")
            return self
        if config.span_head not in self.span_heads:
            raise AlbertError(
                f"task {self.name} has no task.span_head={config.span_head} (have: {', '.join(self.span_heads)})"
            )
        return replace(self, head=self.span_heads[config.span_head])

    def best_metric(self, config: TaskConfig) -> str:
        """`task.best_metric`, or the main metric; checked against the metric names when known."""
        name = config.best_metric or self.main_metric
        if self.metric_names and name not in self.metric_names:
            raise AlbertError(
                f"task.best_metric: task {self.name} has no metric '{name}' "
                f"(have: {', '.join(self.metric_names)})"
            )
        return name

    def label_id(self, text: str) -> int:
        return self.labels.index(text)

    def predict(
        self,
        examples: Sequence[Any],
        features: Sequence[Feature],
        outputs: Sequence[np.ndarray],
        config: TaskConfig,
    ) -> list[Any]:
        if self.postprocess is not None:
            return self.postprocess(examples, features, outputs, config)
        return default_postprocess(self, examples, features, outputs)

    @property
    def kind(self) -> KindInfo:
        """What the head kind means for labels, decoding and training (model/head_kinds.py)."""
        return KINDS[self.head]

    def compute_loss(self, output: Any, labels: torch.Tensor) -> torch.Tensor:
        from albertctl.model.heads import head_loss  # torch: only where losses are made

        return (self.loss or head_loss(self.head))(output, labels)


# ---------------------------------------------------------------------------------------------
# registry

_TASKS: dict[str, Task] = {}
# modules that register tasks when imported; a missing one (not written yet) is skipped
PLUGINS = (
    "albertctl.tasks.glue",
    "albertctl.tasks.squad",
    "albertctl.tasks.race",
    "albertctl.tasks.custom",
)


def register(task: Task) -> Task:
    for key in (task.name, *task.aliases):
        if key in _TASKS and _TASKS[key].name != task.name:
            raise ValueError(f"task name {key!r} registered twice")
        _TASKS[key] = task
    return task


def _load_plugins() -> None:
    for module in PLUGINS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def task_names() -> list[str]:
    _load_plugins()
    return sorted({t.name for t in _TASKS.values()})


def groups() -> dict[str, list[Task]]:
    """Named task groups in registration order: {"glue": [cola, sst-2, ...]}."""
    _load_plugins()
    out: dict[str, list[Task]] = {}
    for key, task in _TASKS.items():
        if task.group and key == task.name:
            out.setdefault(task.group, []).append(task)
    return out


def get_task(name: str) -> Task:
    """The task registered as `name` (case-insensitive, aliases too), or a did-you-mean error."""
    _load_plugins()
    key = name.strip().lower()
    if key in _TASKS:
        return _TASKS[key]
    close = difflib.get_close_matches(key, list(_TASKS), n=1, cutoff=0.6)
    if close:
        raise AlbertError(f"unknown task '{name}' (did you mean '{_TASKS[close[0]].name}'?)")
    raise AlbertError(f"unknown task '{name}' (have: {', '.join([*groups(), *task_names()])})")


# ---------------------------------------------------------------------------------------------
# hyperparameters


def tasks_profiles_dir() -> Path:
    return profiles_dir() / "tasks"


def load_task_config(task: Task, overrides: Overrides = (), path: Path | None = None) -> TaskConfig:
    """profiles/tasks/<task>.yaml (its `task:` section) with `--set task.key=value` on top.

    Overrides for other sections (`train.`, `model.`) are ignored here; the caller routes them.
    """
    path = path or tasks_profiles_dir() / f"{task.config_name or task.name}.yaml"
    values: dict[str, Any] = {}
    if path.is_file():
        data = read_yaml_mapping(path)
        for key in data:
            if key not in ("task", "description"):
                raise AlbertError(f"{path}: unknown key {key}{suggest(str(key), ['task', 'description'])}")
        section = data.get("task") or {}
        if not isinstance(section, dict):
            raise AlbertError(f"{path}: task must be a mapping of settings, got {section!r}")
        values.update(section)
    return load_section(TaskConfig, "task", values, overrides, str(path))


def split_overrides(overrides: Overrides) -> tuple[list[Any], list[Any]]:
    """`--set` values -> (task.* ones, the rest for the model profile), each as given."""
    task, rest = [], []
    for item, parsed in zip(overrides, parse_overrides(overrides), strict=True):
        (task if parsed.section == "task" and len(parsed.keys) > 1 else rest).append(item)
    return task, rest


# ---------------------------------------------------------------------------------------------
# data sources


def read_split(task: Task, data: Path | None, split: str, warn: Warn | None = None) -> list[Any]:
    """Examples of one split: from the task's own files under `data`; from a `datasets`
    directory under `data` (saved with `save_to_disk`, or the hub's parquet files, e.g.
    DIR/mnli/validation_matched-00000-of-00001.parquet), offline; or the hub when `data` is None.
    What the reader skipped goes to `warn`."""
    if task.read_own is not None:  # bound to the user's files, read when it was bound
        return task.read_own(split, warn)
    if data is not None and not Path(data).exists():
        raise AlbertError(f"--data {data}: no such file or directory")
    if data is not None and not _is_saved_dataset(Path(data)) and not _parquet_files(task, Path(data)):
        return task.read_files(Path(data), split, warn)
    if task.read_datasets is None:
        raise AlbertError(f"task {task.name} reads only files: give --data DIR")
    return task.read_datasets(open_dataset(task, data), split, warn)


def dataset_split(
    dataset: Any, hub_split: str | None, columns: Sequence[str], split: str = "", what: str = ""
) -> Any:
    """`dataset[hub_split]` after checking the split exists and has `columns`; one-line errors.
    `hub_split` None: the task has no such split (`split` names it in the message)."""
    if hub_split is None or hub_split not in dataset:
        have = ", ".join(dataset) if hasattr(dataset, "keys") else "?"
        raise AlbertError(f"dataset has no split '{hub_split or split}'{what} (have: {have})")
    part = dataset[hub_split]
    missing = [c for c in columns if c not in part.column_names]
    if missing:
        raise AlbertError(
            f"dataset split {hub_split}: missing column {missing[0]} (have: {', '.join(part.column_names)})"
        )
    return part


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()


def _parquet_files(task: Task, path: Path) -> dict[str, list[str]]:
    """{split: files} of the hub's layout (`<split>-00000-of-00001.parquet`), in DIR/<config>/ or DIR."""
    config = task.hub[1] if task.hub else None
    for folder in ([path / config] if config else []) + [path]:
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if files:
            splits: dict[str, list[str]] = {}
            for f in files:
                splits.setdefault(f.name.split("-")[0], []).append(str(f))
            return splits
    return {}


def open_dataset(task: Task, data: Path | None) -> Any:
    """A `datasets.DatasetDict`: `load_from_disk(data)`, parquet files, or `load_dataset(*task.hub)`."""
    import datasets

    if data is not None and (files := _parquet_files(task, Path(data))):
        try:
            return datasets.load_dataset("parquet", data_files=files)
        except Exception as err:  # unreadable files are the user's to fix
            raise AlbertError(f"{data}: cannot read parquet files ({str(err).splitlines()[0]})") from None
    if data is not None:
        try:
            return datasets.load_from_disk(str(data))
        except (FileNotFoundError, ValueError) as err:
            raise AlbertError(f"{data}: not a saved datasets directory ({err})") from None
    if task.hub is None:
        raise AlbertError(f"task {task.name} has no `datasets` source: give --data DIR")
    name, config = task.hub
    try:
        with quiet_hub_logs():
            return datasets.load_dataset(name, config)
    except Exception as err:  # offline, unknown config, hub errors: all the user's to fix
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AlbertError(
            f"cannot load dataset {name}/{config} from the hub ({first}); give --data DIR "
            "(task files, or a directory saved with datasets' save_to_disk)"
        ) from None


def featurise_all(
    task: Task, examples: Sequence[Any], tokenizer: Tokenizer, config: TaskConfig, warn: Warn | None = None
) -> list[Feature]:
    """Every example's features, in order, each stamped with its example's index; how many
    examples were truncated goes to `warn`."""
    out: list[Feature] = []
    for index, example in enumerate(examples):
        out.extend(replace(f, example_index=index) for f in task.featurise(example, tokenizer, config))
    cut = {f.example_index for f in out if f.extra.get("truncated")}
    if cut:  # featurisers that truncate say so per feature; the count is never silent
        message = (
            f"{len(cut)} of {len(examples)} examples are longer than task.max_seq_length "
            f"({config.max_seq_length} tokens) and were truncated"
        )
        pass_on(warn, [message])
    return out


# ---------------------------------------------------------------------------------------------
# batches


def collate(features: Sequence[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest feature in the batch (dynamic padding), never to max_seq_length.

    Returns input_ids, token_type_ids, attention_mask: (B, T), or (B, C, T) for choice; and
    `labels` when every feature has one: (B,) long/float, or (B, 2) for spans.
    """
    import torch

    width = max(f.length for f in features)
    choice = bool(features[0].input_ids) and isinstance(features[0].input_ids[0], list)

    def pad(rows: list[list[int]], value: int) -> list[list[int]]:
        return [r + [value] * (width - len(r)) for r in rows]

    def mask(rows: list[list[int]]) -> list[list[int]]:
        return [[1] * len(r) + [0] * (width - len(r)) for r in rows]

    if choice:
        ids = [pad(f.input_ids, pad_id) for f in features]  # type: ignore[arg-type]
        types = [pad(f.token_type_ids, 0) for f in features]  # type: ignore[arg-type]
        att = [mask(f.input_ids) for f in features]  # type: ignore[arg-type]
    else:
        ids = pad([f.input_ids for f in features], pad_id)  # type: ignore[misc]
        types = pad([f.token_type_ids for f in features], 0)  # type: ignore[misc]
        att = mask([f.input_ids for f in features])  # type: ignore[misc]
    batch = {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "token_type_ids": torch.tensor(types, dtype=torch.long),
        "attention_mask": torch.tensor(att, dtype=torch.long),
    }
    labels = [f.label for f in features]
    if all(label is not None for label in labels):
        dtype = torch.float32 if isinstance(labels[0], float) else torch.long
        batch["labels"] = torch.tensor(labels, dtype=dtype)
    return batch


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, megabatch: int = 50
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths.

    Shuffle, cut into mega-batches of `megabatch` batches, sort each by length, cut into
    batches, shuffle the batches: padding shrinks while the order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * megabatch
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches: longest first, so padding is minimal and memory peaks at once."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# ---------------------------------------------------------------------------------------------
# default decoding


def default_postprocess(
    task: Task, examples: Sequence[Any], features: Sequence[Feature], outputs: Sequence[np.ndarray]
) -> list[Any]:
    """One feature per example: regress -> float score; classify -> label string; choice -> index."""
    decode = task.kind.decode
    if decode == "task":
        raise ValueError(f"task {task.name}: span tasks need their own postprocess")
    preds: list[Any] = [None] * len(examples)
    for feature, out in zip(features, outputs, strict=True):
        if decode == "score":
            preds[feature.example_index] = float(out)
        elif decode == "label":
            preds[feature.example_index] = task.labels[int(np.argmax(out))]
        else:
            preds[feature.example_index] = int(np.argmax(out))
    return preds


def lower_is_better(metric: str) -> bool:
    """Error-like metrics (mse, mae, rmse, loss; with a split suffix too) are minimised."""
    return metric.split("_")[0] in ("mse", "mae", "rmse", "loss")


def accuracy(golds: Sequence[Any], preds: Sequence[Any]) -> float:
    if not golds:
        return float("nan")
    return sum(g == p for g, p in zip(golds, preds, strict=True)) / len(golds)
