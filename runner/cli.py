"""The ``remedysweep`` command. Each subcommand parses its arguments and calls a
plain function that can also be called from Python."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"remedysweep: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    from remedysweep import __version__

    p = argparse.ArgumentParser(
        prog="remedysweep",
        description="Reproduce classifier training collapse and find, over seeds, which remedies avoid it.",
    )
    p.add_argument("--version", action="version", version=f"remedysweep {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="run (or resume) a sweep and write its report", description="Run a sweep file; rerun on the same folder to resume.")
    r.add_argument("sweep", help="sweep definition (TOML), e.g. sweeps/quick.toml")
    r.add_argument("--out", help="run folder (default: runs/<sweep name>)")
    r.add_argument("--storage", help="Optuna storage URL (default: a journal file inside the run folder)")
    r.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    r.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="load remedies from a local Python file (repeatable)")
    r.add_argument("--force", action="store_true", help="discard an existing run or study of a different sweep definition")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="skip report.html")
    r.add_argument("--queue-only", action="store_true", help="create the study and queue its runs, then leave them to 'remedysweep worker' processes")
    r.add_argument("--dry-run", action="store_true", help="validate the sweep file and the run folder, print the plan, write nothing")

    w = sub.add_parser("worker", help="join a sweep stored in a shared database", description="Run queued runs of an existing sweep study until none is left.")
    w.add_argument("--storage", required=True, help="the sweep's storage URL, e.g. postgresql://user:pass@host/db")
    w.add_argument("--study", required=True, help="the sweep's study name (its 'name')")
    w.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")

    rep = sub.add_parser("report", help="regenerate report.html of a run folder")
    rep.add_argument("run_dir", help="run folder")
    rep.add_argument("--storage", help="re-export results from this storage first (for a run on a database)")

    c = sub.add_parser("compare", help="side-by-side report of two run folders")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--out", help="output HTML file (default: compare.html in the current folder)")

    rem = sub.add_parser("remedies", help="list every installed remedy")
    rem.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="also load remedies from a local file")

    d = sub.add_parser("doctor", help="diagnose your own Keras model", description="Reproduce your model's collapse over seeds and find the smallest fix.")
    d.add_argument("--model", required=True, help="MODULE:FUNCTION (or FILE.py:FUNCTION) returning a compiled keras.Model, or a saved .keras file")
    d.add_argument("--data", required=True, help="MODULE:FUNCTION returning ((x_train, y_train), (x_val, y_val)), or an .npz with those four arrays")
    d.add_argument("--epochs", type=int, default=10)
    d.add_argument("--seeds", type=int, default=3)
    d.add_argument("--out", default="doctor", help="folder for doctor.html and doctor.json (default: doctor)")
    d.add_argument("--json", action="store_true", help="print the machine-readable verdict on stdout")

    b = sub.add_parser("bench", help="measure speed against plain Keras and the machine's matmul peak")
    b.add_argument("--quick", action="store_true", help="a short run for CI")
    b.add_argument("--out", default=".", help="folder for bench.json (default: current folder)")

    return p


def cmd_remedies(plugins: Sequence[str]) -> int:
    from remedysweep.remedies import discover

    registry = discover(plugin_files=plugins)
    rows = []
    for name, remedy in registry.remedies.items():
        rows.append((name, registry.sources[name], remedy.space.describe(), repr(remedy.baseline), remedy.description))
    headers = ("name", "source", "values", "baseline", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers[:4])]
    print("  ".join(h.ljust(w) for h, w in zip(headers[:4], widths)) + "  " + headers[4])
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
    for err in registry.errors:
        print(f"remedysweep: error: {err}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from remedysweep.runner.config import SweepError
    from remedysweep.runner.orchestrate import RunError
    from remedysweep.runner.study import StorageError

    import warnings

    # Optuna flags heartbeats as experimental; that is for Optuna's users, not ours.
    warnings.filterwarnings("ignore", module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "workers", 1) < 1:
        return _fail(f"--workers must be at least 1, got {args.workers}")
    try:
        if args.command == "run" and args.dry_run:
            from remedysweep.runner.orchestrate import prepare

            sweep, out_dir, spec, resumed = prepare(args.sweep, args.out, args.storage, force=args.force, plugins=tuple(args.plugin))
            print(
                f"sweep {sweep.name!r} is valid: {sweep.n_runs()} runs ({sweep.n_configs()} configurations x {len(sweep.seeds)} seeds); "
                f"folder {out_dir}{' (resume)' if resumed else ''}; storage {spec.display()}"
            )
            return 0
        if args.command == "run":
            from remedysweep.runner.orchestrate import run_sweep

            summary = run_sweep(
                args.sweep,
                out=args.out,
                storage_url=args.storage,
                workers=args.workers,
                force=args.force,
                plugins=tuple(args.plugin),
                progress=not args.no_progress,
                report=not args.no_report,
                queue_only=args.queue_only,
            )
            if args.queue_only:
                print(f"queued: {summary.total - summary.done} runs of study {summary.study!r}; start workers with:")
                print(f"  remedysweep worker --storage URL --study {summary.study}")
                return 0
            outcomes = ", ".join(f"{v} {k}" for k, v in sorted(summary.outcomes.items()))
            print(f"{summary.done}/{summary.total} runs ({outcomes}) in {summary.seconds:.0f} s")
            print(f"results: {summary.out / 'trials.csv'}")
            if not args.no_report:
                print(f"report:  {summary.out / 'report.html'}")
            return 130 if summary.interrupted else 0
        if args.command == "worker":
            from remedysweep.runner.orchestrate import join_as_worker

            n = join_as_worker(args.storage, args.study, workers=args.workers)
            print(f"worker finished: {n} runs completed by this worker's processes; none left in the queue")
            return 0
        if args.command == "report":
            from remedysweep.reports import write_report

            if args.storage:
                from remedysweep.runner.orchestrate import reexport

                reexport(Path(args.run_dir), args.storage)
            path = write_report(Path(args.run_dir))
            print(f"report: {path}")
            return 0
        if args.command == "compare":
            from remedysweep.reports import write_comparison

            path = write_comparison(Path(args.run_a), Path(args.run_b), Path(args.out) if args.out else Path("compare.html"))
            print(f"comparison: {path}")
            return 0
        if args.command == "remedies":
            return cmd_remedies(args.plugin)
        if args.command == "doctor":
            from remedysweep.runner.doctor import DoctorError, diagnose, load_problem, write_doctor_report

            if args.epochs < 1 or args.seeds < 1:
                return _fail("--epochs and --seeds must be at least 1")
            try:
                problem = load_problem(args.model, args.data)
                echo = (lambda s: print(s, file=sys.stderr)) if args.json else print
                verdict = diagnose(problem, epochs=args.epochs, seeds=args.seeds, echo=echo)
            except DoctorError as exc:
                return _fail(str(exc))
            path = write_doctor_report(verdict, Path(args.out))
            if args.json:
                import json

                keys = ("baseline_outcome", "symptoms", "recommendation", "conclusion", "sanity_check", "baseline", "tried", "facts")
                print(json.dumps({k: verdict.get(k) for k in keys}, indent=2, default=str))
            else:
                print(f"report: {path}")
            return 0
        if args.command == "bench":
            from remedysweep.runner.bench import run_bench

            run_bench(quick=args.quick, out=Path(args.out))
            return 0
    except (SweepError, RunError, StorageError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("remedysweep: interrupted", file=sys.stderr)
        return 130
    return _fail(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
