"""Files and processes: atomic writes, folder locks, quiet imports, memory.

The bottom layer: no remedysweep imports but its error types."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: never half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file."""

    def __init__(self, path: Path, holder: str):
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is locked by {holder or 'another process'}")


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` for as long as it is held.

    The kernel drops the lock when the holder dies, however it dies, so a stale
    lock never needs cleaning up. The holder writes its pid into the file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockHeld(self.path, holder) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 (TensorFlow's start-up
    notices) to /dev/null for the duration. Python exceptions still propagate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable), or a large
    number where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def file_digest(path: Path, limit: int = 256 << 20) -> str:
    """A short content hash of a file (its size and mtime beyond ``limit`` bytes),
    or of a folder's file listing."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(path)}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
        return h.hexdigest()[:16]
    st = path.stat()
    if st.st_size > limit:
        h.update(f"{st.st_size}\0{int(st.st_mtime)}".encode())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------
# Reading only what is a file, and only so much of it
# ----------------------------------------------------------------------------


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file ("" is never returned): a FIFO, a
    device, a socket or a folder would block or never end. ``None`` for a regular
    file or a path that does not exist."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"is {kind}, not a regular file"


def read_limited(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (so that a caller can tell
    "too big" without reading it all). Raises ``OSError``/``ValueError`` for
    what is not a regular file."""
    problem = not_a_file(path)
    if problem:
        raise ValueError(problem)
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


#: The most a JSON file remedysweep reads back (run.json, sweep.json, doctor.json) may hold.
JSON_LIMIT = 64 << 20


def read_json(path: Path, limit: int = JSON_LIMIT) -> Any:
    """A JSON file read back: a regular file only, at most ``limit`` bytes (a
    FIFO or ``/dev/zero`` in its place never hangs or fills memory). Raises
    ``OSError``/``ValueError``."""
    import json

    data = read_limited(path, limit)
    if len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MiB")
    return json.loads(data.decode("utf-8"))


# ----------------------------------------------------------------------------
# Folders remedysweep made: a marker it writes itself
# ----------------------------------------------------------------------------

MARKER = ".remedysweep"


def folder_kind(folder: Path) -> str | None:
    """What remedysweep wrote this folder as ("sweep", "doctor", "watch"), from
    its marker; ``None`` when there is no readable marker."""
    import json

    path = Path(folder) / MARKER
    if not_a_file(path):
        return None
    try:
        data = json.loads(read_limited(path, 4096)[:4096].decode("utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) and data.get("written_by") == "remedysweep" else None
    return kind if isinstance(kind, str) else None


def mark_folder(folder: Path, kind: str) -> None:
    import json

    atomic_write(Path(folder) / MARKER, json.dumps({"written_by": "remedysweep", "kind": kind}) + "\n")


def foreign_files(folder: Path, ours: tuple[str, ...]) -> list[str]:
    """Names in ``folder`` remedysweep would never write there."""
    try:
        names = sorted(p.name for p in Path(folder).iterdir())
    except OSError:
        return []
    return [n for n in names if n not in ours and n != MARKER and not (n.startswith(".") and n.endswith(".tmp"))]


def check_folder(folder: Path, kind: str, allowed: tuple[str, ...] = (), legacy: Callable[[Path], bool] | None = None) -> bool:
    """Whether ``folder`` may be written as a remedysweep ``kind`` folder: it does
    not exist, it is empty, or its marker says remedysweep wrote it as ``kind``
    (a folder of an earlier version without a marker counts when ``legacy`` says
    it is one). ``allowed``: names an unmarked folder may hold (a lock file the
    caller just made). Raises :class:`~remedysweep.errors.RunError` naming what is
    in the way; writes nothing. Returns True for a folder remedysweep already wrote."""
    from remedysweep.errors import RunError

    folder = Path(folder)
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise RunError(f"{folder}: exists and is not a folder")
    found = folder_kind(folder)
    if found is None and legacy is not None and legacy(folder):
        found = kind
    if found is None:
        foreign = foreign_files(folder, allowed)
        if foreign:
            raise RunError(f"{folder}: holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, "
                           f"which remedysweep did not write (no {MARKER} marker); choose another --out")
        return False
    if found != kind:
        raise RunError(f"{folder}: holds a remedysweep {found} folder, not a {kind} one; choose another --out")
    return True


def check_writable(path: Path) -> None:
    """Fail early, with a clear message, if results could not be written there
    (the nearest folder that exists must be writable, with 20 MiB free)."""
    import shutil

    from remedysweep.errors import RunError

    probe_dir = Path(path)
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise RunError(f"{path}: cannot write there (permission denied)")
    usage = shutil.disk_usage(probe_dir)
    if usage.free < 20 * 1024 * 1024:
        raise RunError(f"{path}: only {usage.free // 1024} KiB free on that disk; at least 20 MiB needed")
