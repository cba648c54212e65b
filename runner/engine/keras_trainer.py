"""The Keras path: one run trained by Keras's own ``fit``, feeding the recorder.

Diagnostics are computed once per epoch on a fixed probe batch, in inference
mode, so they consume no randomness and leave training exactly as it would be
without them. The in-epoch probes run only in the first epoch(s), in a separate
``fit`` call, because a callback with a per-step hook makes Keras wait for every
step.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Mapping

import numpy as np

from .build import BuiltRun, Setup
from .data import epoch_order, map_inputs
from .probe import Probe
from .recorder import Recorder
from .result import RunResult
from .surgery import main_kernel


def error_message(exc: BaseException) -> str:
    """``Type: message (at file:line)``, one line: the informative line of the
    message (TensorFlow puts it last, after "in user code:")."""
    lines = [l.strip() for l in str(exc).strip().splitlines() if l.strip()]
    useful = [l for l in lines if not l.endswith(":") and not l.startswith(("File ", "in user code"))]
    text = useful[-1] if len(lines) > 1 and useful else (lines[0] if lines else "")
    text = text.removeprefix(f"{type(exc).__name__}: ")
    error = f"{type(exc).__name__}: {text[:1500]}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        error += f" (at {os.path.basename(last.filename)}:{last.lineno})"
    return error


def train_pipeline(built: BuiltRun, first_epoch: int, last_epoch: int) -> Any:
    """Batches of epochs ``[first_epoch, last_epoch)`` in the run's data order
    (:func:`~.data.epoch_order`), as an in-memory tf.data pipeline."""
    import tensorflow as tf

    n = built.data.n_train
    orders = np.stack([epoch_order(built.seed, e, n) for e in range(first_epoch, last_epoch)])
    x = map_inputs(built.data.x_train, tf.constant)
    y = tf.constant(built.y_train)
    batch = built.batch_size

    def take(idx: Any) -> Any:
        return map_inputs(x, lambda a: tf.gather(a, idx)), tf.gather(y, idx)

    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda o: tf.data.Dataset.from_tensor_slices(o).batch(batch))
        .map(take, num_parallel_calls=1)
        .prefetch(2)
    )


def val_pipeline(built: BuiltRun) -> Any:
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((built.data.x_val, built.y_val)).batch(max(built.batch_size, 256)).cache()


def make_probe(built: BuiltRun, probe_size: int) -> Probe:
    """The run's :class:`~.probe.Probe` on the fixed probe batch: logits and
    pre-activations read off the rewritten model, the loss the run compiled."""
    import keras
    import tensorflow as tf

    model, rw, data = built.model, built.rewritten, built.data
    idx = data.probe_indices(probe_size)
    x = map_inputs(data.x_val, lambda a: tf.constant(a[idx]))
    y_fit = tf.constant(built.y_val[idx])
    y_true = data.y_val[idx]
    inner = keras.Model(model.inputs, [rw.logits, *rw.preacts]) if rw.logits is not None else None
    loss_fn = built.loss

    def taps(x: Any, pred: Any) -> tuple[Any, list[Any]]:
        if inner is None:
            return None, []
        res = inner(x, training=False)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        return res[0], res[1:]

    # In a graph, as training is: Keras fuses a softmax under its own loss only there.
    return Probe(model, x, y_true, data.targets(y_true, "binary" if rw.binary else "one_hot"), binary=rw.binary,
                 probabilities=rw.probabilities, taps=taps, loss_of=lambda pred: tf.reduce_mean(loss_fn(y_fit, pred)),
                 first=main_kernel(rw.first_kernel) if rw.first_kernel is not None else None,
                 last=main_kernel(rw.last_kernel) if rw.last_kernel is not None else None,
                 kernels=frozenset(id(v) for v in model.trainable_variables if v.path.endswith("kernel")), metrics=built.probe_metrics)


def _callbacks(recorder: Recorder, probe: Probe, accuracy: Any, diagnostics_on: bool = True) -> tuple[Any, Any]:
    import keras

    class Record(keras.callbacks.Callback):
        """Per-epoch diagnostics into the recorder; stop when it says so."""

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            d = probe.diagnostics() if diagnostics_on else {}
            finite = d.get("weights_finite", True) if diagnostics_on else probe.weights_finite()
            if recorder.end_epoch(logs or {}, d, finite):
                self.model.stop_training = True

    class EarlyProbe(keras.callbacks.Callback):
        """Probe accuracy at a few steps of the first epoch(s)."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            self.step = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            before, self.step = self.step, batch + 1
            if recorder.schedule.crossed(self.epoch, before, self.step):
                recorder.add_probe(self.epoch, self.step, accuracy())

    return Record(), EarlyProbe()


def fit_run(built: BuiltRun, recorder: Recorder, *, callbacks: tuple[Any, ...] = (), diagnostics_on: bool = True) -> float:
    """Train one built run through ``fit``, feeding ``recorder``; returns the
    wall time of training. Raises what ``fit`` raises (the router turns it into
    a failed result). ``callbacks``: more Keras callbacks for this run."""
    probe = make_probe(built, recorder.sweep.training.probe_size)
    record, early = _callbacks(recorder, probe, probe.accuracy, diagnostics_on)
    every = [record, *callbacks, *(factory(built) for factory in built.plan.fit.callbacks)]
    epochs = built.epochs
    probe_epochs = recorder.probe_epochs
    val = val_pipeline(built)
    spe = built.steps_per_epoch
    t0 = time.perf_counter()
    if probe_epochs:
        built.model.fit(train_pipeline(built, 0, probe_epochs), validation_data=val, epochs=probe_epochs,
                        steps_per_epoch=spe, callbacks=[*every, early], verbose=0, shuffle=False)
    if probe_epochs < epochs and not recorder.stopped:
        built.model.fit(train_pipeline(built, probe_epochs, epochs), validation_data=val, initial_epoch=probe_epochs,
                        epochs=epochs, steps_per_epoch=spe, callbacks=every, verbose=0, shuffle=False)
    return time.perf_counter() - t0


def run_alone(setup: Setup, knobs: Mapping[str, Any], seed: int, *, path_note: str = "", early_stop: bool | None = None,
              callbacks: tuple[Any, ...] = (), diagnostics_on: bool = True) -> RunResult:
    """Build and train one run on the Keras path; a fault, including a knob that
    cannot apply, is a ``failed`` result with its message."""
    import dataclasses

    from .trainers import KerasTrainer, train_batch

    result = train_batch(setup, [(knobs, seed)], trainers=(KerasTrainer(callbacks),), early_stop=early_stop,
                         diagnostics=diagnostics_on)[0]
    return dataclasses.replace(result, path_note=path_note) if path_note else result
