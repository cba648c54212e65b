"""``remedysweep run SWEEP``: run (or resume) a sweep and write its report."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "run"


def add_parser(sub: Any) -> None:
    r = sub.add_parser(NAME, help="run (or resume) a sweep and write its report", description="Run a sweep file; rerun on the same folder to resume.")
    r.add_argument("sweep", help="sweep definition (TOML), e.g. sweeps/quick.toml")
    r.add_argument("--out", help="run folder (default: runs/<sweep name>)")
    r.add_argument("--storage", help="Optuna storage URL (default: a journal file inside the run folder)")
    r.add_argument("--workers", type=int, default=1, help="local worker processes (default 1); with --queue-only, how many workers will share the queue, so that packs are cut for them")
    r.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="load remedies from a local Python file (repeatable)")
    r.add_argument("--force", action="store_true", help="discard an existing run or study of a different sweep definition")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="skip report.html")
    r.add_argument("--queue-only", action="store_true", help="create the study and queue its runs, then leave them to 'remedysweep worker' processes")
    r.add_argument("--dry-run", action="store_true", help="validate the sweep file and the run folder, print the plan, write nothing")


def main(args: argparse.Namespace) -> int:
    from remedysweep.cli import fail, safe, say
    from remedysweep.sweep import identity_line, prepare, run_sweep

    if args.workers < 1:
        return fail(f"--workers must be at least 1, got {args.workers}")
    if args.dry_run:
        p = prepare(args.sweep, args.out, args.storage, force=args.force, plugins=tuple(args.plugin))
        s = p.sweep
        print(safe(f"sweep {s.name!r} is valid: {s.n_runs()} runs ({s.n_configs()} configurations x {len(s.seeds)} seeds); "
                   f"model {s.model.describe()}, data {s.data.describe()}; folder {p.out}{' (resume)' if p.resumed else ''}; "
                   f"storage {p.spec.display()}; identity: {identity_line(s)}"))
        return 0
    summary = run_sweep(args.sweep, out=args.out, storage_url=args.storage, workers=args.workers, force=args.force,
                        plugins=tuple(args.plugin), progress=not args.no_progress, report=not args.no_report, queue_only=args.queue_only,
                        log=say)
    if args.queue_only:
        print(f"queued: {summary.queued} new runs of study {summary.study!r} ({summary.total - summary.done} waiting or running, "
              f"{summary.done} done); start workers with:")
        print(f"  remedysweep worker --storage URL --study {summary.study}")
        return 0
    outcomes = ", ".join(f"{v} {k}" for k, v in sorted(summary.outcomes.items()))
    print(f"{summary.done}/{summary.total} runs ({outcomes or 'none finished'}) in {summary.seconds:.0f} s")
    print(f"results: {summary.out / 'trials.csv'}")
    if not args.no_report:
        print(f"report:  {summary.out / 'report.html'}")
        answer = summary_answer(summary.out)
        if answer:
            print(safe(f"finding: {answer}"))
    return summary.exit_code


def summary_answer(out: Any) -> str:
    """The report's first sentence, from the findings.json it just wrote."""
    import json

    from remedysweep.files import read_limited

    try:
        found = json.loads(read_limited(out / "findings.json", 64 << 20))
    except Exception:
        return ""
    return found.get("answer", "") if isinstance(found, dict) and isinstance(found.get("answer"), str) else ""
