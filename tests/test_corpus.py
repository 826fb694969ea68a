"""Reading documents (files, bad bytes), sentence splitting, and the built-in sample corpus."""

from pathlib import Path

import pytest

from albertctl.core.errors import AlbertError
from albertctl.data import corpus
from albertctl.data.corpus import ReadStats, expand_inputs, iter_file_documents, split_sentences


def test_blank_lines_separate_documents(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("One.\nTwo.\n\n\n  \nThree.\r\nFour.\n", encoding="utf-8")
    stats = ReadStats()
    assert list(iter_file_documents([f], stats)) == [["One.", "Two."], ["Three.", "Four."]]
    assert (stats.files, stats.lines, stats.bytes) == (1, 7, f.stat().st_size)


def test_non_utf8_is_replaced_and_counted(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("Caf\xe9 one.\nFine line.\n\nna\xefve two.\n".encode("latin-1"))
    stats = ReadStats()
    docs = list(iter_file_documents([f], stats))
    assert docs == [["Caf\ufffd one.", "Fine line."], ["na\ufffdve two."]]
    assert stats.decode_error_lines == 2


def test_globs_and_missing_inputs(tmp_path):
    for name in ("b.txt", "a.txt"):
        (tmp_path / name).write_text("x.\n", encoding="utf-8")
    assert expand_inputs([str(tmp_path / "*.txt")]) == [tmp_path / "a.txt", tmp_path / "b.txt"]
    with pytest.raises(AlbertError, match="matches no files"):
        expand_inputs([str(tmp_path / "*.md")])
    with pytest.raises(AlbertError, match="input file .*nope.txt not found"):
        expand_inputs([tmp_path / "nope.txt"])


def test_split_sentences():
    text = "Dr. Smith arrived, e.g. at noon. He left!  Did he?\n\nNew paragraph (really). J. Doe wrote 3.5 pages."
    assert split_sentences(text) == [
        "Dr. Smith arrived, e.g. at noon.", "He left!", "Did he?", "New paragraph (really).",
        "J. Doe wrote 3.5 pages.",
    ]


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("ALBERTCTL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus.cache_dir() == tmp_path / "xdg" / "albertctl"
    monkeypatch.setenv("ALBERTCTL_CACHE", str(tmp_path / "mine"))
    assert corpus.cache_dir() == tmp_path / "mine"


def test_sample_corpus_is_built_once_in_the_input_format(monkeypatch, tmp_path):
    monkeypatch.setenv("ALBERTCTL_CACHE", str(tmp_path))
    path = corpus.sample_corpus_path()
    assert path.parent == tmp_path and path.stat().st_size > 1_000_000
    mtime = path.stat().st_mtime_ns
    assert corpus.sample_corpus_path() == path and path.stat().st_mtime_ns == mtime  # cached
    stats = ReadStats()
    docs = list(iter_file_documents([path], stats))
    assert len(docs) > 300 and all(len(d) >= 2 for d in docs)
    assert stats.decode_error_lines == 0
    assert not any(s.startswith(">>>") for d in docs for s in d)
    assert [p.name for p in Path(tmp_path).iterdir()] == [path.name]  # no temporary left behind
