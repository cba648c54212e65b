"""Packed training: a packed slice is the same experiment as the run trained
alone through Keras; what the packed trainer does not handle takes the Keras
path and says why; a packed sweep runs each run once."""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd

from conftest import cli, write_sweep
from remedysweep.engine.runtime import configure_tensorflow

configure_tensorflow()

from remedysweep.engine.build import Setup  # noqa: E402
from remedysweep.engine.config import DataSpec, ModelSpec, build_plan, make_sweep  # noqa: E402
from remedysweep.engine.keras_trainer import run_alone  # noqa: E402
from remedysweep.engine.trainers import pack_key, train_batch  # noqa: E402

SWEEP = make_sweep("packed", model=ModelSpec(kind="mlp", width=48, activation="leaky_relu"),
                   data=DataSpec(dataset="blobs", n_classes=4, n_features=8, n_samples=300, cluster_std=2.0), epochs=3, early_probes=3, probe_size=32)
SETUP = Setup.load(SWEEP)


def test_outcome_rates_of_both_paths_agree_on_the_quick_grid():
    """The quick sweep's grid (loss x learning rate, its MLP and data) at a
    smaller width and fewer epochs, both ways over six seeds."""
    from scipy.stats import fisher_exact

    sweep = make_sweep("agree", model=ModelSpec(kind="mlp", width=256, activation="leaky_relu"), data=DataSpec(dataset="digits"), epochs=8)
    setup = Setup.load(sweep)
    runs = [({"loss": l, "learning_rate": lr}, s) for l in ("unfused", "fused_logits") for lr in (0.002, 0.03) for s in range(6)]
    packed = train_batch(setup, runs)
    alone = [run_alone(setup, k, s) for k, s in runs]
    assert {r.path for r in packed} == {"stacked"} and {r.path for r in alone} == {"keras"}
    count = lambda res, pred: collections.Counter((k["loss"], k["learning_rate"]) for (k, _), r in zip(runs, res) if pred(r))
    for pred in (lambda r: r.outcome.at_chance, lambda r: r.outcome.value == "healthy"):
        a, b = count(packed, pred), count(alone, pred)
        for cell in {(k["loss"], k["learning_rate"]) for k, _ in runs}:
            p = fisher_exact([[a[cell], 6 - a[cell]], [b[cell], 6 - b[cell]]]).pvalue
            assert p > 0.05, (cell, a[cell], b[cell])
    assert count(packed, lambda r: r.outcome.value != "healthy")[("unfused", 0.03)] >= 3  # the grid does show the problem
    same = sum(p.outcome is a.outcome for p, a in zip(packed, alone))
    assert same >= 0.8 * len(runs), same


def test_what_the_stacked_trainer_does_not_handle_goes_to_a_graph_pack_and_says_why():
    """Norm clipping, dropout, batch norm and schedules are not stacked: those
    runs train in a graph pack instead (still packed), and a plugin's callbacks
    keep a run on the Keras path, saying why."""
    from remedysweep.engine.packed import stack_problem

    reasons = {}
    for knobs in ({"grad_clip": "global_norm_1"}, {"regularizer": "dropout"}, {"normalization": "batchnorm"}, {"lr_schedule": "warmup"}):
        plan = build_plan(knobs, SETUP.registry)
        key, why = pack_key(plan, knobs, SETUP.registry)
        assert key is not None and why == "", knobs
        reasons[next(iter(knobs))] = stack_problem(plan, knobs, SETUP.registry)
    assert "global_clipnorm" in reasons["grad_clip"] and "dropout" in reasons["regularizer"]
    assert "normalization" in reasons["normalization"] and "learning_rate_schedule" in reasons["lr_schedule"]
    runs = [({"grad_clip": "global_norm_1"}, 0), ({"normalization": "batchnorm"}, 1), ({"loss": "fused_logits"}, 2)]
    results = train_batch(SETUP, runs)
    assert [r.path for r in results] == ["graph", "graph", "stacked"] and [r.pack_size for r in results] == [2, 2, 1]


def test_packed_sweep_runs_each_run_once_and_says_which_path(tmp_path):
    sweep = write_sweep(tmp_path, name="packsweep", epochs=3, extra='grad_clip = ["none", "global_norm_1"]\nlearning_rate = [0.01, 0.05]\n')
    sweep.write_text(sweep.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--workers", "2", "--no-report")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    assert len(t) == 24 and not t.duplicated(["config_id", "seed"]).any()
    packed = t[t["grad_clip"] == "none"]
    assert (packed["path"] == "stacked").all() and packed["pack_size"].max() >= 4
    clipped = t[t["grad_clip"] == "global_norm_1"]  # not stacked (norm clipping mixes slices): a graph pack
    assert (clipped["path"] == "graph").all() and clipped["path_note"].isna().all()


def test_slices_that_stopped_leave_the_stacked_pack_and_the_others_train_on(monkeypatch):
    """Three of four slices diverge at once; the pack goes on with the one left
    (weights and optimizer state carried over), which still equals its run alone."""
    import dataclasses

    from remedysweep.engine import packed as packed_module

    made = []
    subset = packed_module.PackedTrainer._subset
    monkeypatch.setattr(packed_module, "COMPACT", "always")
    monkeypatch.setattr(packed_module.PackedTrainer, "_subset", lambda self, live: made.append(len(live)) or subset(self, live))
    sweep = dataclasses.replace(SWEEP, training=dataclasses.replace(SWEEP.training, epochs=6),
                                early_stop=dataclasses.replace(SWEEP.early_stop, enabled=True, patience=1))
    setup = Setup.load(sweep)
    runs = [({"optimizer": "momentum", "learning_rate": 50.0}, s) for s in (0, 1, 2)] + [({"optimizer": "momentum", "learning_rate": 0.01}, 3)]
    *bad, good = train_batch(setup, runs)
    assert made == [1], made  # one smaller pack, of the one slice left
    for r in bad:
        assert r.path == "stacked" and r.epochs_run < 6 and r.outcome.value in ("diverged", "collapsed", "never_learned"), (r.outcome, r.message)
    assert good.path == "stacked" and good.pack_size == 4 and good.epochs_run == 6
    alone = run_alone(setup, *runs[-1])
    for key in ("loss", "val_loss", "grad_norm", "weight_norm"):
        np.testing.assert_allclose(good.curves[key], alone.curves[key], rtol=2e-3, atol=1e-5, err_msg=key)
    assert good.outcome is alone.outcome
