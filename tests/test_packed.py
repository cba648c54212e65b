"""Seed packing: a packed seed trains exactly as it would alone; what cannot be
packed falls back and says why; a packed sweep still runs each run once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli, write_sweep
from remedysweep.remedies import discover
from remedysweep.runner.config import DataSpec, EarlyStopSpec, ModelSpec, OutcomeSpec, Sweep, TrainingSpec
from remedysweep.runner.data import load_dataset
from remedysweep.runner.packed import run_packed, why_not_packable
from remedysweep.runner.trial import configure_tensorflow

configure_tensorflow()
REGISTRY = discover()
SWEEP = Sweep(
    name="packed", source="<test>",
    data=DataSpec(dataset="blobs", n_classes=4, n_features=8, n_samples=300, cluster_std=2.0),
    model=ModelSpec(kind="mlp", depth=2),
    training=TrainingSpec(epochs=4, early_probes=3, probe_size=32),
    knobs=(), seeds=(0, 1, 2), baseline=(),
    outcome=OutcomeSpec(window=2), early_stop=EarlyStopSpec(enabled=False, patience=2),
)
DATA = load_dataset(SWEEP.data)


@pytest.mark.parametrize("knobs", [
    {"loss": "fused_logits", "learning_rate": 0.01, "width": 32},
    {"loss": "unfused", "learning_rate": 0.05, "optimizer": "momentum", "activation": "leaky_relu", "width": 16},
    {"loss": "keras_default", "regularizer": "maxnorm", "optimizer": "rmsprop", "width": 24},
    {"regularizer": "l2", "grad_clip": "value_0.5", "label_smoothing": 0.1, "batch_size": 16},
])
def test_a_packed_seed_trains_exactly_as_it_would_alone(knobs):
    assert why_not_packable(SWEEP, knobs, REGISTRY) is None
    packed = run_packed(SWEEP, knobs, [0, 1, 2], REGISTRY, DATA)
    for seed, p in zip([0, 1, 2], packed):
        (alone,) = run_packed(SWEEP, knobs, [seed], REGISTRY, DATA)
        assert p.outcome != "failed", p.message
        for key in ("loss", "val_loss", "logit_abs_mean", "grad_norm", "weight_norm"):
            np.testing.assert_allclose(p.curves[key], alone.curves[key], rtol=2e-4, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(p.curves["val_accuracy"], alone.curves["val_accuracy"], atol=1.5 / len(DATA.x_val))
        assert [a for _, a in p.early_probes] == pytest.approx([a for _, a in alone.early_probes], abs=1.5 / 32)
    assert packed[0].curves["loss"] != packed[1].curves["loss"]  # seeds differ


def test_packed_initial_weights_are_the_keras_models():
    """Epoch 0 is the same model as the sweep's Keras path builds for that seed."""
    import keras

    from remedysweep.runner.packed import PackedMLP
    from remedysweep.runner.trial import TrialConfig, build_trial

    from remedysweep.runner.config import build_plan
    from remedysweep.runner.trial import base_plan

    packed = PackedMLP(SWEEP, build_plan({"width": 16}, REGISTRY, base=base_plan(SWEEP)), DATA, [5, 7])
    for i, seed in enumerate([5, 7]):
        built = build_trial(SWEEP, TrialConfig.of({"width": 16}, seed), REGISTRY, DATA)
        dense = [l for l in built.model.layers if isinstance(l, keras.layers.Dense)]
        for layer, w in zip(dense, packed.kernels):
            np.testing.assert_array_equal(layer.kernel.numpy(), w.numpy()[i])


def test_what_couples_seeds_falls_back_and_says_why():
    assert "mix" in why_not_packable(SWEEP, {"grad_clip": "global_norm_1"}, REGISTRY)
    assert "dropout" in why_not_packable(SWEEP, {"regularizer": "dropout"}, REGISTRY)
    assert "batchnorm" in why_not_packable(SWEEP, {"normalization": "batchnorm"}, REGISTRY)
    assert "schedule" in why_not_packable(SWEEP, {"lr_schedule": "warmup"}, REGISTRY)


def test_packed_sweep_runs_each_run_once(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="packsweep", epochs=3)
    text = sweep.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace("early_probes = 2", "early_probes = 2\npack_seeds = true")
    text = text.replace("width = [16]", 'width = [16]\ngrad_clip = ["none", "global_norm_1"]')
    sweep.write_text(text)
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv", keep_default_na=False, na_values=[""])
    assert len(t) == 12 and not t.duplicated(["config_id", "seed"]).any()
    packed = t[t["grad_clip"] == "none"]
    assert (packed["packed_seeds"] >= 1).all() and packed["packed_seeds"].max() == 3
    assert (t[t["grad_clip"] == "global_norm_1"]["packed_seeds"] == 0).all()
