"""Reading the YAML and JSON a user hands us, with no resource bomb getting through.

- YAML: `safe_load` semantics, but anchors and aliases are refused. None of albertctl's files
  need them, and nested aliases ("billion laughs") turn 500 bytes into gigabytes the moment
  anything walks or prints the value.
- JSON: a document nested deeper than `MAX_DEPTH` levels is refused with one line (Python's
  parser raises RecursionError long before a real file gets there; ours nest a few levels).
- `quote`: the one way a value read from a file is shown in an error message, bounded in
  length and in the work it takes however large or deep the value is.
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

import yaml

from albertctl.core.errors import AlbertError

MAX_DEPTH = 100  # nesting levels accepted in a YAML or JSON document
MAX_QUOTE = 80  # characters of a value shown in an error message

_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlong = 40


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """`repr(value)` for an error message, never longer than `limit` characters."""
    return shorten(_repr.repr(value), limit)


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text)} characters)"


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors (`&a`) and aliases (`*a`) as it composes the document,
    and documents nested deeper than MAX_DEPTH."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 (PyYAML hook)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, "YAML anchors and aliases (&name, *name) are not accepted")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, mark: Any, reason: str) -> None:
        super().__init__(reason)
        self.mark = mark
        self.reason = reason


def parse_yaml(text: str, source: str) -> Any:
    """A YAML document as plain Python values; anything else is an AlbertError naming `source`."""
    try:
        return _load_yaml(text, source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise AlbertError(f"{source}:{where} malformed YAML: {shorten(problem, 160)}") from None


def parse_yaml_value(text: str, source: str) -> Any:
    """A `--set` value: YAML when it parses (numbers, booleans, lists), else the text itself;
    anchors, aliases and deep nesting are refused all the same."""
    try:
        return _load_yaml(text, source)
    except yaml.YAMLError:
        return text


def _load_yaml(text: str, source: str) -> Any:
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as err:
        line = f" line {err.mark.line + 1}:" if err.mark is not None else ""
        raise AlbertError(f"{source}:{line} {err.reason}") from None
    except RecursionError:
        raise AlbertError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def dump_yaml(value: Any) -> str:
    """YAML albertctl writes: no anchors or aliases (which `parse_yaml` would refuse) even
    when the same object appears twice."""
    return yaml.dump(value, Dumper=_NoAliasDumper, sort_keys=False)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


class BadJson(ValueError):
    """For readers that word their own message: `detail` says what is wrong, and where."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def decode_json(text: str) -> Any:
    """A JSON document, or BadJson: malformed (with line and column) or nested too deep."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadJson(f"{err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
    return value


def parse_json(text: str, source: str, problem: str = "not valid JSON") -> Any:
    """A JSON document; malformed or too deep is an AlbertError: `source: problem (detail)`."""
    try:
        return decode_json(text)
    except BadJson as err:
        raise AlbertError(f"{source}: {problem} ({err.detail})") from None


def read_text(path: Path) -> str:
    """A UTF-8 file's text; undecodable bytes or a directory are an AlbertError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AlbertError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except IsADirectoryError:
        raise AlbertError(f"{path}: is a directory, expected a file") from None


def read_json(path: Path, problem: str = "not valid JSON") -> Any:
    """`parse_json` of a user's file. A missing file stays FileNotFoundError for the caller
    to word (a missing manifest and a missing config mean different things)."""
    return parse_json(read_text(path), str(path), problem)


def _depth(value: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest
