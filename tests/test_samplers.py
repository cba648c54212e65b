"""Beyond grids: random/TPE over ranges with a budget, every configuration over
every seed, a collapse-aware and a multi-objective study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
from optuna.storages.journal import JournalFileBackend

from conftest import cli

SWEEP = """name = "{name}"
seeds = [0, 1]
[data]
dataset = "blobs"
n_classes = 4
n_features = 8
n_samples = 240
[model]
kind = "mlp"
depth = 1
[training]
epochs = 2
[outcome]
window = 2
[early_stop]
patience = 2
[knobs]
loss = ["unfused", "fused_logits"]
learning_rate = {{ low = 0.0001, high = 0.1, log = true }}
width = {{ low = 4, high = 64, log = true }}
[sampler]
kind = "{kind}"
n_configs = 5
objective = "{objective}"
"""


def run(tmp_path: Path, kind: str, objective: str, workers: int) -> tuple[pd.DataFrame, optuna.Study, Path]:
    path = tmp_path / f"{kind}.toml"
    path.write_text(SWEEP.format(name=kind, kind=kind, objective=objective))
    out = tmp_path / "run"
    r = cli("run", str(path), "--out", str(out), "--workers", str(workers))
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name=kind, storage=optuna.storages.JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    return pd.read_csv(out / "trials.csv"), study, out


def test_tpe_with_two_workers_draws_distinct_configurations_over_every_seed(tmp_path: Path):
    t, study, out = run(tmp_path, "tpe", "accuracy_vs_time", workers=2)
    assert len(t) == 10 and t["config_id"].nunique() == 5
    assert not t.duplicated(["config_id", "seed"]).any()
    assert all(sorted(g["seed"]) == [0, 1] for _, g in t.groupby("config_id"))
    assert ((t["learning_rate"] >= 1e-4) & (t["learning_rate"] <= 0.1)).all()
    assert ((t["width"] >= 4) & (t["width"] <= 64)).all() and (t["width"] == t["width"].round()).all()
    assert len(study.directions) == 2
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert all(len(tr.values) == 2 for tr in done) and study.best_trials
    html = (out / "report.html").read_text()
    assert "Pareto front" in html


def test_random_sampler_objective_scores_runs_at_chance_as_chance(tmp_path: Path):
    t, study, _ = run(tmp_path, "random", "accuracy", workers=1)
    assert len(t) == 10 and t["config_id"].nunique() == 5
    by_number = {tr.number: tr for tr in study.trials}
    for _, row in t.iterrows():
        value = by_number[row["trial_number"]].value
        if row["outcome"] in ("collapsed", "never_learned", "diverged"):
            assert value == 0.25  # chance for 4 classes, not the run's peak
        else:
            assert abs(value - row["final_val_accuracy"]) < 1e-9
