"""``remedysweep compare RUN_A RUN_B``: two sweeps side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "compare"


def add_parser(sub: Any) -> None:
    c = sub.add_parser(NAME, help="side-by-side report of two run folders")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--out", help="output HTML file (default: compare-<B>.html inside RUN_A, when RUN_A is a folder remedysweep made)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.reports import write_comparison

    from remedysweep.cli import fail
    from remedysweep.files import folder_kind

    a, b = Path(args.run_a), Path(args.run_b)
    if args.out is None and a.is_dir() and folder_kind(a) is None:  # only into folders remedysweep made
        return fail(f"{a}: not a folder remedysweep made, so the comparison is not written into it; give --out FILE.html")
    out = Path(args.out) if args.out else a / f"compare-{b.resolve().name}.html"
    path = write_comparison(a, b, out)
    print(f"comparison: {path}")
    return 0
