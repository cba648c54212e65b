"""Runs built and trained on the engine: the built-in knobs on the built-in
classifier, and user models through the same path (heads, labels, inputs)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import zoo
from remedysweep.engine.runtime import configure_tensorflow

configure_tensorflow()

from remedysweep.engine.build import Setup, build_run  # noqa: E402
from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep  # noqa: E402
from remedysweep.engine.keras_trainer import run_alone  # noqa: E402
from remedysweep.remedies.loss import keras_fusion_check  # noqa: E402

SWEEP = make_sweep("knobs", model=ModelSpec(kind="mlp", depth=2), data=DataSpec(dataset="blobs", n_classes=4, n_features=8, n_samples=200),
                   epochs=2, early_probes=0, probe_size=32, pack=False)
SWEEP = dataclasses.replace(SWEEP, early_stop=dataclasses.replace(SWEEP.early_stop, enabled=False))
SETUP = Setup.load(SWEEP)


def built(**knobs):
    return build_run(SETUP, knobs, 0)


def test_loss_formulations_and_what_keras_computes():
    fused = built(loss="fused_logits")
    assert not fused.rewritten.probabilities
    for loss in ("unfused", "keras_default"):
        b = built(loss=loss)
        assert b.rewritten.probabilities
        np.testing.assert_allclose(b.model.predict(b.data.x_val[:8], verbose=0).sum(axis=1), 1.0, rtol=1e-5)
    check = keras_fusion_check()
    assert check["keras_fuses"] and abs(check["keras"] - 40.0) < 1e-3 and abs(check["unfused"] - 16.118) < 1e-2


def test_unfused_loss_gets_zero_gradient_where_clipped():
    import tensorflow as tf

    from remedysweep.remedies.loss import FORMULATIONS

    z = tf.Variable([[0.0, 60.0, 0.0]])
    y = tf.constant([[1.0, 0.0, 0.0]])

    @tf.function  # as in training: Keras fuses its own loss only inside a graph
    def gradient(name):
        with tf.GradientTape() as tape:
            loss = FORMULATIONS[name].from_logits(y, z, False)
        return tape.gradient(loss, z)

    for name, expect_zero in (("unfused", True), ("fused_logits", False), ("keras_default", False)):
        assert (float(tf.reduce_max(tf.abs(gradient(name)))) == 0.0) == expect_zero, name


def test_optimizer_learning_rate_clipping_schedule_batch_smoothing():
    opt = built(optimizer="momentum", learning_rate=0.02).model.optimizer
    assert type(opt).__name__ == "SGD" and opt.get_config()["momentum"] == pytest.approx(0.9)
    assert float(opt.learning_rate) == pytest.approx(0.02)
    assert built(grad_clip="global_norm_1").model.optimizer.global_clipnorm == 1.0
    sched = built(lr_schedule="warmup", learning_rate=0.01).model.optimizer._learning_rate
    assert float(sched(0)) == pytest.approx(0.0) and float(sched(10_000)) == pytest.approx(0.01)
    b = built(label_smoothing=0.1, batch_size=16)
    assert b.y_train.max() == pytest.approx(0.9 + 0.1 / 4) and b.batch_size == 16


def test_input_scaling_standardizes_every_split():
    b = built(input_scaling="standardize")
    assert np.allclose(b.data.x_train.mean(0), 0, atol=1e-5) and np.allclose(b.data.x_train.std(0), 1, atol=1e-3)
    assert b.data.x_val is not SETUP.data.x_val


def test_same_seed_same_run_and_diagnostics_per_epoch():
    a = run_alone(SETUP, {"loss": "unfused", "learning_rate": 0.01}, 3)
    b = run_alone(SETUP, {"loss": "unfused", "learning_rate": 0.01}, 3)
    assert a.curves["val_accuracy"] == b.curves["val_accuracy"] and a.curves["loss"] == b.curves["loss"]
    assert run_alone(SETUP, {"loss": "unfused", "learning_rate": 0.01}, 4).curves["loss"] != a.curves["loss"]
    for key in ("logit_abs_mean", "logit_spread", "dead_fraction", "grad_norm", "grad_norm_first", "grad_norm_last", "zero_grad_fraction",
                "weight_norm", "probe_fused_ce", "nonfinite"):
        assert len(a.curves[key]) == 2 and all(np.isfinite(a.curves[key])), key
    assert len(a.dead_by_layer) == 2 and len(a.dead_by_layer[0]) == 2


def _user_setup(model, data, **training):
    from remedysweep.engine.sources import check_problem

    sweep = make_sweep("user", model=ModelSpec(builder=f"{zoo.__file__}:{model}"), data=DataSpec(loader=f"{zoo.__file__}:{data}"),
                       epochs=2, early_probes=0, probe_size=64, pack=False, **training)
    return Setup.load(sweep, data=check_problem(sweep))


@pytest.mark.parametrize("model, data, loss", [
    ("binary_sigmoid", "digits_binary", "binary_crossentropy"),
    ("softmax_sparse", "digits_int", "sparse_categorical_crossentropy"),
    ("softmax_onehot", "digits_onehot", "categorical_crossentropy"),
    ("two_inputs", "digits_two_inputs", "sparse_categorical_crossentropy"),
    ("two_inputs", "digits_dict_inputs", "sparse_categorical_crossentropy"),
    ("cnn", "digits_images", "sparse_categorical_crossentropy"),
])
def test_user_models_train_as_built_and_with_every_loss_formulation(model, data, loss):
    setup = _user_setup(model, data)
    assert setup.base_info().loss == loss
    base = run_alone(setup, {}, 0)
    assert base.outcome.value != "failed", base.message
    assert base.chance == pytest.approx(setup.data.chance)
    for formulation in ("unfused", "keras_default", "fused_logits"):
        r = run_alone(setup, {"loss": formulation, "activation": "leaky_relu"}, 0)
        assert r.outcome.value != "failed", (formulation, r.message)
        assert r.curves["logit_abs_mean"][0] > 0


def test_a_knob_that_cannot_apply_fails_that_run_with_the_reason():

    setup = _user_setup("softmax_sparse", "digits_int")
    r = run_alone(setup, {"label_smoothing": 0.1}, 0)
    assert r.outcome.value == "failed" and "label_smoothing needs one-hot targets" in r.message
    linear = Setup(setup.sweep, setup.registry, setup.data, setup.source)
    linear.source = type("S", (), {"build": staticmethod(lambda seed, data: _logistic())})()
    r = run_alone(linear, {"normalization": "batchnorm"}, 0)
    assert r.outcome.value == "failed" and "no hidden" in r.message


def _logistic():
    import keras

    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def test_easy_words_through_the_embedding_model():
    """The write-up's sanity check: N distinct tokens, one per class, are learnable."""
    from remedysweep.engine.data import easy_tokens

    assert easy_tokens(3) == ["aaa", "bbb", "ccc"] and len(set(easy_tokens(40))) == 40
    sweep = dataclasses.replace(SWEEP, data=DataSpec(dataset="easy_words", n_classes=12, samples_per_class=20),
                                model=ModelSpec(kind="embedding", depth=1), training=dataclasses.replace(SWEEP.training, epochs=12))
    setup = Setup.load(sweep)
    r = run_alone(setup, {"learning_rate": 0.01, "width": 32}, 0)
    assert r.outcome.value == "healthy" and r.final_val_accuracy >= 0.95, r
