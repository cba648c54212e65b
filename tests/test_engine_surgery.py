"""Remedies act on any Keras classifier: the rewrite of Sequential and
functional models (Dense, Conv, Activation and Softmax layers, several inputs,
residual connections), and what cannot apply says why."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from remedysweep.engine.runtime import configure_tensorflow
from remedysweep.remedies import ModelPlan

configure_tensorflow()
import keras  # noqa: E402

from remedysweep.engine.surgery import NotApplicable, describe_model, rewrite, structure, to_functional  # noqa: E402


def layer_types(model):
    return [type(l).__name__ for l in model.layers]


def test_head_is_found_however_it_is_written():
    for build, head in ((zoo.softmax_sparse, ["softmax"]), (zoo.softmax_layer, ["softmax"]), (zoo.softmax_twice, ["softmax", "softmax"]),
                        (zoo.relu_output, ["relu"]), (zoo.binary_sigmoid, ["sigmoid"])):
        info = describe_model(build())
        assert info.head_activations == head, build.__name__
    assert describe_model(zoo.softmax_twice()).output_units == 10 and describe_model(zoo.binary_sigmoid()).output_units == 1


def test_logits_head_strips_every_output_activation_and_keeps_weights():
    keras.utils.set_random_seed(0)
    base = zoo.softmax_twice()
    rw = rewrite(base, ModelPlan(head="logits"))
    assert not rw.probabilities and rw.logits is not None
    x = np.random.default_rng(0).standard_normal((5, 64)).astype("float32")
    dense = [l for l in base.layers if isinstance(l, keras.layers.Dense)]
    expected = np.maximum(x @ dense[0].kernel.numpy() + dense[0].bias.numpy(), 0) @ dense[1].kernel.numpy() + dense[1].bias.numpy()
    np.testing.assert_allclose(rw.model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    probs = rewrite(base, ModelPlan(head="probabilities"))
    assert probs.probabilities and np.allclose(probs.model.predict(x, verbose=0).sum(1), 1.0, atol=1e-5)


def test_as_built_rewrite_computes_the_same_function():
    """Splitting activations into layers changes nothing the model computes."""
    for build, shape in ((zoo.residual, (64,)), (zoo.cnn, (8, 8, 1)), (zoo.softmax_layer, (64,))):
        keras.utils.set_random_seed(1)
        base = build()
        x = np.random.default_rng(1).standard_normal((4, *shape)).astype("float32")
        rw = rewrite(base, ModelPlan())
        np.testing.assert_allclose(rw.model.predict(x, verbose=0), base.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        assert rw.preacts, build.__name__


def test_activation_normalization_width_on_conv_and_functional_models():
    cnn = rewrite(zoo.cnn(), ModelPlan(activation="leaky_relu", normalization="batchnorm", width=8))
    conv = [l for l in cnn.model.layers if isinstance(l, keras.layers.Conv2D)]
    assert conv and all(l.filters == 8 for l in conv)
    assert "BatchNormalization" in layer_types(cnn.model)
    acts = [l for l in cnn.model.layers if isinstance(l, keras.layers.Activation) and l.name.startswith("conv")]
    assert acts and all(l.activation.__name__ == "leaky_relu" for l in acts)
    res = rewrite(zoo.residual(), ModelPlan(normalization="layernorm", activation="tanh"))
    assert layer_types(res.model).count("LayerNormalization") == 5  # every hidden Dense, residual branches included
    assert "Add" in layer_types(res.model)
    two = rewrite(zoo.two_inputs(), ModelPlan(width=12, kernel_constraint=("max_norm", 3.0), kernel_regularizer=("l2", 1e-4)))
    assert len(two.model.inputs) == 2
    hidden = [l for l in two.model.layers if isinstance(l, keras.layers.Dense)][:-1]
    assert all(l.units == 12 and l.kernel_constraint is not None and l.kernel_regularizer is not None for l in hidden)


def test_what_cannot_apply_says_why():
    with pytest.raises(NotApplicable, match="no hidden"):
        rewrite(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]), ModelPlan(width=8))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(3)

        def call(self, x):
            return self.d(x)

    m = Subclassed()
    m(np.zeros((1, 4), "float32"))
    with pytest.raises(NotApplicable, match="subclassed"):
        rewrite(m, ModelPlan(activation="relu"))
    assert rewrite(m, ModelPlan()).model is m  # knobs that need no rewrite still work on it


def test_reinitialisation_undoes_a_bad_bias_and_keeps_a_good_one():
    keras.utils.set_random_seed(0)
    dying = zoo.dying_relu()
    rw = rewrite(dying, ModelPlan(kernel_initializer="he_normal"))
    assert all(np.allclose(l.bias.numpy(), 0) for l in rw.model.layers if isinstance(l, keras.layers.Dense))
    fine = zoo.softmax_sparse()
    same = rewrite(fine, ModelPlan(kernel_initializer="glorot_uniform"))  # already glorot + zeros: weights kept
    k0 = [l for l in fine.layers if isinstance(l, keras.layers.Dense)][0].kernel.numpy()
    k1 = [l for l in same.model.layers if isinstance(l, keras.layers.Dense)][0].kernel.numpy()
    np.testing.assert_array_equal(k0, k1)


def test_sequential_without_input_is_built_from_the_data_shape():
    m = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    f = to_functional(m, (5,))
    assert f is not None and f.inputs[0].shape[1:] == (5,)
    assert structure(f).output_layer is not None
