"""The run queue's contract, the same on the journal file, SQLite and a real
PostgreSQL: queueing keyed by run identity (twice queues nothing), exactly one
claim per run under concurrent workers, release, stale detection, counts of
runs not trials. And the journal check: a torn last record is cut back, damage
elsewhere is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep, run_key
from remedysweep.engine.queue import RunQueue, StorageSpec, check_journal, parse_storage, redact_url
from remedysweep.engine.result import RunOutcome, RunResult
from remedysweep.errors import RunError

SWEEP = make_sweep("contract_q", model=ModelSpec(kind="mlp"), data=DataSpec(dataset="blobs"),
                   knobs={"loss": ("unfused", "fused_logits"), "learning_rate": (0.01, 0.1)}, seeds=(0, 1, 2))


@pytest.fixture(params=["journal", "sqlite", "postgresql"])
def spec(request, tmp_path) -> StorageSpec:
    if request.param == "journal":
        return StorageSpec.journal(tmp_path / "q.journal")
    if request.param == "sqlite":
        return parse_storage(f"sqlite:///{tmp_path / 'q.db'}")
    url = request.getfixturevalue("postgres_url")
    name = f"q{os.getpid()}_{abs(hash(str(tmp_path))) % 10**6}"
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return parse_storage(url.rsplit("/", 1)[0] + "/" + name)


CLAIMER = """
import json, sys
from remedysweep.engine.queue import RunQueue, StorageSpec
q = RunQueue.open(StorageSpec(sys.argv[1]), "contract_q")
got = []
while True:
    claims = q.claim()
    if not claims:
        break
    got += [c.key for c in claims]
print(json.dumps(got))
"""

QUEUER = """
import sys
from remedysweep.engine.queue import RunQueue, StorageSpec
q = RunQueue.open(StorageSpec(sys.argv[1]), "contract_q")
print(q.reconcile(lambda knobs: "pack"))
"""


def _processes(script: str, spec: StorageSpec, n: int) -> list[str]:
    procs = [subprocess.Popen([sys.executable, "-c", script, spec.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return [o for o, _ in outs]


def test_queueing_is_keyed_by_run_identity_even_when_two_coordinators_race(spec):
    RunQueue.create(spec, SWEEP, "test")
    added = [int(o) for o in _processes(QUEUER, spec, 2)]
    assert sorted(added) == [0, 12]  # one coordinator queued every run, the other nothing
    q = RunQueue.open(spec, "contract_q")
    assert q.reconcile() == 0 and q.progress()["waiting"] == 12


def test_each_run_is_claimed_exactly_once_by_concurrent_workers(spec):
    q = RunQueue.create(spec, SWEEP, "test")
    q.reconcile()
    claimed = [k for o in _processes(CLAIMER, spec, 3) for k in json.loads(o)]
    assert len(claimed) == 12 and len(set(claimed)) == 12
    assert q.claim() == [] and q.progress()["running"] == 12


def test_release_stale_save_and_counts_of_runs_not_trials(spec):
    q = RunQueue.create(spec, SWEEP, "test")
    q.reconcile(lambda knobs: "p")
    pack = q.claim(pack_limit=4)
    assert len(pack) == 4 and len({c.pack for c in pack}) == 1
    q.release(pack[:2])
    assert q.reconcile() == 2  # released runs are queued again
    result = RunResult(RunOutcome.HEALTHY, 0.9, 0.9, 3, 1.0, 0.25)
    for c in pack[2:]:
        q.register_params(c)
        assert q.save(c, result, [0.9])
    assert q.progress()["done"] == 2
    q.record(pack[2].knobs, pack[2].seed, result)  # the same run stored twice still counts once
    assert q.progress()["done"] == 2 and len(q.results()) == 2
    # a claim by a process that no longer exists is stale: failed and queued again
    dead = subprocess.run([sys.executable, "-c", CLAIMER.replace("while True", "for _ in range(1)"), spec.url], capture_output=True, text=True)
    (key,) = json.loads(dead.stdout)
    assert key in q.fail_stale()
    assert run_key(*_knobs_seed(key, q)) == key and q.progress()["waiting"] >= 1


def _knobs_seed(key, q):
    for knobs, seed in q.expected_runs():
        if run_key(knobs, seed) == key:
            return knobs, seed
    raise AssertionError(key)


# ----------------------------------------------------------------------------
# The journal file
# ----------------------------------------------------------------------------


def _journal_with_runs(tmp_path: Path) -> Path:
    spec = StorageSpec.journal(tmp_path / "study.journal")
    q = RunQueue.create(spec, SWEEP, "test")
    q.reconcile()
    q.record({"loss": "unfused", "learning_rate": 0.01}, 0, RunResult(RunOutcome.HEALTHY, 0.9, 0.9, 3, 1.0, 0.25))
    return spec.journal_path


def test_a_torn_last_record_is_cut_back_and_the_study_opens(tmp_path):
    path = _journal_with_runs(tmp_path)
    whole = path.read_bytes()
    with open(path, "r+b") as fh:
        fh.truncate(len(whole) - 60)  # what a power loss leaves
    notice = check_journal(path)
    assert notice and "torn last record" in notice
    assert path.read_bytes().endswith(b"\n") and whole.startswith(path.read_bytes())
    assert RunQueue.open(StorageSpec.journal(path), "contract_q").progress()["waiting"] >= 1
    assert check_journal(path) is None


@pytest.mark.parametrize("damage", [b"this is not json\n", b"\xff\xfe\x00garbage\n", b'{"no_op_code": 1}\n'])
def test_damage_inside_the_journal_is_one_line_and_nothing_is_appended(tmp_path, damage):
    path = _journal_with_runs(tmp_path)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:3]) + b"\n" + damage + b"\n".join(lines[3:]))
    before = path.read_bytes()
    with pytest.raises(RunError, match=r"line 4 of \d+ is damaged") as exc:
        check_journal(path)
    assert "\n" not in str(exc.value) and "trials.csv" in str(exc.value)
    assert path.read_bytes() == before


def test_redaction_parses_urls_as_sqlalchemy_does():
    assert redact_url("postgresql://u:pa/s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert "zz" not in redact_url("postgresql://u@h/db?password=zz&sslmode=require")
    assert "sslmode=require" in redact_url("postgresql://u@h/db?password=zz&sslmode=require")
    assert "zq9" not in redact_url("sqlite:///x.db?auth_token=zq9")
