"""Faults of the machine while albertctl writes: a full disk, a file-size limit, a read-only
file system, SIGTERM and SIGKILL mid-write, and a second process on the same output.

Every case: exit code 2 (130 for SIGTERM), one line on stderr, no traceback, the output that
was there before byte-identical, and no temporary left behind. A full disk uses RLIMIT_FSIZE
(writes fail with EFBIG, everywhere) and, where the test may mount one, a small tmpfs (ENOSPC);
read-only uses a tmpfs remounted read-only. Cases that need a mount skip when it fails.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from glue_fixtures import pretrained_dir, train_spm

from albertctl.core import outputs

TF = Path(__file__).resolve().parents[1] / "fixtures" / "tf"
TRAIN = [
    "--set", "train.global_batch_size=4", "--set", "train.micro_batch_size=4",
    "--set", "train.warmup_steps=1", "--set", "train.train_steps=2",
    "--set", "train.save_every=1", "--set", "train.log_every=1",
]  # fmt: skip


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "ALBERTCTL_NO_PROGRESS": "1", "COLUMNS": "200", "ALBERTCTL_CACHE": str(cache)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _cli(argv: list[str], cwd: Path, fsize: int | None = None, timeout: float = 600):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "albertctl", *argv],
        cwd=cwd,
        env=_env(cwd / ".cache-unused"),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if fsize else None,
    )


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "albertctl", *argv],
        cwd=cwd,
        env=_env(cwd / ".cache-unused"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _one_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _wait_for(proc: subprocess.Popen, condition, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    a = tmp_path_factory.mktemp("assets")
    spm = train_spm(a / "spm")
    pretrained_dir(a / "model", spm)
    # a corpus big enough that prepare and vocab run for seconds (SIGTERM, SIGKILL, locks)
    rng = random.Random(0)
    words = [w for w in (a / "spm" / "corpus.txt").read_text().split() if w.isalpha()][:300]
    for name, n in (("small.txt", 60), ("big.txt", 2500)):
        docs = ("\n".join(" ".join(rng.choices(words, k=12)) + " ." for _ in range(20)) for _ in range(n))
        (a / name).write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return a


def _profile(a: Path) -> list[str]:
    return ["-p", str(a / "model" / "profile.yaml")]


def _good_outputs(a: Path, cwd: Path) -> None:
    """What each command wrote on an earlier, good day, in `cwd`."""
    commands = [
        ["vocab", str(a / "spm" / "corpus.txt"), "--vocab-size", "64", "-o", "spm"],
        ["convert", str(a / "model"), "--to", "hf", "--out", "h"],
        ["convert", str(TF / "classifier"), "--from", "tf", "--out", "m"],
        [
            "prepare",
            str(a / "small.txt"),
            "--vocab",
            str(a / "spm" / "m.model"),
            *_profile(a),
            "-o",
            "data",
        ],
    ]
    for argv in commands:
        result = _cli(argv, cwd)
        assert result.returncode == 0, result.stderr[-3000:]


# (id, argv, the message's start); the outputs of `_good_outputs` are there before
REWRITES = [
    ("vocab", ["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "--seed", "7", "-o", "spm"], "could not write spm: "),
    ("convert-hf", ["convert", "{A}/model", "--to", "hf", "--out", "h"], "could not write h: "),
    ("convert-tf", ["convert", "{TF}/classifier", "--from", "tf", "--out", "m"], "could not write m: "),
    ("prepare", ["prepare", "{A}/small.txt", "--vocab", "{A}/spm/m.model", "--seed", "7", "-p", "{A}/model/profile.yaml", "-o", "data"], "could not write data: "),
]  # fmt: skip


def _argv(argv: list[str], a: Path) -> list[str]:
    return [x.replace("{A}", str(a)).replace("{TF}", str(TF)) for x in argv]


@pytest.fixture(scope="module")
def good(assets, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("good")
    _good_outputs(assets, cwd)
    return cwd


@pytest.mark.parametrize(("argv", "message"), [r[1:] for r in REWRITES], ids=[r[0] for r in REWRITES])
def test_file_size_limit_keeps_the_previous_output(argv, message, assets, good, tmp_path):
    shutil.copytree(good, tmp_path / "w")
    cwd = tmp_path / "w"
    before = _tree(cwd)
    line = _one_line(r := _cli(_argv(argv, assets), cwd, fsize=4096))
    assert r.returncode == 2
    assert line.startswith(f"error: {message}"), line
    assert "file too large" in line or "does not load back" in line, line  # vocab: SentencePiece
    assert _tree(cwd) == before  # byte-identical, no temporary, no lock file


def test_pretrain_checkpoint_on_a_file_size_limit(assets, tmp_path):
    """safetensors' error is not an OSError: it must still give the checkpoint message."""
    cwd = tmp_path
    r = _cli(["prepare", str(assets / "small.txt"), "--vocab", str(assets / "spm" / "m.model"),
              *_profile(assets), "-o", "data"], cwd)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (cwd / "run").mkdir()
    (cwd / "run" / "notes.txt").write_text("mine\n")
    r = _cli(["pretrain", *_profile(assets), *TRAIN, "--data", "data", "--out", "run"], cwd, fsize=20_000)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    # the run's own header (device, time estimate) comes first; the failure is one error line, last
    lines = r.stderr.strip().splitlines()
    errors = [x for x in lines if x.startswith("error:")]
    assert errors == ["error: could not save the checkpoint for step 1 under run/checkpoints: file too large"]
    assert lines[-1] == errors[0] and not any(x.startswith("DeepSpeed ") for x in lines)
    assert (cwd / "run" / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in (cwd / "run" / "checkpoints").iterdir()) == []  # no .step-N.tmp
    assert not (cwd / "run" / outputs.RUN_LOCK).exists()


# ----------------------------------------------------------------------------- tmpfs


@pytest.fixture
def tmpfs(tmp_path):
    """A 32 MB tmpfs at tmp_path/mnt, unmounted afterwards; skipped where mounting fails."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> None:
    with (mnt / "filler").open("wb", buffering=0) as f:  # unbuffered: no failing flush on close
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass


@pytest.mark.parametrize(("argv", "message"), [r[1:] for r in REWRITES], ids=[r[0] for r in REWRITES])
def test_full_disk_keeps_the_previous_output(argv, message, assets, good, tmpfs):
    for entry in good.iterdir():
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, tmpfs / entry.name)
    _fill(tmpfs)
    before = _tree(tmpfs)
    r = _cli(_argv(argv, assets), tmpfs)
    line = _one_line(r)
    assert r.returncode == 2
    assert line.startswith(f"error: {message}"), line
    assert "no space left on device" in line or "does not load back" in line, line
    assert _tree(tmpfs) == before


@pytest.mark.parametrize(("argv", "message"), [r[1:] for r in REWRITES], ids=[r[0] for r in REWRITES])
def test_read_only_output(argv, message, assets, good, tmpfs):
    for entry in good.iterdir():
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, tmpfs / entry.name)
    before = _tree(tmpfs)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    r = _cli(_argv(argv, assets), tmpfs)
    assert r.returncode == 2
    assert _one_line(r) == f"error: {message}read-only file system"
    assert _tree(tmpfs) == before


def test_read_only_run_directory(assets, tmpfs):
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    r = _cli(["pretrain", *_profile(assets), *TRAIN, "--out", "run"], tmpfs)
    assert r.returncode == 2
    assert _one_line(r) == "error: could not write run: read-only file system"


# ----------------------------------------------------------------------------- temporaries, signals, locks

BIG = {
    "prepare": ["prepare", "{A}/big.txt", "--vocab", "{A}/spm/m.model", "-p", "{A}/model/profile.yaml", "-o", "data"],
    "vocab": ["vocab", "{A}/big.txt", "--vocab-size", "48", "-o", "spm"],
}  # fmt: skip
NAMES = {"prepare": "data", "vocab": "spm"}


def test_stale_temporaries_of_a_killed_run_are_removed(assets, good, tmp_path):
    cwd = tmp_path / "w"
    shutil.copytree(good, cwd)
    for name in ("data", "spm", "m", "h"):
        (cwd / f".{name}.tmp-dead{name}").mkdir()
        (cwd / f".{name}.tmp-dead{name}" / "junk.arrow").write_bytes(b"x" * 1000)
    (cwd / ".m.old-99999").mkdir()
    for _, argv, _ in REWRITES:
        r = _cli(_argv(argv, assets), cwd)
        assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in cwd.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("command", ["prepare", "vocab"])
def test_sigkill_then_rerun_cleans_up(command, assets, good, tmp_path):
    cwd = tmp_path / "w"
    shutil.copytree(good, cwd)
    name = NAMES[command]
    before = _tree(cwd)
    proc = _start(_argv(BIG[command], assets), cwd)
    started = _wait_for(proc, lambda: any(p.name.startswith(f".{name}.tmp-") for p in cwd.iterdir()))
    assert started, proc.stderr.read()[-3000:]
    proc.kill()
    proc.wait(timeout=60)
    proc.stderr.close()
    assert _tree(cwd) != before  # the killed run left its temporary (and lock file)
    assert {k: v for k, v in _tree(cwd).items() if not k.startswith(f".{name}.")} == before
    r = _cli(_argv(BIG[command], assets), cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in cwd.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("command", ["prepare", "vocab"])
def test_sigterm_removes_the_temporary(command, assets, good, tmp_path):
    cwd = tmp_path / "w"
    shutil.copytree(good, cwd)
    name = NAMES[command]
    before = _tree(cwd)
    proc = _start(_argv(BIG[command], assets), cwd)
    started = _wait_for(proc, lambda: any(p.name.startswith(f".{name}.tmp-") for p in cwd.iterdir()))
    assert started, proc.stderr.read()[-3000:]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert "Traceback" not in stderr
    assert (proc.returncode, stderr.strip().splitlines()) == (130, ["error: interrupted"])
    assert _tree(cwd) == before


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["pretrain", "--out", "run"], "run/.albertctl.lock"),
        (["convert", "{A}/model", "--to", "hf", "--out", "h"], ".h.lock"),
        (["prepare", "{A}/small.txt", "--vocab", "{A}/spm/m.model", "-p", "{A}/model/profile.yaml", "-o", "data"], ".data.lock"),
        (["vocab", "{A}/spm/corpus.txt", "--vocab-size", "64", "-o", "spm"], ".spm.lock"),
    ],
    ids=["pretrain", "convert", "prepare", "vocab"],
)  # fmt: skip
def test_a_second_writer_gets_one_line(argv, target, assets, good, tmp_path):
    """The lock is held here, in the test process, as another albertctl run would hold it."""
    cwd = tmp_path / "w"
    shutil.copytree(good, cwd)
    (cwd / "run").mkdir()
    lock_file = cwd / target
    shown = Path(target.removesuffix(".lock").lstrip(".")) if "/" not in target else Path("run")
    with outputs.lock(lock_file, shown):
        before = _tree(cwd)
        r = _cli(_argv(argv, assets), cwd)
        assert r.returncode == 2
        assert _one_line(r) == (
            f"error: {shown} is being written by another albertctl process (pid {os.getpid()}); "
            f"wait for it to finish or choose another {'--out' if argv[0] in ('pretrain', 'convert') else '--output'}"
        )
        assert _tree(cwd) == before
    assert not lock_file.exists()


def test_two_prepare_processes_on_one_output(assets, tmp_path):
    argv = _argv(BIG["prepare"], assets)
    first = _start(argv, tmp_path)
    assert _wait_for(first, lambda: (tmp_path / ".data.lock").exists()), first.stderr.read()[-3000:]
    second = _cli(argv, tmp_path)
    assert second.returncode == 2
    assert _one_line(second) == (
        f"error: data is being written by another albertctl process (pid {first.pid}); "
        "wait for it to finish or choose another --output"
    )
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_write_errors_are_one_line_and_still_os_errors(tmp_path):
    """safetensors reports a full disk as SafetensorError (not an OSError): its errno is kept,
    so the training loop's `except OSError` cleanup and the CLI's one line both apply."""
    from safetensors import SafetensorError

    from albertctl.core.errors import AlbertError

    err = outputs.write_error(
        tmp_path / "w.safetensors", SafetensorError("Error while serializing: I/O error: (os error 28)")
    )
    assert isinstance(err, OSError) and isinstance(err, AlbertError)
    assert (err.errno, str(err)) == (
        28,
        f"could not write {tmp_path / 'w.safetensors'}: no space left on device",
    )
    again = outputs.write_error(tmp_path / "out", err)  # raised deeper, reported for the output
    assert (again.errno, str(again)) == (28, f"could not write {tmp_path / 'out'}: no space left on device")
    ro = outputs.write_error("x", OSError(30, "Read-only file system", "x/.x.lock"))
    assert (ro.errno, str(ro)) == (30, "could not write x: read-only file system")


def test_pruning_keeps_a_directory_albertctl_did_not_write(tmp_path):
    from albertctl.training import checkpoint as ckpt

    root = tmp_path / "checkpoints"
    (root / "step-00000001").mkdir(parents=True)
    (root / "step-00000001" / "thesis.tex").write_text("mine\n")
    (root / "step-00000002").mkdir()
    (root / "step-00000002" / "manifest.json").write_text('{"kind": "training-checkpoint", "files": {}}')
    ckpt.prune(root, keep_last=0)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001"]
    assert (root / "step-00000001" / "thesis.tex").read_text() == "mine\n"


def test_a_stale_op_build_lock_does_not_hang_pretrain(assets, tmp_path):
    """A DeepSpeed op build killed half-way leaves torch's lock file behind, and every later build
    of that op waits on it forever (this hung CI). Training needs no JIT-built op on the CPU, so a
    stale lock is never waited on and nothing is built."""
    cwd = tmp_path
    extensions = tmp_path / "torch_extensions"
    (extensions / "deepspeed_shm_comm").mkdir(parents=True)
    (extensions / "deepspeed_shm_comm" / "lock").write_text("")
    r = _cli(["prepare", str(assets / "small.txt"), "--vocab", str(assets / "spm" / "m.model"),
              *_profile(assets), "-o", "data"], cwd)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    argv = ["pretrain", *_profile(assets), *TRAIN, "--data", "data", "--out", "run"]
    r = subprocess.run(
        [sys.executable, "-m", "albertctl", *argv],
        cwd=cwd,
        env={**_env(cwd / ".cache-unused"), "TORCH_EXTENSIONS_DIR": str(extensions)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (cwd / "run" / "model" / "model.safetensors").is_file()
    assert sorted(p.name for p in (extensions / "deepspeed_shm_comm").iterdir()) == ["lock"]  # nothing built
