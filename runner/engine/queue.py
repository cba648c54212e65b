"""The run queue: the one module that touches Optuna's storage internals.

Every run of a sweep is one Optuna trial. :class:`RunQueue` queues the runs as
WAITING trials keyed by their identity (configuration and seed), lets a worker
claim one (or a pack) by switching it WAITING -> RUNNING in the storage, which
succeeds for exactly one worker, stores a result in one write, releases a claim
(Ctrl-C, SIGTERM), and finds runs whose worker died. A run counts once its
result is stored; counts everywhere are runs (distinct keys), never trials.

Storages: Optuna's journal file (the default, inside the run folder; checked
when opened, see :func:`check_journal`) or any Optuna RDB URL (SQLite,
PostgreSQL, MySQL). Queueing happens under a lock per study (a lock file
beside a journal or SQLite file, an advisory lock on PostgreSQL or MySQL), so
two coordinators never queue a run twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from remedysweep.errors import RunError, StorageError, one_line
from remedysweep.files import FileLock, LockHeld, file_head, not_a_file, proc_text, read_whole, truncate

from .config import KnobSpec, Sweep, config_id, run_key
from .result import AT_CHANCE, RunOutcome, RunResult, clean_json

SWEEP_ATTR = "remedysweep:sweep"
FINGERPRINT_ATTR = "remedysweep:fingerprint"
VERSION_ATTR = "remedysweep:version"
KEY_ATTR = "remedysweep:key"
PACK_ATTR = "remedysweep:pack"
RESULT_ATTR = "remedysweep:result"
WORKER_ATTR = "remedysweep:worker"
PROPOSED_ATTR = "remedysweep:proposed"
DUPLICATE_ATTR = "remedysweep:duplicate"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 40
UNCLAIMED_GRACE = 20  # seconds a RUNNING journal trial may lack its worker record (written right after the claim)
MAX_ATTEMPTS = 2  # a run that kills its worker this many times, running alone, is recorded as failed
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.I)

# ----------------------------------------------------------------------------
# Storage URLs and secrets
# ----------------------------------------------------------------------------


def _credentials(url: str) -> tuple[str, str, str, str] | None:
    """(prefix, user, password, rest) of ``scheme://user:password@rest``, taking
    the *last* ``@`` before the host as the end of the password, so that a raw
    ``@`` or ``/`` inside it stays secret; ``None`` without a password. Also for
    malformed forms (``scheme:/user:pw@host``, ``scheme//user:pw@host``)."""
    m = re.match(r"^([A-Za-z][\w+.-]*(?::/{0,3}|/{1,3}))(.*)$", url)
    if not m:
        return None
    prefix, rest = m.group(1), m.group(2)
    query_at = rest.find("?", rest.rfind("@") + 1 if "@" in rest else 0)
    body, query = (rest[:query_at], rest[query_at:]) if query_at >= 0 else (rest, "")
    at = body.rfind("@")
    if at <= 0:
        return None
    user, sep, password = body[:at].partition(":")
    if not sep:
        return None
    return prefix, user, password, body[at + 1:] + query


def redact_url(url: str) -> str:
    """The URL with its password and secret-looking query values as ``***``,
    however it is written (a ``/`` or ``@`` in the password, a malformed scheme)."""
    if not url:
        return url
    creds = _credentials(url)
    if creds is not None:
        prefix, user, _, rest = creds
        url = f"{prefix}{user}:***@{rest}"
    base, sep, query = url.partition("?")
    if sep:
        masked = "&".join(f"{k}={'***' if SECRET_PARAM.search(k) else v}" if "=" in part else part
                          for part in query.split("&") for k, _, v in [part.partition("=")])
        url = f"{base}?{masked}"
    return url


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL, to scrub from any message that quotes them: the
    password (as SQLAlchemy reads it and as it really is), the pieces of it a
    driver may quote as a host, secret-looking query values."""
    out = []
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.password:
            out.append(str(u.password))
        out += [str(v) for k, v in u.query.items() if SECRET_PARAM.search(k) and v]
    except Exception:
        pass
    creds = _credentials(url)
    if creds is not None and creds[2]:
        password = creds[2]
        out.append(password)
        out += [p for p in re.split(r"[@/]", password) if len(p) >= 4]
        host = creds[3].split("/", 1)[0]
        out += [p for p in host.split("@")[:-1] if len(p) >= 4]  # what a parser reading the first "@" calls the host
    for part in url.partition("?")[2].split("&"):
        k, _, v = part.partition("=")
        if SECRET_PARAM.search(k) and v:
            out.append(v)
    return sorted({s for s in out if s}, key=len, reverse=True)


_SECRETS: set[str] = set()


def remember_secrets(url: str) -> None:
    """Secrets of a storage URL this process was given: :func:`scrub` removes them
    from every message remedysweep prints."""
    _SECRETS.update(url_secrets(url))


def scrub(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def redact_text(text: str, url: str | None) -> str:
    """Remove ``url``'s secrets from a message (driver errors may quote them)."""
    if url:
        text = text.replace(url, redact_url(url))
        for secret in url_secrets(url):
            text = text.replace(secret, "***")
    return scrub(text)


def is_storage_loss(exc: BaseException) -> bool:
    """An error that means the database went away (server stopped, connection
    dropped), not a fault of the run."""
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"OperationalError", "InterfaceError", "DisconnectionError", "StorageInternalError", "ConnectionFailure"}:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_storage_loss(cause)


class StorageLost(StorageError):
    """The storage went away while the sweep ran."""


def loss_reason(exc: BaseException) -> str:
    """The first line of the deepest cause of a storage loss (the driver's "server
    closed the connection"), not Optuna's wrapper around it."""
    seen = 0
    while (exc.__cause__ or exc.__context__) is not None and seen < 10:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return one_line(exc, 200, with_type=False)


def _first_line(exc: BaseException) -> str:
    return one_line(exc, 2000)


# ----------------------------------------------------------------------------
# The journal file
# ----------------------------------------------------------------------------


def check_journal(path: Path, *, repair: bool = True) -> str | None:
    """Check a journal file before anything reads or appends to it.

    A torn last record (what a power loss leaves: a line without its newline)
    is cut back to the last whole record, and a one-line notice is returned.
    Damage anywhere else (a line that is not a JSON record, bytes that are not
    UTF-8) raises :class:`RunError` naming the file and the line; nothing is
    appended. Returns ``None`` for a sound file."""
    problem = not_a_file(path)  # a FIFO or a device would block or never end
    if problem:
        raise RunError(f"{path}: {problem}; a journal is a regular file")
    try:
        data = read_whole(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        return None
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    for number, line in enumerate(lines, start=1):
        problem = _record_problem(line)
        if problem:
            raise RunError(
                f"{path}: line {number} of {len(lines) + bool(tail)} is damaged ({problem}); the finished runs are in "
                "trials.csv beside it ('remedysweep report' reads them); move the journal away, or use --force to start over"
            )
    if not tail:
        return None
    if not repair:
        return f"{path}: the last record is torn"
    truncate(path, len(data) - len(tail))
    return f"{path}: cut a torn last record ({len(tail)} bytes, from an interrupted write); the records before it are intact"


def _record_problem(line: bytes) -> str | None:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"bytes that are not UTF-8 at column {exc.start + 1}"
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"not a JSON record: {getattr(exc, 'msg', 'too deeply nested')} at column {getattr(exc, 'colno', 1)}"
    if not isinstance(record, dict) or "op_code" not in record:
        return "not a journal record"
    if record["op_code"] not in _OP_CODES:
        return f"a record with an unknown op_code {record['op_code']!r} (written by another program or another Optuna version)"
    return None


def _journal_op_codes() -> frozenset[Any]:
    try:
        from optuna.storages.journal._storage import JournalOperation

        return frozenset(op.value for op in JournalOperation)
    except ImportError:  # another Optuna layout: accept the codes of the version tested
        return frozenset(range(11))


_OP_CODES = _journal_op_codes()


# ----------------------------------------------------------------------------
# Storages
# ----------------------------------------------------------------------------


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

    @property
    def sqlite_path(self) -> Path | None:
        if not self.url.startswith("sqlite:///"):
            return None
        rest = self.url[len("sqlite:///"):].split("?")[0]
        return Path(rest) if rest and rest != ":memory:" else None

    def display(self) -> str:
        return str(self.journal_path) if self.is_journal else redact_url(self.url)

    def open(self) -> optuna.storages.BaseStorage:
        if self.is_journal:
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            problem = not_a_file(self.journal_path)
            if problem:
                raise StorageError(f"{self.journal_path}: {problem}; a journal is a regular file")
            path = str(self.journal_path)
            try:
                return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
            except Exception as exc:
                raise StorageError(f"cannot open the journal {path}: {_first_line(exc)}") from None
        if self.sqlite_path is not None:
            _check_sqlite(self.sqlite_path)
            # two processes creating one new SQLite file race in Optuna's schema creation
            # ("table ... already exists"): one at a time
            with _blocking_lock(self.sqlite_path.with_name(self.sqlite_path.name + ".open.lock"), 120.0, "creating the storage"):
                return self._open_rdb()
        return self._open_rdb()

    def _open_rdb(self) -> optuna.storages.BaseStorage:
        try:
            return optuna.storages.RDBStorage(
                self.url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=None,
                engine_kwargs={"pool_pre_ping": True} if not self.url.startswith("sqlite") else None,
            )
        except Exception as exc:
            raise StorageError(f"cannot open storage {self.display()}: {redact_text(_first_line(exc), self.url)}") from None

    @contextlib.contextmanager
    def claim_lock(self) -> Iterator[None]:
        """Held while a worker claims runs on SQLite, whose transactions do not lock
        rows (``SELECT ... FOR UPDATE`` is a no-op there): without it two workers
        can both switch one trial WAITING -> RUNNING. Other storages need none."""
        if self.sqlite_path is None:
            yield
            return
        with _blocking_lock(self.sqlite_path.with_name(self.sqlite_path.name + ".claim.lock"), 120.0, "claiming runs"):
            yield

    @contextlib.contextmanager
    def queue_lock(self, study: str, timeout: float = 120.0) -> Iterator[None]:
        """Held while a coordinator queues runs, so that two never queue the same run."""
        path = self.journal_path.with_name(self.journal_path.name + ".queue.lock") if self.is_journal else (
            self.sqlite_path.with_name(self.sqlite_path.name + ".queue.lock") if self.sqlite_path else None)
        if path is not None:
            with _blocking_lock(path, timeout, f"queueing study {study!r}"):
                yield
            return
        with self._advisory_lock(study, timeout):
            yield

    @contextlib.contextmanager
    def _advisory_lock(self, study: str, timeout: float) -> Iterator[None]:
        import sqlalchemy

        key = zlib.crc32(f"remedysweep:{study}".encode()) & 0x7FFFFFFF
        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        dialect = engine.dialect.name
        try:
            with engine.connect() as conn:
                if dialect == "postgresql":
                    conn.execute(sqlalchemy.text(f"SET lock_timeout = '{int(timeout * 1000)}ms'"))
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                elif dialect in ("mysql", "mariadb"):
                    got = conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, :t)"), {"k": f"remedysweep:{key}", "t": int(timeout)}).scalar()
                    if got != 1:
                        raise StorageError(f"another remedysweep process has been queueing study {study!r} for {timeout:.0f} s")
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": f"remedysweep:{key}"})
                else:
                    yield
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot lock study {study!r} in {self.display()}: {redact_text(_first_line(exc), self.url)}") from None
        finally:
            engine.dispose()


def _check_sqlite(path: Path) -> None:
    """A SQLite file must be a regular file that SQLite reads as a sound database;
    anything else is one line now, not a confusing error later."""
    problem = not_a_file(path)
    if problem:
        raise StorageError(f"{path}: {problem}; a SQLite storage is a regular file")
    if not path.exists() or path.stat().st_size == 0:
        return
    if file_head(path, 16) != b"SQLite format 3\x00":
        raise StorageError(f"{path}: not a SQLite database (its header is not SQLite's); give another --storage")
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: a damaged SQLite database ({exc}); give another --storage") from None
    if verdict != "ok":
        raise StorageError(f"{path}: a damaged SQLite database ({str(verdict)[:200]}); give another --storage")


@contextlib.contextmanager
def _blocking_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    lock = FileLock(path)
    end = time.monotonic() + timeout
    while True:
        try:
            lock.acquire()
            break
        except LockHeld:
            if time.monotonic() > end:
                raise StorageError(f"another remedysweep process has been {what} for {timeout:.0f} s") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def parse_storage(url: str) -> StorageSpec:
    """Check a ``--storage`` value and return its spec (no connection is made)."""
    remember_secrets(url)
    if url.startswith("journal://"):
        return StorageSpec.journal(url[len("journal://"):])
    if url.endswith((".journal", ".log")) and "://" not in url:
        return StorageSpec.journal(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme or not re.match(r"^(sqlite|postgresql|postgres|mysql|mariadb|oracle|mssql)(\+\w+)?$", scheme):
        shown = re.match(r"^[A-Za-z0-9+._-]{0,20}", url).group(0)  # nothing past the scheme: a malformed URL may hide a password anywhere
        raise StorageError(
            f"storage URL {shown + '...'!r} not understood; allowed: an Optuna RDB URL "
            "(sqlite:///PATH, postgresql://USER:PASS@HOST/DB, mysql://...) or journal:///PATH"
        )
    if scheme.split("+")[0] == "postgres":
        url = "postgresql" + url[len("postgres"):]
    return StorageSpec(url)


# ----------------------------------------------------------------------------
# The queue
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A run a worker holds: its trial, its key, its knobs, its seed, its pack."""

    trial_id: int
    number: int
    key: str
    knobs: dict[str, Any]
    seed: int
    pack: str
    proposal: bool = False


@dataclass(frozen=True)
class StoredRun:
    """A counted run: the trial number, the configuration, the seed and the result."""

    number: int
    knobs: dict[str, Any]
    seed: int
    result: RunResult

    @property
    def config_id(self) -> str:
        return config_id(self.knobs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited
        return proc_text(f"/proc/{pid}/stat").split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def distribution(knob: KnobSpec) -> optuna.distributions.BaseDistribution:
    if not knob.is_range:
        return optuna.distributions.CategoricalDistribution(list(knob.values))
    if knob.integer:
        return optuna.distributions.IntDistribution(int(knob.low), int(knob.high), log=knob.log)
    return optuna.distributions.FloatDistribution(float(knob.low), float(knob.high), log=knob.log)


class RunQueue:
    """A sweep's study seen as a queue of runs (see the module text)."""

    def __init__(self, spec: StorageSpec, study: optuna.Study, sweep: Sweep):
        self.spec = spec
        self.study = study
        self.sweep = sweep
        self._storage = study._storage
        self._study_id = study._study_id

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(cls, spec: StorageSpec, name: str) -> "RunQueue":
        """An existing sweep study; the sweep definition travels inside it."""
        storage = spec.open()
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except (KeyError, optuna.exceptions.OptunaError):
            raise StorageError(f"no study named {name!r} in {spec.display()}") from None
        except Exception as exc:
            raise StorageError(f"cannot read storage {spec.display()}: {redact_text(_first_line(exc), spec.url)}") from None
        if SWEEP_ATTR not in study.user_attrs:
            raise StorageError(f"study {name!r} was not created by remedysweep (no sweep definition in it)")
        sweep = Sweep.from_dict(study.user_attrs[SWEEP_ATTR])
        study.sampler = make_sampler(sweep)
        return cls(spec, study, sweep)

    @classmethod
    def existing_definition(cls, spec: StorageSpec, name: str) -> dict[str, Any] | None:
        """The stored definition of study ``name`` (with its fingerprint), or None."""
        storage = spec.open()
        try:
            for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
                if summary.study_name == name:
                    return {"fingerprint": summary.user_attrs.get(FINGERPRINT_ATTR), "sweep": summary.user_attrs.get(SWEEP_ATTR, {})}
        except Exception as exc:
            raise StorageError(f"cannot reach storage {spec.display()}: {redact_text(_first_line(exc), spec.url)}") from None
        return None

    @classmethod
    def delete(cls, spec: StorageSpec, name: str) -> None:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=name, storage=spec.open())

    @classmethod
    def create(cls, spec: StorageSpec, sweep: Sweep, version: str) -> "RunQueue":
        storage = spec.open()
        try:
            study = optuna.create_study(storage=storage, study_name=sweep.name, directions=directions(sweep),
                                        sampler=make_sampler(sweep), load_if_exists=True)
        except Exception as exc:
            raise StorageError(f"cannot create study {sweep.name!r} in {spec.display()}: {redact_text(_first_line(exc), spec.url)}") from None
        if FINGERPRINT_ATTR not in study.user_attrs:
            study.set_user_attr(SWEEP_ATTR, sweep.to_dict())
            study.set_user_attr(VERSION_ATTR, version)
            study.set_user_attr(FINGERPRINT_ATTR, sweep.fingerprint())
        return cls(spec, study, sweep)

    # -- reading ---------------------------------------------------------------

    def _trials(self, states: Sequence[TrialState] | None = None) -> list[optuna.trial.FrozenTrial]:
        return self._storage.get_all_trials(self._study_id, deepcopy=False, states=states)

    @staticmethod
    def _key(trial: optuna.trial.FrozenTrial) -> str | None:
        return trial.user_attrs.get(KEY_ATTR)

    @staticmethod
    def _counted(trial: optuna.trial.FrozenTrial) -> bool:
        return RESULT_ATTR in trial.user_attrs

    def results(self) -> list[StoredRun]:
        """Counted runs, one per (configuration, seed), oldest first."""
        seen: set[str] = set()
        out = []
        for t in sorted(self._trials(), key=lambda t: t.number):
            key = self._key(t)
            if not self._counted(t) or key in seen:
                continue
            seen.add(key)  # type: ignore[arg-type]
            record = t.user_attrs[RESULT_ATTR]
            knobs = record.get("knobs") or {k: t.params.get(k) for k in self.sweep.knob_names}
            seed = int(record.get("seed", t.params.get("seed", 0)))
            out.append(StoredRun(t.number, knobs, seed, RunResult.from_record(record.get("result", record))))
        return out

    def progress(self) -> dict[str, Any]:
        """Runs done, queued and running (distinct keys), and outcomes so far."""
        done: dict[str, str] = {}
        waiting: set[str] = set()
        running: set[str] = set()
        for t in self._trials():
            key = self._key(t) or f"trial:{t.number}"
            if self._counted(t):
                rec = t.user_attrs[RESULT_ATTR]
                done.setdefault(key, (rec.get("result") or rec).get("outcome", "failed"))
            elif t.state == TrialState.WAITING:
                waiting.add(key)
            elif t.state == TrialState.RUNNING:
                running.add(key)
        outcomes: dict[str, int] = {}
        for o in done.values():
            outcomes[o] = outcomes.get(o, 0) + 1
        return {"done": len(done), "waiting": len(waiting - set(done)), "running": len(running - set(done)), "outcomes": outcomes}

    # -- queueing --------------------------------------------------------------

    def missing_runs(self) -> list[str]:
        """The expected runs without a stored result, as ``knob=value ... seed N``."""
        done = {self._key(t) for t in self._trials() if self._counted(t)}
        return [" ".join(f"{k}={v}" for k, v in knobs.items()) + f" seed {seed}"
                for knobs, seed in self.expected_runs() if run_key(knobs, seed) not in done]

    def expected_runs(self) -> list[tuple[dict[str, Any], int]]:
        """Every (configuration, seed) the sweep should run, as far as is known:
        the whole grid, or each configuration a sampler proposed, times every seed."""
        sweep = self.sweep
        if sweep.sampler.kind == "grid":
            configs = list(sweep.grid())
        else:
            seen: dict[str, dict[str, Any]] = {}
            for t in self._trials():
                params = t.system_attrs.get("fixed_params") or t.params
                if all(k in params for k in sweep.knob_names):
                    knobs = {k: params[k] for k in sweep.knob_names}
                    seen.setdefault(config_id(knobs), knobs)
            configs = list(seen.values())
        return [(c, s) for c in configs for s in sweep.seeds]

    def reconcile(self, pack_of: Any = None, *, workers: int = 1) -> int:
        """Queue, under the study's queue lock, every expected run that is neither
        done, queued nor running; returns how many were queued.

        ``pack_of(knobs)`` gives a run's pack key ("" to train alone). The runs of
        one key are cut into packs of at most ``max_pack`` runs, and into at least
        ``workers`` packs when there are enough runs, so that local workers share
        the work evenly; each pack is queued together."""
        with self.spec.queue_lock(self.sweep.name):
            live: set[str] = set()
            abandoned: dict[str, int] = {}
            for t in self._trials():
                key = self._key(t)
                if key is None:
                    continue
                if self._counted(t) or t.state in (TrialState.WAITING, TrialState.RUNNING):
                    live.add(key)
                elif t.state == TrialState.FAIL and not t.system_attrs.get(DUPLICATE_ATTR):
                    abandoned[key] = abandoned.get(key, 0) + 1
            live |= {k for k, n in abandoned.items() if n >= MAX_ATTEMPTS}
            missing = [(knobs, seed) for knobs, seed in self.expected_runs() if run_key(knobs, seed) not in live]
            keys = {config_id(k): (pack_of(k) if pack_of else "") for k, _ in missing}
            groups: dict[str, list[tuple[dict[str, Any], int]]] = {}
            for knobs, seed in missing:
                groups.setdefault(keys[config_id(knobs)], []).append((knobs, seed))
            stamp = f"{time.time_ns() % 10**9:09d}"
            for key, runs in groups.items():
                if not key:
                    for knobs, seed in runs:
                        self._enqueue(knobs, seed, "")
                    continue
                n = len(runs)
                chunks = max(math.ceil(n / self.sweep.training.max_pack), min(workers, n // 2) or 1)
                size = math.ceil(n / chunks)
                for i, (knobs, seed) in enumerate(runs):
                    self._enqueue(knobs, seed, f"{key}#{stamp}.{i // size}")
            return len(missing)

    def _enqueue(self, knobs: Mapping[str, Any], seed: int, pack: str = "") -> None:
        self.study.enqueue_trial({**knobs, "seed": seed}, user_attrs={KEY_ATTR: run_key(knobs, seed), PACK_ATTR: pack})

    # -- claiming --------------------------------------------------------------

    def _take(self, trial: optuna.trial.FrozenTrial, isolated: bool) -> bool:
        try:
            if self._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                self._storage.set_trial_system_attr(
                    trial._trial_id, WORKER_ATTR,
                    {"host": socket.gethostname(), "pid": os.getpid(), "claimed": time.time(), "isolated": isolated},
                )
                return True
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        return False

    def _claim_of(self, trial: optuna.trial.FrozenTrial) -> Claim:
        params = dict(trial.system_attrs.get("fixed_params") or {})
        seed = int(params.pop("seed", self.sweep.seeds[0]))
        knobs = {k: params[k] for k in self.sweep.knob_names if k in params}
        proposal = len(knobs) < len(self.sweep.knob_names)
        return Claim(trial._trial_id, trial.number, self._key(trial) or "", knobs, seed, trial.user_attrs.get(PACK_ATTR, ""), proposal)

    def claim(self, *, only_keys: frozenset[str] | None = None, isolated: bool = False, pack_limit: int = 1) -> list[Claim]:
        """Take one queued run and, if it belongs to a pack, up to ``pack_limit - 1``
        more runs of the same pack. Empty when nothing is queued."""
        with self.spec.claim_lock():
            return self._claim(only_keys, isolated, pack_limit)

    def _claim(self, only_keys: frozenset[str] | None, isolated: bool, pack_limit: int) -> list[Claim]:
        trials = self._trials()
        taken = {self._key(t) for t in trials if t.state == TrialState.RUNNING or self._counted(t)}
        waiting, seen = [], set()
        for t in sorted((t for t in trials if t.state == TrialState.WAITING), key=lambda t: t.number):
            key = self._key(t)
            if key is not None and (key in taken or key in seen):
                self._drop_duplicate(t)  # a second queue record of a run (a copied journal line, a raced enqueue)
                continue
            seen.add(key)
            if only_keys is None or key in only_keys:
                waiting.append(t)
        for t in waiting:
            if not self._take(t, isolated):
                continue
            first = self._claim_of(t)
            claims = [first]
            if first.pack and pack_limit > 1 and not first.proposal:
                for u in waiting:
                    if len(claims) >= pack_limit:
                        break
                    if u is not t and u.user_attrs.get(PACK_ATTR) == first.pack and self._take(u, isolated):
                        claims.append(self._claim_of(u))
            return claims
        return []

    def _drop_duplicate(self, trial: optuna.trial.FrozenTrial) -> None:
        """End a queued trial whose run is already queued, running or done: it is
        never trained; the run counts once."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if self._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                self._storage.set_trial_system_attr(trial._trial_id, DUPLICATE_ATTR, True)
                self._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)

    def propose(self, claim: Claim) -> Claim | None:
        """Random/TPE: let the sampler draw the knob values of a proposal slot;
        queue the configuration's other seeds. ``None`` (slot given back) when it
        drew a configuration that already runs."""
        trial = optuna.trial.Trial(self.study, claim.trial_id)
        knobs = self.suggest(trial)
        key = run_key(knobs, claim.seed)
        if any(self._key(t) == key for t in self._trials()):
            self.release([claim])
            return None
        self._storage.set_trial_user_attr(claim.trial_id, KEY_ATTR, key)
        self._storage.set_trial_system_attr(claim.trial_id, PROPOSED_ATTR, True)
        for seed in self.sweep.seeds[1:]:
            self._enqueue(knobs, seed)
        return Claim(claim.trial_id, claim.number, key, knobs, claim.seed, "")

    def queue_proposal(self) -> bool:
        """Random/TPE: queue a slot for the sampler's next configuration; False once
        the budget of configurations is spent."""
        proposed = sum(1 for t in self._trials() if t.system_attrs.get(PROPOSED_ATTR))
        if proposed >= self.sweep.sampler.n_configs:
            return False
        self.study.enqueue_trial({"seed": self.sweep.seeds[0]})
        return True

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The knob values of a trial: fixed for a queued run, drawn for a proposal."""
        knobs: dict[str, Any] = {}
        for knob in self.sweep.knobs:
            if not knob.is_range:
                knobs[knob.name] = trial.suggest_categorical(knob.name, list(knob.values))
            elif knob.integer:
                knobs[knob.name] = trial.suggest_int(knob.name, int(knob.low), int(knob.high), log=knob.log)
            else:
                knobs[knob.name] = trial.suggest_float(knob.name, float(knob.low), float(knob.high), log=knob.log)
        trial.suggest_categorical("seed", list(self.sweep.seeds))
        return knobs

    def register_params(self, claim: Claim) -> None:
        """Record the claim's values as the trial's Optuna parameters (so that the
        study stays a standard Optuna study: params, distributions, values)."""
        self.suggest(optuna.trial.Trial(self.study, claim.trial_id))

    # -- finishing -------------------------------------------------------------

    def save(self, claim: Claim, result: RunResult, values: list[float] | None) -> bool:
        """Store the result (one write) and finish the trial. False if the trial was
        already finished elsewhere (declared stale): the result is then dropped
        and the queued copy counts instead."""
        record = {"knobs": claim.knobs, "seed": claim.seed, "key": claim.key, "result": result.to_record()}
        try:
            self._storage.set_trial_user_attr(claim.trial_id, RESULT_ATTR, clean_json(record))
            if values is None:
                self._storage.set_trial_state_values(claim.trial_id, state=TrialState.FAIL)
            else:
                self._storage.set_trial_state_values(claim.trial_id, state=TrialState.COMPLETE, values=values)
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def record(self, knobs: Mapping[str, Any], seed: int, result: RunResult) -> None:
        """Store a run trained outside the queue (``doctor``): queued, claimed and
        saved like any other, so the study stays a standard one."""
        key = run_key(knobs, seed)
        self._enqueue(knobs, seed, "")
        for claim in self.claim(only_keys=frozenset([key])):
            self.register_params(claim)
            self.save(claim, result, objective_values(self.sweep, result))

    def release(self, claims: Sequence[Claim]) -> None:
        """Give up claimed runs (Ctrl-C, SIGTERM): they end FAIL without a result
        and :meth:`reconcile` queues them again."""
        for c in claims:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                self._storage.set_trial_state_values(c.trial_id, state=TrialState.FAIL)

    # -- dead workers ----------------------------------------------------------

    def fail_stale(self) -> list[str]:
        """Fail RUNNING runs whose worker is gone and handle each once; returns
        their keys. A worker on this host is gone when its process is; on a
        database, also when it missed Optuna's heartbeat for the grace period."""
        keys: list[str] = []
        if not self.spec.is_journal and isinstance(self._storage, optuna.storages.RDBStorage):
            for tid in self._storage._get_stale_trial_ids(self._study_id):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    if self._storage.set_trial_state_values(tid, state=TrialState.FAIL):
                        trial = self._storage.get_trial(tid)
                        self._handle_abandoned(trial)
                        if self._key(trial):
                            keys.append(self._key(trial))  # type: ignore[arg-type]
        host = socket.gethostname()
        now = time.time()
        for t in self._trials((TrialState.RUNNING,)):
            worker = t.system_attrs.get(WORKER_ATTR)
            if worker is None:
                started = t.datetime_start.timestamp() if t.datetime_start else now
                stale = self.spec.is_journal and now - started > UNCLAIMED_GRACE
            else:
                stale = worker.get("host") == host and not _pid_alive(int(worker.get("pid", -1)))
            if stale:
                try:
                    self._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                self._handle_abandoned(self._storage.get_trial(t._trial_id))
                if self._key(t):
                    keys.append(self._key(t))  # type: ignore[arg-type]
        return keys

    def running_here(self) -> list[optuna.trial.FrozenTrial]:
        host = socket.gethostname()
        return [t for t in self._trials((TrialState.RUNNING,)) if (t.system_attrs.get(WORKER_ATTR) or {}).get("host") == host]

    def _handle_abandoned(self, trial: optuna.trial.FrozenTrial) -> None:
        """Queue an abandoned run again, or, once it has killed its worker
        ``MAX_ATTEMPTS`` times while running alone, record it as ``failed``: a run
        that kills its worker (out of memory, say) must neither stall nor end the
        sweep, and runs that merely shared a worker pool with it are not blamed."""
        key = self._key(trial)
        if key is None or self._counted(trial):
            return
        attempts = 0
        for t in self._trials():
            if self._key(t) != key:
                continue
            if self._counted(t) or t.state == TrialState.WAITING:
                return  # already done, or already queued again
            if t.state == TrialState.FAIL and (t.system_attrs.get(WORKER_ATTR) or {}).get("isolated"):
                attempts += 1
        claim = self._claim_of(trial)
        if attempts < MAX_ATTEMPTS:
            self._enqueue(claim.knobs, claim.seed, claim.pack)
            return
        result = RunResult.failure(f"the worker running it ended abruptly {attempts} times (killed by a signal or by the OS, e.g. out of memory)")
        params = {**claim.knobs, "seed": claim.seed}
        dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
        self.study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, state=TrialState.FAIL,
            user_attrs={KEY_ATTR: key, PACK_ATTR: claim.pack,
                        RESULT_ATTR: clean_json({"knobs": claim.knobs, "seed": claim.seed, "key": key, "result": result.to_record()})},
        ))


class Heartbeat:
    """Records Optuna heartbeats for running trials on RDB storages."""

    def __init__(self, queue: RunQueue, claims: Sequence[Claim]):
        self._storage = queue._storage
        self._ids = [c.trial_id for c in claims]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeat":
        if isinstance(self._storage, optuna.storages.RDBStorage):
            self._beat_once()
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat_once(self) -> None:
        for tid in self._ids:
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(tid)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            self._beat_once()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


# ----------------------------------------------------------------------------
# Study settings
# ----------------------------------------------------------------------------


def directions(sweep: Sweep) -> list[str]:
    return ["maximize"] if sweep.sampler.objective == "accuracy" else ["maximize", "minimize"]


def make_sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    """Grid runs are all queued up front, so the sampler never chooses for them.
    For random/TPE each worker process seeds its sampler differently, or parallel
    workers would draw the same configurations."""
    seed = (sweep.seeds[0] * 1_000_003 + os.getpid() * 7919 + time.time_ns()) % 2**31
    if sweep.sampler.kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def objective_values(sweep: Sweep, result: RunResult) -> list[float] | None:
    """Collapse-aware objective: a run that ended at chance scores as chance, not
    as its peak. ``None`` for a failed run (Optuna FAIL)."""
    if result.outcome is RunOutcome.FAILED:
        return None
    score = result.score
    if sweep.sampler.objective == "accuracy_vs_time":
        return [score, result.train_seconds]
    if sweep.sampler.objective == "accuracy_vs_collapse":
        return [score, 1.0 if result.outcome in (RunOutcome.COLLAPSED, RunOutcome.DIVERGED) else 0.0]
    return [score]


__all__ = ["AT_CHANCE", "Claim", "Heartbeat", "RunQueue", "StorageSpec", "StoredRun", "check_journal", "objective_values",
           "parse_storage", "redact_text", "redact_url"]
