"""What a pipeline's `run` returns: a frozen record whose `to_dict()` is the `--json` output.

The CLI reads attributes and renders; `--json` prints `to_dict()`, its keys in field order.
`result["key"]` reads the same dict, so callers written against the plain dicts the pipelines
used to return keep working.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Result:
    """Mixin for frozen dataclasses: a shallow `to_dict()` (nested values as they are)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)
