"""Each built-in knob does what it claims, on real tiny Keras models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from remedysweep.remedies import discover
from remedysweep.runner.config import (
    DataSpec, EarlyStopSpec, ModelSpec, OutcomeSpec, Sweep, TrainingSpec,
)
from remedysweep.runner.data import load_dataset
from remedysweep.runner.trial import TrialConfig, build_trial, configure_tensorflow, run_trial

configure_tensorflow()
REGISTRY = discover()
SWEEP = Sweep(
    name="knobs",
    source="<test>",
    data=DataSpec(dataset="blobs", n_classes=4, n_features=8, n_samples=200),
    model=ModelSpec(kind="mlp", depth=2),
    training=TrainingSpec(epochs=2, early_probes=0, probe_size=32),
    knobs=(),
    seeds=(0,),
    baseline=(),
    outcome=OutcomeSpec(window=1),
    early_stop=EarlyStopSpec(enabled=False, patience=1),
)
DATA = load_dataset(SWEEP.data)


def built(**knobs):
    return build_trial(SWEEP, TrialConfig.of(knobs, 0), REGISTRY, DATA)


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_fused_logits_has_no_softmax_layer_and_softmax_forms_do():
    import keras

    fused = built(loss="fused_logits").model
    assert "probabilities" not in [l.name for l in fused.layers]
    assert fused.layers[-1].name == "logits"
    for loss in ("unfused", "keras_default"):
        m = built(loss=loss).model
        assert m.layers[-1].name == "probabilities"
        assert isinstance(m.layers[-1], keras.layers.Activation)
        out = m.predict(DATA.x_val[:8], verbose=0)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_unfused_is_not_silently_fused_but_keras_default_is():
    """On logits with a large gap, the fused form and the clipped written-out form
    differ; Keras computes the fused one for a softmax output, our unfused loss not."""
    import tensorflow as tf

    from remedysweep.runner.losses import BUILTIN_LOSSES, keras_fusion_check

    check = keras_fusion_check()
    assert check["keras_fuses"] == 1.0 and abs(check["keras"] - 40.0) < 1e-3
    assert abs(check["unfused"] - 16.118) < 1e-2
    layer = __import__("keras").layers.Activation("softmax")
    z = tf.constant([[0.0, 60.0, 0.0]])
    y = tf.constant([[1.0, 0.0, 0.0]])

    @tf.function
    def in_graph(fn):
        return fn(y, layer(z))

    assert float(in_graph(BUILTIN_LOSSES["unfused"])[0]) == pytest.approx(16.118, abs=1e-2)
    assert float(in_graph(BUILTIN_LOSSES["keras_default"])[0]) == pytest.approx(60.0, abs=1e-3)


def test_unfused_loss_gets_zero_gradient_where_clipped():
    import tensorflow as tf

    from remedysweep.runner.losses import fused_logits, unfused

    z = tf.Variable([[0.0, 60.0, 0.0]])
    y = tf.constant([[1.0, 0.0, 0.0]])
    for fn, expect_zero in ((lambda: unfused(y, tf.nn.softmax(z))), True), ((lambda: fused_logits(y, z)), False):
        with tf.GradientTape() as tape:
            loss = fn()
        g = tape.gradient(loss, z)
        assert (float(tf.reduce_max(tf.abs(g))) == 0.0) == expect_zero


def test_width_changes_parameter_count():
    n64 = built().model.count_params()
    n16 = built(width=16).model.count_params()
    # depth 2: 8*w + w + w*w + w + w*4 + 4
    assert n16 == 8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4
    assert n64 == 8 * 64 + 64 + 64 * 64 + 64 + 64 * 4 + 4


def test_activation_normalization_dropout_initializer():
    m = built(activation="tanh", normalization="batchnorm").model
    assert m.get_layer("act_1").get_config()["activation"] == "tanh"
    assert "BatchNormalization" in layer_types(m)
    assert "Dropout" in layer_types(built(regularizer="dropout").model)
    assert "LayerNormalization" in layer_types(built(normalization="layernorm").model)
    cfg = built(initializer="he_normal").model.get_layer("dense_1").get_config()["kernel_initializer"]
    assert cfg["class_name"] == "HeNormal"


def test_l2_adds_a_penalty():
    b = built(regularizer="l2")
    assert len(b.model.losses) == 2  # one per hidden layer
    assert built().model.losses == []


def test_maxnorm_bounds_the_weights():
    """Weights blown up to norm ~20 are clamped back to <= 3 by the first step."""
    for knobs, bounded in (({"regularizer": "maxnorm"}, True), ({}, False)):
        b = built(**knobs)
        for i in (1, 2):
            k = b.model.get_layer(f"dense_{i}").kernel
            k.assign(k.numpy() * 20.0 / np.linalg.norm(k.numpy(), axis=0).max())
        b.model.fit(b.x_train[:32], b.y_train[:32], batch_size=32, epochs=1, verbose=0)
        norms = [np.linalg.norm(b.model.get_layer(f"dense_{i}").kernel.numpy(), axis=0).max() for i in (1, 2)]
        assert (max(norms) <= 3.0 + 1e-4) == bounded, norms


@pytest.mark.parametrize(
    "name, cls, extra",
    [("sgd", "SGD", {"momentum": 0.0}), ("momentum", "SGD", {"momentum": 0.9}), ("adam", "Adam", {}),
     ("rmsprop", "RMSprop", {}), ("adagrad", "Adagrad", {})],
)
def test_optimizer_and_learning_rate(name, cls, extra):
    opt = built(optimizer=name, learning_rate=0.02).model.optimizer
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(0.02)
    for k, v in extra.items():
        assert opt.get_config()[k] == pytest.approx(v)


def test_gradient_clipping_and_schedule():
    assert built(grad_clip="norm_1").model.optimizer.clipnorm == 1.0
    assert built(grad_clip="global_norm_1").model.optimizer.global_clipnorm == 1.0
    assert built(grad_clip="value_0.5").model.optimizer.clipvalue == 0.5
    opt = built(lr_schedule="warmup", learning_rate=0.01).model.optimizer
    sched = opt._learning_rate
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(10_000)) == pytest.approx(0.01)


def test_label_smoothing_and_batch_size():
    b = built(label_smoothing=0.1)
    assert b.y_train.max() == pytest.approx(0.9 + 0.1 / 4)
    assert b.y_train.min() == pytest.approx(0.1 / 4)
    assert built(batch_size=16).plan.fit.batch_size == 16


def test_same_seed_same_curve_and_diagnostics_do_not_change_training():
    cfg = TrialConfig.of({"loss": "unfused", "learning_rate": 0.01}, 3)
    a = run_trial(SWEEP, cfg, REGISTRY, DATA)
    b = run_trial(SWEEP, cfg, REGISTRY, DATA)
    c = run_trial(SWEEP, cfg, REGISTRY, DATA, diagnostics=False)
    assert a.curves["val_accuracy"] == b.curves["val_accuracy"]
    assert a.curves["loss"] == b.curves["loss"] == c.curves["loss"]
    other = run_trial(SWEEP, TrialConfig.of({"loss": "unfused", "learning_rate": 0.01}, 4), REGISTRY, DATA)
    assert other.curves["loss"] != a.curves["loss"]


def test_diagnostics_are_recorded_per_epoch():
    r = run_trial(SWEEP, TrialConfig.of({}, 0), REGISTRY, DATA)
    assert r.epochs_run == 2
    for key in ("logit_abs_mean", "logit_spread", "dead_fraction", "grad_norm", "weight_norm", "nonfinite"):
        assert len(r.curves[key]) == 2
        assert all(np.isfinite(r.curves[key]))
    assert r.curves["grad_norm"][0] > 0 and r.curves["weight_norm"][0] > 0
    assert len(r.dead_by_layer) == 2 and len(r.dead_by_layer[0]) == 2


def test_easy_words_is_learned_through_the_embedding_model():
    """The post's sanity check: N distinct tokens, one per class, are learnable."""
    from remedysweep.runner.data import easy_tokens

    assert easy_tokens(3) == ["aaa", "bbb", "ccc"] and len(set(easy_tokens(40))) == 40
    sweep = dataclasses.replace(
        SWEEP,
        data=DataSpec(dataset="easy_words", n_classes=12, samples_per_class=20),
        model=ModelSpec(kind="embedding", depth=1),
        training=dataclasses.replace(SWEEP.training, epochs=12),
    )
    data = load_dataset(sweep.data)
    assert data.x_train.dtype.kind == "i" and data.input_shape == (3,)
    r = run_trial(sweep, TrialConfig.of({"learning_rate": 0.01, "width": 32}, 0), REGISTRY, data)
    assert r.outcome == "healthy" and r.final_val_accuracy >= 0.95, r
