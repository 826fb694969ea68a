"""Documents from text files or a `datasets` dataset, and the built-in sample corpus.

The input format (SPEC section 3): UTF-8 text, one sentence per line, a blank line between
documents. Files are read line by line, so memory does not grow with the corpus. Bytes that
are not UTF-8 are replaced with U+FFFD and counted (`ReadStats.decode_error_lines`), never a
crash. A `datasets` dataset gives one document per row of its text column, split into
sentences by `split_sentences`.

The built-in sample corpus (`sample_corpus_path()`) is made at run time from text that every
Python installation carries: the reference documentation in `pydoc_data.topics` and the
docstrings of the standard library's modules (read with `ast`, nothing is imported). It is
written once in the input format under the cache directory (`$ALBERTCTL_CACHE`, else
`$XDG_CACHE_HOME/albertctl`, else `~/.cache/albertctl`); a few MB of English prose, so a
tiny model pretrained on it learns something. Its content depends on the Python version,
which is part of the file name.
"""

from __future__ import annotations

import ast
import glob
import inspect
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from albertctl.core.errors import AlbertError
from albertctl.core.hub import quiet_hub_logs
from albertctl.core.outputs import current_umask

SAMPLE_CORPUS_VERSION = 1


@dataclass
class ReadStats:
    """Counters a reader fills in as it goes; the prepare manifest reports them."""

    files: int = 0
    bytes: int = 0  # input bytes consumed so far (for MB/s)
    lines: int = 0
    decode_error_lines: int = 0  # lines with bytes that were not UTF-8 (replaced by U+FFFD)
    empty_documents: int = 0  # rows of a dataset whose text was empty
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSource:
    """A `datasets` dataset: a hub name (online), a `save_to_disk` directory, or data files."""

    name: str
    split: str = "train"
    text_column: str = "text"
    config: str | None = None


# --------------------------------------------------------------------------- sentences

_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al mr mrs ms dr st prof fig no vol eq approx resp incl esp jr sr inc ltd co".split()
)
# a sentence ends at . ! or ? (optionally followed by closing quotes/brackets), then whitespace,
# then something that can start a sentence
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences: paragraphs at newlines, then at ". X"-like boundaries,
    keeping common abbreviations ("e.g.", "Dr.") and initials ("J. Smith") inside."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        pieces = _SENTENCE_BREAK.split(paragraph)
        # re.split with one group returns [s0, closer0, s1, closer1, ...]
        current = ""
        for i in range(0, len(pieces), 2):
            piece = pieces[i] + (pieces[i + 1] if i + 1 < len(pieces) else "")
            current = f"{current} {piece}" if current else piece
            last_word = current.rsplit(" ", 1)[-1].rstrip(".!?\"')]").lower()
            if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
                continue  # "e.g. Foo" or an initial: not a sentence end
            sentences.append(current.strip())
            current = ""
        if current.strip():
            sentences.append(current.strip())
    return sentences


# --------------------------------------------------------------------------- text files


def expand_inputs(patterns: list[str | Path]) -> list[Path]:
    """Files named directly or by glob pattern (`data/*.txt`, `**`), in sorted order per pattern.
    A pattern that matches nothing, or a missing file, is an error naming it."""
    files: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise AlbertError(f"input pattern {text} matches no files")
            files.extend(matches)
            continue
        path = Path(text)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not matches:
                raise AlbertError(f"input directory {path} holds no files")
            files.extend(matches)
        elif path.is_file():
            files.append(path)
        else:
            raise AlbertError(f"input file {path} not found")
    return files


MAX_LINE_BYTES = 1 << 20  # 1 MiB: a sentence is a few hundred bytes; SentencePiece skips past 4192


def iter_file_documents(files: list[Path], stats: ReadStats) -> Iterator[list[str]]:
    """Documents (lists of sentences, whitespace-trimmed, never empty) from text files in the
    one-sentence-per-line format. A document does not continue across files. A line longer
    than MAX_LINE_BYTES is an error naming the file and line."""
    for path in files:
        stats.files += 1
        stats.sources.append(str(path))
        doc: list[str] = []
        try:
            f = path.open("rb")
        except OSError as err:
            raise AlbertError(f"{path}: cannot read ({err.strerror})") from None
        with f:
            # readline with a limit: a 50 MB line (a file with no newlines) is refused here,
            # with memory bounded by MAX_LINE_BYTES, instead of being tokenised into GBs
            while raw := f.readline(MAX_LINE_BYTES + 1):
                stats.bytes += len(raw)
                stats.lines += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise AlbertError(
                        f"{path}:{stats.lines}: line longer than {MAX_LINE_BYTES} bytes; the input is one "
                        "sentence per line (split long text into sentences, a blank line between documents)"
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    stats.decode_error_lines += 1
                    line = raw.decode("utf-8", errors="replace")
                line = line.strip()
                if line:
                    doc.append(line)
                elif doc:
                    yield doc
                    doc = []
        if doc:
            yield doc


# --------------------------------------------------------------------------- datasets

_DATA_FILE_BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".arrow": "arrow",
}


def open_dataset(source: DatasetSource):
    """A `datasets` iterable over `source`: streaming where the library can, so memory stays
    flat. Local `save_to_disk` directories are memory-mapped."""
    import datasets  # heavy import: only when a dataset is asked for

    path = Path(source.name)
    try:
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if source.split not in ds:
                    raise AlbertError(f"{path}: no split '{source.split}' (have: {', '.join(ds)})")
                ds = ds[source.split]
        elif path.is_file() and path.suffix in _DATA_FILE_BUILDERS:
            ds = datasets.load_dataset(
                _DATA_FILE_BUILDERS[path.suffix], data_files=str(path), split="train", streaming=True
            )
        else:
            with quiet_hub_logs():
                ds = datasets.load_dataset(source.name, source.config, split=source.split, streaming=True)
    except AlbertError:
        raise
    except FileNotFoundError as err:
        raise AlbertError(f"dataset {source.name}: not found ({err})") from None
    except Exception as err:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ...)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AlbertError(f"dataset {source.name}: cannot load ({first})") from None
    columns = getattr(ds, "column_names", None)
    if columns is not None and source.text_column not in columns:
        raise AlbertError(
            f"dataset {source.name}: no text column '{source.text_column}' (have: {', '.join(columns)}); "
            "pick one with --text-column"
        )
    return ds


def iter_dataset_documents(source: DatasetSource, stats: ReadStats) -> Iterator[list[str]]:
    """One document per row, its text split into sentences."""
    ds = open_dataset(source)
    stats.sources.append(f"dataset:{source.name}[{source.split}].{source.text_column}")
    for row in ds:
        text = row.get(source.text_column)
        if not isinstance(text, str):
            raise AlbertError(f"dataset {source.name}: column '{source.text_column}' is not text")
        stats.bytes += len(text.encode("utf-8", errors="replace"))
        stats.lines += 1
        sentences = split_sentences(text)
        if sentences:
            yield sentences
        else:
            stats.empty_documents += 1


def iter_documents(inputs: list[str | Path] | DatasetSource | None, stats: ReadStats) -> Iterator[list[str]]:
    """Documents from files/globs, a dataset, or (no input) the built-in sample corpus."""
    if isinstance(inputs, DatasetSource):
        return iter_dataset_documents(inputs, stats)
    files = expand_inputs(list(inputs)) if inputs else [sample_corpus_path()]
    return iter_file_documents(files, stats)


def input_bytes(inputs: list[str | Path] | DatasetSource | None) -> int | None:
    """Total input size for a progress bar, when known (files), else None."""
    if isinstance(inputs, DatasetSource):
        return None
    files = expand_inputs(list(inputs)) if inputs else [sample_corpus_path()]
    return sum(f.stat().st_size for f in files)


# --------------------------------------------------------------------------- sample corpus


def cache_dir() -> Path:
    """`$ALBERTCTL_CACHE`, else `$XDG_CACHE_HOME/albertctl`, else `~/.cache/albertctl`."""
    if os.environ.get("ALBERTCTL_CACHE"):
        return Path(os.environ["ALBERTCTL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "albertctl"


def sample_corpus_path() -> Path:
    """The built-in sample corpus as a text file in the input format, built and cached on first
    use. Safe to call from several processes at once (written to a temporary file, renamed)."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    path = cache_dir() / f"sample-corpus-{version}-v{SAMPLE_CORPUS_VERSION}.txt"
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sample-corpus-", dir=path.parent)
    except OSError as err:
        raise AlbertError(
            f"cannot write the sample corpus under {path.parent} ({err.strerror}); "
            "set ALBERTCTL_CACHE to a writable directory"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc in sample_documents():
                f.write("\n".join(doc))
                f.write("\n\n")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sample_documents() -> Iterator[list[str]]:
    """Documents of the sample corpus, in a fixed order: every pydoc topic, then one document
    per standard-library module (its module, class and function docstrings in source order).
    Code examples, grammar rules and documents of fewer than two sentences are left out."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    for name in sorted(topics):
        doc = _prose_sentences(topics[name])
        if len(doc) >= 2:
            yield doc
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {
        "test",
        "tests",
        "idle_test",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "lib2to3",
        "ensurepip",
    }
    for path in sorted(stdlib.rglob("*.py")):
        if skip.intersection(path.relative_to(stdlib).parts):
            continue
        doc = []
        for docstring in _docstrings(path):
            doc.extend(_prose_sentences(docstring))
        if len(doc) >= 2:
            yield doc


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=True)
            if text:
                yield text


_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\$ |[\w.]+\s*::=|[-=~*^]{3,}$|:[\w ]+:)")


def _prose_sentences(text: str) -> list[str]:
    """Sentences of the prose paragraphs of `text`: indented blocks (code, grammar), doctest
    lines, reST underlines and field lists are dropped; sentences need three words."""
    text = inspect.cleandoc(text)
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.splitlines()
        if not lines or lines[0].startswith((" ", "\t")) or any(_CODE_LINE.match(x) for x in lines):
            continue
        for sentence in split_sentences(" ".join(x.strip() for x in lines)):
            if len(sentence.split()) >= 3 and any(c.isalpha() for c in sentence):
                out.append(sentence)
    return out
