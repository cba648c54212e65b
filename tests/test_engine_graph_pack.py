"""Graph packs: runs of Conv, recurrent, embedding, normalization, dropout and
several-input models, with different optimizers and widths, trained together in
one compiled function; each slice is the run trained alone through fit."""

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
from remedysweep.engine.trainers import train_batch  # noqa: E402
from remedysweep.engine.sources import check_problem  # noqa: E402

FILE = shapes.__file__


def setup_for(builder: str, loader: str, epochs: int = 3) -> Setup:
    sweep = make_sweep("graph", model=ModelSpec(builder=f"{FILE}:{builder}"), data=DataSpec(loader=f"{FILE}:{loader}"),
                       epochs=epochs, early_probes=3, probe_size=64, seeds=(0,))
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    setup = Setup.load(sweep, data=check_problem(sweep))
    setup.base_info()
    return setup


# (builder, loader, configurations mixed in one pack)
CASES = [
    ("conv2d_batchnorm", "digits_images", [{"optimizer": "sgd", "learning_rate": 0.05}, {"optimizer": "momentum", "learning_rate": 0.01},
                                           {"optimizer": "rmsprop"}, {"optimizer": "adam", "width": 16}, {"optimizer": "adamw", "dropout_rate": 0.5}]),
    ("conv1d_waves", "waves", [{}, {"width": 4, "learning_rate": 0.01}, {"loss": "fused_logits", "optimizer": "sgd", "learning_rate": 0.1}]),
    ("gru_tokens", "token_sequences", [{}, {"learning_rate": 0.01, "optimizer": "rmsprop"}]),
    ("lstm_tokens", "token_sequences", [{}, {"loss": "fused_logits", "learning_rate": 0.01}]),
    ("two_inputs_merged", "digits_two", [{}, {"activation": "relu", "width": 8}, {"regularizer": "dropout", "grad_clip": "global_norm_1"}]),
]


@pytest.mark.parametrize("builder, loader, configs", CASES, ids=[c[0] for c in CASES])
def test_a_graph_packed_slice_is_the_run_trained_alone_through_fit(builder, loader, configs):
    setup = setup_for(builder, loader)
    runs = [(knobs, seed) for seed, knobs in enumerate(configs)]
    packed = train_batch(setup, runs)
    for (knobs, seed), p in zip(runs, packed):
        assert p.path == "graph" and p.pack_size == len(runs), (knobs, p.path_note, p.message)
        alone = run_alone(setup, knobs, seed)
        assert alone.path == "keras"
        for key in ("loss", "val_loss", "accuracy", "grad_norm", "weight_norm"):
            np.testing.assert_allclose(p.curves[key], alone.curves[key], rtol=1e-3, atol=1e-5, err_msg=f"{builder} {knobs} {key}")
        np.testing.assert_allclose(p.curves["val_accuracy"], alone.curves["val_accuracy"], atol=1.5 / len(setup.data.y_val))
        assert [a for _, a in p.early_probes] == pytest.approx([a for _, a in alone.early_probes], abs=1.5 / 64)
        assert p.outcome is alone.outcome


def test_a_stopped_slice_leaves_the_pack_and_the_others_train_on():
    setup = setup_for("conv1d_waves", "waves", epochs=6)
    setup.sweep = dataclasses.replace(setup.sweep, early_stop=dataclasses.replace(setup.sweep.early_stop, enabled=True, patience=1))
    runs = [({"learning_rate": 50.0, "optimizer": "sgd"}, 0), ({}, 1)]  # the first diverges at once
    bad, good = train_batch(setup, runs)
    assert bad.outcome.value == "diverged" and bad.early_stopped and bad.epochs_run < 6
    assert good.epochs_run == 6 and good.outcome.value == "healthy"
    alone = run_alone(setup, {}, 1)
    np.testing.assert_allclose(good.curves["val_loss"], alone.curves["val_loss"], rtol=1e-3)
