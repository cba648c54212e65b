"""Graph packs: a slice that stops leaves the pack. That each slice is the run
trained alone through fit, for Conv, recurrent, embedding, normalization,
dropout and several-input models, is the trainer contract (test_trainers.py)."""

from __future__ import annotations

import dataclasses

import numpy as np

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


def test_a_stopped_slice_leaves_the_pack_and_the_others_train_on():
    setup = setup_for("conv1d_waves", "waves", epochs=6)
    setup.sweep = dataclasses.replace(setup.sweep, early_stop=dataclasses.replace(setup.sweep.early_stop, enabled=True, patience=1))
    runs = [({"learning_rate": 50.0, "optimizer": "sgd"}, 0), ({}, 1)]  # the first diverges at once
    bad, good = train_batch(setup, runs)
    assert bad.outcome.value == "diverged" and bad.early_stopped and bad.epochs_run < 6
    assert good.epochs_run == 6 and good.outcome.value == "healthy"
    alone = run_alone(setup, {}, 1)
    np.testing.assert_allclose(good.curves["val_loss"], alone.curves["val_loss"], rtol=1e-3)
