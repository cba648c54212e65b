"""The ``remedysweep`` command: one module per command, each parsing its
arguments and calling a plain function that can also be called from Python."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Sequence

from . import bench, compare, doctor, remedies, report, run, worker

COMMANDS = {m.NAME: m for m in (run, worker, report, compare, remedies, doctor, bench)}
EXIT_USAGE = 2
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def safe(text: str) -> str:
    """What may reach the terminal: no storage secret, no control character
    (user-supplied names could carry escape sequences)."""
    from remedysweep.engine.queue import scrub

    return CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", scrub(str(text)))


def say(text: str) -> None:
    print(safe(text), file=sys.stderr)


def fail(message: str) -> int:
    say(f"remedysweep: error: {message}")
    return EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    from remedysweep.version import __version__

    p = argparse.ArgumentParser(prog="remedysweep", description="Reproduce classifier training collapse and find, over seeds, which remedies avoid it.")
    p.add_argument("--version", action="version", version=f"remedysweep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    from remedysweep.errors import UserError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].main(args)
    except UserError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("remedysweep: interrupted", file=sys.stderr)
        return 130
    except RecursionError:
        return fail("input nested too deeply")


if __name__ == "__main__":
    sys.exit(main())
