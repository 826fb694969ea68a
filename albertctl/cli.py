"""The `albertctl` command line: one short function per subcommand (parse, run, render)."""

# No `from __future__ import annotations`: Typer would evaluate ~1,000 string annotations on
# every start (30-40 ms of `--help`); the annotations here are plain runtime objects.

import contextlib
import copy
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup

from albertctl import render
from albertctl.core import console
from albertctl.core.config import builtin_profiles, load_profile, parse_overrides
from albertctl.core.errors import AlbertError

try:  # recent typer releases vendor click as typer._click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the click package
    from click import exceptions as click_errors


def _default(text: str) -> str:
    """`[default: ...]` for a default the option's value cannot show (None stands for it); escaped,
    since rich markup would take the bracket for a style tag and drop it."""
    return rf"\[default: {text}]"


def _metavar(param) -> str:
    """What to type: none for a flag, the argument's name, PATH, N or TEXT by the value's type."""
    if getattr(param, "is_flag", False):
        return ""
    if isinstance(param, TyperArgument):
        return (param.name or "").upper()
    kind = str(getattr(getattr(param, "type", None), "name", "")).lower()  # click's: path, integer, ...
    if "path" in kind:
        return "PATH"
    if "int" in kind:
        return "N"
    if "float" in kind:
        return "X"
    return "TEXT"


class _TeachingHelp:
    """Help that names what to type (TASK, PATH, KEY=VALUE, N; nothing after a flag) instead of
    Typer's `<bool>`, `<list[str]>`, `{task}`."""

    def get_params(self, ctx):  # every parameter shown or parsed, --help and completion included
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is None:
                param.metavar = _metavar(param)
            if isinstance(param, TyperArgument):  # its name says it all; no `<str>` beside it
                _hide_argument_type(param)
            _explain_numbers(param)
        return params


def _hide_argument_type(param) -> None:
    """Typer's help shows an argument's `<type>` from `param.type.get_metavar`: give the
    argument its own copy of the type (conversion unchanged) that names nothing."""
    kind = getattr(param, "type", None)
    if kind is None or getattr(kind, "_albertctl_unnamed", False):
        return
    unnamed = copy.copy(kind)
    unnamed.get_metavar = lambda *args, **kwargs: ""
    unnamed._albertctl_unnamed = True
    param.type = unnamed


def _explain_numbers(param) -> None:
    """A bad number says what was expected and what came (`expected an integer >= 1, got '0'`)
    instead of click's `0 is not in the range x>=1.` / `'many' is not a valid int range.`: the
    parameter gets its own copy of its number type whose conversion errors say so."""
    kind = getattr(param, "type", None)
    number = getattr(kind, "_number_class", None)
    if number not in (int, float) or getattr(kind, "_albertctl_explained", False):
        return
    bounds = [
        f"{op}{'' if is_open else '='} {bound}"
        for op, bound, is_open in (
            (">", getattr(kind, "min", None), getattr(kind, "min_open", False)),
            ("<", getattr(kind, "max", None), getattr(kind, "max_open", False)),
        )
        if bound is not None
    ]
    what = " ".join(["an integer" if number is int else "a number", " and ".join(bounds)]).rstrip()
    explained = copy.copy(kind)
    convert = kind.convert

    def checked(value, param, ctx):
        try:
            return convert(value, param, ctx)
        except click_errors.BadParameter:
            explained.fail(f"expected {what}, got {value!r}", param, ctx)

    explained.convert = checked
    explained._albertctl_explained = True
    param.type = explained


class Group(_TeachingHelp, TyperGroup):
    pass


class Command(_TeachingHelp, TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def _examples(*lines: str) -> str:
    """A command's epilog: real invocations, one per line."""
    return "[bold]Examples[/]\n\n" + "\n".join(f"  {escape(line)}" for line in lines)


def _complete(choices) -> object:
    """A shell-completion callback offering `choices()` that start with what was typed."""

    def complete(incomplete: str) -> list[str]:
        return [c for c in choices() if c.startswith(incomplete)]

    return complete


def _task_choices() -> list[str]:
    from albertctl.tasks.base import groups, task_names

    return sorted({*task_names(), *groups()})


complete_task = _complete(_task_choices)
complete_profile = _complete(builtin_profiles)
complete_from = _complete(lambda: ["tf", "tf-hub", "hf", "albertctl"])
complete_to = _complete(lambda: ["albertctl", "hf"])

app = typer.Typer(
    name="albertctl",
    cls=Group,
    help="Train, fine-tune, evaluate and convert ALBERT language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
profile_app = typer.Typer(
    cls=Group, help="Inspect model-size and hyperparameter profiles.", no_args_is_help=True
)
app.add_typer(profile_app, name="profile", rich_help_panel="Setup")

ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        metavar="NAME",
        help="tiny, base, large, xlarge, xxlarge, bert-base, bert-large, or a YAML path",
        autocompletion=complete_profile,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a profile value: section.key=value (repeatable)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
ResumeFromOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume-from",
        help="Continue from this checkpoint (RUN/checkpoints/step-N), on any number of GPUs or ZeRO stage",
    ),
]
NumGpusOpt = Annotated[
    int | None,
    typer.Option(
        "--num-gpus",
        min=1,
        help="Processes per node, through DeepSpeed's launcher",
        rich_help_panel="Distributed",
    ),
]
NumNodesOpt = Annotated[
    int | None,
    typer.Option("--num-nodes", min=1, help="Nodes (with --hostfile)", rich_help_panel="Distributed"),
]
HostfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--hostfile", help="DeepSpeed hostfile: 'host slots=N' per line", rich_help_panel="Distributed"
    ),
]
ReportToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--report-to",
        metavar="NAME",
        help="Experiment trackers for the metrics: tensorboard, mlflow, wandb (offline by default), none; "
        "repeatable or comma-separated " + _default("tensorboard when installed"),
        rich_help_panel="Logging",
    ),
]


def _version(value: bool) -> None:
    if value:
        from albertctl import __version__

        console.show(f"albertctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Train, fine-tune, evaluate and convert ALBERT language models."""


@profile_app.command(
    "list", cls=Command, epilog=_examples("albertctl profile list", "albertctl profile list --json")
)
def profile_list(as_json: JsonOpt = False) -> None:
    """List the built-in profiles."""
    from albertctl.pipelines import profile as pipeline

    rows = pipeline.builtin()
    render.show(rows, as_json, render.profiles)


@profile_app.command(
    "show",
    cls=Command,
    epilog=_examples(
        "albertctl profile show base",
        "albertctl profile show xxlarge --world-size 64",
        "albertctl profile show my-profile.yaml --set train.learning_rate=1e-4 --json",
    ),
)
def profile_show(
    name: Annotated[
        str,
        typer.Argument(
            metavar="PROFILE", help="A built-in profile name or a YAML path", autocompletion=complete_profile
        ),
    ],
    overrides: SetOpt = None,
    world_size: Annotated[int, typer.Option("--world-size", min=1, help="GPUs to estimate memory for")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Print the resolved profile, parameter count, FLOPs per token and memory per GPU."""
    from albertctl.pipelines import profile as pipeline

    result = pipeline.summary(load_profile(name, parse_overrides(overrides)), world_size)
    render.show(result, as_json, render.profile_summary)


TaskArg = Annotated[
    str,
    typer.Argument(
        help="cola, sst-2, mrpc, sts-b, qqp, mnli, qnli, rte, wnli (ax: eval only), glue for all, "
        "another registered task (squad1, squad2, race), or your own data: classify, regress, qa, choice",
        show_default=False,
        autocompletion=complete_task,
    ),
]
TaskDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Task files (e.g. glue_data/ or glue_data/MNLI/), a datasets save_to_disk directory "
        "or the hub's parquet files. Your own data: a CSV, TSV, JSONL, JSON or Parquet file, a "
        "save_to_disk directory or a hub name (SOURCE:SPLIT picks a split) "
        + _default("the task's dataset on the hub"),
    ),
]


OWN = "Your own data (classify, regress, qa, choice)"
ValidationOpt = Annotated[
    Path | None,
    typer.Option(
        "--validation", help="Labelled dev file: scored during training, picks best/", rich_help_panel=OWN
    ),
]
TextColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--text-column",
        metavar="COLUMN",
        help="Text column, or two for pairs: question,passage (choice: the context) " + _default("text"),
        rich_help_panel=OWN,
    ),
]
LabelColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        metavar="COLUMN",
        help="Label / score / answer column " + _default("label"),
        rich_help_panel=OWN,
    ),
]
IdColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--id-column",
        metavar="COLUMN",
        help="Column copied into predictions " + _default("id or idx when present"),
        rich_help_panel=OWN,
    ),
]
QuestionColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--question-column",
        metavar="COLUMN",
        help="choice: the question " + _default("question"),
        rich_help_panel=OWN,
    ),
]
OptionColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--option-columns",
        metavar="COLUMNS",
        help="choice: 2-5 option columns a,b,c or one list column",
        rich_help_panel=OWN,
    ),
]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        "--labels",
        metavar="A,B,...",
        help="classify: the labels in order " + _default("sorted from the training data"),
        rich_help_panel=OWN,
    ),
]


OWN_COLUMNS = ("text_column", "label_column", "id_column", "question_column", "option_columns")


def _own(validation: Path | None, *columns: str | None, labels: str | None = None) -> dict[str, str]:
    """The your-own-data options that were given, by name (tasks/custom.py parses them):
    --validation, the five column options in OWN_COLUMNS order, --labels."""
    given = {"validation": validation, **dict(zip(OWN_COLUMNS, columns, strict=True)), "labels": labels}
    return {k: str(v) for k, v in given.items() if v is not None}


@app.command(
    rich_help_panel="Training",
    cls=Command,
    epilog=_examples(
        "albertctl finetune mnli --model runs/pretrain-base/model --data glue_data",
        "albertctl finetune squad2 --model models/albert-base-v2 --data squad/ --set task.max_train_samples=200",
        "albertctl finetune classify --model M --data train.csv --validation dev.csv --text-column review",
    ),
)
def finetune(
    task: TaskArg,
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", metavar="DIR", help="Model directory to start from (pretrained or converted)"
        ),
    ],
    data: TaskDataOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="Run directory " + _default("runs/finetune/TASK")),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="task.key=value (profiles/tasks/TASK.yaml) or model.key=value (repeatable)",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out")
    ] = False,
    resume_from: ResumeFromOpt = None,
    validation: ValidationOpt = None,
    text_column: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    id_column: IdColumnOpt = None,
    question_column: QuestionColumnOpt = None,
    option_columns: OptionColumnsOpt = None,
    labels: LabelsOpt = None,
    report_to: ReportToOpt = None,
    num_gpus: NumGpusOpt = None,
    num_nodes: NumNodesOpt = None,
    hostfile: HostfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a model on one task (or every GLUE task) and print dev metrics of the best checkpoint."""
    from albertctl.pipelines import finetune as pipeline
    from albertctl.pipelines import launch

    sets = parse_overrides(overrides)
    code = launch.relaunch_if_wanted(
        num_gpus, num_nodes, hostfile, lambda world: pipeline.check_world_size(task, sets, world)
    )
    if code is not None:
        raise typer.Exit(code)
    columns = (text_column, label_column, id_column, question_column, option_columns)
    own = _own(validation, *columns, labels=labels)
    bar, on_event = render.training_progress(f"finetune {task}")
    with bar, contextlib.redirect_stdout(sys.stderr):  # libraries' chatter (DeepSpeed) stays off stdout
        out = out or Path("runs") / "finetune" / task.lower()
        results = pipeline.run(
            task, model, out, data, sets, resume, on_event, own, report_to or [], resume_from
        )
    if launch.rank() != 0:
        return
    summary = pipeline.summary(results) if len(results) > 1 else None
    (render.finetune_json if as_json else render.finetune_results)(results, summary)


InputsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Text files, directories or glob patterns: one sentence per line, a blank line between "
        "documents. None (and no --dataset): the built-in sample corpus",
        show_default=False,
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="A datasets name (online), save_to_disk directory or data file, instead of text files",
        rich_help_panel="Dataset input",
    ),
]
DatasetSplitOpt = Annotated[
    str, typer.Option("--split", help="Dataset split", rich_help_panel="Dataset input")
]
TextColumnOpt = Annotated[
    str,
    typer.Option("--text-column", help="Dataset column holding the text", rich_help_panel="Dataset input"),
]
DatasetConfigOpt = Annotated[
    str | None,
    typer.Option("--dataset-config", help="Dataset configuration name", rich_help_panel="Dataset input"),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Random seed " + _default("the profile's train.seed"))
]


def _inputs(inputs: list[str] | None, dataset: str | None, split: str, text_column: str, config: str | None):
    from albertctl.data.corpus import DatasetSource

    if dataset is not None:
        if inputs:
            raise AlbertError("give text files or --dataset, not both")
        return DatasetSource(dataset, split, text_column, config)
    return inputs or None


@app.command(
    rich_help_panel="Data",
    cls=Command,
    epilog=_examples(
        "albertctl vocab",
        "albertctl vocab corpus/*.txt -o vocab/spiece --profile base",
        "albertctl vocab --dataset wikitext --dataset-config wikitext-103-raw-v1 --spm character_coverage=1.0",
    ),
)
def vocab(
    inputs: InputsArg = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PREFIX",
            help="Output prefix: writes PREFIX.model and PREFIX.vocab, or PREFIX.txt with --kind wordpiece "
            + _default("spiece; vocab with --kind wordpiece"),
        ),
    ] = None,
    vocab_size: Annotated[
        int | None,
        typer.Option("--vocab-size", min=8, help="Pieces " + _default("the profile's model.vocab_size")),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="sentencepiece (ALBERT's English models) or wordpiece (BERT's vocab.txt, the Chinese models)",
        ),
    ] = "sentencepiece",
    spm_options: Annotated[
        list[str] | None,
        typer.Option(
            "--spm",
            metavar="KEY=VALUE",
            help="Any SentencePiece trainer flag: key=value (repeatable), e.g. character_coverage=1.0",
        ),
    ] = None,
    profile: ProfileOpt = "tiny",
    overrides: SetOpt = None,
    seed: SeedOpt = None,
    num_proc: Annotated[int, typer.Option("--num-proc", min=1, help="SentencePiece training threads")] = 1,
    dataset: DatasetOpt = None,
    split: DatasetSplitOpt = "train",
    text_column: TextColumnOpt = "text",
    dataset_config: DatasetConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a SentencePiece unigram vocabulary with ALBERT's settings (or, --kind wordpiece, a
    BERT WordPiece vocab.txt) and print a summary."""
    from albertctl.core.config import parse_override
    from albertctl.pipelines import vocab as pipeline

    options = {".".join(keys): value for keys, value in map(parse_override, spm_options or [])}
    result = pipeline.run(
        load_profile(profile, parse_overrides(overrides)),
        _inputs(inputs, dataset, split, text_column, dataset_config),
        output,
        vocab_size,
        options,
        seed,
        num_proc,
        kind,
    )
    render.show(result, as_json, render.vocab)


@app.command(
    rich_help_panel="Data",
    cls=Command,
    epilog=_examples(
        "albertctl prepare",
        "albertctl prepare corpus/*.txt --vocab vocab/spiece.model -o data --profile base --num-proc 8",
    ),
)
def prepare(
    inputs: InputsArg = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Output directory (replaced atomically)")
    ] = Path("data"),
    vocab_file: Annotated[
        Path | None,
        typer.Option(
            "--vocab",
            help="SentencePiece model, or a WordPiece vocab.txt "
            + _default("train a SentencePiece model on the same input"),
        ),
    ] = None,
    num_proc: Annotated[
        int,
        typer.Option(
            "--num-proc",
            min=1,
            help="Worker processes (and SentencePiece's threads without --vocab); with --vocab the output "
            "does not depend on it",
        ),
    ] = 1,
    profile: ProfileOpt = "tiny",
    overrides: SetOpt = None,
    seed: SeedOpt = None,
    dataset: DatasetOpt = None,
    split: DatasetSplitOpt = "train",
    text_column: TextColumnOpt = "text",
    dataset_config: DatasetConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make SOP/NSP pretraining pairs with n-gram masking into sharded Arrow data and a manifest."""
    from albertctl.pipelines import prepare as pipeline

    source = _inputs(inputs, dataset, split, text_column, dataset_config)
    bar, on_progress = render.prepare_progress()
    with bar:
        prof = load_profile(profile, parse_overrides(overrides))
        result = pipeline.run(prof, source, output, vocab_file, num_proc, seed, on_progress)
    render.show(result, as_json, render.prepare)


@app.command(
    rich_help_panel="Training",
    cls=Command,
    epilog=_examples(
        "albertctl pretrain --profile tiny",
        "albertctl pretrain --profile base --data data/ --out runs/base --dry-run",
        "albertctl pretrain --profile large --data data/ --out runs/large --num-gpus 8",
        "albertctl pretrain --profile base --data data/ --out runs/base --resume",
    ),
)
def pretrain(
    profile: ProfileOpt = "tiny",
    overrides: SetOpt = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="DIR",
            help="Output of albertctl prepare "
            + _default("the built-in sample corpus, prepared once and cached"),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Run directory " + _default("runs/pretrain-PROFILE-TIME")
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest good checkpoint in --out")
    ] = False,
    resume_from: ResumeFromOpt = None,
    init: Annotated[
        Path | None,
        typer.Option("--init", metavar="DIR", help="Start from this model directory (converted or earlier)"),
    ] = None,
    num_gpus: NumGpusOpt = None,
    num_nodes: NumNodesOpt = None,
    hostfile: HostfileOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (batches, steps, parameters, memory) and exit")
    ] = False,
    report_to: ReportToOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pretrain ALBERT (MLM + SOP) with DeepSpeed, then print the eval report on held-out data."""
    from albertctl.pipelines import launch
    from albertctl.pipelines import pretrain as pipeline

    prof = load_profile(profile, parse_overrides(overrides))
    world = launch.world_size(num_gpus, num_nodes)
    if dry_run:
        render.show(pipeline.dry_run(prof, world), as_json, render.pretrain_plan)
        return
    # batch arithmetic errors before starting processes
    code = launch.relaunch_if_wanted(num_gpus, num_nodes, hostfile, lambda world: pipeline.plan(prof, world))
    if code is not None:
        raise typer.Exit(code)
    bar, on_event = render.training_progress("pretrain", pretraining=True)
    with bar, contextlib.redirect_stdout(sys.stderr):  # DeepSpeed's chatter stays off stdout
        out = out or pipeline.default_out(prof)
        result = pipeline.run(prof, data, out, resume, init, on_event, report_to or [], resume_from)
    if result.rank != 0:
        return
    render.show(result, as_json, render.pretrain)
    if result.stopped == "interrupted":
        render.interrupted(result)
        raise SystemExit(130)


def _eval_scores(task: str | None, model: Path | None, predictions: Path | None, data, na_probs):
    """`eval squad2 --predictions FILE`: score a predictions file, no model."""
    from albertctl.pipelines import score

    if task is None or predictions is None or model is not None:
        raise AlbertError(
            "--predictions FILE needs a TASK and no --model, e.g. albertctl eval squad2 "
            "--predictions predictions.json --data dev-v2.0.json [--na-probs null_odds.json]"
        )
    return score.score_predictions(task, predictions, data, na_probs, warn=console.warn)


def _eval_task(task: str, model: Path, data: Path | None, predict: Path | None, overrides, own):
    """`eval TASK`: dev metrics of a fine-tuned model (and --predict files)."""
    from albertctl.pipelines import finetune

    bar, on_event = render.eval_progress()
    with bar, contextlib.redirect_stdout(sys.stderr):
        return finetune.evaluate(task, model, data, predict, parse_overrides(overrides), own, on_event)


def _eval_pretraining(model: Path, data: Path | None, overrides):
    """`eval --model DIR`: the pretraining report on held-out data."""
    from albertctl.pipelines import evaluate

    bar, on_event = render.eval_progress()
    with bar, contextlib.redirect_stdout(sys.stderr):
        return evaluate.run_pretraining(model, data, overrides=parse_overrides(overrides), progress=on_event)


@app.command(
    "eval",
    rich_help_panel="Evaluation",
    cls=Command,
    epilog=_examples(
        "albertctl eval --model runs/base/model",
        "albertctl eval mnli --model runs/finetune/mnli/best --data glue_data --json",
        "albertctl eval squad2 --predictions predictions.json --data dev-v2.0.json",
        "albertctl eval --plot runs/base",
    ),
)
def eval_(
    task: Annotated[
        str | None,
        typer.Argument(
            help="A fine-tuning task (e.g. mnli); omit for the pretraining report",
            show_default=False,
            autocompletion=complete_task,
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", metavar="DIR", help="Model directory")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Prepared data (pretraining) or the task's files "
            + _default("pretraining: the data the model was pretrained on, if still there"),
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", metavar="RUN_DIR", help="Draw the run's training curves to RUN_DIR/curves.png"
        ),
    ] = None,
    predict: Annotated[
        Path | None,
        typer.Option(
            "--predict",
            help="With a TASK: also write test-set predictions here (GLUE submission files; SQuAD: dev predictions.json, nbest, null odds; your own data: predictions.jsonl and .csv, one row per row of --data)",
        ),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="With squad1/squad2: score this predictions file ({id: answer}) against --data, no model",
        ),
    ] = None,
    na_probs: Annotated[
        Path | None,
        typer.Option("--na-probs", help="With --predictions (squad2): {id: no-answer probability} file"),
    ] = None,
    overrides: SetOpt = None,
    text_column: TextColumnsOpt = None,
    label_column: LabelColumnOpt = None,
    id_column: IdColumnOpt = None,
    question_column: QuestionColumnOpt = None,
    option_columns: OptionColumnsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model: the pretraining report on held-out data, a task's dev metrics, or plot curves."""
    if predictions is not None or na_probs is not None:  # pure scoring: no torch to import
        render.show(_eval_scores(task, model, predictions, data, na_probs), as_json, render.scores)
        return
    from albertctl.pipelines import evaluate as pipeline

    if plot is not None:
        render.show({"plot": str(pipeline.plot(plot))}, as_json, render.plot)
    elif model is None:
        raise AlbertError(
            "eval needs --model DIR (with --data DIR for the pretraining report, or a TASK), or --plot RUN_DIR"
        )
    elif task is not None:
        columns = (text_column, label_column, id_column, question_column, option_columns)
        own = _own(None, *columns)
        render.show(_eval_task(task, model, data, predict, overrides, own), as_json, render.task_eval)
    elif predict is not None:
        raise AlbertError("--predict needs a TASK, e.g. albertctl eval mnli --model DIR --predict OUT")
    else:
        report = _eval_pretraining(model, data, overrides)
        render.show(report, as_json, lambda r: render.pretraining_eval(r, model))


@app.command(
    rich_help_panel="Models",
    cls=Command,
    epilog=_examples(
        "albertctl convert --from tf albert_base_v2.tar.gz --out models/albert-base-v2",
        "albertctl convert --from tf-hub https://tfhub.dev/google/albert_base/3 --out models/albert-base-hub",
        "albertctl convert models/albert-base-v2 --to hf --out hf/albert-base-v2",
    ),
)
def convert(
    source: Annotated[
        str,
        typer.Argument(
            help="TF checkpoint prefix or directory, TF-Hub module directory, .tar.gz or handle URL, "
            "HF directory, or albertctl model directory",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Output directory (written atomically)")
    ],
    source_kind: Annotated[
        str,
        typer.Option(
            "--from", metavar="KIND", help="tf, tf-hub, hf or albertctl", autocompletion=complete_from
        ),
    ] = "albertctl",
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="KIND",
            help="albertctl (model directory) or hf (transformers directory)",
            autocompletion=complete_to,
        ),
    ] = "albertctl",
    config: Annotated[
        Path | None, typer.Option("--config", help="albert_config.json " + _default("beside the checkpoint"))
    ] = None,
    spm_file: Annotated[
        Path | None,
        typer.Option(
            "--spm",
            help="SentencePiece model or WordPiece vocab.txt "
            + _default("the *.model, else the vocab*.txt, beside it"),
        ),
    ] = None,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            metavar="KIND",
            help="TF only: pretraining, classify, regress, choice or span "
            + _default("detected; choice for RACE"),
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            autocompletion=complete_task,
            metavar="TASK",
            help="The task a fine-tuned checkpoint was trained on (e.g. mnli, squad2, race): "
            "recorded so that `eval TASK` and `finetune TASK` use its head",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert Google's TF checkpoints / TF-Hub modules or HF directories to albertctl, or export to HF."""
    from albertctl.pipelines import convert as pipeline

    result = pipeline.run(source_kind, source, out, to, config, spm_file, head, task)
    render.show(result, as_json, render.convert)


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="albertctl")
    except click_errors.NoArgsIsHelpError as err:  # bare `albertctl` or a group: show its help
        print(err.ctx.get_help())
        raise SystemExit(0) from None
    except click_errors.UsageError as err:  # a bad option value or unknown command: one line, as AlbertError
        where = err.ctx.command_path if err.ctx is not None else "albertctl"
        console.error(f"{where}: {err.format_message()}")
        raise SystemExit(2) from None
    except click_errors.ClickException as err:
        console.error(err.format_message())
        raise SystemExit(err.exit_code) from None
    except typer.Abort:
        console.error("interrupted")
        raise SystemExit(130) from None
    except AlbertError as err:
        console.error(str(err))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        if code == 130:  # Typer turns KeyboardInterrupt (Ctrl-C, or SIGTERM while writing) into 130, silently
            console.error("interrupted")
        raise SystemExit(code)
