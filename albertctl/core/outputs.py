"""Where albertctl writes: what it may replace, locks, temporaries, load-back checks, faults.

Every command that writes goes through this module, so the rules hold everywhere:

- **What may be replaced.** A command replaces only what it recognisably wrote itself (a
  directory whose manifest is of the command's kind and lists every file in it, or a file in
  the command's own format) or an empty directory. Anything else is refused with one line
  naming the path. A replaced path may not be an input, contain an input, or contain the
  working directory; a directory a command adds files to (a run directory, `--predict`) may
  not be an input.
- **Temporaries.** Output is written to `.NAME.tmp-*` beside its target, loaded back
  (`validate`), and only then renamed over the target. A failure removes the temporary.
- **Locks.** While NAME is written its writer holds an exclusive `flock` on `.NAME.lock` beside
  it (on `.albertctl.lock` inside a run directory). A second writer gets one line. The holder
  knows no live process owns a `.NAME.tmp-*` or `.NAME.old-*`, so it removes those left by a
  killed run.
- **Faults.** An OSError or a safetensors error while writing becomes a `WriteError`: one line
  (the path and "no space left on device", "read-only file system", ...), and still an
  OSError for callers that clean up on one. SIGTERM during a write raises KeyboardInterrupt,
  so the temporary is removed and the CLI exits with one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from albertctl.core.errors import AlbertError

Owned = Callable[[Path], bool]  # True when the existing path is recognisably this command's output
Validate = Callable[[Path], None]  # raises AlbertError when the written output does not load back
RUN_LOCK = ".albertctl.lock"

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}


class WriteError(AlbertError, OSError):
    """Writing `path` failed (disk full, read-only, ...): one line for the user, and an OSError
    (with its errno) for code that cleans up after a failed write."""

    def __init__(self, path: Path | str, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.path = Path(path)
        self.message = f"could not write {path}: {reason}"

    def __str__(self) -> str:
        return self.message


def write_error(path: Path | str, err: BaseException) -> WriteError:
    """`err` (an OSError, a safetensors or pyarrow error) raised while writing `path`."""
    if isinstance(err, WriteError):  # raised deeper, e.g. inside the temporary: name `path`
        return err if err.path == Path(path) else WriteError(path, err.errno, err.strerror)
    code = err.errno if isinstance(err, OSError) else None
    if code is None:  # safetensors: "Error while serializing: I/O error: ... (os error 28)"
        found = re.search(r"os error (\d+)", str(err))
        code = int(found.group(1)) if found else None
    if code in _REASONS:
        reason = _REASONS[code]
    elif isinstance(err, OSError) and err.strerror:
        reason = err.strerror.lower()
    else:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return WriteError(path, code, reason)


def save_safetensors(tensors: Mapping[str, Any], path: Path, metadata: dict[str, str]) -> None:
    """`safetensors.torch.save_file`, whose errors (not OSErrors) become a WriteError."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(dict(tensors), str(path), metadata=metadata)
    except (SafetensorError, OSError) as err:
        raise write_error(path, err) from None


def check_safetensors(path: Path) -> None:
    """The file's header parses and its tensors fit in the file (a truncated one fails)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                f.get_slice(key).get_shape()
    except (SafetensorError, OSError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise AlbertError(f"{path}: unreadable safetensors file ({first})") from None


# ----------------------------------------------------------------------------- what is ours


def manifest_owns(
    directory: Path, accept: Callable[[dict[str, Any]], bool], name: str = "manifest.json"
) -> bool:
    """`directory` holds a JSON manifest `accept` recognises, and every file (or link) in it
    is either that manifest or listed under the manifest's "files"."""
    try:
        manifest = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or not accept(manifest):
        return False
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return False
    # a manifest does not list manifests (a checkpoint's model/ has its own)
    return only_files(directory, set(map(str, listed)), also=name)


def only_files(directory: Path, allowed: Iterable[str], also: str | None = None) -> bool:
    """Every file and link under `directory` has a relative (POSIX) path in `allowed`, or is a
    file named `also`."""
    allowed = set(allowed)
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        for entry in files + [d for d in dirs if (here / d).is_symlink()]:
            path = here / entry
            if path.relative_to(directory).as_posix() not in allowed and not (
                entry == also and path.is_file() and not path.is_symlink()
            ):
                return False
    return True


# ----------------------------------------------------------------------------- checks


def check_output(
    target: Path,
    owned: Owned | None,
    what: str,
    *,
    inputs: Iterable[Path | str | None] = (),
    flag: str = "--out",
    directory: bool = True,
    read_dirs: bool = False,
) -> None:
    """Refuse, with one line, an output albertctl may not write.

    `owned` None: `target` is a directory albertctl adds files to (a run directory, --predict);
    it may exist with anything in it but may not be an input. Otherwise `target` is replaced
    whole: it must be absent, an empty directory, or recognised by `owned`, and may not be or
    contain an input or the working directory. `directory` False: the target is a file.
    `read_dirs`: the command reads input directories whole, so the output may not lie in one."""
    target = Path(target)
    _check_parents(target, flag)
    if target.is_symlink():
        raise AlbertError(f"{target} is a symbolic link; give {flag} the path it points to")
    if target.exists():
        if directory and not target.is_dir():
            raise AlbertError(f"{target} is a file; {flag} must name a directory")
        if not directory and target.is_dir():
            raise AlbertError(f"{target} is a directory, not a file; choose another {flag}")
    real = target.resolve()
    for given in inputs:
        if given is None or str(given).startswith(("http://", "https://")):
            continue
        source = Path(given).resolve()
        if source == real:
            raise AlbertError(f"{flag} {target} is the input {given}; choose another {flag}")
        if owned is not None and real in source.parents:
            raise AlbertError(f"{flag} {target} contains the input {given}; choose another {flag}")
        if read_dirs and source.is_dir() and source in real.parents:
            raise AlbertError(
                f"{flag} {target} is inside the input directory {given}, whose files are all read; "
                f"choose another {flag}"
            )
    if owned is not None and directory:
        cwd = Path.cwd().resolve()
        if real == cwd or real in cwd.parents:
            raise AlbertError(
                f"{flag} {target} is the working directory or contains it; choose a new directory"
            )
    if owned is not None and target.exists() and not (_is_empty_dir(target) or owned(target)):
        raise AlbertError(f"{target} exists and is not {what}; choose another {flag} or remove it")


def _check_parents(target: Path, flag: str) -> None:
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                shown = next((p for p in target.parents if p.absolute() == parent), parent)
                raise AlbertError(f"{flag} {target}: {shown} is a file, not a directory")
            return


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and next(path.iterdir(), None) is None


def make_dirs(path: Path, shown: Path | None = None) -> list[Path]:
    """mkdir -p; returns the directories it created (deepest last), for `remove_empty`."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()][::-1]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(shown or path, err) from None
    return made


def remove_empty(made: list[Path]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


# ----------------------------------------------------------------------------- locks


_HELD: dict[str, int] = {}  # lock files this process holds (re-entrant within a process)


@contextlib.contextmanager
def lock(lock_file: Path, target: Path, flag: str = "--out", wait: bool = False) -> Iterator[None]:
    """An exclusive flock on `lock_file` for writing `target`; one line if another process
    holds it (`wait`: block until it is free). The file is removed on release (checked by
    inode, so there are never two holders)."""
    key = str(Path(lock_file).absolute())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(Path(lock_file), target, flag, wait)
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock_file)
        os.close(fd)


def _acquire(path: Path, target: Path, flag: str, wait: bool) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise write_error(target, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AlbertError(
                f"{target} is being written by another albertctl process{pid}; "
                f"wait for it to finish or choose another {flag}"
            ) from None
        except OSError as err:
            os.close(fd)
            raise write_error(target, err) from None
        try:
            mine, there = os.fstat(fd), os.stat(path)
            same = (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # the pid is for the message only
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # the holder removed the file between our open and flock: try again


def remove_stale(directory: Path, stem: str) -> None:
    """Remove `.STEM.tmp-*` and `.STEM.old-*` in `directory`. Call only while holding the
    lock of STEM: then no live process is writing them."""
    with contextlib.suppress(OSError):
        for entry in Path(directory).iterdir():
            if entry.name.startswith((f".{stem}.tmp-", f".{stem}.old-")):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the block (cleanup runs, the CLI prints one line),
    unless someone (the training loop) already handles SIGTERM."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ----------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_directory(
    target: Path,
    owned: Owned,
    what: str,
    *,
    inputs: Iterable[Path | str | None] = (),
    validate: Validate | None = None,
    flag: str = "--out",
    read_dirs: bool = False,
) -> Iterator[Path]:
    """Yield a temporary directory beside `target`; when the block succeeds and `validate`
    accepts it, it replaces `target` whole. `target` must pass `check_output` (checked under
    the lock, and again just before the swap). On any failure the temporary is removed and
    `target` is as it was."""
    target = Path(target)
    inputs = list(inputs)

    def check() -> None:
        check_output(target, owned, what, inputs=inputs, flag=flag, read_dirs=read_dirs)

    check()
    real = target.resolve()
    made = make_dirs(real.parent, target.parent)
    with _staging(real.parent, real.name, target, flag, made, before=check) as tmp:
        yield tmp
        _finish(tmp, target, validate)
        check()
        _swap(tmp, real, target)


@contextlib.contextmanager
def atomic_files(
    directory: Path,
    stem: str,
    owned: Owned,
    what: str,
    *,
    inputs: Iterable[Path | str | None] = (),
    validate: Validate | None = None,
    flag: str = "--out",
    read_dirs: bool = False,
) -> Iterator[Path]:
    """Yield a temporary directory; the files the block writes there (top level) are then
    validated and moved into `directory`, each replacing only a file `owned` recognises.
    `stem` names the lock and the temporaries (`.STEM.lock`, `.STEM.tmp-*`)."""
    directory = Path(directory)
    inputs = list(inputs)
    _check_parents(directory / stem, flag)
    if directory.exists() and not directory.is_dir():
        raise AlbertError(f"{directory} is a file; {flag} must name a directory")
    made = make_dirs(directory)
    real = directory.resolve()
    with _staging(real, stem, directory / stem, flag, made) as tmp:
        yield tmp
        _finish(tmp, directory / stem, validate, directory)
        names = sorted(p.name for p in tmp.iterdir() if p.is_file())
        for name in names:
            check_output(
                directory / name, owned, what, inputs=inputs, flag=flag, directory=False, read_dirs=read_dirs
            )
        for name in names:
            os.replace(tmp / name, real / name)
        fsync_dir(real)


@contextlib.contextmanager
def _staging(
    real_dir: Path,
    stem: str,
    shown: Path,
    flag: str,
    made: list[Path],
    before: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """What both atomic writers share: under `.STEM.lock` in `real_dir`, with SIGTERM
    interrupting, `before()` runs, stale temporaries go, and a fresh temporary is yielded for
    the block to fill and publish. Whatever the block leaves of it is removed; a write fault
    becomes one line naming `shown`; on failure the directories made for it are removed."""
    try:
        with lock(real_dir / f".{stem}.lock", shown, flag), sigterm_interrupts():
            if before is not None:
                before()
            remove_stale(real_dir, stem)
            tmp = _mkdtemp(real_dir / stem, shown)
            try:
                yield tmp
            except BaseException as err:
                if _is_write_fault(err):
                    raise write_error(shown, err) from None
                raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        remove_empty(made)
        raise


def _mkdtemp(real: Path, shown: Path) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
    except OSError as err:
        raise write_error(shown, err) from None


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, without changing it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


def honour_umask(root: Path) -> None:
    """Give `root` and everything under it the modes a plain mkdir/open would have given:
    0777 / 0666 less the umask. tempfile.mkdtemp makes 0700 and safetensors writes 0600, so
    without this a team could not read a model in a shared directory (under umask 022: 0755
    directories, 0644 files)."""
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _finish(tmp: Path, target: Path, validate: Validate | None, into: Path | None = None) -> None:
    """Load the written output back, then flush it to the disk."""
    if validate is not None:
        try:
            validate(tmp)
        except AlbertError as err:
            if isinstance(err, WriteError):
                raise
            shown = str((into or target) / "x")[:-1]  # the temporary's files as they would be named
            detail = str(err).replace(f"{tmp}/", shown).replace(str(tmp), str(into or target))
            raise AlbertError(
                f"could not write {target}: the written output does not load back ({detail})"
            ) from None
    honour_umask(tmp)
    fsync_tree(tmp)


def _swap(tmp: Path, real: Path, shown: Path) -> None:
    if os.path.lexists(real):
        old = real.parent / f".{real.name}.old-{os.getpid()}"
        os.replace(real, old)
        try:
            os.replace(tmp, real)
        except OSError:
            os.replace(old, real)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, real)
    fsync_dir(real.parent)


def _is_write_fault(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return True
    return type(err).__name__ == "SafetensorError"


def fsync_tree(root: Path) -> None:
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    fsync_dir(root)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
