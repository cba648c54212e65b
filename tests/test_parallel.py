"""Workers as real processes: N local workers on the journal file, exactly-once,
a worker killed with SIGKILL, a whole sweep killed and resumed, Ctrl-C, and
faults inside runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages.journal import JournalFileBackend

from conftest import cli, write_sweep

PLUGINS = Path(__file__).parent / "plugins"


def journal_study(folder: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def assert_exactly_once(out: Path, n_configs: int, seeds: list[int]) -> pd.DataFrame:
    t = pd.read_csv(out / "trials.csv")
    assert not t.duplicated(["config_id", "seed"]).any(), "a run was counted twice"
    assert t["config_id"].nunique() == n_configs
    for _, g in t.groupby("config_id"):
        assert sorted(g["seed"]) == sorted(seeds), "a run is missing"
    return t


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "remedysweep", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) before that: {proc.stderr.read()[-2000:]}")
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def running_workers(out: Path, name: str) -> list[int]:
    try:
        study = journal_study(out, name)
    except Exception:
        return []
    return [
        t.system_attrs["remedysweep:worker"]["pid"]
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if "remedysweep:worker" in t.system_attrs
    ]


def held_sweep(folder: Path, name: str, seeds: str = "[0, 1]", hold: str = '["wait"]', extra: str = "learning_rate = [0.01, 0.05]\n") -> Path:
    """A tiny sweep whose runs with ``hold = "wait"`` block after their first
    epoch until :func:`release` (tests/plugins/hold.py): a worker is busy for as
    long as the test needs, without long training."""
    sweep = write_sweep(folder, name=name, epochs=3, training="pack = false")
    text = sweep.read_text().replace("seeds = [0, 1]", f"seeds = {seeds}") + extra + f"hold = {hold}\n"
    sweep.write_text(f'plugins = ["{PLUGINS / "hold.py"}"]\n' + text)
    return sweep


@pytest.fixture
def release(tmp_path: Path, monkeypatch):
    """Held runs wait until this is called (every process started after the
    fixture sees the release file's name)."""
    flag = tmp_path / "release-held-runs"
    monkeypatch.setenv("REMEDYSWEEP_TEST_RELEASE", str(flag))
    return lambda: flag.write_text("go")


def held_workers(folder: Path) -> set[int]:
    """The pids of the processes waiting in a held run (see :func:`release`)."""
    return {int(p.name.rsplit("-", 1)[1]) for p in folder.glob("release-held-runs.held-*")}


def test_four_local_workers_run_each_run_exactly_once(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="four", epochs=2, losses='["unfused", "keras_default", "fused_logits"]', training="pack = false")
    sweep.write_text(sweep.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3]"))
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--workers", "4", "--no-report")
    assert r.returncode == 0, r.stderr
    assert "locked" not in r.stderr.lower() and "Traceback" not in r.stderr
    assert_exactly_once(out, 3, [0, 1, 2, 3])
    pids = {t.system_attrs["remedysweep:worker"]["pid"] for t in journal_study(out, "four").trials}
    assert len(pids) >= 2, "the runs were not spread over several processes"


def test_sigkilled_worker_is_rerun_and_nothing_is_lost_or_doubled(tmp_path: Path, release):
    sweep = held_sweep(tmp_path, "killed")
    out = tmp_path / "run"
    proc = start("run", str(sweep), "--out", str(out), "--workers", "2", "--no-report", "--no-progress")
    victim = wait_for(lambda: running_workers(out, "killed"), proc=proc)[0]
    os.kill(victim, signal.SIGKILL)
    release()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    t = assert_exactly_once(out, 4, [0, 1])
    assert len(t) == 8
    study = journal_study(out, "killed")
    abandoned = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.FAIL and "remedysweep:result" not in tr.user_attrs]
    assert any(tr.system_attrs["remedysweep:worker"]["pid"] == victim for tr in abandoned)
    assert len(study.get_trials(states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING))) == 0


def test_killed_sweep_resumes_where_it_stopped(tmp_path: Path, release):
    sweep = held_sweep(tmp_path, "crash", hold='["go", "wait"]', extra="")  # the "go" runs finish, a "wait" run is held
    out = tmp_path / "run"
    proc = start("run", str(sweep), "--out", str(out), "--no-report", "--no-progress")

    def some_done_and_one_running():
        try:
            study = journal_study(out, "crash")
        except Exception:
            return False
        states = [t.state for t in study.get_trials(deepcopy=False)]
        return states.count(optuna.trial.TrialState.COMPLETE) >= 1 and optuna.trial.TrialState.RUNNING in states

    wait_for(some_done_and_one_running)
    os.killpg(proc.pid, signal.SIGKILL)  # the laptop crashes
    proc.wait(timeout=30)
    done_before = sum(t.state == optuna.trial.TrialState.COMPLETE for t in journal_study(out, "crash").trials)
    release()
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and "queued again" in r.stderr
    t = assert_exactly_once(out, 4, [0, 1])
    assert len(t) == 8 and done_before < 8


def test_ctrl_c_stops_cleanly_and_a_rerun_completes(tmp_path: Path, release):
    sweep = held_sweep(tmp_path, "sigint")
    out = tmp_path / "run"
    proc = start("run", str(sweep), "--out", str(out), "--workers", "2", "--no-progress")
    wait_for(lambda: len(held_workers(tmp_path)) >= 2, proc=proc)  # both workers wait inside a run
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "resume" in stderr
    study = journal_study(out, "sigint")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,)), "Ctrl-C left runs RUNNING"
    assert (out / "trials.csv").exists() and (out / "report.html").exists()
    release()
    r = cli("run", str(sweep), "--out", str(out), "--no-report")
    assert r.returncode == 0, r.stderr
    assert_exactly_once(out, 4, [0, 1])


def test_faults_inside_runs_are_recorded_and_the_sweep_goes_on(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="faults", epochs=3, losses='["fused_logits"]')  # one run per fault: one killed worker
    text = sweep.read_text().replace("seeds = [0, 1]", "seeds = [0]") + 'fault = ["none", "raise", "nan_weights", "kill"]\n'
    sweep.write_text(f'plugins = ["{PLUGINS / "faults.py"}"]\n' + text)
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    t = assert_exactly_once(out, 4, [0])
    by = {f: g for f, g in t.groupby("fault")}
    assert set(by["raise"]["outcome"]) == {"failed"}
    assert by["raise"]["message"].str.contains("injected fault <in> the model").all()
    assert set(by["nan_weights"]["outcome"]) == {"diverged"} and set(by["nan_weights"]["first_nonfinite_epoch"]) == {2}
    assert set(by["kill"]["outcome"]) == {"failed"} and by["kill"]["message"].str.contains("killed").all()
    assert not by["none"]["outcome"].isin(["failed", "diverged"]).any()
    html = (out / "report.html").read_text()
    assert "injected fault &lt;in&gt; the model" in html and "<in>" not in html


def test_sigterm_and_sighup_stop_the_workers_and_release_their_runs(tmp_path: Path, release):
    """SIGTERM to the coordinator alone (as a service manager sends it): the
    workers stop, their runs go back to the queue, the results so far are
    exported, exit 143; no worker trains on as an orphan."""
    seen: set[int] = set()
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        name = f"term{int(sig)}"
        sweep = held_sweep(tmp_path, name, seeds="[0, 1, 2]")
        out = tmp_path / f"run_{name}"
        proc = start("run", str(sweep), "--out", str(out), "--workers", "2", "--no-progress")
        wait_for(lambda: len(held_workers(tmp_path) - seen) >= 2, proc=proc)  # both workers wait inside a run: the coordinator is idle
        seen |= held_workers(tmp_path)
        workers = running_workers(out, name)
        os.kill(proc.pid, sig)  # the coordinator only, not its process group
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == code, stderr
        assert "Traceback" not in stderr and "resume" in stderr
        time.sleep(1.0)
        for pid in workers:
            alive = os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] != "Z"
            assert not alive, f"worker {pid} kept running after the coordinator stopped"
        study = journal_study(out, name)
        assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,)), "runs were left RUNNING"
        assert (out / "trials.csv").exists() and (out / "report.html").exists()
