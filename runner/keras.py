"""``remedysweep.keras.Watch``: a Keras callback that watches the user's own
``model.fit`` with the sweep's recorder.

    from remedysweep.keras import Watch
    model.fit(x, y, validation_data=(xv, yv), callbacks=[Watch("runs/mine", data=(xv, yv))])

Each epoch it records Keras's metrics and, on a fixed probe batch of ``data``,
the diagnostics a sweep records (logits, dead units, gradient norms, weight
norm, the regularization penalty); the run is classified by the same recorder
and rules as a run of a sweep. The first time a symptom appears it prints one
line (which, when, the evidence); ``stop_on`` names symptoms that end training
through ``model.stop_training``. It writes a run folder: ``trials.csv``,
``curves.csv``, ``early_probes.csv``, ``watch.json`` and ``watch.html`` (the
curves, diagnostics, symptoms, and the remedies doctor would try first), the
model as compiled when training began (``model.keras``) and, when data is
given, a sample of it (``data.npz``), so that ``remedysweep doctor --from
FOLDER`` starts from what it saw. With ``tensorboard=LOGDIR`` the diagnostics
are also TensorBoard scalars.

It never breaks the user's training: a failure of its own becomes one warning
and the callback steps aside.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from remedysweep.engine.folder import CURVES_CSV, PROBES_CSV, SWEEP_FILE, TRIALS_CSV
from remedysweep.engine.symptoms import evidence
from remedysweep.errors import one_line
from remedysweep.files import LOCK_FILE, FileLock, LockHeld, atomic_write, check_folder, folder_kind, mark_folder

FOLDER_KIND = "watch"
#: The run folder is rewritten when a symptom appears, at the end, and otherwise
#: at most this often (seconds) while training goes on.
WRITE_EVERY_S = 2.0
#: What an accuracy metric is called in ``fit``'s logs, by how it was compiled.
ACCURACY_NAMES = ("acc", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy")
WATCH_FILES = (TRIALS_CSV, CURVES_CSV, PROBES_CSV, SWEEP_FILE, "watch.json", "watch.html", "model.keras", "custom_objects.pkl", "data.npz")


class Watch(keras.callbacks.Callback):
    """``Watch(out, data=None, stop_on=(), tensorboard=None, *, train_data=None,
    probe_size=256, early_probes=0, verbose=True, name="watch")``: see the module text.

    ``data``: ``(x, y)`` the probe batch and the validation accuracy come from
    (usually the validation data); without it only Keras's metrics and the
    weights are recorded. ``train_data``: ``(x, y)`` kept for doctor (a sample
    within 64 MiB); doctor splits ``data`` itself when it is missing.
    ``stop_on``: symptom names (``"collapsed"``, ``"diverged"``, ...) that stop
    training when they appear. ``early_probes``: probe accuracy at a few steps of
    the first epoch (a per-step hook, so off by default)."""

    def __init__(self, out: str | Path, data: Any = None, stop_on: Sequence[str] = (), tensorboard: str | Path | None = None,
                 *, train_data: Any = None, probe_size: int = 256, early_probes: int = 0, verbose: bool = True, name: str = "watch"):
        super().__init__()
        from remedysweep.engine.symptoms import SYMPTOMS

        if isinstance(stop_on, str):  # stop_on="collapsed": one name, not its letters
            stop_on = (stop_on,)
        unknown = [s for s in stop_on if s not in SYMPTOMS]
        if unknown:
            raise ValueError(f"stop_on: unknown symptom(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(SYMPTOMS))}")
        self.out = Path(out)
        check_folder(self.out, FOLDER_KIND, (LOCK_FILE,))  # only a folder remedysweep wrote as a watch: never the user's files
        self.data, self.train_data = data, train_data
        self.stop_on = tuple(stop_on)
        self.tensorboard = Path(tensorboard) if tensorboard is not None else None
        self.probe_size, self.early_probes, self.verbose, self.name = probe_size, early_probes, verbose, name
        self.broken: str | None = None
        self.recorder: Any = None
        self.seen: dict[str, int] = {}
        self.started = time.perf_counter()
        self._writer: Any = None
        self._written = 0.0
        self._lines: list[str] = []
        if early_probes:
            self.on_train_batch_end = self._batch_end  # a per-step hook only when asked for

    # -- never break the user's training ------------------------------------------

    def _guard(self, step: str, fn: Any, *args: Any) -> None:
        if self.broken:
            return
        try:
            fn(*args)
        except Exception as exc:  # its own failure: one warning, then it steps aside
            self.broken = one_line(exc)
            warnings.warn(f"remedysweep Watch stopped watching at {step}: {self.broken}", RuntimeWarning, stacklevel=2)

    def on_train_begin(self, logs: Any = None) -> None:
        self._guard("the start of training", self._begin)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch, self._step = epoch, 0
        self._say()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._guard(f"epoch {epoch + 1}", self._epoch_end, epoch, dict(logs or {}))

    def on_train_end(self, logs: Any = None) -> None:
        self._guard("the end of training", self._end)
        self._release()
        self._say()

    def _say(self, line: str | None = None) -> None:
        """Queue a line, or print the queued ones. Keras's progress bar ends its
        line only after every callback's ``on_epoch_end``: what is said at an
        epoch's end waits for the next epoch, or the end of training, so that it
        never runs on from the bar."""
        if line is not None:
            if self.verbose:
                self._lines.append(line)
            return
        lines, self._lines = self._lines, []
        for text in lines:
            print(text, flush=True)

    def _batch_end(self, batch: int, logs: Any = None) -> None:
        self._guard("a step", self._probe_step, batch)

    # -- the steps ----------------------------------------------------------------------

    def _begin(self) -> None:
        if self.recorder is not None:  # another fit call: the same run goes on, for the same model only
            if self.model is not self._bound:
                raise ValueError(f"this Watch already watches model {self._bound.name!r}; give model {self.model.name!r} "
                                 "a Watch of its own, with its own folder")
            self._claim()
            self.recorder.sweep = self._sweep(self.recorder.epochs_run + int(self.params.get("epochs", 1)) - self._initial_epoch())
            return
        from remedysweep.engine.recorder import Recorder

        self._bound = self.model
        self.out.mkdir(parents=True, exist_ok=True)
        self._claim()
        if folder_kind(self.out) is None:
            mark_folder(self.out, FOLDER_KIND)
        self.dataset = _dataset(self.model, self.data, self.train_data)
        self.chance = self.dataset.chance if self.dataset is not None else _chance_from_units(self.model)
        steps = int(self.params.get("steps") or 1)
        self.recorder = Recorder(self._sweep(int(self.params.get("epochs", 1)) - self._initial_epoch()), self.chance, steps,
                                 early_stop=False, n_val=len(self.dataset.y_val) if self.dataset is not None else None)
        self.probe = _WatchProbe(self.model, self.dataset, self.probe_size) if self.dataset is not None else None
        from remedysweep.engine.saved import save_with_data

        self.saved = save_with_data(self.model, self.out, self.dataset, data_is_split_of_validation=self.train_data is None)
        self._write_meta()

    def _claim(self) -> None:
        """Hold the folder's lock while this fit runs: two Watches (two scripts,
        two notebooks) never write one folder."""
        if getattr(self, "_lock", None) is not None:
            return
        try:
            self._lock = FileLock(self.out / LOCK_FILE).acquire()
        except LockHeld as held:
            raise ValueError(f"{self.out}: another remedysweep Watch ({held.holder or 'a running process'}) is writing this "
                             "folder; give this one a folder of its own") from None

    def _release(self) -> None:
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.release()

    def _initial_epoch(self) -> int:
        return int(getattr(self.model, "_initial_epoch", 0) or 0)

    def _sweep(self, epochs: int) -> Any:
        from dataclasses import replace

        from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep

        s = make_sweep(self.name, model=ModelSpec(kind="mlp"), data=DataSpec(dataset="digits"), epochs=max(1, epochs),
                       early_probes=self.early_probes, probe_size=self.probe_size)
        return replace(s, source="<watch>")

    def _probe_step(self, batch: int) -> None:
        before, self._step = self._step, batch + 1
        rec = self.recorder
        if self.probe is not None and rec is not None and rec.schedule.crossed(self._epoch, before, self._step):
            rec.add_probe(self._epoch, self._step, self.probe.probe.accuracy())

    def _epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        rec = self.recorder
        if rec is None:
            return
        d = self.probe.probe.diagnostics() if self.probe is not None else _weights_only(self.model)
        for key in ("accuracy", "val_accuracy"):  # the same metric under the name it was compiled with
            prefix = key[:-len("accuracy")]
            named = [prefix + k for k in ACCURACY_NAMES if prefix + k in logs]
            if key not in logs and named:
                logs[key] = logs[named[0]]
        if "val_accuracy" not in logs and self.probe is not None:
            logs["val_accuracy"] = self.probe.accuracy_all()  # the whole of `data`, as a sweep's validation accuracy
        if "accuracy" not in logs:
            logs["accuracy"] = float("nan")
        if "val_accuracy" not in logs:
            logs["val_accuracy"] = logs.get("accuracy", float("nan"))  # no validation at all: training accuracy stands in
        rec.sweep = rec.sweep if rec.epochs_run + 1 <= rec.sweep.training.epochs else self._sweep(rec.epochs_run + 1)
        rec.stopped = False
        rec.end_epoch(logs, d, d.get("weights_finite", True))
        self._tensorboard(epoch, logs, d)
        partial = rec.finish(facts={"relu_family": self.probe.relu} if self.probe else {})
        rec.stopped = False
        new = [s for s in partial.symptoms if s not in self.seen]
        for s in new:
            self.seen[s] = epoch + 1
            self._say(f"remedysweep: epoch {epoch + 1}: {s}: {evidence(s, partial, self.chance)}")
        hit = [s for s in new if s in self.stop_on]
        if hit:
            self.model.stop_training = True
            self._say(f"remedysweep: stopping training at epoch {epoch + 1} ({', '.join(hit)})")
        if new or time.perf_counter() - self._written >= WRITE_EVERY_S:  # the folder follows the run, without a write per epoch
            self._write(partial)

    def _end(self) -> None:
        if self.recorder is None:
            return
        result = self.recorder.finish(seconds=time.perf_counter() - self.started, n_params=int(self.model.count_params()),
                                      path="watch", facts={"relu_family": bool(self.probe and self.probe.relu)})
        self._write(result, final=True)
        if self._writer is not None:
            self._writer.flush()
        self._say(f"remedysweep: {result.outcome.value} after {result.epochs_run} epoch(s) "
                  f"(final validation accuracy {_figure(result.final_val_accuracy)}, peak {_figure(result.peak_val_accuracy)}); "
                  f"wrote {self.out / 'watch.html'}" + (f"; next: remedysweep doctor --from {self.out}" if self.saved else ""))

    # -- what it writes ------------------------------------------------------------------

    def _write_meta(self, result: Any = None) -> None:
        from remedysweep.engine.result import clean_json
        from remedysweep.version import __version__

        meta = {"written_by": "remedysweep", "version": __version__, "name": self.name, "chance": self.chance,
                "fit": {k: v for k, v in (self.params or {}).items() if isinstance(v, (int, float, str, bool)) or v is None},
                "doctor": self.saved, "probe": self.probe is not None, "stop_on": list(self.stop_on), "seen": self.seen,
                "broken": self.broken}
        if result is not None:  # what doctor --from replays, and what it must reproduce
            steps = (self.params or {}).get("steps")
            meta["watched"] = clean_json({"outcome": result.outcome.value, "final_val_accuracy": result.final_val_accuracy,
                                          "peak_val_accuracy": result.peak_val_accuracy, "epochs_run": result.epochs_run,
                                          "steps_per_epoch": steps if isinstance(steps, int) else None,
                                          "train_rows_saved": (self.saved.get("rows") or {}).get("train"),
                                          "train_data_given": self.train_data is not None})
        atomic_write(self.out / "watch.json", json.dumps(meta, indent=2, default=str))

    def _write(self, result: Any, final: bool = False) -> None:
        import pandas as pd

        self._written = time.perf_counter()
        from remedysweep.engine import result as schema

        from remedysweep.engine.folder import write_frames

        write_frames(self.out, pd.DataFrame([schema.trial_row(0, "watch", {}, 0, result)]),
                     pd.DataFrame(list(schema.curve_rows(0, "watch", 0, result))),
                     pd.DataFrame(list(schema.probe_rows(0, "watch", 0, result)), columns=list(schema.PROBE_COLUMN_NAMES)))
        self._write_meta(result)
        if final:
            from remedysweep.reports.watch import render_watch

            atomic_write(self.out / "watch.html", render_watch(result, self.seen, self.chance, self.out, self.saved,
                                                               _suggestions(result, self.model, self.dataset)))

    def _tensorboard(self, epoch: int, logs: dict[str, Any], d: dict[str, Any]) -> None:
        if self.tensorboard is None:
            return
        try:
            self._scalars(epoch, d)
        except Exception as exc:  # TensorBoard missing or failing: only its part stops
            warnings.warn(f"remedysweep Watch: no TensorBoard scalars ({one_line(exc)})", RuntimeWarning, stacklevel=2)
            self.tensorboard = None

    def _scalars(self, epoch: int, d: dict[str, Any]) -> None:
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard / self.name))
        with self._writer.as_default(step=epoch):
            for k, v in d.items():
                if isinstance(v, (int, float)) and k != "weights_finite" and math.isfinite(float(v)):
                    tf.summary.scalar(f"remedysweep/{k}", float(v))
                elif isinstance(v, list):
                    for i, x in enumerate(v):
                        tf.summary.scalar(f"remedysweep/dead_fraction_layer{i + 1}", float(x))



# ----------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------


def _dataset(model: Any, data: Any, train_data: Any) -> Any:
    """``data`` as a :class:`~remedysweep.engine.data.Dataset` (its validation
    half), labels in the format the model's loss takes."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) > 1:
        raise ValueError(f"the model has {len(outputs)} outputs; Watch takes single-output classifiers")
    if data is None:
        return None
    from remedysweep.engine.sources import adopt_label_format, dataset_from_arrays

    for name, given in (("data", data), ("train_data", train_data)):
        if given is not None and (not isinstance(given, (tuple, list)) or len(given) != 2):
            raise ValueError(f"Watch({name}=...) takes a pair of arrays (x, y), got {type(given).__name__}; "
                             "for a tf.data pipeline, pass a sample of it as arrays")
    x, y = data
    tx, ty = train_data if train_data is not None else data
    ds = dataset_from_arrays("watch", ((tx, ty), (x, y)), "Watch", "data")
    units = int(outputs[0].shape[-1]) if outputs else _output_units(model, ds)
    if units > 1 and ds.n_classes > units:
        raise ValueError(f"the labels of data= go up to class {ds.n_classes - 1}, but the model has {units} output units")
    return adopt_label_format(ds, units)


def _output_units(model: Any, ds: Any) -> int:
    import keras
    import tensorflow as tf

    from remedysweep.engine.data import map_inputs

    out = keras.ops.convert_to_numpy(model(map_inputs(ds.x_val, lambda a: tf.constant(a[:2])), training=False))
    return int(out.shape[-1])


def _figure(value: float) -> str:
    return f"{value:.3f}" if value == value else "n/a"


def _chance_from_units(model: Any) -> float:
    try:
        units = int(model.outputs[0].shape[-1])
    except Exception:
        return float("nan")
    return 0.5 if units == 1 else 1.0 / units


class _WatchProbe:
    """The engine's :class:`~remedysweep.engine.probe.Probe` on the user's own
    model, as it is (``probe``), its accuracy on the whole of ``data``
    (:meth:`accuracy_all`), and whether its hidden activations are all of the
    ReLU family (``relu``). The pre-activations of a hidden layer with its own
    activation are its output computed without that activation."""

    def __init__(self, model: Any, ds: Any, size: int):
        import keras
        import tensorflow as tf

        from remedysweep.engine.data import map_inputs
        from remedysweep.engine.probe import Probe
        from remedysweep.engine.surgery import RELU_FAMILY, activation_name, main_kernel, structure, to_functional

        idx = ds.probe_indices(size)
        x = map_inputs(ds.x_val, lambda a: tf.constant(a[idx]))
        self.x_all, self.ds = map_inputs(ds.x_val, tf.constant), ds
        binary = int(model.outputs[0].shape[-1]) == 1 if getattr(model, "outputs", None) else False
        y_true = ds.y_val[idx]
        y_fit = tf.constant(ds.targets(y_true, ds.label_format))
        functional = to_functional(model)
        tap_model, hidden, output, self.relu = None, [], None, False
        if functional is not None:
            s = structure(functional)
            output = s.output_layer
            hidden = [l for l in s.hidden if activation_name(l) not in ("linear", "softmax") and len(l._inbound_nodes) >= 1]
            acts = {activation_name(l) for l in hidden} | {activation_name(l) for l in s.hidden_acts}
            self.relu = bool(acts) and acts <= RELU_FAMILY
            wanted = [*hidden, *([output] if output is not None else [])]
            try:
                tap_model = keras.Model(functional.inputs, [_input_of(l, functional) for l in wanted])
            except Exception:
                tap_model, hidden, output = None, [], None
        weighted = [l for l in model._flatten_layers(include_self=False, recursive=True) if main_kernel(l) is not None]
        probabilities = _ends_in_probabilities(functional)

        def linear(layer: Any, t: Any) -> Any:
            saved = layer.activation
            layer.activation = keras.activations.linear
            try:
                return layer(t)
            finally:
                layer.activation = saved

        def taps(x: Any, pred: Any) -> tuple[Any, list[Any]]:
            if tap_model is not None:
                ins = tap_model(x, training=False)
                ins = list(ins) if isinstance(ins, (list, tuple)) else [ins]
                preacts = [linear(l, t) for l, t in zip(hidden, ins[: len(hidden)])]
                return (linear(output, ins[-1]) if output is not None else None), preacts
            if not probabilities:
                return pred, []
            logp = tf.math.log(tf.clip_by_value(tf.cast(pred, tf.float32), 1e-30, 1.0))
            return logp - tf.reduce_mean(logp, axis=-1, keepdims=True), []  # logits up to a shift per sample

        self.probe = Probe(model, x, y_true, ds.targets(y_true, "binary" if binary else "one_hot"), binary=binary,
                           probabilities=probabilities, taps=taps,
                           loss_of=lambda pred: model.compute_loss(x=x, y=y_fit, y_pred=pred, training=False),
                           first=main_kernel(weighted[0]) if weighted else None, last=main_kernel(weighted[-1]) if weighted else None,
                           kernels=frozenset(id(main_kernel(l)) for l in weighted))

    def accuracy_all(self) -> float:
        import keras
        import tensorflow as tf

        out = self.probe.model.predict(self.x_all, verbose=0, batch_size=1024)
        return float(np.mean(keras.ops.convert_to_numpy(self.probe.predictions(tf.constant(out))) == self.ds.y_val))


def _input_of(layer: Any, model: Any) -> Any:
    """The tensor a layer was called on in ``model`` (its node in that model)."""
    ids = {id(n) for depth in model._nodes_by_depth.values() for n in depth}
    for node in layer._inbound_nodes:
        if id(node) in ids and len(node.input_tensors) == 1:
            return node.input_tensors[0]
    raise ValueError(f"layer {layer.name!r} has no single input in the model")


def _ends_in_probabilities(functional: Any) -> bool:
    if functional is None:
        return True
    from remedysweep.engine.surgery import structure

    head = structure(functional).head_activations
    return bool(head) and head[-1] in ("softmax", "sigmoid")


def _weights_only(model: Any) -> dict[str, Any]:
    """Without data: the weight norm and whether the weights are finite."""
    w = [np.asarray(v) for v in model.trainable_weights]
    finite = all(np.all(np.isfinite(a)) for a in w)
    return {"weight_norm": float(np.sqrt(sum(float(np.sum(np.square(a.astype("float64")))) for a in w))) if finite else float("nan"),
            "weights_finite": finite}


def _suggestions(result: Any, model: Any, dataset: Any = None) -> list[dict[str, str]]:
    """What doctor would try first for these symptoms, in the order it would
    try them: the remedies' own suggestions, ranked as doctor's search ranks them."""
    from remedysweep.engine.surgery import describe_model
    from remedysweep.engine.symptoms import model_symptoms, suggested_changes
    from remedysweep.remedies import discover

    symptoms = set(result.symptoms)
    try:
        info = describe_model(model)
        facts = info.facts()
        symptoms |= set(model_symptoms(info))  # the head and the loss, as doctor reads them
    except Exception:
        facts = {}
    if dataset is not None:  # the label format decides which loss class the advice names
        facts.update({"one_hot_labels": dataset.label_format == "one_hot", "label_format": dataset.label_format,
                      "n_classes": dataset.n_classes})
    registry = discover()
    out = []
    for _, name, v, error in suggested_changes(registry, symptoms, facts):
        if error:
            continue
        try:
            code = registry[name].describe_change(v, facts)
        except Exception:
            code = ""
        out.append({"change": f"{name}={v}", "code": code})
    return out[:8]
