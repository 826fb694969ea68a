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
# the modules that write to the terminal: the CLI layer and the console it prints through
WRITERS = ("cli.py", "render.py", "core/console.py")
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


def _import_nodes(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in the file, function bodies included:
    `import a.b` -> ("a.b", []), `from a import b, c` -> ("a", ["b", "c"])."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _imports(path: Path) -> set[str]:
    return {module for module, _ in _import_nodes(path)}


def _imported_names(path: Path) -> set[str]:
    """`from albertctl.pipelines import vocab` gives `albertctl.pipelines.vocab`."""
    return {
        f"{module}.{n}" if names else module for module, names in _import_nodes(path) for n in names or [""]
    }


# pipeline -> pipeline imports that remain, each a piece still to move down a layer; the
# test fails on any other, and on an entry here that no longer exists (so the list only shrinks)
PIPELINE_EDGES_LEFT: set[tuple[str, str]] = set()
# library modules that still print through core.console (every rank prints under the
# launcher): they should return their warnings to the caller instead; the list only shrinks
PRINTERS_LEFT: set[str] = set()
# what core.console offers that only formats (returns a string) and prints nothing
CONSOLE_FORMATTERS = {"human_bytes", "human_duration"}


def test_layers_import_only_downwards():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "albertctl" and len(parts) > 1:
                    target = parts[1]
                    if target in CLI_LAYER or (target in ALLOWED and target not in allowed | {layer}):
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
        if rel in WRITERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_pipelines_never_import_pipelines():
    edges = set()
    for path in (PACKAGE / "pipelines").glob("*.py"):
        for name in _imported_names(path):
            parts = name.split(".")
            if parts[:2] == ["albertctl", "pipelines"] and len(parts) > 2 and parts[2] != path.stem:
                edges.add((path.stem, parts[2]))
    assert edges == PIPELINE_EDGES_LEFT


def test_only_the_cli_layer_writes_output():
    """Only the CLI layer (cli.py, render.py) and core/console.py print: no rich, no sys.stdout/stderr writes, and nothing
    from core.console but its pure formatters anywhere else."""
    printers = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in WRITERS:
            continue
        for name in _imported_names(path):
            parts = name.split(".")
            if parts[0] == "rich" or (
                name.startswith("albertctl.core.console.") and parts[-1] not in CONSOLE_FORMATTERS
            ):
                printers.add(rel)
            if name == "albertctl.core.console":
                printers.add(rel)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "write"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("stdout", "stderr")
            ):
                printers.add(rel)
    assert printers == PRINTERS_LEFT
