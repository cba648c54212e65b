"""Graph packs: runs of any model built from allow-listed layers, trained
together in one compiled function.

Each run keeps its own compiled Keras model: its loss (the user's own
included), optimizer class and settings (mixed precision included), metrics,
batch-norm statistics, dropout generators and widths. One ``tf.function``
advances every run of the pack by a range of steps, calling each model's own
``train_step`` on the run's own batches (:func:`~.data.epoch_order`), then
each model's ``test_step`` over the validation set, as ``fit`` does. Nothing
is shared but the compiled function, so a slice is the run trained alone
through ``fit``, step for step; what the pack saves is Keras's per-step
Python loop, dispatch and callbacks, run by run, and the two cores are kept
busy by independent slices. A slice that stopped (early stop, NaN) is skipped
from its next step on: ``tf.cond`` on a per-slice flag, so it costs nothing.

What may be packed is an allow-list of Keras layers (:data:`LAYERS`): a model
with any other layer, its own ``train_step``, or a plugin's callbacks trains on
the Keras path, and ``trials.csv`` says why (:func:`graph_problem`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .build import BuiltRun
from .data import epoch_order, map_inputs

#: Keras layers a graph pack trains (each stays the run's own object).
LAYERS = frozenset({
    "InputLayer", "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
    "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D",
    "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
    "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Embedding", "GRU", "LSTM", "SimpleRNN", "Bidirectional", "GRUCell", "LSTMCell", "SimpleRNNCell",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Identity", "ActivityRegularization",
    "Normalization", "Rescaling", "Discretization", "CategoryEncoding", "StringLookup", "IntegerLookup", "TextVectorization",
    "Functional", "Sequential",
})


def graph_problem(built: BuiltRun) -> str:
    """Why this run cannot join a graph pack ("" if it can)."""
    import keras

    model = built.model
    if built.plan.fit.callbacks:
        return "a plugin's callbacks run inside fit"
    for method in ("train_step", "test_step", "compute_loss"):
        own = getattr(type(model), method, None)
        if own is not None and not getattr(own, "__module__", "").startswith("keras."):
            return f"the model's own {method} is not packed"
    if not isinstance(model, keras.Model):
        return "not a Keras model"
    for layer in model._flatten_layers(include_self=False, recursive=True):
        cls = type(layer)
        if cls.__name__ not in LAYERS or not cls.__module__.startswith("keras."):
            return f"layer {layer.name!r} ({cls.__name__}) is not on the packed allow-list"
    opt = getattr(model, "optimizer", None)
    inner = getattr(opt, "inner_optimizer", None) or opt
    if inner is None or not type(inner).__module__.startswith("keras."):
        return "a plugin's own optimizer is not packed"
    if getattr(model, "run_eagerly", False):
        return "the model runs eagerly"
    return ""


class GraphPack:
    """Train compiled runs of one batch size together (see the module text)."""

    def __init__(self, runs: Sequence[BuiltRun], sweep: Any, diagnostics: bool = True):
        import tensorflow as tf

        self.runs, self.sweep, self.diagnostics = list(runs), sweep, diagnostics
        self.S = len(self.runs)
        first = self.runs[0]
        self.batch = first.batch_size
        self.n = first.data.n_train
        self.steps = first.steps_per_epoch
        data_of: dict[int, Any] = {}
        self.x_train, self.x_val = [], []
        for r in self.runs:  # runs of one pack share their data unless a knob scaled it
            if id(r.data) not in data_of:
                data_of[id(r.data)] = (map_inputs(r.data.x_train, tf.constant), map_inputs(r.data.x_val, tf.constant))
            xt, xv = data_of[id(r.data)]
            self.x_train.append(xt)
            self.x_val.append(xv)
        self.y_train = [tf.constant(r.y_train) for r in self.runs]
        self.y_val = [tf.constant(r.y_val) for r in self.runs]
        self.n_val = len(first.data.y_val)
        self.val_batch = max(self.batch, 256)
        for r, xt, yt in zip(self.runs, self.x_train, self.y_train):
            sample = (map_inputs(xt, lambda a: a[: self.batch]), yt[: self.batch])
            r.model._symbolic_build(data_batch=sample)  # optimizer, loss and metric state built before tracing, as fit does
            if r.model.optimizer is not None and not r.model.optimizer.built:
                r.model.optimizer.build(r.model.trainable_variables)
        self._train_range = tf.function(self._train_range_py, autograph=False)
        self._validate = tf.function(self._validate_py, autograph=False)
        self._probes: list[Any] | None = None

    # -- the compiled parts --------------------------------------------------------

    def _train_range_py(self, orders: Any, start: Any, stop: Any, active: Any) -> Any:
        """Steps ``[start, stop)`` of the epoch whose per-slice data order is
        ``orders`` ``[S, n]``, for the slices ``active`` ``[S]`` marks."""
        import tensorflow as tf

        def step_once(step: Any) -> Any:
            lo = step * self.batch
            hi = tf.minimum(lo + self.batch, self.n)
            for s, run in enumerate(self.runs):

                def one(s: int = s, run: BuiltRun = run) -> Any:
                    idx = orders[s, lo:hi]
                    x = map_inputs(self.x_train[s], lambda a: tf.gather(a, idx))
                    run.model.train_step((x, tf.gather(self.y_train[s], idx)))
                    return tf.constant(0)

                tf.cond(active[s], one, lambda: tf.constant(0))
            return step + 1

        # explicit loops, traced without AutoGraph: Keras's own fit does not convert
        # a model's code either, and the conversion cost seconds per pack
        tf.while_loop(lambda step: step < stop, step_once, (start,))
        return tf.constant(0)

    def _validate_py(self, active: Any) -> Any:
        """Each active slice's ``test_step`` over the validation set, in batches."""
        import tensorflow as tf

        batches = -(-self.n_val // self.val_batch)
        for s, run in enumerate(self.runs):

            def one(s: int = s, run: BuiltRun = run) -> Any:
                def batch_once(b: Any) -> Any:
                    lo = b * self.val_batch
                    hi = tf.minimum(lo + self.val_batch, self.n_val)
                    x = map_inputs(self.x_val[s], lambda a: a[lo:hi])
                    run.model.test_step((x, self.y_val[s][lo:hi]))
                    return b + 1

                tf.while_loop(lambda b: b < batches, batch_once, (tf.constant(0),))
                return tf.constant(0)

            tf.cond(active[s], one, lambda: tf.constant(0))
        return tf.constant(0)

    # -- the steps of the one epoch loop (:func:`~.trainers.epoch_loop`) --------------
    # A stopped run is skipped from its next step on: tf.cond on its flag.

    def begin_epoch(self, epoch: int, live: list[int]) -> None:
        import tensorflow as tf

        if self._probes is None:
            from .keras_trainer import make_probe

            self._probes = [make_probe(r, self.sweep.training.probe_size) for r in self.runs]
        self._active = tf.constant([s in live for s in range(self.S)])
        for s in live:
            self.runs[s].model.reset_metrics()
        self._orders = tf.constant(np.stack([epoch_order(r.seed, epoch, self.n) for r in self.runs]))

    def train_steps(self, start: int, stop: int) -> None:
        import tensorflow as tf

        self._train_range(self._orders, tf.constant(start), tf.constant(stop), self._active)

    def probe_accuracies(self, live: list[int]) -> list[float]:
        return [self._probes[s].accuracy() for s in live]

    def end_epoch(self, live: list[int]) -> list[tuple[dict[str, float], dict[str, Any], bool]]:
        logs = {s: _floats(self.runs[s].model.get_metrics_result()) for s in live}
        for s in live:
            self.runs[s].model.reset_metrics()
        self._validate(self._active)
        out = []
        for s in live:
            logs[s].update({f"val_{k}": v for k, v in _floats(self.runs[s].model.get_metrics_result()).items()})
            if self.diagnostics:
                d = self._probes[s].diagnostics()
                out.append((logs[s], d, d.get("weights_finite", True)))
            else:
                out.append((logs[s], {}, self._probes[s].weights_finite()))
        return out

    def shrink(self, live: list[int], seconds: list[float], epochs_left: int) -> None:
        return None  # stopped runs already cost nothing


def _floats(logs: dict[str, Any]) -> dict[str, float]:
    """Keras's metric results as numbers (nested results flattened)."""
    out: dict[str, float] = {}
    for k, v in logs.items():
        if isinstance(v, dict):
            out.update(_floats(v))
        else:
            try:
                out[k] = float(np.asarray(v))
            except (TypeError, ValueError):
                continue
    return out
