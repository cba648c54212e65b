"""``remedysweep bench``: speed measured side by side on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "bench"


def add_parser(sub: Any) -> None:
    b = sub.add_parser(NAME, help="measure speed: the trainers side by side on the same runs, and against TensorFlow's matmul peak")
    b.add_argument("--quick", action="store_true", help="a short run for CI (about 3 minutes on 2 cores)")
    b.add_argument("--full", action="store_true", help="sweeps/remedies.toml as shipped (432 runs, both ways: an hour or more on 2 cores) "
                   "instead of its one-seed, 5-epoch sample of the Adam configurations")
    b.add_argument("--out", default=".", help="folder for bench.json (default: current folder; a bench.json there that remedysweep did not write is refused)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.bench import run_bench

    run_bench(quick=args.quick, out=Path(args.out), full=args.full)
    return 0
