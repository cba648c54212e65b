"""``remedysweep bench``: speed measured side by side on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "bench"


def add_parser(sub: Any) -> None:
    b = sub.add_parser(NAME, help="measure speed: packed against the Keras path, and against TensorFlow's matmul peak")
    b.add_argument("--quick", action="store_true", help="a short run for CI")
    b.add_argument("--out", default=".", help="folder for bench.json (default: current folder; a bench.json there that remedysweep did not write is refused)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.bench import run_bench

    run_bench(quick=args.quick, out=Path(args.out))
    return 0
