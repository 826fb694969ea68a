"""The `albertctl` command line: one short function per subcommand (parse, run, render)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from albertctl.core import console
from albertctl.core.config import builtin_profiles, load_profile
from albertctl.core.errors import AlbertError

app = typer.Typer(
    name="albertctl",
    help="Train, fine-tune, evaluate and convert ALBERT language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
profile_app = typer.Typer(help="Inspect model-size and hyperparameter profiles.", no_args_is_help=True)
app.add_typer(profile_app, name="profile", rich_help_panel="Setup")

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="tiny, base, large, xlarge, xxlarge, bert-base, bert-large, or a YAML path")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a profile value: section.key=value (repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


@profile_app.command("list")
def profile_list(as_json: JsonOpt = False) -> None:
    """List the built-in profiles."""
    rows = []
    for name in builtin_profiles():
        p = load_profile(name)
        rows.append({"name": name, "description": p.description})
    if as_json:
        console.print_json(rows)
    else:
        console.show(console.table("built-in profiles", ["name", "description"], [r.values() for r in rows]))


@profile_app.command("show")
def profile_show(
    name: Annotated[str, typer.Argument(help="A built-in profile name or a YAML path")],
    overrides: SetOpt = None,
    world_size: Annotated[int, typer.Option("--world-size", min=1, help="GPUs to estimate memory for")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Print the resolved profile, parameter count, FLOPs per token and memory per GPU."""
    from albertctl.pipelines import profile as pipeline

    result = pipeline.summary(load_profile(name, overrides or []), world_size)
    if as_json:
        console.print_json(result)
        return
    for section, values in result["profile"].items():
        if isinstance(values, dict):
            console.show(console.key_value_table(section, values))
    console.show(console.key_value_table("cost", {
        "parameters (embeddings + encoder + pooler)": result["parameters"],
        "parameters with MLM + SOP heads": result["parameters_with_pretraining_heads"],
        "training FLOPs per token": result["training_flops_per_token"],
        "tokens per optimizer step": result["tokens_per_step"],
    }))
    rows = [
        (stage, console.human_bytes(m["model_states"]), console.human_bytes(m["activations"]),
         console.human_bytes(m["total"]))
        for stage, m in result["memory_per_gpu_bytes"].items()
    ]
    console.show(console.table(
        f"training memory per GPU (estimate, {world_size} GPUs)",
        ["ZeRO stage", "model states", "activations", "total"], rows,
    ))


def main() -> None:
    try:
        app()
    except AlbertError as err:
        console.error(str(err))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise SystemExit(130) from None


