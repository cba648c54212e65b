"""Seed packing: train every seed of one MLP configuration together in one graph.

Each layer's weights are stacked along a leading seed axis (``[S, in, out]``) and a
layer is one batched matmul. Every seed keeps its own initial weights (those of the
Keras model the sweep would build for it), its own shuffling, its own per-seed loss,
metrics and diagnostics. Optimizers here are elementwise (SGD, momentum, Adam,
RMSprop, Adagrad, ...), so applying one to the stacked weights updates each seed
exactly as it would alone; the test checks a packed seed's curve against the same
seed trained alone by this trainer.

What couples seeds or is not an MLP falls back to separate training, and the run
records why (:func:`why_not_packable`): norm-based gradient clipping (a norm over
the stacked tensor mixes seeds), dropout (random masks), batch/layer norm,
learning-rate schedules, remedies with their own loss, optimizer, callbacks or
model transform, and the embedding model.

A whole epoch runs inside one compiled loop (``tf.range``), so per-step Python
overhead is paid once per epoch rather than once per step.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from remedysweep.remedies import Registry, Remedy, TrialPlan

from .config import Sweep, build_plan
from .data import Dataset
from .outcome import Thresholds, classify, should_stop
from .trial import CURVE_COLUMNS, RunResult, base_plan, make_optimizer, one_hot


# XLA for the epoch loop: measured 12x slower than plain graph mode on a 2-core CPU
# (remedysweep bench, 8 seeds of the quick sweep's MLP), so off.
JIT = False


def why_not_packable(sweep: Sweep, knobs: dict[str, Any], registry: Registry) -> str | None:
    """``None`` if the configuration's seeds can be trained packed, else why not."""
    if sweep.model.kind != "mlp":
        return "the embedding model is not packed"
    plan = build_plan(knobs, registry, base=base_plan(sweep))
    m, c, f = plan.model, plan.compile, plan.fit
    for name, value in knobs.items():
        if type(registry[name]).transform_model is not Remedy.transform_model:
            return f"remedy {name!r} transforms the built model"
    if m.normalization != "none":
        return f"{m.normalization} is not packed"
    if m.dropout:
        return "dropout draws random masks per seed"
    if m.kernel_constraint and m.kernel_constraint[0] != "max_norm":
        return f"constraint {m.kernel_constraint[0]} is not packed"
    if m.kernel_regularizer and m.kernel_regularizer[0] != "l2":
        return f"regularizer {m.kernel_regularizer[0]} is not packed"
    if c.clipnorm is not None or c.global_clipnorm is not None:
        return "norm-based gradient clipping would mix the seeds' gradients"
    if c.learning_rate_schedule is not None:
        return "learning-rate schedules are not packed"
    if callable(c.loss) or callable(c.optimizer):
        return "a plugin's own loss or optimizer is not packed"
    if f.callbacks:
        return "a plugin's callbacks are not packed"
    return None


class PackedMLP:
    """The MLP of ``plan`` for every seed in ``seeds``, stacked."""

    def __init__(self, sweep: Sweep, plan: TrialPlan, dataset: Dataset, seeds: Sequence[int]):
        import keras
        import tensorflow as tf

        from .losses import BUILTIN_LOSSES
        from .models import build_model

        self.sweep, self.plan, self.dataset, self.seeds = sweep, plan, dataset, list(seeds)
        per_seed = []
        for seed in self.seeds:  # the very initial weights each seed gets when trained alone
            keras.utils.set_random_seed(seed)
            model = build_model(sweep.model, plan.model, dataset.input_shape, dataset.n_classes)
            per_seed.append([(l.kernel.numpy(), l.bias.numpy()) for l in model.layers if isinstance(l, keras.layers.Dense)])
        self.kernels = [tf.Variable(np.stack([w[i][0] for w in per_seed])) for i in range(len(per_seed[0]))]
        self.biases = [tf.Variable(np.stack([w[i][1] for w in per_seed])) for i in range(len(per_seed[0]))]
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]
        self.activation = keras.activations.get(plan.model.activation)
        self.batch = plan.fit.batch_size
        self.steps = max(1, math.ceil(len(dataset.x_train) / self.batch))
        self.optimizer = make_optimizer(plan, self.steps, sweep.training.epochs)
        self.optimizer.build(self.variables)
        self.loss_name = plan.compile.loss
        self.loss_fn = BUILTIN_LOSSES[self.loss_name]
        self.head = plan.model.head
        self.l2 = plan.model.kernel_regularizer[1] if plan.model.kernel_regularizer else 0.0
        self.max_norm = plan.model.kernel_constraint[1] if plan.model.kernel_constraint else None
        self.n = len(dataset.x_train)
        self.x_train = tf.constant(dataset.x_train)
        self.y_train = tf.constant(one_hot(dataset.y_train, dataset.n_classes, plan.fit.label_smoothing))
        self.x_val = tf.constant(dataset.x_val)
        self.y_val = tf.constant(one_hot(dataset.y_val, dataset.n_classes))
        xp, yp = dataset.probe_batch(sweep.training.probe_size)
        self.x_probe, self.y_probe = tf.constant(xp), tf.constant(one_hot(yp, dataset.n_classes))
        self._train_range = tf.function(self._train_range_py, jit_compile=JIT)
        # One traced function for everything at an epoch's end (tracing is the main
        # fixed cost of a packed run); the few in-epoch probes run eagerly.
        self._epoch_end = tf.function(lambda: (self._evaluate_py(), self._diagnose_py()))
        self._accuracy = self._accuracy_py

    # -- the graph -------------------------------------------------------------

    def _forward(self, x: Any) -> tuple[Any, list[Any]]:
        """x: [S, B, in] -> logits [S, B, C] and hidden pre-activations."""
        import tensorflow as tf

        h, pre = x, []
        for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
            z = tf.matmul(h, w) + b[:, None, :]
            if i < len(self.kernels) - 1:
                pre.append(z)
                h = self.activation(z)
            else:
                return z, pre
        raise AssertionError("no layers")

    def _per_seed_loss(self, y: Any, logits: Any) -> Any:
        import tensorflow as tf

        out = logits if self.head == "logits" else tf.nn.softmax(logits)
        loss = tf.reduce_mean(self.loss_fn(y, out), axis=-1)  # [S]
        if self.l2:
            loss += self.l2 * tf.add_n([tf.reduce_sum(tf.square(w), axis=[1, 2]) for w in self.kernels[:-1]])
        return loss

    def _constrain(self) -> None:
        import keras
        import tensorflow as tf

        if self.max_norm is None:
            return
        for w in self.kernels[:-1]:
            norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))
            w.assign(w * tf.clip_by_value(norms, 0, self.max_norm) / (keras.config.epsilon() + norms))

    def _train_range_py(self, x_epoch: Any, y_epoch: Any, start: Any, stop: Any) -> tuple[Any, Any, Any]:
        """Steps [start, stop) of an epoch whose data, shuffled per seed, is
        ``x_epoch`` [S, n, ...] and ``y_epoch`` [S, n, C]. Returns summed per-seed
        losses, correct counts and sample counts."""
        import tensorflow as tf

        S = len(self.seeds)
        loss_sum = tf.zeros([S])
        correct = tf.zeros([S])
        seen = tf.constant(0.0)
        for step in tf.range(start, stop):
            lo = step * self.batch
            hi = tf.minimum(lo + self.batch, self.n)
            xb = x_epoch[:, lo:hi]
            yb = y_epoch[:, lo:hi]
            with tf.GradientTape() as tape:
                logits, _ = self._forward(xb)
                per_seed = self._per_seed_loss(yb, logits)
                total = tf.reduce_sum(per_seed)
            grads = tape.gradient(total, self.variables)
            self.optimizer.apply(grads, self.variables)
            self._constrain()
            size = tf.cast(hi - lo, tf.float32)
            loss_sum += per_seed * size
            correct += tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(yb, -1)), tf.float32), axis=1)
            seen += size
        return loss_sum, correct, seen

    def _evaluate_py(self) -> tuple[Any, Any]:
        import tensorflow as tf

        S = len(self.seeds)
        x = tf.tile(self.x_val[None], [S, 1, 1])
        y = tf.tile(self.y_val[None], [S, 1, 1])
        logits, _ = self._forward(x)
        loss = self._per_seed_loss(y, logits)
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(y, -1)), tf.float32), axis=1)
        return loss, acc

    def _accuracy_py(self) -> Any:
        import tensorflow as tf

        x = tf.tile(self.x_probe[None], [len(self.seeds), 1, 1])
        logits, _ = self._forward(x)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(self.y_probe, -1)[None]), tf.float32), axis=1)

    def _diagnose_py(self) -> dict[str, Any]:
        import keras
        import tensorflow as tf

        from .losses import fused_logits, unfused

        S = len(self.seeds)
        x = tf.tile(self.x_probe[None], [S, 1, 1])
        y = tf.tile(self.y_probe[None], [S, 1, 1])
        with tf.GradientTape() as tape:
            logits, pre = self._forward(x)
            total = tf.reduce_sum(self._per_seed_loss(y, logits))
        grads = tape.gradient(total, self.variables)
        per_seed_sq = lambda ts: tf.add_n([tf.reduce_sum(tf.square(t), axis=list(range(1, len(t.shape)))) for t in ts])
        return {
            "logit_abs_mean": tf.reduce_mean(tf.abs(logits), axis=[1, 2]),
            "logit_spread": tf.reduce_mean(tf.math.reduce_std(logits, axis=-1), axis=1),
            "logit_max": tf.reduce_max(tf.abs(logits), axis=[1, 2]),
            "grad_norm": tf.sqrt(per_seed_sq(grads)),
            "weight_norm": tf.sqrt(per_seed_sq(self.variables)),
            "probe_keras_ce": tf.reduce_mean(keras.losses.categorical_crossentropy(y, tf.nn.softmax(logits)), axis=1),
            "probe_fused_ce": tf.reduce_mean(fused_logits(y, logits), axis=1),
            "probe_unfused_ce": tf.reduce_mean(unfused(y, tf.nn.softmax(logits)), axis=1),
            "weights_finite": tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v), axis=list(range(1, len(v.shape)))) for v in self.variables]), axis=0),
            "dead_by_layer": tf.stack([tf.reduce_mean(tf.cast(tf.reduce_all(p <= 0.0, axis=1), tf.float32), axis=1) for p in pre], axis=1),
        }

    # -- the loop --------------------------------------------------------------

    def train(self, *, early_stop: bool | None = None) -> list[RunResult]:
        """Train every seed; per-seed early stop truncates that seed's record."""
        import tensorflow as tf

        sweep, S, n_classes = self.sweep, len(self.seeds), self.dataset.n_classes
        early_stop = sweep.early_stop.enabled if early_stop is None else early_stop
        th = Thresholds.for_classes(n_classes, sweep.outcome)
        curves = [{c: [] for c in CURVE_COLUMNS} for _ in range(S)]
        dead = [[] for _ in range(S)]
        probes: list[list[tuple[float, float]]] = [[] for _ in range(S)]
        nonfinite: list[int | None] = [None] * S
        stopped = [False] * S
        early_stopped = [False] * S
        n = sweep.training.early_probes
        probe_steps = sorted({max(1, round(self.steps ** (k / n))) for k in range(n)} - {self.steps}) if n and self.steps > 1 else []
        t0 = time.perf_counter()
        epochs = sweep.training.epochs
        for epoch in range(epochs):
            order = tf.constant(np.stack([np.random.default_rng([seed, epoch]).permutation(self.n) for seed in self.seeds]).astype("int32"))
            x_epoch, y_epoch = tf.gather(self.x_train, order), tf.gather(self.y_train, order)  # one gather per epoch
            cuts = [0, *(probe_steps if epoch < sweep.training.early_probe_epochs else []), self.steps]
            loss_sum, correct, seen = tf.zeros([S]), tf.zeros([S]), 0.0
            for a, b in zip(cuts[:-1], cuts[1:]):
                ls, cs, sn = self._train_range(x_epoch, y_epoch, tf.constant(a), tf.constant(b))
                loss_sum, correct, seen = loss_sum + ls, correct + cs, seen + float(sn)
                if b < self.steps:
                    acc = self._accuracy().numpy()
                    for s in range(S):
                        if not stopped[s]:
                            probes[s].append((round(epoch + b / self.steps, 4), float(acc[s])))
            (val_loss, val_acc), d = self._epoch_end()
            val_loss, val_acc = val_loss.numpy(), val_acc.numpy()
            d = {k: v.numpy() for k, v in d.items()}
            train_loss, train_acc = (loss_sum / seen).numpy(), (correct / seen).numpy()
            for s in range(S):
                if stopped[s]:
                    continue
                c = curves[s]
                for key, value in (("loss", train_loss[s]), ("accuracy", train_acc[s]), ("val_loss", val_loss[s]), ("val_accuracy", val_acc[s])):
                    c[key].append(float(value))
                for key in ("logit_abs_mean", "logit_spread", "logit_max", "grad_norm", "weight_norm", "probe_keras_ce", "probe_fused_ce", "probe_unfused_ce"):
                    c[key].append(float(d[key][s]))
                layers = [float(v) for v in d["dead_by_layer"][s]]
                dead[s].append(layers)
                c["dead_fraction"].append(float(np.mean(layers)) if layers else 0.0)
                bad = not math.isfinite(c["loss"][-1]) or not bool(d["weights_finite"][s])
                c["nonfinite"].append(float(bad))
                if bad and nonfinite[s] is None:
                    nonfinite[s] = epoch + 1
                if early_stop and (bad or should_stop(c["val_accuracy"], max([*c["val_accuracy"], *(a for _, a in probes[s])]) >= th.rise,
                                                      n_classes, sweep.outcome, sweep.early_stop.patience)):
                    stopped[s] = True
                    early_stopped[s] = epoch + 1 < epochs
            if all(stopped):
                break
        seconds = time.perf_counter() - t0
        results = []
        for s in range(S):
            c = classify(curves[s]["val_accuracy"], n_classes, sweep.outcome, early_probes=probes[s], nonfinite_epoch=nonfinite[s])
            results.append(RunResult(
                outcome=c.outcome.value, peak_val_accuracy=c.peak, final_val_accuracy=c.final,
                epochs_run=len(curves[s]["val_accuracy"]), train_seconds=round(seconds / S, 4),
                peak_epoch=c.peak_epoch, collapse_epoch=c.collapse_epoch, first_nonfinite_epoch=nonfinite[s],
                early_stopped=early_stopped[s], curves=curves[s], early_probes=probes[s], dead_by_layer=dead[s],
                plan_changes=self.plan.changes(),
                n_params=int(sum(int(np.prod(v.shape[1:])) for v in self.variables)),
            ))
        return results


def run_packed(sweep: Sweep, knobs: dict[str, Any], seeds: Sequence[int], registry: Registry, dataset: Dataset) -> list[RunResult]:
    """Train the seeds of one configuration packed; a fault fails every seed of
    the pack with the message, as it would each seed alone."""
    from .trial import _error_message

    plan = build_plan(knobs, registry, base=base_plan(sweep))
    try:
        return PackedMLP(sweep, plan, dataset, seeds).train()
    except Exception as exc:
        msg = _error_message(exc)
        return [RunResult(outcome="failed", peak_val_accuracy=float("nan"), final_val_accuracy=float("nan"),
                          epochs_run=0, train_seconds=0.0, message=msg[:2000]) for _ in seeds]
