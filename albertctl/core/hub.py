"""Quiet access to the Hugging Face hub: its libraries log every retry of a failed request,
which would bury the one-line error albertctl prints when a dataset cannot be fetched."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

HUB_LOGGERS = ("huggingface_hub", "datasets", "fsspec")


@contextlib.contextmanager
def quiet_hub_logs() -> Iterator[None]:
    """Hub and `datasets` log records below ERROR are dropped while the block runs."""
    loggers = [logging.getLogger(name) for name in HUB_LOGGERS]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)
