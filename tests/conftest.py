"""Shared fixtures: a CLI runner that separates stdout/stderr and returns the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("ALBERTCTL_NO_PROGRESS", "1")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> CliResult:
    full_env = {**os.environ, "ALBERTCTL_NO_PROGRESS": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "albertctl", *argv],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli():
    """Run `python -m albertctl ARGV` in a subprocess, as a user would."""
    return _run
