"""``remedysweep report RUN_DIR``: regenerate a run folder's report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "report"


def add_parser(sub: Any) -> None:
    rep = sub.add_parser(NAME, help="regenerate report.html (and findings.json) of a run folder")
    rep.add_argument("run_dir", help="run folder")
    rep.add_argument("--storage", help="re-export results from this storage first (for a run on a database)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.reports import write_report

    if args.storage:
        from remedysweep.sweep import reexport

        reexport(Path(args.run_dir), args.storage)
    path = write_report(Path(args.run_dir))
    print(f"report: {path}")
    return 0
