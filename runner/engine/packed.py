"""The stacked trainer (``stacked`` in ``trials.csv``): many runs of one sweep
trained together in one graph, their weights stacked.

Runs whose models have the same shapes (same layer widths, batch size, data,
optimizer class and settings) form a pack: each layer's weights are stacked
along a leading "slice" axis (``[S, in, out]``) and a layer is one batched
matmul. What may differ from slice to slice, each a per-slice value in the same
graph: the seed (initial weights, data order), the learning rate, the loss
formulation and head, the hidden activation, the label smoothing, the L2 factor
and the max-norm bound, the initializer.

Each slice is the same experiment as the run trained alone through Keras: the
same initial weights (those of the rewritten Keras model), the same batches in
the same order (:func:`~.data.epoch_order`), Keras's own activation functions,
losses and optimizer update (the optimizer is a Keras optimizer whose learning
rate is a per-slice tensor; every update of the allowed optimizers is
element-wise, so a slice is updated exactly as it would be alone), the same
L2 penalty and max-norm constraint. Only the floating-point order of the
batched matmuls differs; ``tests/test_engine_packed.py`` checks that both
paths give the same outcome rates on the quick grid.

What a pack can hold is an allow-list (:data:`PACKABLE`, :func:`stack_facts`):
a run with any other plan field, layer, loss or optimizer is offered to the
next trainer (:mod:`.trainers`). Slices that stopped (early stop, NaN) leave the
pack once they are half of it: the others go on in a smaller pack, with their
weights and optimizer state, so finished runs stop costing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from remedysweep.remedies import AS_BUILT, LossFormulation, Registry, TrialPlan

from .build import BuiltRun, make_optimizer
from .data import epoch_order
from .recorder import diagnostics, slice_values

# Plan fields a pack may vary per slice, and fields it holds constant (part of the pack key).
PER_SLICE = frozenset({
    "compile.learning_rate", "compile.loss", "model.head", "model.activation", "model.kernel_initializer",
    "model.kernel_regularizer", "model.kernel_constraint", "fit.label_smoothing",
})
PER_PACK = frozenset({"model.width", "model.min_width", "model.dropout_rate", "fit.batch_size", "fit.input_scaling", "compile.optimizer",
                      "compile.clipvalue"})
PACKABLE = PER_SLICE | PER_PACK
OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "Nadam", "RMSprop", "Adagrad", "Adamax"})
ACTIVATIONS = frozenset({"linear", "relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "silu",
                         "softplus", "softsign", "relu6", "hard_sigmoid", "mish"})
KERAS_LOSSES = frozenset({"categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"})

# XLA: the optimizer update (element-wise, memory-bound) is compiled with XLA,
# which fuses Keras's dozen element-wise passes over the stacked weights into
# one: measured 37 ms -> 12 ms per Adam step for 45 slices of the quick sweep's
# MLP. The matmuls stay in plain graph mode, which was faster there. For small
# packs the compilation costs more than it saves (0.4 s a pack, and slower
# steps, for two slices of a 5k-parameter MLP): XLA only from this many stacked
# weights on.
JIT_OPTIMIZER = True
#: Slices that stopped leave the pack once they are half of it and the epochs
#: left would cost more than tracing a smaller pack ("auto"; "always" or "never"
#: to force it either way; see :meth:`PackedTrainer.shrink`).
COMPACT = "auto"
JIT_MIN_WEIGHTS = 2_000_000


def stack_problem(plan: TrialPlan, knobs: Mapping[str, Any], registry: Registry) -> str:
    """Why a run's plan keeps it out of a stacked pack ("" if it may stack)."""
    for name, value in knobs.items():
        if value != AS_BUILT and registry[name].transforms():
            return f"remedy {name!r} transforms the built model"
    for path, owner in plan.changes().items():
        if path not in PACKABLE:
            return f"{path} (set by {owner}) is not stacked"
    c = plan.compile
    if c.loss is not None and not isinstance(c.loss, LossFormulation):
        return "a plugin's own loss is not stacked"
    if c.optimizer is not None and type(c.optimizer).__name__ != "OptimizerFactory":
        return "a plugin's own optimizer is not stacked"
    m = plan.model
    if m.kernel_regularizer is not None and m.kernel_regularizer[0] not in ("l2", "none"):
        return f"regularizer {m.kernel_regularizer[0]} is not stacked"
    if m.kernel_constraint is not None and m.kernel_constraint[0] != "max_norm":
        return f"constraint {m.kernel_constraint[0]} is not stacked"
    return ""


def _loss_identity(built: BuiltRun) -> tuple[str, str, bool] | None:
    """How a packed slice computes the run's loss from the model's output:
    (kind, name, from_logits), or None if it cannot."""
    from .surgery import loss_facts

    loss = built.plan.compile.loss
    if isinstance(loss, LossFormulation):
        return ("formulation", loss.name, False)
    name, from_logits, _ = loss_facts(built.loss)
    if name not in KERAS_LOSSES:
        return None
    kwargs = getattr(built.loss, "_fn_kwargs", {}) or {}
    if kwargs.get("label_smoothing") or kwargs.get("ignore_class") is not None or kwargs.get("axis", -1) != -1:
        return None
    return ("keras", name, from_logits)


@dataclass
class Chain:
    """A model that is a chain of Dense layers and element-wise activations."""

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]  # after each hidden Dense
    l2: list[float]  # per hidden Dense
    max_norm: list[float | None]  # per hidden Dense
    output: str  # "softmax", "sigmoid" or "linear" after the output Dense


def chain_of(model: Any) -> tuple[Chain | None, str]:
    """Read a rewritten model as a :class:`Chain`, or say why it is not one."""
    import keras

    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None, "several inputs are not packed"
    if "float" not in str(model.inputs[0].dtype) or len(model.inputs[0].shape) != 2:
        return None, "only flat float inputs are packed"
    kernels, biases, acts, l2, mx = [], [], [], [], []
    pending_dense = False
    output = "linear"
    calls: dict[int, int] = {}
    for depth in model._nodes_by_depth.values():
        for node in depth:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    for layer in layers:
        if calls.get(id(layer), 0) != 1:
            return None, f"layer {layer.name!r} is shared"
        if isinstance(layer, keras.layers.Dense):
            cfg = layer.get_config()
            if cfg["activation"] != "linear" or not cfg["use_bias"] or cfg.get("bias_regularizer") or cfg.get("activity_regularizer") \
                    or cfg.get("bias_constraint") or getattr(layer, "quantization_mode", None):
                return None, f"Dense layer {layer.name!r} has settings the packed trainer does not handle"
            if pending_dense:
                acts.append("linear")
            reg = layer.kernel_regularizer
            if reg is not None and type(reg).__name__ != "L2":
                return None, f"regularizer {type(reg).__name__} is not packed"
            con = layer.kernel_constraint
            if con is not None and (type(con).__name__ != "MaxNorm" or con.axis not in (0, [0], (0,))):
                return None, f"constraint {type(con).__name__} is not packed"
            kernels.append(layer.kernel.numpy())
            biases.append(layer.bias.numpy())
            l2.append(float(reg.l2) if reg is not None else 0.0)
            mx.append(float(con.max_value) if con is not None else None)
            pending_dense = True
        elif isinstance(layer, keras.layers.Activation):
            name = getattr(layer.activation, "__name__", "")
            if not pending_dense:
                return None, f"activation {layer.name!r} does not follow a Dense layer"
            if name in ("softmax", "sigmoid") and layer is layers[-1]:
                output = name
            elif name in ACTIVATIONS:
                acts.append(name)
            else:
                return None, f"activation {name!r} is not packed"
            pending_dense = False
        elif isinstance(layer, keras.layers.Identity):
            continue
        else:
            return None, f"layer {type(layer).__name__} is not packed"
    if not kernels:
        return None, "the model has no Dense layer"
    if len(acts) == len(kernels):  # the output Dense got a hidden-style activation
        return None, "the output activation is not softmax or sigmoid"
    return Chain(kernels, biases, acts[: len(kernels) - 1], l2[:-1], mx[:-1], output), ""


class PackedTrainer:
    """Train the built runs of one pack together; see the module text."""

    def __init__(self, runs: Sequence[BuiltRun], chains: Sequence[Chain], sweep: Any, optimizer_cls: type,
                 optimizer_config: dict[str, Any], learning_rates: Sequence[float]):
        import tensorflow as tf

        self.runs, self.sweep = list(runs), sweep
        self.chains, self.optimizer_cls, self.optimizer_config = list(chains), optimizer_cls, dict(optimizer_config)
        self.learning_rates = list(learning_rates)
        S = self.S = len(runs)
        first = runs[0]
        self.data = first.data
        self.binary = first.binary
        self.batch = first.batch_size
        self.n = self.data.n_train
        self.steps = first.steps_per_epoch
        n_layers = len(chains[0].kernels)
        self.kernels = [tf.Variable(np.stack([c.kernels[i] for c in chains]), name=f"kernel_{i}") for i in range(n_layers)]
        self.biases = [tf.Variable(np.stack([c.biases[i] for c in chains])[:, None, :], name=f"bias_{i}") for i in range(n_layers)]
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]
        lr = np.array([learning_rates[s] for s in range(S)], dtype="float32")
        self.lr = tf.constant(lr[:, None, None])
        cfg = {k: v for k, v in optimizer_config.items() if k not in ("name", "learning_rate")}
        self.optimizer = optimizer_cls(learning_rate=lambda: self.lr, **cfg)
        self.optimizer.build(self.variables)
        # per-layer activation: one function, or a per-slice selection among a few
        self.activations = []
        for i in range(n_layers - 1):
            names = [c.activations[i] for c in chains]
            self.activations.append(self._activation(names))
        outputs = [c.output for c in chains]
        self.output_kinds = outputs
        self.l2 = tf.constant([[c.l2[i] for i in range(n_layers - 1)] for c in chains], dtype=tf.float32) if n_layers > 1 else None
        self.use_l2 = any(x for c in chains for x in c.l2)
        self.max_norm = [[c.max_norm[i] for c in chains] for i in range(n_layers - 1)]
        # losses: slices grouped by how their loss is computed
        groups: dict[tuple[Any, ...], list[int]] = {}
        for s, r in enumerate(runs):
            groups.setdefault((_loss_identity(r), outputs[s]), []).append(s)
        self.loss_groups = [(ident, out, tf.constant(idx, dtype=tf.int32)) for (ident, out), idx in groups.items()]
        self.single_group = len(self.loss_groups) == 1
        self.x_train = tf.constant(self.data.x_train)
        self.y_train = tf.constant(np.stack([r.y_train for r in runs]))
        idx = self.data.probe_indices(sweep.training.probe_size)
        rest = np.setdiff1d(np.arange(len(self.data.y_val)), idx)
        self.x_probe = tf.constant(self.data.x_val[idx])
        self.y_probe = tf.constant(np.stack([r.y_val[idx] for r in runs]))
        self.y_probe_true = tf.constant(self.data.y_val[idx])
        # the validation rows outside the probe batch: the epoch's end computes the
        # probe rows once, for both the validation metrics and the diagnostics
        self.x_rest = tf.constant(self.data.x_val[rest]) if len(rest) else None
        self.y_rest = tf.constant(np.stack([r.y_val[rest] for r in runs])) if len(rest) else None
        self.y_rest_true = tf.constant(self.data.y_val[rest]) if len(rest) else None
        self.n_probe, self.n_rest = len(idx), len(rest)
        self.onehot_probe = tf.constant(np.broadcast_to(self.data.targets(self.data.y_val[idx], "binary" if self.binary else "one_hot"),
                                                        (S, len(idx), 1 if self.binary else self.data.n_classes)).copy())
        self.metrics = self.runs[0].probe_metrics
        self._train_range = tf.function(self._train_range_py, autograph=False)
        stacked = sum(int(np.prod(v.shape)) for v in self.variables)
        self._apply = tf.function(self._apply_py, autograph=False, jit_compile=JIT_OPTIMIZER and stacked >= JIT_MIN_WEIGHTS)
        self._epoch_end = tf.function(self._epoch_end_py, autograph=False)

    # -- pieces of the graph ---------------------------------------------------

    def _activation(self, names: list[str]) -> Any:
        import keras
        import tensorflow as tf

        unique = list(dict.fromkeys(names))
        if len(unique) == 1:
            fn = keras.activations.get(unique[0])
            return lambda z: fn(z)
        masks = [tf.constant(np.array([n == u for n in names], dtype="float32")[:, None, None]) for u in unique]
        fns = [keras.activations.get(u) for u in unique]
        return lambda z: tf.add_n([m * f(z) for m, f in zip(masks, fns)])

    def _forward(self, x: Any) -> tuple[Any, list[Any]]:
        """x: ``[S, B, in]`` (or ``[1, B, in]``, shared by every slice) -> logits and pre-activations."""
        import tensorflow as tf

        h, pre = x, []
        last = len(self.kernels) - 1
        for i, (w, b) in enumerate(zip(self.kernels, self.biases)):
            z = tf.matmul(h, w) + b
            if i == last:
                return z, pre
            pre.append(z)
            h = self.activations[i](z)
        raise AssertionError("no layers")

    def _outputs(self, logits: Any, out_kind: str) -> Any:
        import tensorflow as tf

        if out_kind == "softmax":
            return tf.nn.softmax(logits)
        if out_kind == "sigmoid":
            return tf.nn.sigmoid(logits)
        return logits

    def _per_slice_loss(self, y: Any, logits: Any) -> Any:
        """Mean loss over the batch for every slice, ``[S]``."""
        import keras
        import tensorflow as tf

        from remedysweep.remedies.loss import FORMULATIONS

        parts = []
        for (kind, name, from_logits), out_kind, idx in self.loss_groups:
            z = logits if self.single_group else tf.gather(logits, idx)
            t = y if self.single_group else tf.gather(y, idx)
            if kind == "formulation":
                per_sample = FORMULATIONS[name].from_logits(t, z, self.binary)
            else:
                per_sample = getattr(keras.losses, name)(t, self._outputs(z, out_kind), from_logits=from_logits)
            parts.append(tf.reduce_mean(per_sample, axis=-1))
        if self.single_group:
            return parts[0]
        return tf.dynamic_stitch([idx for _, _, idx in self.loss_groups], parts)

    def _penalty(self) -> Any:
        import tensorflow as tf

        if not self.use_l2:
            return 0.0
        sq = tf.stack([tf.reduce_sum(tf.square(w), axis=[1, 2]) for w in self.kernels[:-1]], axis=1)
        return tf.reduce_sum(self.l2 * sq, axis=1)

    def _constrain(self) -> None:
        import keras
        import tensorflow as tf

        for w, bounds in zip(self.kernels[:-1], self.max_norm):
            if all(b is None for b in bounds):
                continue
            mask = tf.constant(np.array([b is not None for b in bounds])[:, None, None])
            bound = tf.constant(np.array([b if b is not None else 1.0 for b in bounds], dtype="float32")[:, None, None])
            norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))
            clamped = w * (tf.clip_by_value(norms, 0.0, bound) / (keras.config.epsilon() + norms))
            w.assign(tf.where(mask, clamped, w))

    def _predictions(self, logits: Any) -> Any:
        import tensorflow as tf

        if self.binary:
            return tf.cast(logits[..., 0] > 0.0, tf.int32)  # sigmoid > 0.5 <=> logit > 0
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def _train_range_py(self, x_epoch: Any, y_epoch: Any, t_epoch: Any, start: Any, stop: Any) -> tuple[Any, Any, Any]:
        """Steps ``[start, stop)`` of an epoch whose data, ordered per slice, is
        ``x_epoch`` ``[S, n, in]``, targets ``y_epoch`` ``[S, n, ...]`` and labels
        ``t_epoch`` ``[S, n]``; returns the summed per-slice losses, correct counts
        and the sample count."""
        import tensorflow as tf

        def step_once(step: Any, loss_sum: Any, correct: Any, seen: Any) -> tuple[Any, Any, Any, Any]:
            lo = step * self.batch
            hi = tf.minimum(lo + self.batch, self.n)
            xb, yb, tb = x_epoch[:, lo:hi], y_epoch[:, lo:hi], t_epoch[:, lo:hi]
            with tf.GradientTape() as tape:
                logits, _ = self._forward(xb)
                per_slice = self._per_slice_loss(yb, logits) + self._penalty()
                total = tf.reduce_sum(per_slice)
            grads = tape.gradient(total, self.variables)
            self._apply(grads)
            size = tf.cast(hi - lo, tf.float32)
            right = tf.reduce_sum(tf.cast(tf.equal(self._predictions(logits), tb), tf.float32), axis=1)
            return step + 1, loss_sum + per_slice * size, correct + right, seen + size

        # an explicit loop, so that the trace needs no AutoGraph conversion (which
        # took most of a small pack's tracing time)
        _, loss_sum, correct, seen = tf.while_loop(
            lambda step, *_: step < stop, step_once, (start, tf.zeros([self.S]), tf.zeros([self.S]), tf.constant(0.0)))
        return loss_sum, correct, seen

    def _apply_py(self, grads: list[Any]) -> None:
        """Keras's optimizer update on the stacked weights, then the max-norm clamp."""
        self.optimizer.apply(grads, self.variables)
        self._constrain()

    def _probe_accuracy(self) -> Any:
        import tensorflow as tf

        logits, _ = self._forward(self.x_probe[None])
        return tf.reduce_mean(tf.cast(tf.equal(self._predictions(logits), self.y_probe_true[None]), tf.float32), axis=1)

    def _epoch_end_py(self) -> tuple[tuple[Any, Any], dict[str, Any]]:
        """Validation loss and accuracy, and the diagnostics on the probe batch
        (a fixed part of the validation set, computed once for both)."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits, pre = self._forward(self.x_probe[None])
            probe_loss = self._per_slice_loss(self.y_probe, logits)
            total = tf.reduce_sum(probe_loss)
        grads = tape.gradient(total, self.variables)
        kernel_grads = grads[0::2]
        d = diagnostics(logits, self.onehot_probe, pre, grads, kernel_grads, (kernel_grads[0], kernel_grads[-1]),
                        self.variables, self.binary, self.metrics, penalty=self._penalty() * tf.ones([self.S]))
        d["weights_finite"] = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v), axis=list(range(1, len(v.shape)))) for v in self.variables]), axis=0)
        correct = tf.reduce_sum(tf.cast(tf.equal(self._predictions(logits), self.y_probe_true[None]), tf.float32), axis=1)
        loss_sum = probe_loss * self.n_probe
        if self.x_rest is not None:
            rest_logits, _ = self._forward(self.x_rest[None])
            loss_sum += self._per_slice_loss(self.y_rest, rest_logits) * self.n_rest
            correct += tf.reduce_sum(tf.cast(tf.equal(self._predictions(rest_logits), self.y_rest_true[None]), tf.float32), axis=1)
        n = self.n_probe + self.n_rest
        return (loss_sum / n + self._penalty(), correct / n), d

    # -- the loop --------------------------------------------------------------

    # -- the steps of the one epoch loop (:func:`~.trainers.epoch_loop`) ------------
    # Every slice computes until the pack shrinks: a stopped slice's values are
    # computed and not recorded (the recorder of a stopped run ignores them).

    def begin_epoch(self, epoch: int, live: list[int]) -> None:
        import tensorflow as tf

        order = np.stack([epoch_order(r.seed, epoch, self.n) for r in self.runs])
        order_t = tf.constant(order)
        self._epoch = (tf.gather(self.x_train, order_t),  # one gather per epoch: [S, n, in]
                       tf.gather(self.y_train, order_t, batch_dims=1), tf.constant(self.data.y_train[order].astype("int32")))
        self._sums = (tf.zeros([self.S]), tf.zeros([self.S]), 0.0)

    def train_steps(self, start: int, stop: int) -> None:
        import tensorflow as tf

        ls, cs, sn = self._train_range(*self._epoch, tf.constant(start), tf.constant(stop))
        loss_sum, correct, seen = self._sums
        self._sums = (loss_sum + ls, correct + cs, seen + float(sn))

    def probe_accuracies(self, live: list[int]) -> list[float]:
        acc = self._probe_accuracy().numpy()
        return [float(acc[s]) for s in live]

    def end_epoch(self, live: list[int]) -> list[tuple[dict[str, float], dict[str, Any], bool]]:
        (val_loss, val_acc), d = self._epoch_end()
        val_loss, val_acc = val_loss.numpy(), val_acc.numpy()
        d = {k: v.numpy() for k, v in d.items()}
        loss_sum, correct, seen = self._sums
        train_loss, train_acc = (loss_sum / seen).numpy(), (correct / seen).numpy()
        values = {k: v for k, v in d.items() if k != "weights_finite"}
        return [({"loss": train_loss[s], "accuracy": train_acc[s], "val_loss": val_loss[s], "val_accuracy": val_acc[s]},
                 slice_values(values, s), bool(d["weights_finite"][s])) for s in live]

    def shrink(self, live: list[int], seconds: list[float], epochs_left: int) -> "PackedTrainer | None":
        """The live slices in a pack of their own once they are at most half of
        this one and the epochs left would cost more than tracing it: saved, the
        stopped slices' share of the epochs left; spent, a new trace, about what
        the first epoch took over the latest."""
        if COMPACT == "never" or not epochs_left or 2 * len(live) > self.S:
            return None
        saved = epochs_left * seconds[-1] * (1 - len(live) / self.S)
        if COMPACT == "always" or saved > max(0.0, seconds[0] - seconds[-1]) + 0.2:
            return self._subset(live)
        return None

    def _subset(self, live: list[int]) -> "PackedTrainer":
        """A pack of the slices ``live`` as they are now: weights and optimizer state carried over."""
        import dataclasses

        import tensorflow as tf

        chains = [dataclasses.replace(self.chains[s], kernels=[k[s].numpy() for k in self.kernels], biases=[b[s, 0].numpy() for b in self.biases])
                  for s in live]
        sub = PackedTrainer([self.runs[s] for s in live], chains, self.sweep, self.optimizer_cls, self.optimizer_config,
                            [self.learning_rates[s] for s in live])
        idx = tf.constant(live)
        for old, new in zip(self.optimizer.variables, sub.optimizer.variables):
            new.assign(tf.gather(old, idx) if len(old.shape) and old.shape[0] == self.S else old)
        return sub


@dataclass
class StackFacts:
    """What the stacked trainer reads off a built run: its chain, its optimizer,
    and the key of the runs it may stack with (same shapes, optimizer settings,
    batch size, target format and data, input scaling included)."""

    key: tuple[Any, ...]
    chain: Chain
    optimizer_cls: type
    optimizer_config: dict[str, Any]
    learning_rate: float


def stack_facts(built: BuiltRun) -> tuple[StackFacts | None, str]:
    """``(facts, "")`` for a run the stacked trainer takes, or ``(None, why not)``;
    read once per built run."""
    memo = built.__dict__.get("_stack_facts")
    if memo is None:
        memo = built.__dict__["_stack_facts"] = _read_stack(built)
    return memo


def _read_stack(b: BuiltRun) -> tuple[StackFacts | None, str]:
    chain, why = chain_of(b.model)
    if chain is None:
        return None, why
    if _loss_identity(b) is None:
        return None, "its loss is not one the stacked trainer computes"
    opt = make_optimizer(b.plan, b.base_optimizer, b.steps_per_epoch, b.epochs)
    why = _optimizer_problem(opt)
    if why:
        return None, why
    cfg = {k: v for k, v in opt.get_config().items() if k not in ("name", "learning_rate")}
    key = (type(opt), repr(sorted(cfg.items())), tuple(k.shape for k in chain.kernels), b.batch_size, b.target_format, id(b.data))
    return StackFacts(key, chain, type(opt), cfg, float(opt.get_config()["learning_rate"])), ""


def _optimizer_problem(opt: Any) -> str | None:
    cfg = opt.get_config()
    name = type(opt).__name__
    if name not in OPTIMIZERS:
        return f"optimizer {name} is not packed"
    if cfg.get("clipnorm") or cfg.get("global_clipnorm"):
        return "norm clipping would mix the runs of a pack"
    if cfg.get("use_ema") or cfg.get("gradient_accumulation_steps") or cfg.get("loss_scale_factor"):
        return "optimizer EMA, gradient accumulation and loss scaling are not packed"
    if not isinstance(cfg.get("learning_rate"), (int, float)):
        return "a learning-rate schedule is not packed"
    return None
