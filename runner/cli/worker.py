"""``remedysweep worker``: join a sweep stored in a shared database."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "worker"


def add_parser(sub: Any) -> None:
    w = sub.add_parser(NAME, help="join a sweep stored in a shared database", description="Run queued runs of an existing sweep study until none is left.")
    w.add_argument("--storage", required=True, help="the sweep's storage URL, e.g. postgresql://user:pass@host/db")
    w.add_argument("--study", required=True, help="the sweep's study name (its 'name')")
    w.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")


def main(args: argparse.Namespace) -> int:
    from remedysweep.cli import fail
    from remedysweep.sweep import join_as_worker

    if args.workers < 1:
        return fail(f"--workers must be at least 1, got {args.workers}")
    n, signum = join_as_worker(args.storage, args.study, workers=args.workers)
    if signum:
        print("worker stopped: its runs in flight went back to the queue")
        return 128 + signum
    print(f"worker finished: {n} runs completed by this worker's processes; none left in the queue")
    return 0
