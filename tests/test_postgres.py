"""Many machines: a real PostgreSQL server, two worker processes, exactly-once;
two coordinators queue nothing twice; credentials never printed or written, in
any form of URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import PASSWORD, cli, write_sweep


def _sweep(tmp_path: Path, name: str) -> Path:
    sweep = write_sweep(tmp_path, name=name, epochs=3, extra="learning_rate = [0.01, 0.05]\n")
    sweep.write_text(sweep.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    return sweep


def test_two_workers_on_postgresql_run_each_run_exactly_once(postgres_url: str, tmp_path: Path):
    sweep = _sweep(tmp_path, "pg_sweep")
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--storage", postgres_url, "--out", str(out), "--queue-only", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "queued: 12 new runs" in r.stdout
    again = cli("run", str(sweep), "--storage", postgres_url, "--out", str(tmp_path / "run2"), "--queue-only")
    assert again.returncode == 0 and "queued: 0 new runs" in again.stdout, again.stdout + again.stderr
    workers = [subprocess.Popen([sys.executable, "-m", "remedysweep", "worker", "--storage", postgres_url, "--study", "pg_sweep"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (so, se) in zip(workers, outputs):
        assert w.returncode == 0, se
    done = [int(so.split("worker finished: ")[1].split()[0]) for so, _ in outputs]
    assert sum(done) == 12 and all(n > 0 for n in done), done
    r = cli("report", str(out), "--storage", postgres_url)
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 12 and not t.duplicated(["config_id", "seed"]).any()
    texts = [r.stdout, r.stderr, again.stdout, again.stderr, *(so + se for so, se in outputs)]
    texts += [p.read_text() for p in out.iterdir() if p.suffix in (".json", ".csv", ".html")]
    assert not any(PASSWORD in t for t in texts)


def test_passwords_in_every_url_form_stay_secret(postgres_url: str, tmp_path: Path):
    """A '/' in the password (which SQLAlchemy accepts), the ?password= form, and
    a secret in a SQLite URL: never on the console, never in run.json."""
    import psycopg

    host = postgres_url.split("@")[1]
    with psycopg.connect(postgres_url.replace("/sweeps", "/postgres"), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS slashy")
        conn.execute("CREATE ROLE slashy LOGIN SUPERUSER PASSWORD 'pa/s3cret'")
    forms = {
        "slash": f"postgresql://slashy:pa/s3cret@{host}",
        "query": f"postgresql://slashy@{host}?password=pa/s3cret",
    }
    for label, url in forms.items():
        sweep = _sweep(tmp_path, f"pw_{label}")
        out = tmp_path / f"run_{label}"
        r = cli("run", str(sweep), "--storage", url, "--out", str(out), "--queue-only")
        assert r.returncode == 0, r.stderr
        assert "s3cret" not in r.stdout + r.stderr
        assert "s3cret" not in (out / "run.json").read_text() and "***" in (out / "run.json").read_text()
        wrong = url.replace("pa/s3cret", "wr/0ng-pw")
        r = cli("run", str(sweep), "--storage", wrong, "--out", str(tmp_path / f"bad_{label}"))
        assert r.returncode == 2 and "0ng-pw" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    sweep = _sweep(tmp_path, "pw_sqlite")
    out = tmp_path / "run_sqlite"
    r = cli("run", str(sweep), "--storage", f"sqlite:///{tmp_path / 'x.db'}?password=s3cret", "--out", str(out), "--queue-only")
    assert "s3cret" not in r.stdout + r.stderr + (out / "run.json").read_text() if out.exists() else True
