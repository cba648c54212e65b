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
    c.add_argument("--out", help="output HTML file (default: compare-<B>.html inside RUN_A)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.reports import write_comparison

    a, b = Path(args.run_a), Path(args.run_b)
    out = Path(args.out) if args.out else a / f"compare-{b.resolve().name}.html"
    path = write_comparison(a, b, out)
    print(f"comparison: {path}")
    return 0
