"""Error types every layer shares. Each is a problem the user can fix, reported as
one line (exit code 2) with no traceback."""

from __future__ import annotations

from pathlib import Path


def one_line(exc: BaseException, limit: int = 300, *, with_type: bool = True) -> str:
    """An exception as one line: ``Type: the first line of its message`` (at
    most ``limit`` characters of it); with ``with_type=False`` the message alone,
    or the type's name when there is none. Every place that turns an exception
    into a line of output uses this."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:limit] if lines else ""
    if not with_type:
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class UserError(Exception):
    """Input the user can fix: one line, exit 2, nothing written."""

    exit_code = 2


class SweepError(UserError, ValueError):
    """A sweep file that cannot run. ``str()`` names the file, the key and what is allowed."""

    def __init__(self, file: str | Path, key: str | None, message: str):
        self.file = str(file)
        self.key = key
        self.message = message
        where = f"{self.file}: " + (f"key '{key}': " if key else "")
        super().__init__(where + message)


class RunError(UserError, RuntimeError):
    """A problem with the run folder, the storage or a results file."""


class StorageError(RunError):
    """A storage that cannot be opened or used; the message never holds credentials."""
