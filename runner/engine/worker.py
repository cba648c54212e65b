"""A worker: take queued runs (or packs of runs) from the queue and run them
until none is left.

The same loop serves ``remedysweep run`` (in-process, or N local processes
through joblib) and ``remedysweep worker`` (any machine that reaches the storage).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from remedysweep.files import atomic_write

from .build import Setup
from .keras_trainer import error_message
from .queue import Claim, Heartbeat, RunQueue, StorageLost, StorageSpec, is_storage_loss, loss_reason, objective_values, redact_text
from .result import RunResult
from .runtime import PROGRESS_ENV, configure_tensorflow
from .trainers import train_batch


class ProgressFile:
    """This process's runs in flight, as the share of their epochs trained, in
    ``<folder>/<pid>.json`` (rewritten at most every ``every`` seconds): packed
    runs report nothing to the queue until their pack ends, so the coordinator's
    progress line reads these instead of sitting at 0."""

    def __init__(self, folder: str, every: float = 1.0):
        self.path = os.path.join(folder, f"{os.getpid()}.json")
        self.every, self.last = every, 0.0
        self.shares: dict[int, float] = {}

    def __call__(self, key: int, share: float | None) -> None:
        import json
        import time

        if share is None:
            self.shares.pop(key, None)
        else:
            self.shares[key] = share
        now = time.monotonic()
        if share is not None and now - self.last < self.every:
            return
        self.last = now
        atomic_write(Path(self.path), json.dumps({"pid": os.getpid(), "in_flight": sum(self.shares.values())}))


def work(
    spec: StorageSpec,
    study_name: str,
    *,
    threads: int | None = None,
    max_runs: int | None = None,
    only_keys: frozenset[str] | None = None,
    isolated: bool = False,
    on_result: Callable[[RunResult], None] | None = None,
    setup: Setup | None = None,
) -> int:
    """Run queued runs of the study until none is left; returns how many ran.
    ``only_keys``: take only those runs. ``isolated``: this process runs alone,
    so if it dies the run it holds is to blame. ``setup``: the sweep's model and
    data already loaded in this process (``doctor``)."""
    configure_tensorflow(threads)
    if os.environ.get(PROGRESS_ENV) and os.path.isdir(os.environ[PROGRESS_ENV]):
        from .recorder import report_epochs_to

        report_epochs_to(ProgressFile(os.environ[PROGRESS_ENV]))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    queue = RunQueue.open(spec, study_name)
    sweep = queue.sweep
    setup_error = None
    if setup is None:
        try:
            setup = Setup.load(sweep)
            setup.base_info()
        except Exception as exc:  # the data or model cannot load here: every run says why
            setup, setup_error = None, error_message(exc)
    pack_limit = sweep.training.max_pack if sweep.training.pack and only_keys is None else 1
    done = 0
    duplicates = 0
    while max_runs is None or done < max_runs:
        claims = queue.claim(only_keys=only_keys, isolated=isolated, pack_limit=pack_limit)
        if not claims and only_keys is None and sweep.sampler.kind != "grid" and queue.queue_proposal():
            claims = queue.claim(isolated=isolated)
        if not claims:
            break
        try:
            with Heartbeat(queue, claims):
                ready: list[Claim] = []
                for c in claims:
                    if c.proposal:
                        proposed = queue.propose(c)
                        if proposed is None:
                            duplicates += 1
                            continue
                        c = proposed
                    else:
                        queue.register_params(c)
                    ready.append(c)
                if not ready:
                    if duplicates > 50:
                        break
                    continue
                results = _run(setup, setup_error, ready)
            for c, result in zip(ready, results):
                queue.save(c, result, objective_values(sweep, result))
                done += 1
                if on_result is not None:
                    on_result(result)
        except BaseException:
            queue.release(claims)  # Ctrl-C or a crash of the worker itself: queue them again
            raise
    return done


def _run(setup: Setup | None, setup_error: str | None, claims: list[Claim]) -> list[RunResult]:
    if setup is None:
        return [RunResult.failure(f"the worker could not load the sweep's model or data: {setup_error}") for _ in claims]
    return train_batch(setup, [(c.knobs, c.seed) for c in claims])


def worker_process(url: str, study_name: str, threads: int, only_keys: frozenset[str] | None = None, isolated: bool = False) -> int:
    """Entry point of a local worker process (joblib/loky). Stopped by SIGINT
    (Ctrl-C, or passed on by its coordinator) or by its coordinator's death, it
    releases its runs and returns quietly."""
    from .runtime import ORPHANED, interrupt_once, watch_parent

    watch_parent()
    interrupt_once()
    spec = StorageSpec(url)
    try:
        return work(spec, study_name, threads=threads, only_keys=only_keys, isolated=isolated)
    except KeyboardInterrupt:
        if ORPHANED.is_set():  # the coordinator is gone: runs released, nobody to return to
            os._exit(0)
        return 0
    except Exception as exc:
        if is_storage_loss(exc):  # one plain line for the coordinator, no traceback
            raise StorageLost(f"lost the storage {spec.display()} ({redact_text(loss_reason(exc), spec.url)})") from None
        raise
