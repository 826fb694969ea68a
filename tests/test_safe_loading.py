"""Safe loading: nothing in the package unpickles data it did not write. Weights come from
safetensors (or `torch.load(weights_only=True)` for a `.bin`), YAML through `safe_load`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "albertctl"
UNSAFE_CALLS = {  # dotted callee -> why it is refused
    "yaml.load": "yaml.load can build arbitrary objects; use yaml.safe_load",
    "yaml.unsafe_load": "use yaml.safe_load",
    "yaml.full_load": "use yaml.safe_load",
    "pickle.load": "pickle runs code from the file",
    "pickle.loads": "pickle runs code from the file",
    "pickle.Unpickler": "pickle runs code from the file",
    "dill.load": "dill runs code from the file",
    "joblib.load": "joblib unpickles",
    "numpy.load": "numpy.load needs allow_pickle=False",
    "np.load": "np.load needs allow_pickle=False",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _is_true(node: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords
    )


def _is_false(node: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is False for k in node.keywords
    )


def unsafe_loads(source: str, filename: str) -> list[str]:
    """`file:line: call (why)` for every unsafe deserialisation call in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            if {"pickle", "dill", "cloudpickle", "marshal", "shelve"} & {module, *names}:
                found.append(f"{filename}:{node.lineno}: import of a pickle-like module")
            if module == "yaml" and {"load", "unsafe_load", "full_load"} & set(names):
                found.append(f"{filename}:{node.lineno}: from yaml import load")
            if module == "torch" and "load" in names:
                found.append(
                    f"{filename}:{node.lineno}: from torch import load (call torch.load with weights_only=True)"
                )
            continue
        if not isinstance(node, ast.Call):
            continue
        callee = _dotted(node.func)
        if callee == "torch.load" and not _is_true(node, "weights_only"):
            found.append(f"{filename}:{node.lineno}: torch.load without weights_only=True")
        elif callee in ("numpy.load", "np.load") and _is_false(node, "allow_pickle"):
            continue
        elif callee in UNSAFE_CALLS:
            found.append(f"{filename}:{node.lineno}: {callee} ({UNSAFE_CALLS[callee]})")
    return found


def test_the_package_loads_nothing_unsafely():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = [
        hit
        for f in files
        for hit in unsafe_loads(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE.parent)))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(p)",
        "import torch\ntorch.load(p, weights_only=False)",
        "import yaml\nyaml.load(s, Loader=yaml.Loader)",
        "import yaml\nyaml.unsafe_load(s)",
        "import pickle",
        "from pickle import loads",
        "import numpy as np\nnp.load(p, allow_pickle=True)",
    ],
)
def test_the_checker_catches(source):
    assert len(unsafe_loads(source, "x.py")) >= 1


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
        "import yaml\nyaml.safe_load(s)",
        "import numpy as np\nnp.load(p, allow_pickle=False)",
    ],
)
def test_the_checker_allows(source):
    assert unsafe_loads(source, "x.py") == []
