"""The user's own code survives every remedy: losses and metrics nobody
registered, custom and ``Lambda`` layers, adapted preprocessing layers, mixed
precision, a frozen nested backbone, separable convolutions, a subclassed model
with its own ``train_step``, raw strings in. Real models (tests/doctor/shapes.py),
real training, compared with plain Keras."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import shapes
from remedysweep.engine.runtime import configure_tensorflow

configure_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from remedysweep.engine.build import Setup, build_run  # noqa: E402
from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep  # noqa: E402
from remedysweep.engine.keras_trainer import run_alone  # noqa: E402
from remedysweep.engine.sources import check_problem  # noqa: E402
from remedysweep.engine.surgery import NotApplicable, rewrite  # noqa: E402
from remedysweep.remedies import ModelPlan  # noqa: E402

FILE = shapes.__file__
SHAPES = [
    ("handwritten_loss", "digits_onehot"),
    ("loss_class_and_metrics", "digits"),
    ("custom_layers", "digits"),
    ("normalized_two_inputs", "digits_two_raw"),
    ("discretized", "digits_raw"),
    ("text_vectorized", "text"),
    ("string_lookup", "tokens"),
    ("mixed_precision", "digits"),
    ("frozen_backbone", "digits_images"),
    ("separable_cnn", "digits_images"),
    ("own_train_step", "digits"),
    ("subclassed", "digits"),
]
EPOCHS = 6


def setup_for(builder: str, loader: str, epochs: int = EPOCHS) -> Setup:
    sweep = make_sweep("own", model=ModelSpec(builder=f"{FILE}:{builder}"), data=DataSpec(loader=f"{FILE}:{loader}"),
                       epochs=epochs, early_probes=2, probe_size=64, seeds=(0,), pack=False)
    sweep = dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))
    data = check_problem(sweep)  # the same check a sweep file gets: one fit step as fit calls it
    setup = Setup.load(sweep, data=data)
    setup.base_info()
    return setup


def tensors(x):
    return tuple(tf.constant(a) for a in x) if isinstance(x, tuple) else tf.constant(x)


def plain_keras_accuracy(builder: str, loader: str, seed: int = 0) -> float:
    keras.utils.set_random_seed(seed)
    model = getattr(shapes, builder)()
    (x_tr, y_tr), (x_va, y_va) = getattr(shapes, loader)()
    model.fit(tensors(x_tr), y_tr, epochs=EPOCHS, batch_size=32, verbose=0)
    p = keras.ops.convert_to_numpy(model.predict(tensors(x_va), verbose=0))
    labels = y_va.argmax(1) if y_va.ndim == 2 else y_va
    return float((p.argmax(1) == labels).mean())


@pytest.mark.parametrize("builder, loader", SHAPES)
def test_the_rewrite_with_nothing_set_is_the_users_model(builder, loader):
    """Same outputs, same weights, same preprocessing state: the baseline is the
    model exactly as the user built it."""
    keras.utils.set_random_seed(0)
    model = getattr(shapes, builder)()
    _, (x_va, _) = getattr(shapes, loader)()
    x = tensors(x_va[:16] if not isinstance(x_va, tuple) else tuple(a[:16] for a in x_va))
    before = keras.ops.convert_to_numpy(model(x))
    rw = rewrite(model, ModelPlan())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rw.model(x)), before)
    for layer in rw.model.layers:  # preprocessing layers are the user's own objects, state and all
        if isinstance(layer, (keras.layers.Normalization, keras.layers.TextVectorization, keras.layers.StringLookup,
                              keras.layers.Discretization)):
            assert any(layer is original for original in model.layers), layer.name


@pytest.mark.parametrize("builder, loader", SHAPES)
def test_every_shape_trains_as_it_does_in_plain_keras(builder, loader):
    setup = setup_for(builder, loader)
    ours = run_alone(setup, {}, 0)
    assert ours.outcome.value == "healthy", ours.message
    assert abs(ours.final_val_accuracy - plain_keras_accuracy(builder, loader)) <= 0.06
    lr = run_alone(setup, {"learning_rate": 0.003}, 0)  # a compile knob on every shape
    assert lr.outcome.value != "failed", lr.message


def test_layer_knobs_rewrite_custom_code_or_say_exactly_why():
    hand = setup_for("handwritten_loss", "digits_onehot", epochs=2)
    for knobs in ({"loss": "fused_logits"}, {"loss": "unfused"}, {"width": 32}, {"activation": "tanh"},
                  {"initializer": "he_normal"}, {"normalization": "batchnorm"}):
        r = run_alone(hand, knobs, 0)
        assert r.outcome.value != "failed", (knobs, r.message)
    custom = setup_for("custom_layers", "digits", epochs=2)
    assert run_alone(custom, {"loss": "fused_logits"}, 0).outcome.value != "failed"  # Lambda and custom layer kept
    with pytest.raises(NotApplicable, match=r"'scale.*\(Scale\).*custom layer with weights"):
        build_run(custom, {"width": 32}, 0)
    text = setup_for("text_vectorized", "text", epochs=2)
    with pytest.raises(NotApplicable, match="no float features"):
        build_run(text, {"input_scaling": "standardize"}, 0)
    assert run_alone(text, {"loss": "fused_logits", "width": 8}, 0).outcome.value != "failed"


def test_preprocessing_state_survives_a_width_change():
    setup = setup_for("normalized_two_inputs", "digits_two_raw", epochs=2)
    base = setup.source.build(0, setup.data)
    built = build_run(setup, {"width": 16}, 0)
    norms = [l for l in built.model.layers if isinstance(l, keras.layers.Normalization)]
    originals = [l for l in base.layers if isinstance(l, keras.layers.Normalization)]
    assert len(norms) == 2
    for new, old in zip(norms, originals):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(new.mean), keras.ops.convert_to_numpy(old.mean))
        assert float(np.max(keras.ops.convert_to_numpy(new.mean))) > 10  # adapted to the raw pixels, not reset to 0


def test_mixed_precision_keeps_its_loss_scaling_and_takes_the_learning_rate():
    setup = setup_for("mixed_precision", "digits", epochs=2)
    built = build_run(setup, {"learning_rate": 0.01, "optimizer": "rmsprop"}, 0)
    opt = built.model.optimizer
    assert type(opt).__name__ == "LossScaleOptimizer"
    assert type(opt.inner_optimizer).__name__ == "RMSprop"
    assert abs(float(keras.ops.convert_to_numpy(opt.inner_optimizer.learning_rate)) - 0.01) < 1e-9


def test_a_models_own_train_step_is_the_one_that_trains():
    setup = setup_for("own_train_step", "digits", epochs=2)
    built = build_run(setup, {"learning_rate": 0.01}, 0)
    assert type(built.model).__name__ == "OwnStep"
    assert run_alone(setup, {"learning_rate": 0.01}, 0).outcome.value == "healthy"


def test_a_subclassed_model_is_reinitialised_and_reactivated_through_its_layers():
    setup = setup_for("subclassed_dead_relu", "digits", epochs=4)
    built = build_run(setup, {"initializer": "he_normal", "activation": "leaky_relu"}, 0)
    built.model(tf.constant(setup.data.x_val[:2]))  # built on its first call, with the new initializers
    biases = [keras.ops.convert_to_numpy(l.bias) for l in (built.model.d1, built.model.d2)]
    assert all(np.all(b == 0) for b in biases)
    assert built.model.d1.activation.__name__ == "leaky_relu"
    assert run_alone(setup, {}, 0).outcome.value == "never_learned"  # biases at -4: dead from the start
    assert run_alone(setup, {"initializer": "he_normal"}, 0).outcome.value == "healthy"
    with pytest.raises(NotApplicable, match="subclassed"):
        build_run(setup, {"normalization": "batchnorm"}, 0)


@pytest.mark.parametrize("builder, loader", SHAPES)
def test_doctor_takes_every_shape_as_built(builder, loader):
    """Doctor on each shape: the baseline is the model as built, never a failed
    run (the search's changes on these shapes are the knob test above)."""
    from remedysweep.doctor import diagnose

    v = diagnose(ModelSpec(builder=f"{FILE}:{builder}"), DataSpec(loader=f"{FILE}:{loader}"), epochs=3, seeds=1, budget=0)
    assert v["baseline"]["failed"] == 0, v["baseline"]["messages"]
    assert v["baseline"]["median_final_accuracy"] > 0.3, v["baseline"]
    if v["sanity_check"]["passed"] is None:  # skipped when nothing is wrong, or the model learns but underfits
        assert v["conclusion"].startswith(("no change needed", "nothing was tried")), v["conclusion"]
        assert ("does not fit its own training data" in v["conclusion"]) == ("underfitting" in v["symptom_names"]), v["conclusion"]
    else:
        assert v["sanity_check"]["accuracy"] == v["sanity_check"]["accuracy"]  # the easy-data check trained
    # raw pixels into a model that normalises or buckets them itself are not "unscaled inputs"
    assert "unscaled_inputs" not in v["symptom_names"], v["symptom_names"]


def test_two_outputs_and_tf_data_loaders_are_refused_in_one_line(tmp_path):
    from remedysweep.errors import SweepError

    (tmp_path / "m.py").write_text(
        "import keras, tensorflow as tf\n"
        "def two_outputs():\n"
        "    i = keras.Input((64,))\n"
        "    h = keras.layers.Dense(16, activation='relu')(i)\n"
        "    m = keras.Model(i, [keras.layers.Dense(10, activation='softmax')(h), keras.layers.Dense(1)(h)])\n"
        "    m.compile('adam', ['sparse_categorical_crossentropy', 'mse'])\n"
        "    return m\n"
        "def tf_data():\n"
        "    import shapes\n"
        "    (a, b), (c, d) = shapes.digits()\n"
        "    return tf.data.Dataset.from_tensor_slices((a, b)).batch(32), tf.data.Dataset.from_tensor_slices((c, d)).batch(32)\n")
    for builder, loader, message in ((f"{tmp_path / 'm.py'}:two_outputs", f"{FILE}:digits", "2 outputs; remedysweep takes single-output"),
                                     (f"{FILE}:subclassed", f"{tmp_path / 'm.py'}:tf_data", "returned a tf.data dataset; return arrays")):
        with pytest.raises(SweepError, match=message) as err:
            check_problem(make_sweep("refused", model=ModelSpec(builder=builder), data=DataSpec(loader=loader)))
        assert "\n" not in str(err.value)
