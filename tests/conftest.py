"""Shared fixtures: tiny sweeps, the CLI as a real process (:func:`cli`) or in this
process (:func:`run_main`), folders built once per session, real services, and
the example plugin installed into a temporary folder (never the user's environment).

Where the promise is about processes, the test starts plain ``python -m
remedysweep`` processes of its own (``subprocess.Popen``), not forked ones:

- signals, kill -9 and orphans: test_parallel.py (a SIGKILLed worker, a killed
  sweep resumed, Ctrl-C, SIGTERM/SIGHUP, faults that kill a worker),
  test_promises.py::test_workers_whose_coordinator_is_killed_end_too;
- two coordinators: test_robustness.py::test_two_coordinators_never_double_the_work,
  test_robustness.py::test_two_plain_runs_on_one_folder,
  test_promises.py::test_two_coordinators_on_a_new_sqlite_file_both_end_with_every_run,
  test_engine_queue.py (concurrent claimers);
- PostgreSQL workers and a server that goes away: test_postgres.py,
  test_promises.py::test_a_database_that_goes_away_mid_sweep_is_one_line;
- TensorFlow's logs: test_robustness.py::test_a_plugin_importing_keras_prints_no_tensorflow_logs
  (``cli(..., plain=True)``: a fresh process, its imports included);
- nothing left in your environment: test_robustness.py::test_the_suite_leaves_no_plugin_in_the_environment;
- no traceback from a real process: test_bad_input.py::test_no_traceback_from_a_real_process
  (``cli(..., plain=True)``);
- the ``Watch`` user script: test_watch.py::test_doctor_from_a_watched_collapsing_run_finds_and_verifies_the_fix.

Every other command line in the suite is :func:`cli`: a real process of its own,
forked from a server that imported TensorFlow once (tests/forkserver.py), or
:func:`run_main` in this process where the promise is about input and files.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import glob
import json
import select
import signal
import socket
import textwrap
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Every process the suite starts (xdist workers, commands, their worker
# processes) sizes TensorFlow's thread pools to its share of the cores: two xdist
# workers on two cores would otherwise each start pools for both.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, len(os.sched_getaffinity(0)) // max(1, _XDIST_WORKERS))))
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLE_PLUGIN = HERE / "plugin_example"
sys.path.insert(0, str(HERE / "doctor"))  # the model zoo

TINY_SWEEP = """
name = "{name}"
seeds = [0, 1]

[data]
dataset = "blobs"
n_classes = 4
n_features = 8
n_samples = 240
cluster_std = 2.0

[model]
kind = "mlp"
depth = 1
width = 16

[training]
epochs = {epochs}
early_probes = 2
{training}

[outcome]
window = 2

[early_stop]
patience = 2

[knobs]
loss = {losses}
"""


def write_sweep(folder: Path, name: str = "tiny", epochs: int = 3, losses: str = '["unfused", "fused_logits"]', extra: str = "",
                training: str = "") -> Path:
    """A tiny sweep file; ``extra`` lines go under [knobs], ``training`` lines under [training]."""
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(TINY_SWEEP.format(name=name, epochs=epochs, losses=losses, training=training)) + extra)
    return path


@pytest.fixture
def tiny_sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path)


class _ForkServer:
    """The client of tests/forkserver.py: one server per test process, started
    at the first command, so that each command's process is forked with
    TensorFlow already imported instead of importing it again."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="remedysweep-test-cli-"))

    @staticmethod
    def _import_environment() -> dict:
        return {k: v for k, v in os.environ.items() if k.startswith(("PYTHON", "TF_", "KERAS", "CUDA", "OMP_", "MPL"))}

    def imports_differ(self) -> bool:
        """Whether the environment now differs from the server's in a variable
        its imports may have read."""
        return self.proc is not None and self._import_environment() != self.started_with

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.started_with = self._import_environment()
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "forkserver.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self.folder,
            )
        return self.proc

    def _reply(self, proc: subprocess.Popen, deadline: float | None) -> dict | None:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([proc.stdout], [], [], wait)[0]:
            return None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the test fork server died")
        return json.loads(line)

    def run(self, args: list[str], timeout: float, cwd: Path | None) -> subprocess.CompletedProcess:
        proc = self._start()
        out, err = self.folder / "stdout", self.folder / "stderr"
        request = {"argv": args, "cwd": str(cwd or os.getcwd()), "env": dict(os.environ), "stdout": str(out), "stderr": str(err)}
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        pid = self._reply(proc, None)["pid"]  # the server's import comes first: no deadline on it
        reply = self._reply(proc, time.monotonic() + timeout)
        if reply is None:
            os.kill(pid, signal.SIGKILL)
            self._reply(proc, None)
            raise subprocess.TimeoutExpired([sys.executable, "-m", "remedysweep", *args], timeout, out.read_text(), err.read_text())
        return subprocess.CompletedProcess(["remedysweep", *args], reply["status"], out.read_text(), err.read_text())

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


_FORK_SERVER: _ForkServer | None = None
#: ``REMEDYSWEEP_TEST_CLI=subprocess`` runs every command in a plain ``python -m
#: remedysweep`` process instead (the fork server's results must not differ).
PLAIN_CLI = os.environ.get("REMEDYSWEEP_TEST_CLI", "") == "subprocess"


def cli(*args: str, timeout: float = 600, env: dict | None = None, cwd: Path | None = None, plain: bool = False) -> subprocess.CompletedProcess:
    """The real command line, in a process of its own. It is forked from a
    server that has already imported TensorFlow, unless ``env`` changes the
    environment (which could change what those imports did) or ``plain`` asks
    for it (a promise about what a fresh process prints, imports included): then
    it is a plain ``python -m remedysweep``."""
    global _FORK_SERVER
    if env or plain or PLAIN_CLI or (_FORK_SERVER is not None and _FORK_SERVER.imports_differ()):
        return subprocess.run(
            [sys.executable, "-m", "remedysweep", *args],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd,
        )
    if _FORK_SERVER is None:
        _FORK_SERVER = _ForkServer()
    return _FORK_SERVER.run([str(a) for a in args], timeout, cwd)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder built once for the whole session, however many xdist workers
    ask: the first to take the lock builds it (``build(folder)``), the others
    wait and reuse it. Tests copy it (:func:`copy_of`) rather than change it."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the xdist workers of this session (without xdist, the parent outlives it)
    folder = root / f"built-once-{name}"
    with open(root / f"built-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").write_text("")
    return folder


def copy_of(folder: Path, to: Path) -> Path:
    """A test's own copy of a folder built once."""
    shutil.copytree(folder, to, ignore=shutil.ignore_patterns(".built"))
    return to


def reset_process_state() -> None:
    """What one command leaves behind in its process, undone, so that the next
    in-process command starts as a fresh process would: the URL secrets it
    remembered, the user modules it imported (a user's edited file must be read
    again), and the interrupt flag."""
    from remedysweep.engine import queue
    from remedysweep.sweep import INTERRUPTED

    queue._SECRETS.clear()
    INTERRUPTED.clear()
    for name in [m for m in sys.modules if m.startswith(("remedysweep_user_", "remedysweep_local_plugin_"))]:
        del sys.modules[name]


def run_main(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command line in this process (``main([...])``), for promises that are
    not about processes: one-line refusals, listings, reports, dry runs. Its
    output and exit code as :func:`cli` gives them; argparse's exits included."""
    import contextlib
    import io

    from remedysweep.cli import main

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    reset_process_state()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(before)
        reset_process_state()
    return subprocess.CompletedProcess(["remedysweep", *map(str, args)], rc, out.getvalue(), err.getvalue())


def need(tool: str, what: str) -> str:
    """The path of an external tool, skipping the test where it is missing
    (failing instead under CI, whose .ci/run installs it)."""
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} ({what}) is not installed; .ci/run should have installed it")
        pytest.skip(f"{tool} ({what}) is not installed")
    return path


def pip_install(*args: str) -> None:
    """pip into a --target folder, offline for local folders. A local package
    is built from a temporary copy, so that nothing (build/, *.egg-info) is ever
    written into the repository, and two test processes never build in the same
    folder."""
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    copies, given = [], []
    for a in args:
        if Path(a).is_dir() and any((Path(a) / f).exists() for f in ("pyproject.toml", "setup.py")):
            copy = Path(tempfile.mkdtemp(prefix="remedysweep-test-src-")) / Path(a).name
            shutil.copytree(a, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            copies.append(copy.parent)
            a = str(copy)
        given.append(a)
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", *isolation, *given],
            check=True, capture_output=True, text=True,
        )
    finally:
        for c in copies:
            shutil.rmtree(c, ignore_errors=True)


try:  # no .hypothesis/ folder in the user's checkout: no example database, its other files in a temporary folder
    from hypothesis import settings as _hypothesis_settings
    from hypothesis.configuration import set_hypothesis_home_dir

    _hypothesis_settings.register_profile("remedysweep", database=None)
    _hypothesis_settings.load_profile("remedysweep")
    HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="remedysweep-test-hypothesis-")
    set_hypothesis_home_dir(HYPOTHESIS_HOME)
except ImportError:
    HYPOTHESIS_HOME = None


def pytest_configure(config):
    """Install the example plugin package (tests/plugin_example) into a temporary
    folder put on the path of this process and of every process it starts, so
    that the contract suite covers it like any installed remedy; the folder is
    removed at the end, and the user's environment never sees it. It is
    installed once, by the first pytest process: xdist's workers inherit the
    folder through the environment."""
    site = os.environ.get("REMEDYSWEEP_TEST_SITE", "")
    if site and Path(site).is_dir():
        config._remedysweep_site = None  # the controller's: it removes it
    else:
        site = tempfile.mkdtemp(prefix="remedysweep-test-site-")
        pip_install("--target", site, str(EXAMPLE_PLUGIN))
        os.environ["REMEDYSWEEP_TEST_SITE"] = site
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH", "")]))
        config._remedysweep_site = site
    if site not in sys.path:
        sys.path.insert(0, site)
    importlib.invalidate_caches()


def pytest_unconfigure(config):
    if _FORK_SERVER is not None:
        _FORK_SERVER.close()
    site = getattr(config, "_remedysweep_site", None)
    if site:
        shutil.rmtree(site, ignore_errors=True)
    if HYPOTHESIS_HOME:
        shutil.rmtree(HYPOTHESIS_HOME, ignore_errors=True)


# ----------------------------------------------------------------------------
# A real PostgreSQL server
# ----------------------------------------------------------------------------

PASSWORD = "s3cr3t-pw"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail("PostgreSQL is not installed; .ci/run should have installed Debian's postgresql")
        pytest.skip("PostgreSQL server binaries not installed")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres() -> tuple[str, "object"]:
    """A throwaway PostgreSQL server on a free loopback port: (URL, stop)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="remedysweep-pg-"))  # /tmp: reachable by the postgres user
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        for p in (root, sock):
            shutil.chown(p, "postgres")
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD)
    if as_user:
        shutil.chown(pwfile, "postgres")
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "rs", "--auth=scram-sha-256", f"--pwfile={pwfile}"], check=True, capture_output=True)
    port = _free_port()
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"),
         "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=50", "start"],
        check=True, capture_output=True,
    )

    def stop() -> None:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)

    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="rs", password=PASSWORD, dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE sweeps")
    except BaseException:
        stop()
        shutil.rmtree(root, ignore_errors=True)
        raise

    def stop_and_remove() -> None:
        stop()
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql://rs:{PASSWORD}@127.0.0.1:{port}/sweeps", (stop, stop_and_remove)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A throwaway PostgreSQL server for the whole session."""
    url, (_, remove) = start_postgres()
    try:
        yield url
    finally:
        remove()


@pytest.fixture
def postgres_server():
    """A PostgreSQL server of this test's own: (URL, stop), to stop it mid-test."""
    url, (stop, remove) = start_postgres()
    try:
        yield url, stop
    finally:
        remove()
