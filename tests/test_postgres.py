"""Many machines: a real PostgreSQL server, two worker processes, exactly-once;
credentials never printed or written."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import IN_CI, cli, write_sweep

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


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory) -> str:
    """Start a throwaway PostgreSQL server on a free loopback port."""
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
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="rs", password=PASSWORD, dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE sweeps")
        yield f"postgresql://rs:{PASSWORD}@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_postgresql_run_each_run_exactly_once(postgres_url: str, tmp_path: Path):
    sweep = write_sweep(tmp_path, name="pg_sweep", epochs=3)
    sweep.write_text(sweep.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace("width = [16]", "width = [8, 16]"))
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--storage", postgres_url, "--out", str(out), "--queue-only")
    assert r.returncode == 0, r.stderr
    assert "queued: 12 runs" in r.stdout
    workers = [
        subprocess.Popen([sys.executable, "-m", "remedysweep.runner.cli", "worker", "--storage", postgres_url, "--study", "pg_sweep"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (so, se) in zip(workers, outputs):
        assert w.returncode == 0, se
    done = [int(so.split("worker finished: ")[1].split()[0]) for so, _ in outputs]
    assert sum(done) == 12 and all(n > 0 for n in done), done
    r = cli("report", str(out), "--storage", postgres_url)
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 12 and not t.duplicated(["config_id", "seed"]).any()
    # The study holds the definition: a worker needed nothing else. Credentials
    # appear nowhere a user reads.
    texts = [r.stdout, r.stderr, *(so + se for so, se in outputs)]
    texts += [p.read_text() for p in out.iterdir() if p.suffix in (".json", ".csv", ".html")]
    assert not any(PASSWORD in t for t in texts)


def test_bad_postgres_credentials_are_a_one_line_error_without_the_password(postgres_url: str, tmp_path: Path):
    sweep = write_sweep(tmp_path, name="pg_bad")
    wrong = postgres_url.replace(PASSWORD, "wrong-pw-123")
    r = cli("run", str(sweep), "--storage", wrong, "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    assert "wrong-pw-123" not in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
