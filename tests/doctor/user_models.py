"""Three small user models for ``remedysweep doctor``: one that collapses, one that
produces NaN, one that is healthy. Each function returns a compiled keras.Model."""

import keras
import tensorflow as tf


def digits_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    (x_tr, x_va, y_tr, y_va) = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return (x_tr, keras.utils.to_categorical(y_tr, 10)), (x_va, keras.utils.to_categorical(y_va, 10))


def _mlp(activation="leaky_relu", width=512):
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(width, activation=activation),
        keras.layers.Dense(width, activation=activation),
        keras.layers.Dense(10, activation="softmax"),
    ])


def clipped_log_loss(y_true, y_pred):
    """A hand-written cross-entropy on softmax probabilities (clipped, so no NaN)."""
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)


def raw_log_loss(y_true, y_pred):
    """The same without clipping: log(0) once a probability underflows."""
    return -tf.reduce_sum(y_true * tf.math.log(y_pred), axis=-1)


def collapsing():
    model = _mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.015), loss=clipped_log_loss, metrics=["accuracy"])
    return model


def nan_producing():
    model = _mlp(activation="relu")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=raw_log_loss, metrics=["accuracy"])
    return model


def healthy():
    model = _mlp(activation="relu", width=64)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy", metrics=["accuracy"])
    return model
