"""A user's own model, as people write it: the worked example of sweeping your
own classifier (README, "Sweep your own model"). ``build`` returns a compiled
``keras.Model``; its loss, optimizer and learning rate are the baseline the
knobs change."""

import keras
import tensorflow as tf


def clipped_log_loss(y_true, y_pred):
    """A hand-written cross-entropy on the softmax probabilities."""
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)


def build():
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(512, activation="leaky_relu"),
        keras.layers.Dense(512, activation="leaky_relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.015), loss=clipped_log_loss, metrics=["accuracy"])
    return model
