"""Error types every layer shares. Each is a problem the user can fix, reported as
one line (exit code 2) with no traceback."""

from __future__ import annotations

from pathlib import Path


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
