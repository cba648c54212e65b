"""The command line end to end on a tiny sweep: real training, a real journal
storage, the run folder, resume and refusal of a different sweep."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from conftest import cli, write_sweep

KNOB_COLUMNS = ["loss", "width"]
REQUIRED = ["seed", "outcome", "peak_val_accuracy", "final_val_accuracy", "epochs_run", "train_seconds"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("e2e")
    sweep = write_sweep(folder)
    out = folder / "run"
    r = cli("run", str(sweep), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "4/4 runs" in r.stdout
    return out


def test_run_folder_contents(finished_run: Path):
    for name in ("study.journal", "trials.csv", "curves.csv", "early_probes.csv", "report.html", "sweep.json", "run.json"):
        assert (finished_run / name).is_file(), name
    t = pd.read_csv(finished_run / "trials.csv")
    assert list(t.columns[2:4]) == KNOB_COLUMNS and all(c in t for c in REQUIRED)
    assert len(t) == 4 and sorted(t["seed"]) == [0, 0, 1, 1]
    assert set(t["loss"]) == {"unfused", "fused_logits"}
    assert t["outcome"].isin(["healthy", "collapsed", "never_learned", "diverged", "degraded", "failed"]).all()
    assert (t["epochs_run"] == 3).all() and (t["train_seconds"] > 0).all()
    c = pd.read_csv(finished_run / "curves.csv")
    assert len(c) == 12 and {"logit_abs_mean", "logit_spread", "dead_fraction", "grad_norm", "weight_norm"} <= set(c.columns)


def test_study_is_a_standard_optuna_study(finished_run: Path):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(finished_run / "study.journal")))
    study = optuna.load_study(study_name="tiny", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    assert {t.params["loss"] for t in done} == {"unfused", "fused_logits"}
    assert all("remedysweep:result" in t.user_attrs for t in done)


def test_report_regenerates_and_shows_the_contrast(finished_run: Path):
    (finished_run / "report.html").unlink()
    r = cli("report", str(finished_run))
    assert r.returncode == 0, r.stderr
    html = (finished_run / "report.html").read_text()
    assert "Loss formulation" in html and "fused_logits" in html and "unfused" in html
    assert "<svg" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report must not load anything"


def test_rerun_resumes_without_running_anything_again(finished_run: Path):
    sweep = finished_run.parent / "tiny.toml"
    r = cli("run", str(sweep), "--out", str(finished_run), "--no-report")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and "4/4 runs" in r.stdout
    assert len(pd.read_csv(finished_run / "trials.csv")) == 4


def test_a_different_sweep_in_the_same_folder_is_refused(finished_run: Path, tmp_path: Path):
    other = write_sweep(tmp_path, epochs=4)
    before = {p.name: p.stat().st_mtime for p in finished_run.iterdir()}
    r = cli("run", str(other), "--out", str(finished_run))
    assert r.returncode == 2
    assert "training.epochs: 3 -> 4" in r.stderr and "--force" in r.stderr
    assert {p.name: p.stat().st_mtime for p in finished_run.iterdir()} == before


def test_two_sweeps_never_share_a_study_by_accident(tmp_path: Path):
    db = tmp_path / "shared.db"
    (tmp_path / "a").mkdir()
    a = write_sweep(tmp_path / "a", name="same", epochs=2)
    r = cli("run", str(a), "--out", str(tmp_path / "ra"), "--storage", f"sqlite:///{db}", "--no-report")
    assert r.returncode == 0, r.stderr
    (tmp_path / "b").mkdir()
    b = write_sweep(tmp_path / "b", name="same", epochs=3)
    r = cli("run", str(b), "--out", str(tmp_path / "rb"), "--storage", f"sqlite:///{db}", "--no-report")
    assert r.returncode == 2 and "already has a study 'same'" in r.stderr
    assert not (tmp_path / "rb").exists()


def test_remedies_lists_every_builtin():
    r = cli("remedies")
    assert r.returncode == 0
    for name in ("loss", "learning_rate", "optimizer", "activation", "normalization", "regularizer", "width",
                 "grad_clip", "lr_schedule", "label_smoothing", "initializer", "batch_size"):
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name
    assert "built-in" in r.stdout
