"""Keras classifiers written the way people write them, healthy and buggy, with
small data loaders. Each model function returns a compiled ``keras.Model``; each
data function returns ``((x_train, y_train), (x_val, y_val))``. Used by the doctor
tests and by the README's examples; none of this is remedysweep code."""

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

# ---------------------------------------------------------------- data


def _digits(scale=16.0, images=False, n=900):
    x, y = load_digits(return_X_y=True)
    x, y = x[:n], y[:n]
    x = (x / scale).astype("float32")
    if images:
        x = x.reshape(-1, 8, 8, 1)
    return train_test_split(x, y.astype("int64"), test_size=0.3, random_state=0, stratify=y)


def digits_int():
    x_tr, x_va, y_tr, y_va = _digits()
    return (x_tr, y_tr), (x_va, y_va)


def digits_onehot():
    (x_tr, y_tr), (x_va, y_va) = digits_int()
    return (x_tr, keras.utils.to_categorical(y_tr, 10)), (x_va, keras.utils.to_categorical(y_va, 10))


def digits_images():
    x_tr, x_va, y_tr, y_va = _digits(images=True)
    return (x_tr, y_tr), (x_va, y_va)


def digits_raw_images():
    """Pixels as 0-255 integers' scale, never normalised."""
    x_tr, x_va, y_tr, y_va = _digits(scale=1.0 / 16.0, images=True)
    return (x_tr, y_tr), (x_va, y_va)


def digits_binary():
    """Is the digit 5 or more? Labels 0/1."""
    x_tr, x_va, y_tr, y_va = _digits()
    return (x_tr, (y_tr >= 5).astype("int64")), (x_va, (y_va >= 5).astype("int64"))


def digits_two_inputs():
    """The same digits as two inputs of different widths: the top 40 and the bottom 24 pixels."""
    (x_tr, y_tr), (x_va, y_va) = digits_int()
    return ((x_tr[:, :40], x_tr[:, 40:]), y_tr), ((x_va[:, :40], x_va[:, 40:]), y_va)


def digits_dict_inputs():
    (x_tr, y_tr), (x_va, y_va) = digits_int()
    return ({"top": x_tr[:, :40], "bottom": x_tr[:, 40:]}, y_tr), ({"top": x_va[:, :40], "bottom": x_va[:, 40:]}, y_va)


def noisy_blobs():
    """Three heavily overlapping clusters: about 0.85 is the best one can do."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=800, centers=3, n_features=6, cluster_std=5.0, random_state=1)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return (x_tr, y_tr), (x_va, y_va)


def blobs3():
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=600, centers=3, n_features=6, cluster_std=2.5, random_state=1)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return (x_tr, y_tr), (x_va, y_va)


# ---------------------------------------------------------------- healthy models


def binary_sigmoid():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def softmax_sparse():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def softmax_onehot():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def softmax_layer():
    """A linear Dense, then a Softmax layer (a common way to write the head)."""
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    logits = keras.layers.Dense(10)(h)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def two_inputs():
    a, b = keras.Input((40,), name="top"), keras.Input((24,), name="bottom")
    h = keras.layers.Concatenate()([keras.layers.Dense(32, activation="relu")(a), keras.layers.Dense(16, activation="relu")(b)])
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(h))
    model = keras.Model([a, b], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def residual():
    inputs = keras.Input((64,))
    x = keras.layers.Dense(48, activation="relu")(inputs)
    for _ in range(2):
        h = keras.layers.Dense(48, activation="relu")(x)
        h = keras.layers.Dense(48)(h)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, h]))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def cnn():
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


# ---------------------------------------------------------------- buggy models


def softmax_twice():
    """Softmax in the last Dense and again in a Softmax layer."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax"), keras.layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def relu_output():
    """An improper output activation: ReLU on the class scores."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3, activation="relu")])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def deep_sigmoid():
    """Vanishing gradients: eight sigmoid layers trained with plain SGD."""
    layers = [keras.Input((64,))] + [keras.layers.Dense(32, activation="sigmoid") for _ in range(8)]
    model = keras.Sequential([*layers, keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    return model


def dying_relu():
    """Dead ReLUs from the start: biases initialised far below zero."""
    init = keras.initializers.Constant(-4.0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu", bias_initializer=init),
                              keras.layers.Dense(64, activation="relu", bias_initializer=init), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def raw_pixels_cnn():
    """A CNN fed 0-255 pixels, trained with SGD."""
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    return model


def oscillating():
    """A learning rate far too high for SGD with momentum: the accuracy swings up and down."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(1.0, momentum=0.9), loss="sparse_categorical_crossentropy")
    return model


def clipped_log_loss(y_true, y_pred):
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)


def collapsing():
    """The write-up's case: a hand-written loss on softmax probabilities, Adam at 0.015."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512, activation="leaky_relu"),
                              keras.layers.Dense(512, activation="leaky_relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.015), loss=clipped_log_loss)
    return model


def digits_onehot_full():
    """All 1797 digits, one-hot labels: enough steps for the collapse to show."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split((x / 16.0).astype("float32"), y, test_size=0.25, random_state=0, stratify=y)
    eye = np.eye(10, dtype="float32")
    return (x_tr, eye[y_tr]), (x_va, eye[y_va])


def rgb_cnn():
    """A CNN for 8x8 RGB images (an image folder), pixels scaled inside the model."""
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def focal_loss(y_true, y_pred, gamma=2.0):
    """A binary focal loss written by hand: it expects probabilities."""
    y_true = tf.cast(tf.reshape(y_true, tf.shape(y_pred)), y_pred.dtype)
    p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
    pt = y_true * p + (1 - y_true) * (1 - p)
    return -tf.reduce_mean((1 - pt) ** gamma * tf.math.log(pt), axis=-1)


def _focal_cnn(out_activation):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 16)(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, keras.layers.Dense(1, activation=out_activation)(x))
    model.compile(optimizer="adam", loss=focal_loss, metrics=["accuracy"])
    return model


def focal_on_logits():
    """The focal loss above fed logits: it clips them as if they were
    probabilities. No error, no NaN: the model just learns badly, and sometimes
    falls to chance."""
    return _focal_cnn(None)


def focal_on_sigmoid():
    """The same model written right: the reference the fix is judged against."""
    return _focal_cnn("sigmoid")


def digits_binary_raw_images():
    """All 1797 digits as raw 0..16 images (the model rescales), 'five or more'."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x.reshape(-1, 8, 8, 1).astype("float32"), (y >= 5).astype("float32"),
                                              test_size=0.3, random_state=0, stratify=y)
    return (x_tr, y_tr), (x_va, y_va)


def _pixels_cnn(rescale: bool):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        *([keras.layers.Rescaling(1 / 255)] if rescale else []),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def rescaled_twice():
    """A CNN that divides pixels by 255 inside the model, fed digits the loader
    already scaled to 0..1: what reaches the first layer is at most 0.004."""
    return _pixels_cnn(True)


def rescaled_once():
    """The same CNN without its Rescaling layer: the reference for the fix."""
    return _pixels_cnn(False)


def _mlp(optimizer):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def warmup_too_long():
    """Adam behind a 10,000-step warmup copied from a large-data recipe, on 630
    rows: ten epochs are 200 steps, and the rate ends at 2% of its target."""
    return _mlp(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.0, decay_steps=100_000, warmup_target=1e-3, warmup_steps=10_000)))


def decays_too_fast():
    """Adam behind an exponential decay copied from a recipe with far more steps:
    by a tenth of the first epoch the rate is a thousandth of its start."""
    return _mlp(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=2, decay_rate=0.1)))


def constant_rate():
    """The same MLP at Adam's constant 1e-3: the reference for warmup_too_long."""
    return _mlp(keras.optimizers.Adam(1e-3))
