"""``remedysweep run``: validate, open the study, queue the runs, start the workers,
export the results and write the report. Also what ``worker`` and ``report`` call.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import optuna

from remedysweep import __version__

from . import study as st
from .config import Sweep, load_sweep

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.json"
JOURNAL_FILE = "study.journal"
TRIALS_CSV = "trials.csv"
CURVES_CSV = "curves.csv"
PROBES_CSV = "early_probes.csv"
REPORT_HTML = "report.html"


class RunError(RuntimeError):
    """A problem with the run folder or storage, reported in one line (exit 2)."""


@dataclass
class RunSummary:
    out: Path
    total: int
    done: int
    outcomes: dict[str, int]
    seconds: float
    interrupted: bool = False
    study: str = ""


# ----------------------------------------------------------------------------
# Checks before anything is written
# ----------------------------------------------------------------------------


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def sweep_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``key: old -> new`` for every setting that differs (source path ignored)."""
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ("source", "description"):
            continue
        if key == "plugins":
            if [Path(p).name for p in a.get(key, [])] == [Path(p).name for p in b.get(key, [])]:
                continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {json.dumps(a.get(key, '(unset)'))} -> {json.dumps(b.get(key, '(unset)'))}")
    return "; ".join(diffs) if diffs else "(none)"


def check_run_folder(out: Path, sweep: Sweep, force: bool) -> bool:
    """Refuse a folder holding another sweep. Returns True if it holds this one."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder")
    existing = out / SWEEP_FILE
    if not existing.exists():
        if out.exists() and any(out.iterdir()) and not (out / RUN_FILE).exists():
            raise RunError(f"{out}: folder is not empty and holds no remedysweep run; choose another --out")
        return False
    try:
        old = json.loads(existing.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{existing}: unreadable ({exc}); move the folder away or use --force") from None
    if old.get("fingerprint") == sweep.fingerprint():
        return True
    if force:
        return False
    diff = sweep_difference(old.get("sweep", {}), sweep.to_dict())
    raise RunError(
        f"{out} holds a run of a different sweep definition ({diff}); "
        "use --out NEW_FOLDER, or --force to discard the old run"
    )


def check_writable(path: Path) -> None:
    """Fail early, with a clear message, if results could not be written."""
    probe_dir = path
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise RunError(f"{path}: cannot write there (permission denied)")
    usage = shutil.disk_usage(probe_dir)
    if usage.free < 20 * 1024 * 1024:
        raise RunError(f"{path}: only {usage.free // 1024} KiB free on that disk; at least 20 MiB needed")


def prepare(
    sweep_path: str | Path,
    out: str | Path | None,
    storage_url: str | None,
    *,
    force: bool = False,
    plugins: tuple[str, ...] = (),
) -> tuple[Sweep, Path, st.StorageSpec, bool]:
    """Everything that can be checked without writing: the sweep file, the folder,
    the storage URL. Raises SweepError / RunError / StorageError."""
    sweep, _ = load_sweep(sweep_path, extra_plugins=plugins)
    out_dir = Path(out) if out else Path("runs") / sweep.name
    resumed = check_run_folder(out_dir, sweep, force)
    check_writable(out_dir)
    spec = st.parse_storage(storage_url) if storage_url else st.StorageSpec.journal(out_dir / JOURNAL_FILE)
    return sweep, out_dir, spec, resumed


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------


def open_study(sweep: Sweep, spec: st.StorageSpec, out_dir: Path, *, force: bool) -> optuna.Study:
    """Create (or reopen) the sweep's study; refuse one that holds another sweep."""
    storage = spec.open()
    try:
        existing = st.find_study(storage, sweep.name)
    except Exception as exc:
        raise RunError(f"cannot reach storage {spec.display()}: {st.redact_text(st._first_line(exc), spec.url)}") from None
    if existing is not None:
        fp = existing.user_attrs.get(st.FINGERPRINT_ATTR)
        if fp is not None and fp != sweep.fingerprint():
            if not force:
                old = existing.user_attrs.get(st.SWEEP_ATTR, {})
                raise RunError(
                    f"storage {spec.display()} already has a study {sweep.name!r} of a different sweep definition "
                    f"({sweep_difference(old, sweep.to_dict())}); give the sweep another name, or use --force to delete that study"
                )
            optuna.delete_study(study_name=sweep.name, storage=storage)
    return st.create_or_load(storage, sweep, __version__)


def _write_folder_files(out_dir: Path, sweep: Sweep, spec: st.StorageSpec) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / SWEEP_FILE, json.dumps({"fingerprint": sweep.fingerprint(), "sweep": sweep.to_dict()}, indent=2, default=str))
    storage = "journal:" + JOURNAL_FILE if spec.is_journal and spec.journal_path.parent == out_dir.resolve() else spec.display()
    atomic_write(out_dir / RUN_FILE, json.dumps({"study": sweep.name, "storage": storage, "version": __version__}, indent=2))


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def recover(study: optuna.Study, sweep: Sweep, spec: st.StorageSpec) -> dict[str, int]:
    """Fail and queue again the runs whose worker is gone, then fill any gap."""
    stale = st.fail_stale(study, spec)
    return {"stale": len(stale), "requeued": st.reconcile(study, sweep)}


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

    def update(self, counts: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = counts["done"]
        if self.start_done is None:
            self.start_done = done
        elapsed = time.monotonic() - self.start
        new = done - self.start_done
        left = ""
        if new > 0 and done < self.total:
            secs = elapsed / new * (self.total - done)
            left = f" · {int(secs // 60)}:{int(secs % 60):02d} left"
        outcomes = " ".join(f"{k} {v}" for k, v in sorted(counts["outcomes"].items()))
        width = 24
        filled = int(width * done / self.total) if self.total else width
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} runs · {outcomes or 'no results yet'} · {counts['running']} running{left}"
        if line == self.last or (not self.tty and done == self.last_done):
            return
        self.last = line
        self.last_done = done
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _poll(spec: st.StorageSpec, name: str, progress: Progress, stop: threading.Event, interval: float = 1.0) -> None:
    try:
        study = optuna.load_study(study_name=name, storage=spec.open())
    except Exception:
        return
    while not stop.wait(interval):
        try:
            progress.update(st.progress_counts(study))
        except Exception:
            pass


INTERRUPTED = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    """Remember Ctrl-C even if a library swallows the KeyboardInterrupt."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


def settle_after_interrupt(study: optuna.Study, spec: st.StorageSpec, timeout: float = 20.0) -> None:
    """After Ctrl-C: wait for this machine's workers to exit, then fail whatever
    they left RUNNING (a worker interrupted between two writes), so that the
    study holds no RUNNING trial of ours and a rerun resumes cleanly."""
    host = socket.gethostname()
    end = time.monotonic() + timeout
    while True:
        try:
            st.fail_stale(study, spec)
            ours = [
                t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if (t.system_attrs.get(st.WORKER_ATTR) or {}).get("host") == host
            ]
        except KeyboardInterrupt:
            continue
        if not ours or time.monotonic() > end:
            return
        time.sleep(0.3)


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_workers(spec: st.StorageSpec, study_name: str, workers: int, log: Callable[[str], None] = lambda s: None) -> int:
    """Run the queue to the end with ``workers`` local processes (joblib/loky), or
    in this process for one worker. Returns how many runs these workers finished.

    When a worker process dies (killed, out of memory), loky ends the whole pool,
    so the runs in flight are queued again and each is first retried alone in a
    pool of one: only a run that kills its worker while alone counts against it
    (:func:`study.handle_abandoned`), and the others go back to the pool."""
    if workers <= 1:
        from .worker import work

        return work(spec, study_name, threads=threads_per_worker(1), isolated=True)
    from joblib import Parallel, delayed
    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.process_executor import BrokenProcessPool, TerminatedWorkerError

    died = (TerminatedWorkerError, BrokenProcessPool)

    from .worker import worker_process

    study, _ = st.load(spec.open(), study_name)
    threads = threads_per_worker(workers)
    finished = 0
    while True:
        try:
            finished += sum(
                Parallel(n_jobs=workers, backend="loky")(
                    delayed(worker_process)(spec.url, study_name, threads) for _ in range(workers)
                )
            )
            return finished
        except died as exc:
            if INTERRUPTED.is_set():  # the workers died of Ctrl-C, not of a fault
                raise KeyboardInterrupt from None
            keys = st.fail_stale(study, spec)
            log(f"a worker process ended abruptly ({type(exc).__name__}); retrying its {len(keys)} run(s) one at a time")
            for key in keys:
                for _ in range(st.MAX_ATTEMPTS):
                    # A pool of one separate process (joblib's n_jobs=1 would run in this one).
                    with ProcessPoolExecutor(max_workers=1) as alone:
                        try:
                            finished += alone.submit(worker_process, spec.url, study_name, threads_per_worker(1), frozenset([key]), True).result()
                            break
                        except died:
                            if INTERRUPTED.is_set():
                                raise KeyboardInterrupt from None
                            st.fail_stale(study, spec)


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
    sweep, out_dir, spec, resumed = prepare(sweep_path, out, storage_url, force=force, plugins=plugins)
    if force and out_dir.exists() and not resumed:
        for name in (JOURNAL_FILE, TRIALS_CSV, CURVES_CSV, PROBES_CSV, REPORT_HTML, RUN_FILE, SWEEP_FILE, JOURNAL_FILE + ".lock"):
            (out_dir / name).unlink(missing_ok=True)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_study(sweep, spec, out_dir, force=force)
    except BaseException:
        if created:  # nothing is left behind by a sweep that could not start
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    _write_folder_files(out_dir, sweep, spec)
    rec = recover(study, sweep, spec)
    total = sweep.n_runs()
    counts = st.progress_counts(study)
    if queue_only:
        export(study, sweep, out_dir)
        return RunSummary(out_dir, total, counts["done"], counts["outcomes"], 0.0, False, sweep.name)
    if resumed or counts["done"]:
        log(f"resuming {out_dir}: {counts['done']}/{total} runs done; {rec['stale']} left running by a stopped worker queued again")
    log(f"sweep {sweep.name!r}: {total} runs ({sweep.n_configs()} configurations x {len(sweep.seeds)} seeds), "
        f"{workers} worker{'s' if workers > 1 else ''}, storage {spec.display() if not spec.is_journal else out_dir / JOURNAL_FILE}")
    bar = Progress(total, enabled=progress)
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(spec, sweep.name, bar, stop), daemon=True)
    poller.start()
    t0 = time.monotonic()
    interrupted = False
    INTERRUPTED.clear()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        for _ in range(10):
            run_workers(spec, sweep.name, workers, log)
            if INTERRUPTED.is_set():  # joblib may end quietly when its workers are interrupted
                raise KeyboardInterrupt
            rec = recover(study, sweep, spec)
            if st.progress_counts(study)["waiting"] == 0 and rec["requeued"] == 0 and not rec["stale"]:
                break
    except KeyboardInterrupt:
        interrupted = True
        settle_after_interrupt(study, spec)
        log("\ninterrupted: finished runs are kept; run the same command again to resume")
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
        stop.set()
        poller.join(timeout=5)
        try:
            bar.update(st.progress_counts(study))
        except Exception:
            pass
        bar.close()
    counts = st.progress_counts(study)
    export(study, sweep, out_dir)
    if report:
        from remedysweep.reports import write_report

        write_report(out_dir)
    return RunSummary(out_dir, total, counts["done"], counts["outcomes"], time.monotonic() - t0, interrupted, sweep.name)


# ----------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------


TRIAL_COLUMNS = (
    "trial_number", "config_id", "seed", "outcome", "peak_val_accuracy", "final_val_accuracy",
    "epochs_run", "train_seconds", "peak_epoch", "collapse_epoch", "first_nonfinite_epoch",
    "early_stopped", "n_params", "keras_fuses", "packed_seeds", "message",
)


def results_frames(study: optuna.Study, sweep: Sweep) -> tuple[Any, Any, Any]:
    """trials, curves and early-probe DataFrames from the counted runs."""
    import pandas as pd

    from .config import config_id

    trials, curves, probes = [], [], []
    for t in st.iter_results(study):
        r = t.user_attrs[st.RESULT_ATTR]
        knobs = r.get("knobs") or {k: t.params.get(k) for k in sweep.knob_names}
        seed = r.get("seed", t.params.get("seed"))
        cid = config_id(knobs)
        fusion = r.get("keras_fusion") or {}
        row = {"trial_number": t.number, "config_id": cid, **knobs, "seed": seed}
        for col in TRIAL_COLUMNS[4:]:
            row[col] = r.get(col)
        row["outcome"] = r.get("outcome")
        row["keras_fuses"] = bool(fusion.get("keras_fuses")) if fusion else None
        trials.append(row)
        c = r.get("curves") or {}
        n = len(c.get("val_accuracy", []))
        dead = r.get("dead_by_layer") or []
        for i in range(n):
            crow = {"trial_number": t.number, "config_id": cid, "seed": seed, "epoch": i + 1}
            for key, values in c.items():
                crow[key] = values[i] if i < len(values) else None
            for j, v in enumerate(dead[i] if i < len(dead) else []):
                crow[f"dead_fraction_layer{j + 1}"] = v
            curves.append(crow)
        for e, a in r.get("early_probes") or []:
            probes.append({"trial_number": t.number, "config_id": cid, "seed": seed, "epoch": e, "probe_accuracy": a})
    knob_cols = list(sweep.knob_names)
    cols = ["trial_number", "config_id", *knob_cols, *TRIAL_COLUMNS[2:]]
    trials_df = pd.DataFrame(trials, columns=cols)
    curves_df = pd.DataFrame(curves)
    probes_df = pd.DataFrame(probes, columns=["trial_number", "config_id", "seed", "epoch", "probe_accuracy"])
    return trials_df, curves_df, probes_df


def export(study: optuna.Study, sweep: Sweep, out_dir: Path) -> None:
    trials, curves, probes = results_frames(study, sweep)
    atomic_write(out_dir / TRIALS_CSV, trials.to_csv(index=False))
    atomic_write(out_dir / CURVES_CSV, curves.to_csv(index=False))
    atomic_write(out_dir / PROBES_CSV, probes.to_csv(index=False))


def join_as_worker(storage_url: str, study_name: str, *, workers: int = 1) -> int:
    """``remedysweep worker``: run queued runs of an existing study, then return."""
    spec = st.parse_storage(storage_url)
    storage = spec.open()
    study, sweep = st.load(storage, study_name)
    st.fail_stale(study, spec)
    return run_workers(spec, study_name, workers, lambda s: print(s, file=sys.stderr))


def reexport(run_dir: Path, storage_url: str) -> None:
    """Refresh a run folder's CSVs from its study (e.g. on a shared database)."""
    meta_file = run_dir / RUN_FILE
    if not meta_file.exists():
        raise RunError(f"{run_dir}: no {RUN_FILE}, so not a remedysweep run folder")
    name = json.loads(meta_file.read_text())["study"]
    spec = st.parse_storage(storage_url)
    study, sweep = st.load(spec.open(), name)
    export(study, sweep, run_dir)
