"""Keras classifiers in the shapes people's own training scripts take: custom
losses and metrics nobody registered, custom and ``Lambda`` layers, adapted
preprocessing layers, mixed precision, a frozen nested backbone, separable
convolutions, a subclassed model with its own ``train_step``, raw text in.
Each builder returns a compiled ``keras.Model``; each loader returns
``((x_train, y_train), (x_val, y_val))``. None of this is remedysweep code."""

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def _digits(n=900, images=False):
    x, y = load_digits(return_X_y=True)
    x, y = (x[:n] / 16.0).astype("float32"), y[:n].astype("int64")
    if images:
        x = x.reshape(-1, 8, 8, 1)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return (x_tr, y_tr), (x_va, y_va)


def digits():
    return _digits()


def digits_onehot():
    (x_tr, y_tr), (x_va, y_va) = _digits()
    eye = np.eye(10, dtype="float32")
    return (x_tr, eye[y_tr]), (x_va, eye[y_va])


def digits_images():
    return _digits(images=True)


def digits_raw():
    """Unscaled pixels (0-16 times 16): for the models that normalise inside."""
    (x_tr, y_tr), (x_va, y_va) = _digits()
    return (x_tr * 256.0, y_tr), (x_va * 256.0, y_va)


def digits_two_raw():
    (x_tr, y_tr), (x_va, y_va) = digits_raw()
    return ((x_tr[:, :40], x_tr[:, 40:]), y_tr), ((x_va[:, :40], x_va[:, 40:]), y_va)


# ---------------------------------------------------------------- custom code


def clipped_log(y_true, y_pred):
    """The write-up's loss, written by hand and never registered."""
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)


def handwritten_loss():
    inputs = keras.Input((64,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    probs = keras.layers.Softmax()(keras.layers.Dense(10)(h))
    model = keras.Model(inputs, probs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=clipped_log)
    return model


def collapsing_handwritten():
    """The write-up's collapse: a Softmax layer, the clipped log loss, Adam at 0.015."""
    inputs = keras.Input((64,))
    h = keras.layers.Dense(512, activation="leaky_relu")(inputs)
    h = keras.layers.Dense(512, activation="leaky_relu")(h)
    probs = keras.layers.Softmax()(keras.layers.Dense(10)(h))
    model = keras.Model(inputs, probs)
    model.compile(optimizer=keras.optimizers.Adam(0.015), loss=clipped_log)
    return model


class SmoothedCE(keras.losses.Loss):
    """A loss class with constructor arguments and no get_config."""

    def __init__(self, smoothing, weight):
        super().__init__(name="smoothed_ce")
        self.smoothing, self.weight = smoothing, weight

    def call(self, y_true, y_pred):
        n = tf.cast(tf.shape(y_pred)[-1], y_pred.dtype)
        y = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
        y = y * (1 - self.smoothing) + self.smoothing / n
        return self.weight * keras.losses.categorical_crossentropy(y, y_pred)


def top2(y_true, y_pred):
    return keras.metrics.sparse_top_k_categorical_accuracy(y_true, y_pred, k=2)


class Confidence(keras.metrics.Metric):
    """A stateful custom metric: the mean top probability."""

    def __init__(self, name="confidence"):
        super().__init__(name=name)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(tf.reduce_sum(tf.reduce_max(y_pred, axis=-1)))
        self.count.assign_add(tf.cast(tf.shape(y_pred)[0], "float32"))

    def result(self):
        return self.total / tf.maximum(self.count, 1.0)


def loss_class_and_metrics():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss=SmoothedCE(0.1, 1.0), metrics=["accuracy", top2, Confidence()])
    return model


class Scale(keras.layers.Layer):
    """A custom layer with a weight and no get_config."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain * self.factor


def custom_layers():
    inputs = keras.Input((64,))
    h = keras.layers.Lambda(lambda t: t * 2.0 - 1.0)(inputs)
    h = keras.layers.Dense(64, activation="relu")(h)
    h = Scale(0.5)(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---------------------------------------------------------------- preprocessing state


def normalized_two_inputs():
    """Two inputs, each normalised by a Normalization layer adapted to the data."""
    (x_tr, _), _ = digits_two_raw()
    a, b = keras.Input((40,), name="top"), keras.Input((24,), name="bottom")
    na, nb = keras.layers.Normalization(), keras.layers.Normalization()
    na.adapt(x_tr[0])
    nb.adapt(x_tr[1])
    h = keras.layers.Concatenate()([keras.layers.Dense(32, activation="relu")(na(a)), keras.layers.Dense(16, activation="relu")(nb(b))])
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(h))
    model = keras.Model([a, b], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def discretized():
    """Pixels bucketised by an adapted Discretization layer, then embedded."""
    (x_tr, _), _ = digits_raw()
    inputs = keras.Input((64,))
    disc = keras.layers.Discretization(num_bins=4)
    disc.adapt(x_tr)
    h = keras.layers.Embedding(4, 4)(disc(inputs))
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


WORDS = ["apple", "river", "stone", "cloud", "ember", "frost", "grove", "haze", "iris", "jade", "kelp", "lime"]


def _sentences(n=600, seed=0):
    """Sentences of 6 words; the class is which of three word groups is most frequent."""
    rng = np.random.default_rng(seed)
    groups = [WORDS[0:4], WORDS[4:8], WORDS[8:12]]
    x, y = [], []
    for _ in range(n):
        c = int(rng.integers(3))
        words = [rng.choice(groups[c]) if rng.random() < 0.7 else rng.choice(WORDS) for _ in range(6)]
        x.append(" ".join(words))
        y.append(c)
    return np.array(x, dtype=object), np.array(y, dtype="int64")


def text():
    x, y = _sentences()
    return (x[:450], y[:450]), (x[450:], y[450:])


def text_vectorized():
    """Raw strings in: TextVectorization adapted to the corpus, Embedding, pooling."""
    x, _ = _sentences()
    inputs = keras.Input((1,), dtype="string")
    vec = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=6)
    vec.adapt(x[:450])
    h = keras.layers.Embedding(20, 8)(vec(inputs))
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(16, activation="relu")(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tokens():
    """The sentences as words (strings), for a StringLookup model."""
    x, y = _sentences()
    words = np.array([s.split() for s in x], dtype=object)
    return (words[:450], y[:450]), (words[450:], y[450:])


def string_lookup():
    (x_tr, _), _ = tokens()
    inputs = keras.Input((6,), dtype="string")
    lookup = keras.layers.StringLookup()
    lookup.adapt(x_tr)
    h = keras.layers.Embedding(lookup.vocabulary_size(), 8)(lookup(inputs))
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


# ---------------------------------------------------------------- other shapes


def mixed_precision():
    """Built under the mixed_float16 policy: Keras wraps the optimizer in a LossScaleOptimizer."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((64,))
        h = keras.layers.Dense(64, activation="relu")(inputs)
        out = keras.layers.Dense(10, activation="softmax", dtype="float32")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return model


def frozen_backbone():
    """A pretrained-style backbone, frozen, nested inside a functional model."""
    backbone = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
                                 keras.layers.Flatten()], name="backbone")
    backbone.trainable = False
    inputs = keras.Input((8, 8, 1))
    h = backbone(inputs, training=False)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(32, activation="relu")(h))
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def separable_cnn():
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


class OwnStep(keras.Model):
    """A subclassed model with its own train_step (unpacks exactly (x, y))."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(64, activation="relu")
        self.out = keras.layers.Dense(10, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.hidden(x))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        for m in self.metrics:
            if m.name == "loss":
                m.update_state(loss)
            else:
                m.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def own_train_step():
    model = OwnStep()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Subclassed(keras.Model):
    def __init__(self, bias=0.0):
        super().__init__()
        init = keras.initializers.Constant(bias)
        self.d1 = keras.layers.Dense(64, activation="relu", bias_initializer=init)
        self.d2 = keras.layers.Dense(64, activation="relu", bias_initializer=init)
        self.head = keras.layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.head(self.d2(self.d1(x)))


def subclassed():
    model = Subclassed()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def subclassed_dead_relu():
    """Dead ReLUs in a subclassed model: biases initialised far below zero."""
    model = Subclassed(bias=-4.0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


# ---------------------------------------------------------------- layer types packing covers


def waves(n=400, seed=0):
    """Three kinds of noisy waveforms, 32 steps, one channel."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 32)
    y = rng.integers(0, 3, n)
    freq = np.array([2.0, 4.0, 7.0])[y]
    x = np.sin(2 * np.pi * freq[:, None] * t[None] + rng.uniform(0, 6.3, (n, 1))) + 0.4 * rng.standard_normal((n, 32))
    x = x.astype("float32")[..., None]
    return (x[:300], y[:300]), (x[300:], y[300:])


def token_sequences(n=400, seed=0, vocab=30, length=10):
    """Integer token sequences; the class is which third of the vocabulary dominates."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    lo = 1 + y * (vocab // 3)
    own = rng.integers(lo[:, None], lo[:, None] + vocab // 3 - 1, (n, length))
    other = rng.integers(1, vocab, (n, length))
    x = np.where(rng.random((n, length)) < 0.6, own, other).astype("int32")
    return (x[:300], y[:300]), (x[300:], y[300:])


def conv2d_batchnorm():
    """Conv2D, BatchNormalization, a ReLU layer, pooling, Flatten, Dropout."""
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def conv1d_waves():
    model = keras.Sequential([
        keras.Input((32, 1)),
        keras.layers.Conv1D(8, 5, padding="same"),
        keras.layers.LeakyReLU(),
        keras.layers.AveragePooling1D(2),
        keras.layers.Conv1D(8, 3, activation="relu"),
        keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def gru_tokens():
    model = keras.Sequential([
        keras.Input((10,), dtype="int32"),
        keras.layers.Embedding(30, 8),
        keras.layers.GRU(12),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def lstm_tokens():
    model = keras.Sequential([
        keras.Input((10,), dtype="int32"),
        keras.layers.Embedding(30, 8),
        keras.layers.LSTM(12),
        keras.layers.LayerNormalization(),
        keras.layers.Dense(3),
        keras.layers.Softmax(),
    ])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def two_inputs_merged():
    """Two inputs, Concatenate and Add, ELU and Activation layers."""
    a, b = keras.Input((40,), name="top"), keras.Input((24,), name="bottom")
    ha = keras.layers.ELU()(keras.layers.Dense(16)(a))
    hb = keras.layers.Activation("tanh")(keras.layers.Dense(16)(b))
    h = keras.layers.Concatenate()([ha, hb])
    r = keras.layers.Dense(32, activation="relu")(h)
    h = keras.layers.Add()([keras.layers.Dense(32)(h), r])
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model([a, b], out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def digits_two():
    (x_tr, y_tr), (x_va, y_va) = _digits()
    return ((x_tr[:, :40], x_tr[:, 40:]), y_tr), ((x_va[:, :40], x_va[:, 40:]), y_va)
