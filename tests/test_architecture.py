"""Dependencies point one way: cli -> pipelines -> tasks/data/model/training/convert -> core.

Parsed with `ast`, so the rule holds without importing anything.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "albertctl"

# what each layer may import from albertctl (besides itself)
ALLOWED = {
    "core": {"core"},
    "model": {"core"},
    "data": {"core"},
    "training": {"core"},
    "convert": {"core", "model", "data"},
    "tasks": {"core", "data", "model"},
    "pipelines": {"core", "data", "model", "training", "convert", "tasks", "pipelines"},
}
# the CLI layer: the commands and their rendering; nothing below imports it
CLI_LAYER = ("cli", "render", "__main__")
# model code does no I/O and no CLI: these libraries never appear under model/
MODEL_FORBIDDEN = {
    "rich",
    "typer",
    "yaml",
    "deepspeed",
    "safetensors",
    "datasets",
    "sentencepiece",
    "json",
    "os",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_import_only_downwards():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "albertctl" and len(parts) > 1:
                    target = parts[1]
                    if target in CLI_LAYER or (
                        target in ALLOWED and target not in allowed | {layer}
                    ):
                        bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, bad


def test_model_does_no_io():
    for path in (PACKAGE / "model").rglob("*.py"):
        roots = {n.split(".")[0] for n in _imports(path)}
        assert not roots & MODEL_FORBIDDEN, f"{path.name} imports {roots & MODEL_FORBIDDEN}"


def test_only_cli_and_console_print():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ("cli.py", "core/console.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders
