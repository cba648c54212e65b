"""A process that imports TensorFlow and the other heavy libraries once, then
forks one child per ``remedysweep`` command a test runs.

Each child is a real, separate process with its own pid, exit status, signals,
working folder, environment, standard streams and worker processes; it starts
where a fresh ``python -m remedysweep`` would be once its imports are done. What
it saves is the import (several seconds of CPU per command), which is most of the
cost of a command that refuses bad input or trains a few tiny runs.

Protocol, one JSON line each way on the server's stdin/stdout:
``{"argv", "cwd", "env", "stdout", "stderr"}`` → ``{"pid"}`` then ``{"status"}``.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import types

MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runner", "__main__.py")


def _warm() -> None:
    """Import what a training command imports, the way remedysweep does (its
    C++ logs silenced during TensorFlow's import); nothing of remedysweep's own
    state is created here."""
    from remedysweep.files import quiet_stderr

    with quiet_stderr():
        import tensorflow  # noqa: F401
    import keras  # noqa: F401
    import optuna  # noqa: F401
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import matplotlib  # noqa: F401
    import jinja2  # noqa: F401
    import remedysweep.cli  # noqa: F401


def _child(request: dict, control: tuple) -> None:
    """In the forked child: become ``python -m remedysweep ARGS`` and exit with
    its status (through SystemExit, so atexit handlers and thread joins run as
    in any Python process)."""
    for stream in control:
        stream.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # as `python -m` puts the working folder first
    sys.argv = [MAIN, *request["argv"]]
    main = types.ModuleType("__main__")  # what runpy makes of remedysweep/__main__.py
    main.__file__ = MAIN
    main.__spec__ = importlib.machinery.ModuleSpec("remedysweep.__main__", None, origin=MAIN)
    sys.modules["__main__"] = main
    from remedysweep.cli import main as remedysweep_main

    sys.exit(remedysweep_main(request["argv"]))


def serve() -> None:
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    _warm()
    inbox = os.fdopen(requests, "r")
    outbox = os.fdopen(replies, "w")
    for line in inbox:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, (inbox, outbox))
        print(json.dumps({"pid": pid}), file=outbox, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), file=outbox, flush=True)


if __name__ == "__main__":
    serve()
