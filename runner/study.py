"""The Optuna side: storages, the study, the run queue and exactly-once.

Every run of a sweep is one Optuna trial. The runs are queued as WAITING trials
(``enqueue_trial``) and a worker takes one by switching it WAITING -> RUNNING in
the storage, which succeeds for exactly one worker. A run counts once it carries
its result (``remedysweep:result``); a trial that ended without one (a killed
worker, Ctrl-C) is ignored and its (configuration, seed) is queued again by
:func:`reconcile`.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.trial import TrialState

from .config import KnobSpec, Sweep, run_key

SWEEP_ATTR = "remedysweep:sweep"
FINGERPRINT_ATTR = "remedysweep:fingerprint"
VERSION_ATTR = "remedysweep:version"
KEY_ATTR = "remedysweep:key"
RESULT_ATTR = "remedysweep:result"
WORKER_ATTR = "remedysweep:worker"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 40
UNCLAIMED_GRACE = 120  # seconds a RUNNING trial may lack its worker record


class StorageError(RuntimeError):
    """A storage that cannot be opened or used; the message never holds credentials."""


# ----------------------------------------------------------------------------
# Storages
# ----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}" if parts.password is not None else f"{user}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str, url: str | None) -> str:
    """Remove ``url``'s password from a message (driver errors may quote it)."""
    if url:
        parts = urlsplit(url) if "://" in url else None
        if parts and parts.password:
            text = text.replace(parts.password, "***")
        text = text.replace(url, redact_url(url))
    return text


@dataclass(frozen=True)
class StorageSpec:
    """How to open the storage, picklable so it travels to worker processes.

    ``url`` is an Optuna RDB URL (``sqlite:///``, ``postgresql://``, ...) or
    ``journal:///ABS/PATH`` for the embedded journal file."""

    url: str

    @classmethod
    def journal(cls, path: str | Path) -> "StorageSpec":
        return cls("journal://" + str(Path(path).resolve()))

    @property
    def is_journal(self) -> bool:
        return self.url.startswith("journal://")

    @property
    def journal_path(self) -> Path:
        return Path(self.url[len("journal://"):])

    def display(self) -> str:
        return redact_url(self.url)

    def open(self) -> optuna.storages.BaseStorage:
        if self.is_journal:
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            path = str(self.journal_path)
            return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        try:
            return optuna.storages.RDBStorage(
                self.url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=_on_stale,
                engine_kwargs={"pool_pre_ping": True} if not self.url.startswith("sqlite") else None,
            )
        except Exception as exc:
            raise StorageError(f"cannot open storage {self.display()}: {redact_text(_first_line(exc), self.url)}") from None


def parse_storage(url: str) -> StorageSpec:
    """Check a ``--storage`` value and return its spec (no connection is made)."""
    if url.startswith("journal://"):
        return StorageSpec.journal(url[len("journal://"):])
    if url.endswith((".journal", ".log")) and "://" not in url:
        return StorageSpec.journal(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme or not re.match(r"^(sqlite|postgresql|postgres|mysql|mariadb|oracle|mssql)(\+\w+)?$", scheme):
        raise StorageError(
            f"storage URL {redact_url(url)!r} not understood; allowed: an Optuna RDB URL "
            "(sqlite:///PATH, postgresql://USER:PASS@HOST/DB, mysql://...) or journal:///PATH"
        )
    if scheme.startswith("postgres") and scheme.split("+")[0] == "postgres":
        url = "postgresql" + url[len("postgres"):]
    return StorageSpec(url)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# ----------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------


def directions(sweep: Sweep) -> list[str]:
    if sweep.sampler.objective == "accuracy":
        return ["maximize"]
    return ["maximize", "minimize"]


def make_sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    """Grid runs are all queued up front, so the sampler never chooses for them.
    For random/TPE each worker process seeds its sampler differently, or parallel
    workers would draw the same configurations."""
    seed = (sweep.seeds[0] * 1_000_003 + os.getpid() * 7919 + time.time_ns()) % 2**31
    if sweep.sampler.kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.study.StudySummary | None:
    for summary in optuna.get_all_study_summaries(storage):
        if summary.study_name == name:
            return summary
    return None


def create_or_load(storage: optuna.storages.BaseStorage, sweep: Sweep, version: str) -> optuna.Study:
    study = optuna.create_study(
        storage=storage,
        study_name=sweep.name,
        directions=directions(sweep),
        sampler=make_sampler(sweep),
        load_if_exists=True,
    )
    if FINGERPRINT_ATTR not in study.user_attrs:
        study.set_user_attr(SWEEP_ATTR, sweep.to_dict())
        study.set_user_attr(VERSION_ATTR, version)
        study.set_user_attr(FINGERPRINT_ATTR, sweep.fingerprint())
    return study


def load(storage: optuna.storages.BaseStorage, name: str) -> tuple[optuna.Study, Sweep]:
    """Open an existing sweep study; the sweep definition travels inside it."""
    from optuna.exceptions import OptunaError

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except (KeyError, OptunaError) as exc:
        raise StorageError(f"no study named {name!r} in the storage") from exc
    if SWEEP_ATTR not in study.user_attrs:
        raise StorageError(f"study {name!r} was not created by remedysweep (no sweep definition in it)")
    sweep = Sweep.from_dict(study.user_attrs[SWEEP_ATTR])
    study.sampler = make_sampler(sweep)
    return study, sweep


def distributions(sweep: Sweep) -> dict[str, optuna.distributions.BaseDistribution]:
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for knob in sweep.knobs:
        out[knob.name] = _distribution(knob)
    out["seed"] = optuna.distributions.CategoricalDistribution(list(sweep.seeds))
    return out


def _distribution(knob: KnobSpec) -> optuna.distributions.BaseDistribution:
    if not knob.is_range:
        return optuna.distributions.CategoricalDistribution(list(knob.values))
    if knob.integer:
        return optuna.distributions.IntDistribution(int(knob.low), int(knob.high), log=knob.log)
    return optuna.distributions.FloatDistribution(float(knob.low), float(knob.high), log=knob.log)


# ----------------------------------------------------------------------------
# Queue, claims, staleness
# ----------------------------------------------------------------------------


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """A run counts once its result is stored."""
    return RESULT_ATTR in trial.user_attrs


def trial_key(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get(KEY_ATTR)


def enqueue(study: optuna.Study, knobs: dict[str, Any], seed: int) -> None:
    study.enqueue_trial({**knobs, "seed": seed}, user_attrs={KEY_ATTR: run_key(knobs, seed)})


def expected_runs(study: optuna.Study, sweep: Sweep) -> list[tuple[dict[str, Any], int]]:
    """Every (configuration, seed) the sweep should have run, as far as is known:
    the whole grid, or each configuration a sampler proposed, times every seed."""
    if sweep.sampler.kind == "grid":
        configs = list(sweep.grid())
    else:
        seen: dict[str, dict[str, Any]] = {}
        for t in study.get_trials(deepcopy=False):
            knobs = _knobs_of(t, sweep)
            if knobs is not None:
                seen.setdefault(run_key(knobs, 0), knobs)
        configs = list(seen.values())
    return [(c, s) for c in configs for s in sweep.seeds]


def _knobs_of(trial: optuna.trial.FrozenTrial, sweep: Sweep) -> dict[str, Any] | None:
    params = trial.system_attrs.get("fixed_params") or trial.params
    if not all(k in params for k in sweep.knob_names):
        return None
    return {k: params[k] for k in sweep.knob_names}


def reconcile(study: optuna.Study, sweep: Sweep) -> int:
    """Queue every expected run that is neither done, queued nor running (the gaps a
    crash between two writes can leave). Returns how many were queued. Called by
    the process that coordinates a sweep, not by every worker."""
    live: set[str] = set()
    abandoned: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        key = trial_key(t)
        if key is None:
            continue
        if counted(t) or t.state in (TrialState.WAITING, TrialState.RUNNING):
            live.add(key)
        elif t.state == TrialState.FAIL:
            abandoned[key] = abandoned.get(key, 0) + 1
    live |= {k for k, n in abandoned.items() if n >= MAX_ATTEMPTS}
    added = 0
    for knobs, seed in expected_runs(study, sweep):
        if run_key(knobs, seed) not in live:
            enqueue(study, knobs, seed)
            live.add(run_key(knobs, seed))
            added += 1
    return added


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


MAX_ATTEMPTS = 2  # a run that kills its worker this many times, running alone, is recorded as failed


def handle_abandoned(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Called once for each trial that ended without its result because its worker
    died: queue the run again, or, once it has killed its worker ``MAX_ATTEMPTS``
    times while running alone (``isolated``), record it as ``failed``: a run that
    kills its worker (out of memory, say) must neither stall nor end the sweep, and
    runs that merely shared a worker pool with it must not be blamed."""
    key = trial_key(trial)
    if key is None or counted(trial):
        return
    attempts = 0
    for t in study.get_trials(deepcopy=False):
        if trial_key(t) != key:
            continue
        if counted(t) or t.state == TrialState.WAITING:
            return  # already done, or already queued again
        if t.state == TrialState.FAIL and (t.system_attrs.get(WORKER_ATTR) or {}).get("isolated"):
            attempts += 1
    params = dict(trial.system_attrs.get("fixed_params") or trial.params)
    seed = params.pop("seed", None)
    if seed is None:
        return
    if attempts < MAX_ATTEMPTS:
        enqueue(study, params, int(seed))
        return
    result = {
        "outcome": "failed",
        "message": f"the worker running it ended abruptly {attempts} times (killed by a signal or by the OS, e.g. out of memory)",
        "knobs": params, "seed": seed, "key": key, "epochs_run": 0, "train_seconds": 0.0, "curves": {},
    }
    dists = {**{k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()},
             "seed": optuna.distributions.CategoricalDistribution([seed])}
    study.add_trial(
        optuna.trial.create_trial(
            params={**params, "seed": seed},
            distributions=dists,
            user_attrs={KEY_ATTR: key, RESULT_ATTR: clean_json(result)},
            state=TrialState.FAIL,
        )
    )


def fail_stale(study: optuna.Study, spec: "StorageSpec") -> list[str]:
    """Fail RUNNING trials whose worker is gone and handle each once
    (:func:`handle_abandoned`); returns how many this process failed.

    RDB storages: Optuna's heartbeat (``fail_stale_trials`` with the storage's
    ``heartbeat_stale_trial_callback``). The journal file, which has no heartbeat, is local
    to one machine, so a trial is stale when the process recorded as its worker on
    this host no longer exists. On any storage a worker of this host that is gone
    is found at once, without waiting for the heartbeat's grace period. Returns
    the keys of the runs handled."""
    storage = study._storage
    keys: list[str] = []
    if not spec.is_journal:
        _stale_keys.clear()
        optuna.storages.fail_stale_trials(study)
        keys.extend(_stale_keys)
    host = socket.gethostname()
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.system_attrs.get(WORKER_ATTR)
        if worker is None:
            started = t.datetime_start.timestamp() if t.datetime_start else now
            stale = spec.is_journal and now - started > UNCLAIMED_GRACE
        else:
            stale = worker.get("host") == host and not _pid_alive(int(worker.get("pid", -1)))
        if stale:
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            handle_abandoned(study, storage.get_trial(t._trial_id))
            if trial_key(t):
                keys.append(trial_key(t))  # type: ignore[arg-type]
    return keys


_stale_keys: list[str] = []


def _on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """RDBStorage ``heartbeat_stale_trial_callback``: runs once per trial this process failed."""
    if trial_key(trial):
        _stale_keys.append(trial_key(trial))  # type: ignore[arg-type]
    handle_abandoned(study, trial)


def claim(study: optuna.Study, only_keys: frozenset[str] | None = None, isolated: bool = False) -> int | None:
    """Take one queued run: WAITING -> RUNNING succeeds for exactly one worker.
    ``only_keys`` restricts it to those runs; ``isolated`` records that the run
    has its worker process to itself."""
    storage = study._storage
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        if only_keys is not None and trial_key(t) not in only_keys:
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                storage.set_trial_system_attr(
                    t._trial_id,
                    WORKER_ATTR,
                    {"host": socket.gethostname(), "pid": os.getpid(), "claimed": time.time(), "isolated": isolated},
                )
                return t._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


class Heartbeat:
    """Records Optuna heartbeats for a running trial on RDB storages."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int):
        self._storage = storage
        self._trial_id = trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeat":
        if isinstance(self._storage, optuna.storages.RDBStorage):
            self._storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception:
                pass

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def clean_json(value: Any) -> Any:
    """NaN/Inf -> None, tuples -> lists, so the result is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def progress_counts(study: optuna.Study) -> dict[str, Any]:
    """Runs done/queued/running and outcomes so far."""
    outcomes: dict[str, int] = {}
    waiting = running = 0
    for t in study.get_trials(deepcopy=False):
        if counted(t):
            o = t.user_attrs[RESULT_ATTR].get("outcome", "?")
            outcomes[o] = outcomes.get(o, 0) + 1
        elif t.state == TrialState.WAITING:
            waiting += 1
        elif t.state == TrialState.RUNNING:
            running += 1
    return {"done": sum(outcomes.values()), "waiting": waiting, "running": running, "outcomes": outcomes}


def iter_results(study: optuna.Study) -> Iterable[optuna.trial.FrozenTrial]:
    """Counted trials, one per (configuration, seed), oldest first."""
    seen: set[str] = set()
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        key = trial_key(t)
        if counted(t) and key not in seen:
            seen.add(key)  # type: ignore[arg-type]
            yield t


def save_result(study: optuna.Study, trial_id: int, result: dict[str, Any], values: list[float] | None) -> bool:
    """Store the result (one write) and finish the trial. False if the trial was
    already finished elsewhere (declared stale): the result is then dropped and the
    queued copy counts instead."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, RESULT_ATTR, clean_json(result))
        if values is None:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        else:
            storage.set_trial_state_values(trial_id, state=TrialState.COMPLETE, values=values)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def release(study: optuna.Study, trial_id: int) -> None:
    """Give up a claimed run (Ctrl-C): it ends FAIL without a result and
    :func:`reconcile` queues it again."""
    try:
        study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def dump_json(obj: Any) -> str:
    return json.dumps(clean_json(obj), indent=2, sort_keys=True)
