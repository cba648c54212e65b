"""Running a sweep: validate, lock the run folder, queue the runs, start the
workers, export the results and write the report. Also what ``remedysweep
worker`` and ``remedysweep report --storage`` call.

An application on top of the engine: it uses the run queue, the workers and
the result schema, and hands the run folder to :mod:`remedysweep.reports`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from remedysweep.version import __version__
from remedysweep.errors import RunError, StorageError, one_line
from remedysweep.files import FileLock, LockHeld, atomic_write, check_folder, check_writable, folder_kind, mark_folder, proc_text, read_json, read_whole

from .engine import result as schema
from .engine.config import Sweep, config_id, load_sweep, sweep_difference
from .engine.queue import RunQueue, StorageLost, StorageSpec, check_journal, is_storage_loss, loss_reason, parse_storage, redact_text
from .engine.runtime import PROGRESS_ENV, threads_per_worker

from .engine.folder import (  # noqa: F401 (the run folder's names, re-exported for the sweep's callers)
    CURVES_CSV, FINDINGS_JSON, JOURNAL_FILE, LOCK_FILE, PROBES_CSV, REPORT_HTML, RUN_FILE, RUN_FOLDER_FILES, SWEEP_FILE, TRIALS_CSV,
    export, results_frames,
)
#: What marks a folder as a sweep's run folder (see remedysweep.files.check_folder).
FOLDER_KIND = "sweep"


def identity_line(sweep: Sweep) -> str:
    """What makes two runs of a sweep the same sweep, for the start line."""
    parts = ["the sweep file's settings"]
    files = [v for k, v in sweep.identity]
    named = [k.split(" ", 1)[1] if " " in k else k for k, _ in sweep.identity]
    if named:
        parts.append(", ".join(named))
    return ("; ".join(parts) + " (an edit to any makes a different sweep, refused on this folder; "
            "--force reruns; files a builder or loader reads outside its folder are not covered)") if files or named else parts[0]


def legacy_run_folder(folder: Path) -> bool:
    """A run folder of remedysweep 0.2, written before the marker: its run.json and
    sweep.json hold what remedysweep writes there, nothing else."""
    try:
        run = read_json(folder / RUN_FILE)
        sweep = read_json(folder / SWEEP_FILE)
    except (OSError, ValueError, RecursionError):
        return False
    return (isinstance(run, dict) and set(run) == {"study", "storage", "version"} and isinstance(run.get("study"), str)
            and isinstance(sweep, dict) and set(sweep) == {"fingerprint", "sweep"} and isinstance(sweep.get("sweep"), dict))


@dataclass
class RunSummary:
    out: Path
    total: int
    done: int
    outcomes: dict[str, int]
    seconds: float
    interrupted: bool = False
    study: str = ""
    queued: int = 0
    signal_number: int = 0
    notices: tuple[str, ...] = ()
    incomplete: bool = False  # some runs could not be finished (said which)

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number if self.interrupted else (1 if self.incomplete else 0)


@dataclass
class Prepared:
    sweep: Sweep
    out: Path
    spec: StorageSpec
    resumed: bool
    created: bool


# ----------------------------------------------------------------------------
# Checks before anything is written
# ----------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError, RecursionError) as exc:
        raise RunError(f"{path}: unreadable ({one_line(exc, with_type=False)}); move the folder away or use --force") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: not a remedysweep file; move the folder away or use --force")
    return data


def check_run_folder(out: Path, sweep: Sweep, spec: StorageSpec, force: bool) -> bool:
    """Refuse a folder holding another sweep or another storage's results.
    Returns True if it holds this sweep (a resume)."""
    check_folder(out, FOLDER_KIND, (LOCK_FILE,), legacy=legacy_run_folder)  # only a folder remedysweep wrote as a sweep's
    existing = out / SWEEP_FILE
    if not existing.exists():
        return False
    if force:
        return False
    old = _read_json(existing)
    if old.get("fingerprint") != sweep.fingerprint():
        diff = sweep_difference(old.get("sweep", {}), sweep.to_dict())
        raise RunError(f"{out} holds a run of a different sweep definition ({diff}); use --out NEW_FOLDER, or --force to discard the old run")
    meta = _read_json(out / RUN_FILE) if (out / RUN_FILE).exists() else {}
    stored = meta.get("storage")
    wanted = _storage_label(spec, out)
    if stored and stored != wanted:
        raise RunError(f"{out} holds results stored in {stored}, not {wanted}; give the same --storage to resume, "
                       "or --force to start over")
    return True


def _storage_label(spec: StorageSpec, out: Path) -> str:
    if spec.is_journal and spec.journal_path.parent == out.resolve() and spec.journal_path.name == JOURNAL_FILE:
        return "journal:" + JOURNAL_FILE
    return spec.display()


def prepare(sweep_path: str | Path, out: str | Path | None, storage_url: str | None, *, force: bool = False,
            plugins: tuple[str, ...] = ()) -> Prepared:
    """Everything that can be checked without writing: the sweep file, the user's
    model and data, the folder, the storage URL. Raises a
    :class:`~remedysweep.errors.UserError`."""
    sweep, _ = load_sweep(sweep_path, extra_plugins=plugins)
    out_dir = Path(out) if out else Path("runs") / sweep.name
    spec = parse_storage(storage_url) if storage_url else StorageSpec.journal(out_dir / JOURNAL_FILE)
    check_folder(out_dir, FOLDER_KIND, (LOCK_FILE,), legacy=legacy_run_folder)
    if not sweep.model.builtin or not sweep.data.builtin:
        from dataclasses import replace

        from .engine.runtime import configure_tensorflow
        from .engine.sources import check_problem

        configure_tensorflow()
        check_problem(sweep)
        # the identity covers what the user's code read: modules it imported from
        # the user's folders, data files it opened
        reads = getattr(check_problem, "last_reads", {})
        sweep = replace(sweep, identity=tuple(sorted({**dict(sweep.identity), **reads}.items())))
    resumed = check_run_folder(out_dir, sweep, spec, force)
    check_writable(out_dir)
    return Prepared(sweep, out_dir, spec, resumed, not out_dir.exists())


# ----------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------

INTERRUPTED = threading.Event()
_SIGNAL = {"number": 0}
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if s is not None)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(p) for p in proc_text(f"/proc/{pid}/task/{task}/children").split()]
    except OSError:
        pass
    return out


def _on_stop_signal(signum: int, frame: Any) -> None:
    """Ctrl-C, SIGTERM and SIGHUP alike: remember it (a library may swallow the
    KeyboardInterrupt), pass SIGINT on to the worker processes so that they
    release their runs, and interrupt the coordinator."""
    first = not INTERRUPTED.is_set()
    INTERRUPTED.set()
    _SIGNAL["number"] = _SIGNAL["number"] or signum
    if first:
        for child in _children(os.getpid()):
            try:
                os.kill(child, signal.SIGINT)
            except OSError:
                pass
    raise KeyboardInterrupt


class _StopSignals:
    def __enter__(self) -> "_StopSignals":
        INTERRUPTED.clear()
        _SIGNAL["number"] = 0
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self.previous[s] = signal.signal(s, _on_stop_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------


class Progress:
    """One line on stderr: runs done/total, outcomes so far, time left."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()
        self.start_done: int | None = None
        self.last = ""
        self.last_done = -1
        self.tty = self.stream.isatty()

    def update(self, counts: dict[str, Any], in_flight: float = 0.0) -> None:
        """``in_flight``: the runs still training, counted by the share of their
        epochs done (a pack reports its runs only when it ends)."""
        if not self.enabled:
            return
        done = counts["done"]
        so_far = min(float(self.total), done + max(0.0, min(in_flight, float(counts["running"]))))
        if self.start_done is None:
            self.start_done = done
        elapsed = time.monotonic() - self.start
        new = so_far - self.start_done
        left = ""
        if new >= max(1.0, 0.02 * self.total) and done < self.total:  # not from the first epoch's tracing alone
            secs = elapsed / new * (self.total - so_far)
            left = f" · {int(secs // 60)}:{int(secs % 60):02d} left"
        outcomes = " ".join(f"{k} {v}" for k, v in sorted(counts["outcomes"].items()))
        width = 24
        filled = int(width * so_far / self.total) if self.total else width
        partial = f" (+{so_far - done:.1f} in flight)" if so_far - done >= 0.05 else ""
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} runs{partial} · {outcomes or 'no results yet'} · "
                f"{counts['running']} running{left}")
        if line == self.last or (not self.tty and done == self.last_done):
            return
        self.last, self.last_done = line, done
        self.stream.write(("\r\x1b[2K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _poll(spec: StorageSpec, name: str, progress: Progress, stop: threading.Event, interval: float = 1.0,
          progress_dir: str | None = None) -> None:
    try:
        queue = RunQueue.open(spec, name)
    except Exception:
        return
    while not stop.wait(interval):
        try:
            progress.update(queue.progress(), _in_flight(progress_dir))
        except Exception:
            pass


def _progress_folder() -> str:
    """A private temporary folder where this coordinator's local workers (which
    inherit the environment) keep their progress files."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="remedysweep-progress-")
    os.environ[PROGRESS_ENV] = folder
    return folder


def _in_flight(folder: str | None) -> float:
    """The share of epochs trained by the local workers' runs in flight (their
    progress files, :class:`~.engine.worker.ProgressFile`)."""
    if not folder:
        return 0.0
    total = 0.0
    for path in Path(folder).glob("*.json"):
        try:
            data = read_json(path, 4096)
            os.kill(int(data["pid"]), 0)  # a worker that died counts nothing
            total += float(data["in_flight"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return total


def settle_after_interrupt(queue: RunQueue, timeout: float = 20.0) -> None:
    """After a stop signal: wait for this machine's workers to exit, then fail
    whatever they left RUNNING, so that the study holds no RUNNING run of ours
    and a rerun resumes cleanly."""
    end = time.monotonic() + timeout
    while True:
        try:
            queue.fail_stale()
            ours = queue.running_here()
        except KeyboardInterrupt:
            continue
        if not ours or time.monotonic() > end:
            if ours:  # workers that did not exit in time: their runs go back to the queue
                queue.release([queue._claim_of(t) for t in ours])
            return
        time.sleep(0.3)


def run_workers(spec: StorageSpec, study_name: str, workers: int, log: Callable[[str], None] = lambda s: None) -> int:
    """Run the queue to the end with ``workers`` local processes (joblib/loky), or
    in this process for one worker. Returns how many runs these workers finished.

    When a worker process dies (killed, out of memory), loky ends the whole pool,
    so the runs in flight are queued again and each is first retried alone in a
    pool of one: only a run that kills its worker while alone counts against it,
    and the others go back to the pool."""
    from .engine.worker import work, worker_process

    if workers <= 1:
        return work(spec, study_name, threads=threads_per_worker(1), isolated=True)
    from joblib import Parallel, delayed
    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError

    died = (TerminatedWorkerError, BrokenProcessPool)
    queue = RunQueue.open(spec, study_name)
    threads = threads_per_worker(workers)
    finished = 0
    while True:
        try:
            finished += sum(Parallel(n_jobs=workers, backend="loky")(
                delayed(worker_process)(spec.url, study_name, threads, None, False) for _ in range(workers)))
            return finished
        except died as exc:
            if INTERRUPTED.is_set():  # the workers died of the stop signal, not of a fault
                raise KeyboardInterrupt from None
            keys = queue.fail_stale()
            log(f"a worker process ended abruptly ({type(exc).__name__}); retrying its {len(keys)} run(s) one at a time")
            for key in keys:
                for _ in range(2):
                    with ProcessPoolExecutor(max_workers=1) as alone:
                        try:
                            finished += alone.submit(worker_process, spec.url, study_name, threads_per_worker(1), frozenset([key]), True).result()
                            break
                        except died:
                            if INTERRUPTED.is_set():
                                raise KeyboardInterrupt from None
                            queue.fail_stale()


def _lock_folder(out_dir: Path) -> FileLock:
    lock = FileLock(out_dir / LOCK_FILE)
    try:
        return lock.acquire()
    except LockHeld as held:
        raise RunError(f"{out_dir}: another remedysweep run ({held.holder or 'a running process'}) is using this folder; "
                       "wait for it to finish, or join its queue with 'remedysweep worker'") from None


def _discard(out_dir: Path, spec: StorageSpec, sweep: Sweep) -> None:
    """--force: the old results go, in the folder and in the storage."""
    for name in RUN_FOLDER_FILES:
        (out_dir / name).unlink(missing_ok=True)
    if not spec.is_journal or spec.journal_path.exists():
        try:
            RunQueue.delete(spec, sweep.name)
        except StorageError:
            raise
        except Exception:
            pass


def _write_folder_files(out_dir: Path, sweep: Sweep, spec: StorageSpec) -> None:
    atomic_write(out_dir / SWEEP_FILE, json.dumps({"fingerprint": sweep.fingerprint(), "sweep": sweep.to_dict()}, indent=2))
    atomic_write(out_dir / RUN_FILE, json.dumps({"study": sweep.name, "storage": _storage_label(spec, out_dir), "version": __version__}, indent=2))


def _check_journal_not_lost(out_dir: Path, spec: StorageSpec) -> None:
    """A journal that is empty or gone while the folder's trials.csv holds
    finished runs was lost (truncated, deleted): resuming would train them all
    again and overwrite the CSV. Refused; the results stay where they are."""
    csv = out_dir / TRIALS_CSV
    journal = spec.journal_path
    if not csv.exists() or (journal.exists() and journal.stat().st_size > 0):
        return
    try:
        rows = max(0, read_whole(csv).count(b"\n") - 1)
    except (OSError, ValueError):
        return
    if rows:
        raise RunError(f"{journal}: {'empty' if journal.exists() else 'missing'}, but {csv} holds {rows} finished run(s): the journal was lost; "
                       "'remedysweep report' still works from trials.csv; move the folder away, or --force to start over")


def open_queue(prepared: Prepared, *, force: bool, log: Callable[[str], None]) -> RunQueue:
    """Check the journal, refuse a study of another definition (or drop it with
    ``force``), and create or open the sweep's study."""
    sweep, spec = prepared.sweep, prepared.spec
    if spec.is_journal:
        notice = check_journal(spec.journal_path)
        if notice:
            log(notice)
        if not force:
            _check_journal_not_lost(prepared.out, spec)
    existing = RunQueue.existing_definition(spec, sweep.name)
    if existing is not None and existing.get("fingerprint") not in (None, sweep.fingerprint()):
        if not force:
            raise RunError(f"storage {spec.display()} already has a study {sweep.name!r} of a different sweep definition "
                           f"({sweep_difference(existing.get('sweep', {}), sweep.to_dict())}); give the sweep another name, "
                           "or use --force to delete that study")
        RunQueue.delete(spec, sweep.name)
    return RunQueue.create(spec, sweep, __version__)


def run_sweep(
    sweep_path: str | Path,
    *,
    out: str | Path | None = None,
    storage_url: str | None = None,
    workers: int = 1,
    force: bool = False,
    plugins: tuple[str, ...] = (),
    progress: bool = True,
    report: bool = True,
    queue_only: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> RunSummary:
    """Validate, then run (or resume) a sweep and write its results and report."""
    import optuna

    prepared = prepare(sweep_path, out, storage_url, force=force, plugins=plugins)
    sweep, out_dir, spec = prepared.sweep, prepared.out, prepared.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_folder(out_dir)  # the loser of a race removes nothing
    try:
        resumed = check_run_folder(out_dir, sweep, spec, force)  # again, under the lock
        if folder_kind(out_dir) is None:
            mark_folder(out_dir, FOLDER_KIND)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if force and not resumed:
            _discard(out_dir, spec, sweep)
        queue = open_queue(prepared, force=force, log=log)
    except BaseException:
        lock.release()
        if prepared.created:  # nothing is left behind by a sweep that could not start
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    try:
        return _run_locked(queue, prepared, workers=workers, progress=progress, report=report, queue_only=queue_only, log=log)
    except Exception as exc:
        if isinstance(exc, StorageLost):
            raise StorageLost(f"{exc}; finished runs are kept there; run the same command again to resume") from None
        if is_storage_loss(exc):
            raise StorageLost(f"lost the storage {spec.display()} ({redact_text(loss_reason(exc), spec.url)}); "
                              "finished runs are kept there; run the same command again to resume") from None
        raise
    finally:
        lock.release()


def _pack_of(sweep: Sweep) -> Callable[[dict[str, Any]], str]:
    if not sweep.training.pack:
        return lambda knobs: ""
    from .engine.build import Setup
    from .engine.runtime import configure_tensorflow
    from .engine.trainers import pack_assignment

    if not sweep.model.builtin:
        configure_tensorflow()
    return pack_assignment(Setup.load(sweep))


def _run_locked(queue: RunQueue, prepared: Prepared, *, workers: int, progress: bool, report: bool, queue_only: bool,
                log: Callable[[str], None]) -> RunSummary:
    sweep, out_dir, spec = prepared.sweep, prepared.out, prepared.spec
    _write_folder_files(out_dir, sweep, spec)
    pack_of = _pack_of(sweep)
    stale = queue.fail_stale()
    queued = queue.reconcile(pack_of, workers=workers)
    total = sweep.n_runs()
    counts = queue.progress()
    if queue_only:
        export(queue, out_dir)
        return RunSummary(out_dir, total, counts["done"], counts["outcomes"], 0.0, False, sweep.name, queued=queued)
    if prepared.resumed or counts["done"]:
        log(f"resuming {out_dir}: {counts['done']}/{total} runs done; {len(stale)} left running by a stopped worker queued again")
    log(f"sweep {sweep.name!r}: {total} runs ({sweep.n_configs()} configurations x {len(sweep.seeds)} seeds), "
        f"{workers} worker{'s' if workers > 1 else ''}, storage {spec.display()}")
    log(f"identity: {identity_line(sweep)}")
    bar = Progress(total, enabled=progress)
    stop = threading.Event()
    progress_dir = _progress_folder() if progress else None
    poller = threading.Thread(target=_poll, args=(spec, sweep.name, bar, stop, 1.0, progress_dir), daemon=True)
    poller.start()
    t0 = time.monotonic()
    interrupted = False
    with _StopSignals():
        try:
            waited = False
            for attempt in range(10_000):
                if attempt == 0 or queue.progress()["waiting"]:  # samplers queue their proposals as they go: start once in any case
                    run_workers(spec, sweep.name, workers, log)
                if INTERRUPTED.is_set():  # joblib may end quietly when its workers are interrupted
                    raise KeyboardInterrupt
                stale = queue.fail_stale()
                requeued = queue.reconcile(pack_of, workers=workers)
                now = queue.progress()
                if now["waiting"] or requeued or stale:
                    continue
                if not now["running"]:
                    break
                # runs held by other processes (another coordinator, a worker, a claim torn by a crash):
                # wait for them, so that this folder's results and report are whole
                if not waited:
                    log(f"waiting for {now['running']} run(s) held by other processes ...")
                    waited = True
                time.sleep(1.0)
        except KeyboardInterrupt:
            interrupted = True
            try:
                settle_after_interrupt(queue)
            except KeyboardInterrupt:
                pass
            log("\ninterrupted: finished runs are kept; run the same command again to resume")
        finally:
            stop.set()
            poller.join(timeout=5)
            try:
                bar.update(queue.progress())
            except Exception:
                pass
            bar.close()
            if progress_dir is not None:
                os.environ.pop(PROGRESS_ENV, None)
                shutil.rmtree(progress_dir, ignore_errors=True)
        counts = queue.progress()
        export(queue, out_dir)
        if report:
            from remedysweep.reports import write_report

            write_report(out_dir)
    missing = [] if interrupted else queue.missing_runs()
    if missing:
        log(f"{len(missing)} run(s) could not be finished: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
            "run the same command again to retry them")
    return RunSummary(out_dir, total, counts["done"], counts["outcomes"], time.monotonic() - t0, interrupted, sweep.name,
                      queued=queued, signal_number=_SIGNAL["number"] if interrupted else 0, incomplete=bool(missing))


# ----------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------


def join_as_worker(storage_url: str, study_name: str, *, workers: int = 1, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> tuple[int, int]:
    """``remedysweep worker``: run queued runs of an existing study, then return
    (runs finished, signal number or 0)."""
    spec = parse_storage(storage_url)
    if spec.is_journal:
        notice = check_journal(spec.journal_path)
        if notice:
            log(notice)
    queue = RunQueue.open(spec, study_name)
    queue.fail_stale()
    with _StopSignals():
        try:
            return run_workers(spec, study_name, workers, log), 0
        except KeyboardInterrupt:
            try:
                settle_after_interrupt(queue)
            except KeyboardInterrupt:
                pass
            return 0, _SIGNAL["number"] or signal.SIGINT


def reexport(run_dir: Path, storage_url: str | None = None) -> None:
    """Refresh a run folder's CSVs from its study (e.g. on a shared database)."""
    meta_file = run_dir / RUN_FILE
    if not meta_file.exists():
        raise RunError(f"{run_dir}: no {RUN_FILE}, so not a remedysweep run folder")
    name = _read_json(meta_file).get("study")
    if not isinstance(name, str):
        raise RunError(f"{meta_file}: no study name in it")
    spec = parse_storage(storage_url) if storage_url else StorageSpec.journal(run_dir / JOURNAL_FILE)
    if spec.is_journal:
        check_journal(spec.journal_path, repair=False)
    export(RunQueue.open(spec, name), run_dir)
