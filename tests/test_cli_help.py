"""`--help` teaches (issue 22): defaults shown, metavars that say what to type, real examples, and
shell completion of task names, profile names and convert's --from/--to values."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from albertctl.cli import app

COMMANDS = [
    [],
    ["profile"],
    ["profile", "list"],
    ["profile", "show"],
    ["vocab"],
    ["prepare"],
    ["pretrain"],
    ["finetune"],
    ["eval"],
    ["convert"],
]


def _help(argv: list[str]) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "albertctl")
def test_help_has_no_type_placeholders(argv):
    text = _help(argv)
    assert not re.search(r"<(bool|str|int|path|list\[str\])>|\{[a-z_]+\}", text), text


@pytest.mark.parametrize(
    "argv",
    [c for c in COMMANDS if len(c) == 1 and c != ["profile"]] + [["profile", "list"], ["profile", "show"]],
    ids=" ".join,
)
def test_every_command_ends_with_real_examples(argv):
    text = _help(argv)
    examples = text.split("Examples", 1)[1]
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert len(lines) >= 2
    assert all(line.startswith("albertctl " + " ".join(argv)) for line in lines), lines


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        # defaults the option's value shows
        (["convert"], "tf, tf-hub, hf or albertctl [default: albertctl]"),
        (["pretrain"], "or a YAML path [default: tiny]"),
        (["profile", "show"], "GPUs to estimate memory for [default: 8]"),
        # defaults written in the help text (None stands for them): no longer eaten as markup
        (["finetune"], "Run directory [default: runs/finetune/TASK]"),
        (["finetune"], "(choice: the context) [default: text]"),
        (["finetune"], "Label / score / answer column [default: label]"),
        (["pretrain"], "Run directory [default: runs/pretrain-PROFILE-TIME]"),
        (["pretrain"], "[default: the built-in sample corpus, prepared once and cached]"),
        (["vocab"], "Pieces [default: the profile's model.vocab_size]"),
        (["convert"], "albert_config.json [default: beside the checkpoint]"),
    ],
)
def test_defaults_are_shown(argv, shown):
    assert shown in " ".join(_help(argv).split()).replace("│ ", "")


def test_metavars_name_what_to_type():
    text = " ".join(_help(["finetune"]).split())
    assert "Usage: albertctl finetune [OPTIONS] TASK" in text
    assert "--set KEY=VALUE" in text
    assert "--model -m DIR" in text
    assert re.search(r"--resume\s+Continue", text)  # a flag takes no value
    assert "Usage: albertctl vocab [OPTIONS] [INPUTS...]" in " ".join(_help(["vocab"]).split())


def _complete(words: str) -> list[str]:
    env = {"_ALBERTCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": words}
    result = CliRunner().invoke(app, [], env=env, prog_name="albertctl")
    return re.findall(r'"([^"]+)"', result.output)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("albertctl finetune m", ["mnli", "mrpc"]),
        ("albertctl eval sq", ["squad1", "squad2"]),
        ("albertctl finetune gl", ["glue"]),
        ("albertctl pretrain --profile x", ["xlarge", "xxlarge"]),
        ("albertctl profile show bert", ["bert-base", "bert-large"]),
        ("albertctl convert --from t", ["tf", "tf-hub"]),
        ("albertctl convert --to ", ["albertctl", "hf"]),
        ("albertctl convert --task ra", ["race", "race-high", "race-middle"]),
    ],
)
def test_shell_completion(words, expected):
    assert _complete(words) == expected
