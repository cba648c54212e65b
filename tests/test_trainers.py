"""The trainer contract, over every trainer: for each trainer and each kind of
model it takes, a slice of its pack is the same run trained alone by Keras's
``fit``: the same curves within a stated tolerance, the same in-epoch probes
and the same outcome. The Keras path, whose packs are of one run, is held to
the same comparison (its runs are reproducible from their seed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import shapes
from remedysweep.engine.runtime import configure_tensorflow

configure_tensorflow()

from remedysweep.engine.build import Setup  # noqa: E402
from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep  # noqa: E402
from remedysweep.engine.keras_trainer import run_alone  # noqa: E402
from remedysweep.engine.sources import check_problem  # noqa: E402
from remedysweep.engine.trainers import GRAPH, KERAS, STACKED, TRAINERS, train_batch  # noqa: E402

FILE = shapes.__file__


def mlp_setup() -> Setup:
    sweep = make_sweep("mlp", model=ModelSpec(kind="mlp", width=48, activation="leaky_relu"),
                       data=DataSpec(dataset="blobs", n_classes=4, n_features=8, n_samples=300, cluster_std=2.0), epochs=3, early_probes=3,
                       probe_size=32)
    return Setup.load(sweep)


def own_setup(builder: str, loader: str) -> Setup:
    sweep = make_sweep("own", model=ModelSpec(builder=f"{FILE}:{builder}"), data=DataSpec(loader=f"{FILE}:{loader}"),
                       epochs=3, early_probes=3, probe_size=64, seeds=(0,))
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    setup = Setup.load(sweep, data=check_problem(sweep))
    setup.base_info()
    return setup


# every difference a stacked pack holds per slice: loss, learning rate, regularizer, smoothing, activation, initializer, seed
MLP_RUNS = [({"loss": "unfused", "learning_rate": 0.05}, 0),
            ({"loss": "keras_default", "regularizer": "maxnorm", "learning_rate": 0.01}, 1),
            ({"loss": "fused_logits", "regularizer": "l2", "label_smoothing": 0.1, "activation": "tanh"}, 2),
            ({"loss": "fused_logits", "learning_rate": 0.003, "initializer": "he_normal"}, 0)]
# (model, data, configurations mixed in one pack): Conv, recurrent, embedding, normalization, dropout, two inputs
OWN = [
    ("conv2d_batchnorm", "digits_images", [{"optimizer": "sgd", "learning_rate": 0.05}, {"optimizer": "momentum", "learning_rate": 0.01},
                                           {"optimizer": "rmsprop"}, {"optimizer": "adam", "width": 16}, {"optimizer": "adamw", "dropout_rate": 0.5}]),
    ("conv1d_waves", "waves", [{}, {"width": 4, "learning_rate": 0.01}, {"loss": "fused_logits", "optimizer": "sgd", "learning_rate": 0.1}]),
    ("gru_tokens", "token_sequences", [{}, {"learning_rate": 0.01, "optimizer": "rmsprop"}]),
    ("lstm_tokens", "token_sequences", [{}, {"loss": "fused_logits", "learning_rate": 0.01}]),
    ("two_inputs_merged", "digits_two", [{}, {"activation": "relu", "width": 8}, {"regularizer": "dropout", "grad_clip": "global_norm_1"}]),
]
# trainer -> its tolerance on the curves (relative): the stacked trainer's batched matmuls add in another order
TOLERANCE = {"stacked": 2e-3, "graph": 1e-3, "keras": 1e-6}
CASES = [(STACKED, "mlp", None, MLP_RUNS), (GRAPH, "mlp", None, MLP_RUNS),
         *((GRAPH, b, l, [(k, s) for s, k in enumerate(configs)]) for b, l, configs in OWN),
         (KERAS, "conv1d_waves", "waves", [({}, 0), ({"width": 4, "learning_rate": 0.01}, 1)])]


def test_every_trainer_is_covered():
    assert {t.name for t, *_ in CASES} == {t.name for t in TRAINERS} == set(TOLERANCE)


@pytest.mark.parametrize("trainer, builder, loader, runs", CASES, ids=[f"{t.name}-{b}" for t, b, *_ in CASES])
def test_a_slice_is_the_run_trained_alone_by_fit(trainer, builder, loader, runs):
    setup = mlp_setup() if builder == "mlp" else own_setup(builder, loader)
    packed = train_batch(setup, runs, trainers=(trainer,))
    rtol = TOLERANCE[trainer.name]
    for (knobs, seed), p in zip(runs, packed):
        assert p.path == trainer.name and p.pack_size == (len(runs) if trainer.packs else 0), (knobs, p.path_note, p.message)
        alone = run_alone(setup, knobs, seed)
        assert alone.path == "keras", alone.message
        for key in ("loss", "val_loss", "logit_abs_mean", "grad_norm", "weight_norm", "dead_fraction"):
            np.testing.assert_allclose(p.curves[key], alone.curves[key], rtol=rtol, atol=1e-5, err_msg=f"{trainer.name} {builder} {knobs} {key}")
        # accuracies: within one sample
        np.testing.assert_allclose(p.curves["accuracy"], alone.curves["accuracy"], atol=1.5 / setup.data.n_train)
        np.testing.assert_allclose(p.curves["val_accuracy"], alone.curves["val_accuracy"], atol=1.5 / len(setup.data.y_val))
        probe_size = setup.sweep.training.probe_size
        assert [a for _, a in p.early_probes] == pytest.approx([a for _, a in alone.early_probes], abs=1.5 / probe_size)
        assert p.outcome is alone.outcome


@pytest.mark.parametrize("trainer", [STACKED, GRAPH, KERAS], ids=["stacked", "graph", "keras"])
def test_a_hopeless_configuration_stops_first_when_others_have_risen(trainer):
    """Doctor's search rounds: SGD at 1e-5 is still at chance after a third of
    the epochs (2 of 6) while Adam has risen, so its runs stop there; runs of one
    configuration never stop each other, and without peers nothing stops."""
    from remedysweep.engine.recorder import Peers

    setup = Setup.load(make_sweep("peers", model=ModelSpec(kind="mlp", width=16), data=DataSpec(dataset="digits"), epochs=6))
    # ten classes: an untrained network is at chance; packs of different optimizers train one after the other: Adam's first
    runs = [({"optimizer": "adam", "learning_rate": 0.01}, s) for s in (0, 1)] + [({"optimizer": "sgd", "learning_rate": 1e-5}, s) for s in (0, 1)]
    good_a, good_b, hopeless_a, hopeless_b = train_batch(setup, runs, trainers=(trainer,), peers=Peers())
    for r in (hopeless_a, hopeless_b):
        assert r.epochs_run == 2 and r.early_stopped and r.facts.get("stopped_hopeless") and r.outcome.value == "never_learned", r
    assert good_a.epochs_run == good_b.epochs_run == 6 and not good_a.facts.get("stopped_hopeless")
    alone = train_batch(setup, runs[2:], trainers=(trainer,), peers=Peers())  # one configuration: no peers to fall behind
    assert [r.epochs_run for r in alone] == [6, 6]
    assert [r.epochs_run for r in train_batch(setup, runs, trainers=(trainer,))] == [6, 6, 6, 6]  # no peers: nothing stops


@pytest.mark.parametrize("trainer", [STACKED, GRAPH, KERAS], ids=["stacked", "graph", "keras"])
def test_a_round_is_halved_at_its_rung_and_only_the_most_promising_trains_on(trainer):
    """Successive halving in doctor's search rounds: at a third of the epochs
    (3 of 9) only the best third of the configurations, by mean validation
    accuracy over their seeds, goes on. In a pack every run has recorded the
    rung before any is judged, so the order of the runs does not matter (the
    best configuration comes last there); runs trained one after another are
    judged against those that reached the rung before them (the best comes first)."""
    from remedysweep.engine.recorder import Peers

    setup = Setup.load(make_sweep("halving", model=ModelSpec(kind="mlp", width=16), data=DataSpec(dataset="digits"), epochs=9))
    rates = [1e-3, 2e-3, 0.01] if trainer.packs else [0.01, 2e-3, 1e-3]
    runs = [({"optimizer": "adam", "learning_rate": lr}, s) for lr in rates for s in (0, 1)]
    peers = Peers()
    assert peers.rungs(9) == (3,) and peers.rungs(30) == (3, 10) and peers.rungs(4) == () and Peers(halving=False).rungs(30) == ()
    results = train_batch(setup, runs, trainers=(trainer,), peers=peers)
    by_rate = {lr: results[2 * i:2 * i + 2] for i, lr in enumerate(rates)}
    assert [r.epochs_run for r in by_rate[0.01]] == [9, 9] and not any(r.facts.get("stopped_halving") for r in by_rate[0.01])
    for lr in (1e-3, 2e-3):
        for r in by_rate[lr]:
            assert r.epochs_run == 3 and r.early_stopped and r.facts.get("stopped_halving") == 3, (lr, r.epochs_run, r.facts)
            assert not r.facts.get("stopped_hopeless")  # they had risen: behind, not hopeless
    mean_at_3 = {lr: np.mean([r.curves["val_accuracy"][2] for r in rs]) for lr, rs in by_rate.items()}
    assert mean_at_3[0.01] > max(mean_at_3[1e-3], mean_at_3[2e-3]) + 1 / len(setup.data.y_val)  # the one that went on was ahead there
    # without halving (the reduction's rounds) every run trains its epochs
    assert [r.epochs_run for r in train_batch(setup, runs, trainers=(trainer,), peers=Peers(halving=False))] == [9] * 6


@pytest.mark.parametrize("trainer", [GRAPH, KERAS], ids=["graph", "keras"])
def test_runs_without_diagnostics_train_the_same_and_a_run_that_blows_up_is_still_diverged(trainer):
    """Doctor's search rounds train without the probe diagnostics: the same
    curves (the diagnostics consume no randomness), no gradient figures, and a
    run whose weights blow up is still diverged."""
    import math

    setup = Setup.load(make_sweep("nodiag", model=ModelSpec(kind="mlp", width=16), data=DataSpec(dataset="digits"), epochs=3))
    runs = [({"optimizer": "adam", "learning_rate": 0.01}, 0), ({"optimizer": "sgd", "learning_rate": 1e12}, 1)]
    full = train_batch(setup, runs, trainers=(trainer,))
    lean = train_batch(setup, runs, trainers=(trainer,), diagnostics=False)
    assert all(math.isfinite(v) for v in full[0].curves["grad_norm"]) and all(math.isnan(v) for v in lean[0].curves["grad_norm"])
    np.testing.assert_allclose(lean[0].curves["val_accuracy"], full[0].curves["val_accuracy"], atol=1e-6)
    assert lean[0].outcome is full[0].outcome
    assert full[1].outcome.value == lean[1].outcome.value == "diverged" and lean[1].first_nonfinite_epoch == full[1].first_nonfinite_epoch
