"""The command line end to end on a tiny sweep: real training, a real journal
storage, the run folder, resume and refusal of a different sweep; a user's own
model and data files in a sweep file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest

from conftest import HERE, built_once, cli, copy_of, write_sweep

REQUIRED = ["seed", "outcome", "peak_val_accuracy", "final_val_accuracy", "chance", "epochs_run", "train_seconds", "path", "symptoms"]


def _finish_a_tiny_run(folder: Path) -> None:
    sweep = write_sweep(folder)
    out = folder / "run"
    r = cli("run", str(sweep), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "4/4 runs" in r.stdout
    found = json.loads((out / "findings.json").read_text())
    assert found["answer"] and f"finding: {found['answer']}" in r.stdout  # the answer in the terminal too


@pytest.fixture
def finished_run(tmp_path_factory, tmp_path) -> Path:
    """A finished tiny run (its sweep file beside it), built once per session, copied per test."""
    return copy_of(built_once(tmp_path_factory, "finished-run", _finish_a_tiny_run), tmp_path / "e2e") / "run"


def test_run_folder_contents(finished_run: Path):
    for name in ("study.journal", "trials.csv", "curves.csv", "early_probes.csv", "report.html", "findings.json", "sweep.json", "run.json"):
        assert (finished_run / name).is_file(), name
    t = pd.read_csv(finished_run / "trials.csv")
    assert list(t.columns[2:3]) == ["loss"] and all(c in t for c in REQUIRED)
    assert len(t) == 4 and sorted(t["seed"]) == [0, 0, 1, 1] and set(t["loss"]) == {"unfused", "fused_logits"}
    assert (t["epochs_run"] == 3).all() and (t["train_seconds"] > 0).all() and (t["chance"] == 0.25).all()
    c = pd.read_csv(finished_run / "curves.csv")
    assert len(c) == 12 and {"logit_abs_mean", "logit_spread", "dead_fraction", "grad_norm", "weight_norm", "probe_fused_ce"} <= set(c.columns)


def test_study_is_a_standard_optuna_study(finished_run: Path):
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(JournalFileBackend(str(finished_run / "study.journal"))))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and {t.params["loss"] for t in done} == {"unfused", "fused_logits"}
    assert all("remedysweep:result" in t.user_attrs for t in done)


def test_report_regenerates_and_loads_nothing(finished_run: Path):
    (finished_run / "report.html").unlink()
    r = cli("report", str(finished_run))
    assert r.returncode == 0, r.stderr
    html = (finished_run / "report.html").read_text()
    assert "Loss formulation" in html and "fused_logits" in html and "<svg" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report must not load anything"


def test_rerun_resumes_without_running_anything_again(finished_run: Path):
    r = cli("run", str(finished_run.parent / "tiny.toml"), "--out", str(finished_run), "--no-report")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and "4/4 runs" in r.stdout
    assert len(pd.read_csv(finished_run / "trials.csv")) == 4


def test_a_different_sweep_in_the_same_folder_is_refused(finished_run: Path, tmp_path: Path):
    other = write_sweep(tmp_path, epochs=4)
    before = {p.name: p.stat().st_mtime for p in finished_run.iterdir()}
    r = cli("run", str(other), "--out", str(finished_run))
    assert r.returncode == 2 and "--force" in r.stderr
    assert "training.epochs: 3 -> 4" in r.stderr and "seeds" not in r.stderr and "knobs" not in r.stderr  # only what changed
    assert {p.name: p.stat().st_mtime for p in finished_run.iterdir()} == before


def test_two_sweeps_never_share_a_study_by_accident(tmp_path: Path):
    db = tmp_path / "shared.db"
    (tmp_path / "a").mkdir()
    r = cli("run", str(write_sweep(tmp_path / "a", name="same", epochs=2)), "--out", str(tmp_path / "ra"), "--storage", f"sqlite:///{db}", "--no-report")
    assert r.returncode == 0, r.stderr
    (tmp_path / "b").mkdir()
    r = cli("run", str(write_sweep(tmp_path / "b", name="same", epochs=3)), "--out", str(tmp_path / "rb"), "--storage", f"sqlite:///{db}", "--no-report")
    assert r.returncode == 2 and "already has a study 'same'" in r.stderr
    assert not (tmp_path / "rb").exists()


def test_remedies_lists_every_builtin():
    r = cli("remedies")
    assert r.returncode == 0 and not r.stderr.strip()
    for name in ("loss", "learning_rate", "optimizer", "activation", "normalization", "regularizer", "width", "grad_clip",
                 "lr_schedule", "label_smoothing", "initializer", "batch_size", "input_scaling"):
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name
    assert "built-in" in r.stdout


def test_a_sweep_of_the_users_own_model_and_data_files(tmp_path: Path):
    """The README's example: the user's model file (a loss written by hand and
    registered nowhere) and data file, the loss formulation swept over their
    model at their learning rate, reproduces the quick sweep's contrast: the
    written-out loss collapses, the fused one does not (Fisher's exact test)."""
    from remedysweep.reports.analysis import fisher

    example = HERE.parent / "sweeps" / "my_model.toml"
    for name in ("my_model.toml", "my_models.py", "my_data.py"):
        shutil.copy(HERE.parent / "sweeps" / name, tmp_path / name)
    text = (tmp_path / "my_model.toml").read_text()
    text = re.sub(r"seeds = \[[^\]]*\]", "seeds = [" + ", ".join(map(str, range(12))) + "]", text)
    text = re.sub(r"learning_rate = \[[^\]]*\]", "learning_rate = [0.015]", text)
    (tmp_path / "my_model.toml").write_text(text)
    assert example.exists()
    out = tmp_path / "run"
    r = cli("run", str(tmp_path / "my_model.toml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    assert set(t["loss"]) == {"unfused", "fused_logits"} and (t["outcome"] != "failed").all(), t["message"].tolist()
    collapsed = {loss: int((g["outcome"] == "collapsed").sum()) for loss, g in t.groupby("loss")}
    assert collapsed["fused_logits"] == 0 and fisher(collapsed["unfused"], 12, collapsed["fused_logits"], 12) < 0.05, collapsed
    assert (t["path"] == "stacked").all()  # the user's MLP is a Dense chain: packed like the built-in one


def test_the_progress_line_moves_while_packs_train(tmp_path: Path):
    """Packed runs reach the queue only when their pack ends: the progress line
    counts the epochs the workers' runs in flight have trained, so it moves (and
    its time left is an estimate) before the first pack ends."""
    import io
    import os

    from remedysweep.engine.worker import ProgressFile
    from remedysweep.sweep import Progress, _in_flight

    sink = ProgressFile(str(tmp_path), every=0.0)
    sink(1, 0.5)
    sink(2, 0.25)
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["in_flight"] == 0.75
    (tmp_path / "999999999.json").write_text(json.dumps({"pid": 999999999, "in_flight": 3.0}))  # a worker that died
    assert _in_flight(str(tmp_path)) == 0.75
    sink(1, None)  # run 1 finished: it is counted by the queue from now on
    assert _in_flight(str(tmp_path)) == 0.25

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    bar = Progress(8, stream=out)
    bar.update({"done": 0, "outcomes": {}, "running": 4}, 0.0)
    bar.update({"done": 0, "outcomes": {}, "running": 4}, 0.5)
    assert "left" not in out.getvalue().split("\r\x1b[2K")[-1]  # half a run's epochs, the first ones with tracing: no estimate yet
    bar.start -= 30  # thirty seconds later, half of four runs' epochs are trained
    bar.update({"done": 0, "outcomes": {}, "running": 4}, 2.0)
    last = out.getvalue().split("\r\x1b[2K")[-1]
    assert "0/8 runs (+2.0 in flight)" in last and "1:30 left" in last, last  # 2 runs in 30 s: 6 to go
    assert last.startswith("[######" + "." * 18 + "]"), last
