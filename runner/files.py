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
    parts, left = [], limit + 1
    with open(path, "rb") as fh:
        while left > 0:  # in chunks: a buffer of ``limit`` bytes is never asked for up front
            chunk = fh.read(min(left, 16 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
    return b"".join(parts)


def read_whole(path: Path) -> bytes:
    """A regular file read whole, however large (a journal, a results CSV): the
    guard is that it is a regular file, not its size."""
    return read_limited(path, 1 << 40)


def read_text(path: Path, limit: int, what: str = "file") -> str:
    """A regular text file of at most ``limit`` bytes, decoded as UTF-8. Raises
    ``OSError``/``ValueError`` (too big, not a regular file, not UTF-8)."""
    data = read_limited(path, limit)
    if len(data) > limit:
        raise ValueError(f"the {what} is larger than {limit >> 20} MiB")
    return data.decode("utf-8")


def read_csv(path: Path, limit: int, **kwargs: Any) -> Any:
    """A CSV file as a pandas DataFrame, read through :func:`read_text`."""
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(read_text(path, limit, "CSV file")), **kwargs)


def packaged_text(package: str, name: str) -> str:
    """A text file shipped inside an installed package (a sweep file)."""
    from importlib.resources import files

    return (files(package) / name).read_text(encoding="utf-8")


def proc_text(path: str) -> str:
    """A small file of /proc (a process's stat, its children), read whole."""
    with open(path) as fh:
        return fh.read(1 << 20)


def file_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a regular file (b"" for anything else)."""
    if not_a_file(path):
        return b""
    with open(path, "rb") as fh:
        return fh.read(n)


def truncate(path: Path, size: int) -> None:
    """Cut a regular file back to ``size`` bytes, durably."""
    problem = not_a_file(path)
    if problem:
        raise ValueError(problem)
    with open(path, "r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())


def replace_with(path: Path, write: Callable[[str], Any]) -> None:
    """``write(tmp)`` a temporary file beside ``path`` (same suffix), then rename
    it over ``path``: never half a file, and never through a symlink someone
    put in its place (the rename replaces the link, not what it points to)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: Any, path: Path) -> None:
    """A Keras model saved to ``path`` through :func:`replace_with`."""
    replace_with(path, lambda tmp: model.save(tmp))


def save_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """Arrays saved as an uncompressed .npz through :func:`replace_with`."""
    import numpy as np

    replace_with(path, lambda tmp: np.savez(tmp, **arrays))


def load_pickle(path: Path, limit: int) -> Any:
    """A pickle remedysweep wrote, read as a regular file of at most ``limit``
    bytes. It runs the code it holds: callers load only from a folder that
    remedysweep marked as carrying the user's code."""
    import pickle

    data = read_limited(path, limit)
    if len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MiB")
    return pickle.loads(data)


def npz_declared_bytes(path: Path) -> int:
    """The bytes an .npz's arrays will take once loaded, read from each array's
    header inside the zip (a few hundred bytes each), before anything is
    inflated: a small compressed file can declare gigabytes."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    problem = not_a_file(path)
    if problem:
        raise ValueError(problem)
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = npy.read_magic(member)
                read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, _, dtype = read_header(member)
            total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return total


def open_npz(path: Path, limit: int) -> Any:
    """An .npz file's arrays, memory-mapped where they can be, without pickles,
    after checking from the zip headers that they declare at most ``limit``
    bytes. A context manager (numpy's ``NpzFile``). Raises ``ValueError`` for
    too much or for what is not a regular file."""
    import numpy as np

    declared = npz_declared_bytes(path)
    if declared > limit:
        raise ValueError(f"its arrays declare {declared / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB allowed")
    return np.load(path, mmap_mode="r", allow_pickle=False)


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


#: The lock file of a folder one remedysweep process is writing (a sweep's run
#: folder, doctor's --out, Watch's folder).
LOCK_FILE = ".remedysweep.lock"


@contextlib.contextmanager
def claim_folder(folder: Path, kind: str, what: str, legacy: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Hold ``folder`` as a remedysweep ``kind`` folder for the ``with`` block:
    the marker rule (:func:`check_folder`), writable (:func:`check_writable`),
    and an exclusive lock, so that two processes never write one folder. A
    second one is refused in one line naming the holder. A folder this call
    made is removed again when the block fails before anything else was
    written there."""
    from remedysweep.errors import RunError

    folder = Path(folder)
    check_folder(folder, kind, (LOCK_FILE,), legacy=legacy)
    check_writable(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire()
    except LockHeld as held:
        raise RunError(f"{folder}: another remedysweep {what} ({held.holder or 'a running process'}) is using this folder; "
                       "wait for it to finish, or choose another --out") from None
    ok = False
    try:
        yield folder
        ok = True
    finally:
        lock.release()
        if made and not ok and {p.name for p in folder.iterdir()} <= {LOCK_FILE}:
            with contextlib.suppress(OSError):
                (folder / LOCK_FILE).unlink()
                folder.rmdir()


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
