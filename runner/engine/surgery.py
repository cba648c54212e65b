"""Model surgery: read any Keras classifier's structure, and rewrite it to a plan.

Works on Sequential and functional models (nested models included): Dense and
convolution layers, ``Activation``/``ReLU``/``LeakyReLU``/``ELU``/``Softmax``
layers, one output. A subclassed model cannot be rewritten; knobs that need
a rewrite then fail the run with a message saying so.

The rewrite (:func:`rewrite`) always splits each layer's built-in activation
into a separate ``Activation`` layer (the same function, the same weights), so
that the logits and every hidden pre-activation are tensors the diagnostics can
read. Layers the plan leaves alone keep the base model's weights; layers it
re-initialises or reshapes get fresh ones from the seeded generator.

This module is public for plugins: a remedy's ``transform_model`` may use
:func:`map_layers` and raise :class:`NotApplicable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from remedysweep.errors import one_line
from remedysweep.remedies import ModelPlan


class NotApplicable(Exception):
    """A remedy that cannot apply to this model; the message says why."""


# ----------------------------------------------------------------------------
# Layer kinds
# ----------------------------------------------------------------------------


def _kinds() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    import keras

    L = keras.layers
    weighted = tuple(getattr(L, n) for n in (
        "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D") if hasattr(L, n))
    activations = tuple(getattr(L, n) for n in ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax") if hasattr(L, n))
    transparent = tuple(getattr(L, n) for n in ("Dropout", "Identity", "GaussianNoise", "GaussianDropout", "ActivityRegularization", "AlphaDropout") if hasattr(L, n))
    return weighted, activations, transparent


def activation_name(layer: Any) -> str:
    """The activation a layer applies, by name (``linear`` for none)."""
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    for cls, name in (("ReLU", "relu"), ("LeakyReLU", "leaky_relu"), ("ELU", "elu"), ("PReLU", "prelu")):
        if isinstance(layer, getattr(keras.layers, cls)):
            return name
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    return getattr(act, "__name__", None) or type(act).__name__.lower()


def _single_input(layer: Any, node_index: int = 0) -> Any:
    """The one tensor a layer's call (its node ``node_index``) took, or None."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if node_index >= len(nodes) or len(nodes[node_index].input_tensors) != 1:
        return None
    return nodes[node_index].input_tensors[0]


def to_functional(model: Any, input_shape: Any = None) -> Any:
    """A functional model computing the same function with the same layers, or
    ``None`` for a subclassed model. A Sequential model is built first if needed."""
    import keras
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            if input_shape is None or isinstance(input_shape, (dict, list)) or (input_shape and isinstance(input_shape[0], tuple)):
                return None
            model.build((None, *input_shape))
            inputs = model.inputs
        x = new_inputs = keras.Input(batch_shape=inputs[0].shape, dtype=inputs[0].dtype, name=f"{model.name}_input")
        for layer in model.layers:
            x = layer(x)
        return keras.Model(new_inputs, x, name=model.name)
    if isinstance(model, Functional):
        return model
    return None


# ----------------------------------------------------------------------------
# Reading a model
# ----------------------------------------------------------------------------


@dataclass
class Structure:
    """Roles of a functional model's layers."""

    output_layer: Any  # the weighted layer producing the logits, or None
    head_layers: list[Any]  # activation layers after it, output last
    transparent: list[Any]
    hidden: list[Any]  # weighted layers but the output layer
    hidden_acts: list[Any]  # activation layers that are not part of the head
    nested: list[Any]  # nested models (all their layers are hidden)
    #: ids of hidden weighted layers without an activation of their own whose
    #: output goes (through normalization, dropout or pooling) into an activation layer
    activated: set[int] = field(default_factory=set)
    #: hidden activation layers that apply a softmax
    hidden_softmax: list[Any] = field(default_factory=list)

    @property
    def head_activations(self) -> list[str]:
        """Activations from the logits to the output, in order."""
        out = []
        if self.output_layer is not None and activation_name(self.output_layer) != "linear":
            out.append(activation_name(self.output_layer))
        out += [activation_name(l) for l in reversed(self.head_layers) if activation_name(l) != "linear"]
        return out

    @property
    def linear_hidden(self) -> list[Any]:
        """Hidden weighted layers whose output reaches the next layer without any activation."""
        return [l for l in self.hidden if activation_name(l) == "linear" and id(l) not in self.activated]


def _pass_through() -> tuple[type, ...]:
    import keras

    names = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
             "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
    return _kinds()[2] + tuple(getattr(keras.layers, n) for n in names if hasattr(keras.layers, n))


def structure(model: Any) -> Structure:
    import keras
    from keras.src import tree

    weighted, activations, transparent = _kinds()
    history = model.outputs[0]._keras_history
    op, node = history.operation, history.node_index
    head, passed = [], []
    while True:
        if isinstance(op, activations):
            head.append(op)
        elif isinstance(op, transparent):
            passed.append(op)
        else:
            break
        t = _single_input(op, node)
        if t is None:
            op = None
            break
        op, node = t._keras_history.operation, t._keras_history.node_index
    output_layer = op if isinstance(op, weighted) else None
    hidden = [l for l in model.layers if isinstance(l, weighted) and l is not output_layer]
    hidden_acts = [l for l in model.layers if isinstance(l, activations) and l not in head and not isinstance(l, keras.layers.Softmax)]
    hidden_softmax = [l for l in model.layers if isinstance(l, keras.layers.Softmax) and l not in head]
    nested = [l for l in model.layers if isinstance(l, keras.Model)]
    # who consumes what, inside this model only (a reused layer has nodes in other models too)
    nodes = [n for depth in model._nodes_by_depth.values() for n in depth]
    consumers: dict[int, list[Any]] = {}
    for n in nodes:
        for t in tree.flatten(n.input_tensors):
            consumers.setdefault(id(t), []).append(n)
    through = _pass_through()
    activated: set[int] = set()
    for n in nodes:
        if n.operation not in hidden or activation_name(n.operation) != "linear":
            continue
        current = n
        for _ in range(16):
            outs = tree.flatten(current.outputs)
            nxt = consumers.get(id(outs[0]), []) if len(outs) == 1 else []
            if len(nxt) != 1:
                break
            op = nxt[0].operation
            if isinstance(op, activations):
                activated.add(id(n.operation))
                break
            if not isinstance(op, through):
                break
            current = nxt[0]
    return Structure(output_layer, head, passed, hidden, hidden_acts, nested, activated, hidden_softmax)


@dataclass
class ModelInfo:
    """What ``doctor``, the symptoms and the packer need to know of a base model."""

    rewritable: bool
    output_units: int
    head_activations: list[str]
    hidden_activations: list[str]
    hidden_layers: int
    max_hidden_width: int
    convolutional: bool
    loss: str
    keras_cross_entropy: bool
    sparse_loss: bool
    from_logits: bool
    optimizer: str
    learning_rate: float | None
    n_params: int
    sequential: bool
    n_inputs: int
    output_probabilities: bool = False

    @property
    def output_activation(self) -> str:
        return self.head_activations[-1] if self.head_activations else "linear"

    def facts(self) -> dict[str, Any]:
        return {
            "output_units": self.output_units,
            "output_activation": self.output_activation,
            "head_activations": self.head_activations,
            "hidden_activations": self.hidden_activations,
            "hidden_layers": self.hidden_layers,
            "max_hidden_width": self.max_hidden_width,
            "convolutional": self.convolutional,
            "loss": self.loss,
            "from_logits": self.from_logits,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "n_params": self.n_params,
            "sequential": self.sequential,
            "rewritable": self.rewritable,
            "n_inputs": self.n_inputs,
        }


KERAS_CE = {"categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
            "categorical_focal_crossentropy", "binary_focal_crossentropy"}


def compiled_loss(model: Any) -> Any:
    """The loss the model was compiled with (string, function or Loss object)."""
    return getattr(model, "loss", None)


def loss_facts(loss: Any) -> tuple[str, bool, bool]:
    """(name, from_logits, is a Keras cross-entropy) of a compiled loss."""
    if isinstance(loss, str):
        name, from_logits = loss, False
    else:
        fn = getattr(loss, "fn", None)
        kwargs = getattr(loss, "_fn_kwargs", {}) or {}
        if fn is not None:
            name = getattr(fn, "__name__", type(loss).__name__)
        else:
            name = getattr(loss, "__name__", None) or getattr(loss, "name", None) or type(loss).__name__
        from_logits = bool(kwargs.get("from_logits", False))
        if hasattr(loss, "get_config") and not kwargs:
            try:
                from_logits = bool(loss.get_config().get("from_logits", False))
            except Exception:
                pass
    aliases = {"CategoricalCrossentropy": "categorical_crossentropy", "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
               "BinaryCrossentropy": "binary_crossentropy"}
    name = aliases.get(name, name)
    return name, from_logits, name in KERAS_CE


def _width(layer: Any) -> int:
    cfg = layer.get_config()
    return int(cfg.get("units") or cfg.get("filters") or 0)


def describe_model(model: Any, data: Any = None) -> ModelInfo:
    """Read a compiled classifier. Raises ``ValueError`` for a model that is not
    a single-output classifier."""
    import keras

    functional = to_functional(model, data.input_shape if data is not None else None)
    outputs = getattr(functional if functional is not None else model, "outputs", None) or []
    if len(outputs) > 1:
        raise ValueError(f"the model has {len(outputs)} outputs; remedysweep takes single-output classifiers")
    if outputs and len(outputs[0].shape) != 2:
        raise ValueError(f"the model's output has shape {tuple(outputs[0].shape)}; a classifier outputs (batch, classes)")
    name, from_logits, keras_ce = loss_facts(compiled_loss(model))
    opt = getattr(model, "optimizer", None)
    opt = getattr(opt, "inner_optimizer", None) or opt  # mixed precision: the optimizer inside the loss scaling
    try:
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate)) if opt is not None else None
    except Exception:
        lr = None
    if functional is not None:
        s = structure(functional)
        hidden = list(s.hidden)
        acts = [activation_name(l) for l in s.hidden] + [activation_name(l) for l in s.hidden_acts]
        for inner in s.nested:
            inner_f = to_functional(inner)
            inner_s = structure(inner_f) if inner_f is not None else None
            if inner_s is not None:
                hidden += [l for l in inner.layers if isinstance(l, _kinds()[0])]
                acts += [activation_name(l) for l in inner.layers if isinstance(l, _kinds()[0] + _kinds()[1])]
        units = int(outputs[0].shape[-1])
        convolutional = any("Conv" in type(l).__name__ for l in hidden)
        head = s.head_activations
        widths = [_width(l) for l in hidden]
    else:
        units = int(outputs[0].shape[-1]) if outputs else 0
        acts, head, widths, convolutional, hidden = [], [], [], False, []
        if not outputs and data is not None:  # a subclassed model: ask it
            from .data import map_inputs

            import tensorflow as tf

            y = keras.ops.convert_to_numpy(model(map_inputs(data.x_train, lambda a: tf.constant(a[:8]))))
            if y.ndim != 2:
                raise ValueError(f"the model's output has shape {tuple(y.shape)}; a classifier outputs (batch, classes)")
            units = int(y.shape[-1])
            probs = bool((y >= 0).all() and (y <= 1).all() and (units == 1 or abs(y.sum(-1) - 1).max() < 1e-3))
            head = ["sigmoid" if units == 1 else "softmax"] if probs else []
    return ModelInfo(
        rewritable=functional is not None,
        output_units=units,
        head_activations=head,
        hidden_activations=sorted({a for a in acts if a not in ("linear", "softmax")}),
        hidden_layers=len(hidden),
        max_hidden_width=max(widths) if widths else 0,
        convolutional=convolutional,
        loss=name,
        keras_cross_entropy=keras_ce,
        sparse_loss="sparse" in name,
        from_logits=from_logits,
        optimizer=type(opt).__name__ if opt is not None else "",
        learning_rate=lr,
        n_params=int(model.count_params()) if model.built else 0,
        sequential=isinstance(model, keras.Sequential),
        n_inputs=len(getattr(functional, "inputs", []) or []) if functional is not None else 0,
        output_probabilities=bool(head) and head[-1] in ("softmax", "sigmoid"),
    )


# ----------------------------------------------------------------------------
# Rewriting a model
# ----------------------------------------------------------------------------


@dataclass
class Rewritten:
    """The rewritten model and the tensors the diagnostics read.

    ``logits``: the output layer's pre-activation (``None`` for a subclassed model).
    ``preacts``: what enters each hidden activation.
    ``probabilities``: the model's output is a softmax/sigmoid of the logits.
    """

    model: Any
    logits: Any = None
    preacts: list[Any] = field(default_factory=list)
    probabilities: bool = False
    binary: bool = False
    first_kernel: Any = None
    last_kernel: Any = None
    relu_family: bool = False


NORMALIZING = ("Normalization", "Rescaling", "Discretization", "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization")


def normalizes_inputs(model: Any) -> bool:
    """Whether the model scales its own inputs: a normalizing layer comes
    before its first Dense or convolution layer."""
    weighted = _kinds()[0]
    for layer in getattr(model, "layers", ()):
        if type(layer).__name__ in NORMALIZING:
            return True
        if isinstance(layer, weighted):
            return False
    return False


def _initializer(name: str) -> Any:
    import keras

    return keras.initializers.get(name)


def _init_identity(init: Any) -> Any:
    """An initializer's class and settings (its seed aside), to tell whether a
    re-initialisation changes anything."""
    import keras

    if init is None:
        return None
    d = keras.initializers.serialize(keras.initializers.get(init)) if not isinstance(init, dict) else init
    config = {k: v for k, v in (d.get("config") or {}).items() if k != "seed"}
    return (d.get("class_name"), repr(sorted(config.items())))


def _regularizer(spec: tuple[str, float]) -> Any:
    import keras

    kind, amount = spec
    return {"l2": keras.regularizers.L2, "l1": keras.regularizers.L1}[kind](amount)


def _constraint(spec: tuple[str, float], layer_cfg: dict[str, Any]) -> Any:
    import keras

    kind, amount = spec
    if kind != "max_norm":
        raise NotApplicable(f"constraint {kind!r} is not known; allowed: max_norm")
    # Each unit's (filter's) incoming weights: every kernel axis but the last.
    rank = {"Dense": 2}.get(layer_cfg.get("__class__", ""), None)
    return keras.constraints.MaxNorm(amount, axis=0 if rank == 2 else list(range(len(layer_cfg.get("kernel_size", ())) + 1)))


RELU_FAMILY = {"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu"}


def main_kernel(layer: Any) -> Any:
    """The variable a weighted layer multiplies its input by: ``kernel``, or for
    separable and depthwise convolutions the pointwise (else depthwise) kernel."""
    for attr in ("kernel", "pointwise_kernel", "depthwise_kernel"):
        try:
            v = getattr(layer, attr, None)
        except Exception:
            v = None
        if v is not None:
            return v
    return None


def _is_keras_class(layer: Any) -> bool:
    """A layer class of Keras itself (``from_config`` of its config is safe),
    not a user's subclass."""
    return type(layer).__module__.startswith("keras.")


def _has_weights(layer: Any) -> bool:
    return bool(getattr(layer, "weights", None))


def _input_shapes(args: Any) -> list[tuple[Any, ...]]:
    from keras.src import tree

    return [tuple(t.shape) for t in tree.flatten(args) if hasattr(t, "shape")]


def _old_input_shapes(layer: Any) -> list[list[tuple[Any, ...]]]:
    from keras.src import tree

    return [[tuple(t.shape) for t in tree.flatten(n.input_tensors)] for n in getattr(layer, "_inbound_nodes", [])]


def walk(model: Any, operation_fn: Callable[[Any], Any], call_fn: Callable[..., Any]) -> Any:
    """A new functional model computing ``model``'s graph with
    ``operation_fn(layer)`` in place of each layer and ``call_fn(layer, *args,
    **kwargs)`` for each call. Unlike ``keras.models.clone_model``, nothing is
    serialized: the model is not recompiled from its config (a loss or metric
    nobody registered survives), and layers ``operation_fn`` returns as they are
    keep their state (adapted preprocessing, custom layers, ``Lambda``). The
    model keeps its class where that class is functional-like (a model class
    with its own ``train_step``)."""
    import keras
    from keras.src import tree
    from keras.src.models.functional import Functional, functional_like_constructor

    inputs = tree.map_structure(lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name), model.input)
    outputs = model._run_through_graph(inputs, operation_fn=operation_fn, call_fn=call_fn)
    cls = type(model)
    if cls not in (Functional, keras.Model) and functional_like_constructor(cls):
        try:
            return cls(inputs, outputs, name=model.name)
        except Exception:
            pass
    return Functional(inputs, outputs, name=model.name)


class _Rewriter:
    """One walk of a functional model with per-layer changes (see :func:`rewrite`).

    Layers the plan leaves alone are the base model's own objects, reused: their
    weights and state are the base model's. Built-in Dense/convolution layers
    are rebuilt from their config where the plan changes them or their
    activation is split off (weights copied where shapes still match); a layer
    with weights whose input width changed is rebuilt with fresh weights, or, if
    it is not a Keras layer, the change is :class:`NotApplicable`."""

    def __init__(self, plan: ModelPlan, all_hidden: bool = False):
        self.plan = plan
        self.all_hidden = all_hidden
        self.roles: dict[int, tuple[str, str]] = {}  # id(new layer) -> (role, original activation)
        self.original: dict[int, Any] = {}  # id(new layer) -> old layer
        self.pairs: list[tuple[Any, Any, bool]] = []  # (old, new, re-initialised) for rebuilt layers
        self.logits: Any = None
        self.preacts: list[Any] = []
        self.counts = {"hidden": 0, "hidden_acts": 0, "weighted": 0, "dropout_layers": 0, "regularized": 0}
        self.activations_seen: set[str] = set()
        self.opaque: list[str] = []  # layers kept as they are although the plan asked for a change

    # -- which layer stands in for which ---------------------------------------

    def _roles(self, model: Any) -> dict[int, str]:
        s = self.structure = structure(model)
        roles: dict[int, str] = {}
        for l in s.hidden:
            roles[id(l)] = "hidden" if id(l) in s.activated or activation_name(l) != "linear" else "linear_hidden"
        for l in s.hidden_acts:
            roles[id(l)] = "hidden_act"
        if s.output_layer is not None:
            roles[id(s.output_layer)] = "hidden" if self.all_hidden else "output"
        for l in s.head_layers:
            roles[id(l)] = "hidden_act" if self.all_hidden else "head_act"
        if self.plan.head is not None and (self.all_hidden or s.output_layer is None):
            raise NotApplicable("the model does not end in a Dense or convolution layer (then activations), so its head cannot be rewritten")
        return roles

    def _replacement(self, old: Any, role: str) -> Any:
        """The layer that stands in for ``old`` (``old`` itself where nothing changes)."""
        import keras

        weighted, activations, _ = _kinds()
        p = self.plan
        if isinstance(old, keras.Model):
            return self._nested(old)
        if isinstance(old, weighted):
            self.counts["weighted"] += 1
            if role in ("hidden", "linear_hidden"):
                self.counts["hidden"] += 1
            if getattr(old, "kernel_regularizer", None) is not None or getattr(old, "bias_regularizer", None) is not None:
                self.counts["regularized"] += 1
            cfg = old.get_config()
            before = repr(cfg)
            self._weighted(cfg, role, type(old).__name__)
            reinit = bool(cfg.pop("__reinit__", False))
            if repr(cfg) == before and not reinit:
                return old  # nothing changes: the layer itself
            if not _is_keras_class(old):
                raise NotApplicable(f"layer {old.name!r} ({type(old).__name__}) is a custom Dense/convolution class; "
                                    f"it cannot be rebuilt to {_describe(_wanted(p))}")
            new = type(old).from_config(cfg)
            self.pairs.append((old, new, reinit))
            return new
        if role == "hidden_act":
            self.counts["hidden_acts"] += 1
            self.activations_seen.add(activation_name(old))
            if p.activation:
                return keras.layers.Activation(p.activation, name=old.name)
            return old
        if _is_dropout(old):
            self.counts["dropout_layers"] += 1
            if p.dropout_rate is not None:
                return SKIP if p.dropout_rate == 0 else type(old).from_config({**old.get_config(), "rate": p.dropout_rate})
            return old
        return old

    def _nested(self, old: Any) -> Any:
        """A nested model: rewritten inside when it trains, kept as it is when frozen."""
        inner = to_functional(old)
        if inner is None or not old.trainable or not any(l.trainable_weights for l in old.layers):
            self.opaque.append(old.name)
            return old
        sub = _Rewriter(self.plan, all_hidden=True)
        new = sub.clone(inner)
        self.pairs += sub.pairs
        for k in self.counts:
            self.counts[k] += sub.counts[k]
        self.activations_seen |= sub.activations_seen
        return new

    def clone(self, model: Any) -> Any:
        import keras

        roles_old = self._roles(model)
        memo: dict[int, Any] = {}
        has_dropout = any(_is_dropout(l) for l in model._flatten_layers(include_self=False, recursive=True))
        rate = self.plan.dropout_rate
        self._inserted_dropout = self.plan.dropout or (rate if rate and not has_dropout else None)

        def operation_fn(old: Any) -> Any:
            if id(old) not in memo:
                role = roles_old.get(id(old), "")
                new = self._replacement(old, role)
                if role == "head_act" and self.plan.head is not None:
                    role = "skip"  # the head is rebuilt after the output layer: this activation goes
                if new is SKIP:
                    role, new = "skip", old
                memo[id(old)] = new
                self.roles[id(new)] = (role, activation_name(old))
                self.original[id(new)] = old
            return memo[id(old)]

        def call_fn(layer: Any, *args: Any, **kwargs: Any) -> Any:
            role, original = self.roles.get(id(layer), ("", "linear"))
            if role == "skip":
                return args[0]
            old = self.original.get(id(layer), layer)
            if layer is old and _has_weights(old) and _input_shapes(args) not in _old_input_shapes(old):
                layer = self._rebuilt_for_new_shape(old)
            out = layer(*args, **kwargs)
            name = layer.name
            if role in ("hidden", "linear_hidden"):
                activate = role == "hidden" and original != "linear" or role == "linear_hidden" and self.plan.activation
                if self.plan.normalization and role == "hidden" or self.plan.normalization and activate:
                    norm = {"batchnorm": keras.layers.BatchNormalization, "layernorm": keras.layers.LayerNormalization}[self.plan.normalization]
                    out = norm(name=f"{name}_norm")(out)
                if activate:
                    if original != "linear":
                        self.activations_seen.add(original)
                    act = self.plan.activation or original
                    self.preacts.append(out)
                    out = keras.layers.Activation(act, name=f"{name}_act")(out)
                    if self._inserted_dropout:
                        out = keras.layers.Dropout(self._inserted_dropout, name=f"{name}_dropout")(out)
            elif role == "hidden_act":
                self.preacts.append(args[0] if args else None)
                if self._inserted_dropout:
                    out = keras.layers.Dropout(self._inserted_dropout, name=f"{name}_dropout")(out)
            elif role == "output":
                self.logits = out
                units = int(out.shape[-1])
                if self.plan.head == "probabilities":
                    out = keras.layers.Activation("sigmoid" if units == 1 else "softmax", name=f"{name}_probabilities")(out)
                elif self.plan.head is None and original != "linear":
                    out = keras.layers.Activation(original, name=f"{name}_act")(out)
            return out

        new = walk(model, operation_fn, call_fn)
        self.preacts = [p for p in self.preacts if p is not None]
        return new

    def _rebuilt_for_new_shape(self, old: Any) -> Any:
        """A fresh copy of a layer whose input width the plan changed."""
        if not _is_keras_class(old):
            raise NotApplicable(f"layer {old.name!r} ({type(old).__name__}) takes the changed width but is a custom layer "
                                "with weights, which cannot be rebuilt for it")
        new = type(old).from_config(old.get_config())
        self.roles[id(new)] = self.roles.get(id(old), ("", activation_name(old)))
        self.original[id(new)] = new
        self.pairs.append((old, new, True))
        return new

    def _weighted(self, cfg: dict[str, Any], role: str, cls: str) -> None:
        p = self.plan
        if role in ("hidden", "output") and cfg.get("activation") not in (None, "linear"):
            cfg["activation"] = "linear"  # split: applied by a separate Activation layer
        if role in ("hidden", "linear_hidden"):
            size_key = "units" if "units" in cfg else "filters" if cfg.get("filters") else None
            if size_key and p.width is not None:
                cfg[size_key] = p.width
            if size_key and p.min_width is not None and cfg[size_key] < p.min_width:
                cfg[size_key] = p.min_width
            if p.kernel_constraint is not None and "kernel_constraint" in cfg:
                cfg["kernel_constraint"] = _constraint(p.kernel_constraint, {**cfg, "__class__": cls})
        if p.kernel_regularizer is not None:
            kind = p.kernel_regularizer[0]
            had = any(cfg.get(k) for k in ("kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                            "depthwise_regularizer", "pointwise_regularizer"))
            if kind == "none":
                for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer", "pointwise_regularizer"):
                    if cfg.get(key) is not None:
                        cfg[key] = None
            elif role in ("hidden", "linear_hidden") or had:
                for key in ("bias_regularizer", "activity_regularizer"):
                    if cfg.get(key) is not None:
                        cfg[key] = None
                for key in ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer"):
                    if key in cfg and (key == "kernel_regularizer" or cfg.get(key) is not None):
                        cfg[key] = _regularizer(p.kernel_regularizer)
        if p.kernel_initializer is not None:
            before = {k: _init_identity(cfg.get(k)) for k in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer", "bias_initializer")}
            for key in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer"):
                if key in cfg:
                    cfg[key] = _initializer(p.kernel_initializer)
            if "bias_initializer" in cfg:
                cfg["bias_initializer"] = "zeros"
            after = {k: _init_identity(cfg.get(k)) for k in before}
            if before != after:
                cfg["__reinit__"] = True


class _Skip:
    """Marks a layer the rewrite leaves out (its input passes through)."""


SKIP = _Skip()


def _is_dropout(layer: Any) -> bool:
    import keras

    kinds = tuple(getattr(keras.layers, n) for n in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D") if hasattr(keras.layers, n))
    return isinstance(layer, kinds)


def _wanted(plan: ModelPlan) -> dict[str, Any]:
    return {k: v for k, v in vars(plan).items() if not k.startswith("_") and v is not None}


def rewrite(model: Any, plan: ModelPlan, input_shape: Any = None) -> Rewritten:
    """The base model rewritten to ``plan``, with the tensors the diagnostics
    read. Raises :class:`NotApplicable` when a change cannot apply to the model.
    With nothing in the plan, the result computes exactly the base model's
    function with the base model's weights and state."""
    functional = to_functional(model, input_shape)
    wanted = _wanted(plan)
    if functional is None:
        return rewrite_subclassed(model, plan)
    rewriter = _Rewriter(plan)
    try:
        new = rewriter.clone(functional)
    except NotApplicable:
        raise
    except Exception as exc:
        if not wanted:  # a graph that cannot be walked: train the model as it is, without layer diagnostics
            try:
                head = structure(functional).head_activations
            except Exception:
                head = []
            return Rewritten(model, probabilities=bool(head) and head[-1] in ("softmax", "sigmoid"),
                             binary=int(functional.outputs[0].shape[-1]) == 1)
        raise NotApplicable(f"rewriting the model to {_describe(wanted)} failed: {one_line(exc)}") from None
    c = rewriter.counts
    needs_hidden = [k for k in ("width", "min_width", "normalization", "kernel_constraint") if k in wanted]
    if needs_hidden and not c["hidden"]:
        raise NotApplicable(f"model.{needs_hidden[0]}: the model has no hidden Dense or convolution layer")
    if "kernel_regularizer" in wanted and wanted["kernel_regularizer"][0] != "none" and not c["hidden"] and not c["regularized"]:
        raise NotApplicable("model.kernel_regularizer: the model has no hidden Dense or convolution layer")
    if "activation" in wanted and not (rewriter.activations_seen - {"linear"}) and not rewriter.preacts:
        raise NotApplicable("model.activation: the model has no hidden activation to replace")
    if "dropout" in wanted and not rewriter.preacts:  # noqa: SIM114
        raise NotApplicable("model.dropout: the model has no hidden activation to put dropout after")
    if "dropout_rate" in wanted and wanted["dropout_rate"] > 0 and not c["dropout_layers"] and not rewriter.preacts:
        raise NotApplicable("model.dropout_rate: the model has no Dropout layer and no hidden activation to put one after")
    for old, new_layer, reinit in rewriter.pairs:
        if reinit:  # a changed initializer or input width: fresh weights, drawn from the seeded generator
            continue
        old_w, new_w = old.get_weights(), new_layer.get_weights()
        if old_w and len(old_w) == len(new_w) and all(a.shape == b.shape for a, b in zip(old_w, new_w)):
            new_layer.set_weights(old_w)
    return _rewritten(new, rewriter, plan)


def _rewritten(new: Any, rewriter: _Rewriter, plan: ModelPlan) -> Rewritten:
    weighted = _kinds()[0]
    out = new.outputs[0]
    s = rewriter.structure
    units = int(out.shape[-1])
    final = "linear"
    op = out._keras_history.operation
    if op is not None and rewriter.logits is not None and out is not rewriter.logits:
        final = activation_name(op)
    elif op is not None and rewriter.logits is None:
        final = (structure(new).head_activations or ["linear"])[-1]
    kernels = [l for l in new.layers if isinstance(l, weighted)]
    hidden_acts = (set(rewriter.activations_seen) if plan.activation is None else {plan.activation}) - {"linear"}
    return Rewritten(
        model=new,
        logits=rewriter.logits,
        preacts=rewriter.preacts,
        probabilities=final in ("softmax", "sigmoid"),
        binary=units == 1,
        first_kernel=kernels[0] if kernels else None,
        last_kernel=kernels[-1] if kernels and s.output_layer is not None else None,
        relu_family=bool(hidden_acts) and hidden_acts <= RELU_FAMILY,
    )


def rewrite_subclassed(model: Any, plan: ModelPlan) -> Rewritten:
    """A subclassed model changed in place, through its layers' attributes:
    re-initialisation (also after it was built), hidden activations, weight
    regularizers and Dropout rates. What needs its graph (width once built,
    normalization, the head, inserted dropout) raises :class:`NotApplicable`."""
    import keras

    wanted = _wanted(plan)
    cannot = [k for k in ("normalization", "head", "dropout", "kernel_constraint") if k in wanted]
    weighted, activations, _ = _kinds()
    layers = [l for l in model._flatten_layers(include_self=False, recursive=True)]
    dense = [l for l in layers if isinstance(l, weighted)]
    if ("width" in wanted or "min_width" in wanted) and (model.built or not dense):
        cannot.append("width" if "width" in wanted else "min_width")
    if cannot:
        raise NotApplicable(f"{', '.join('model.' + k for k in cannot)}: changing this needs a Sequential or functional model; "
                            f"{type(model).__name__} is subclassed (re-initialisation, activations, regularizers and dropout rates can change)")
    if not wanted:
        return Rewritten(model)
    output = dense[-1] if dense else None
    hidden = dense[:-1]
    if "kernel_initializer" in wanted:
        init = keras.initializers.get(plan.kernel_initializer)
        for l in dense:
            for attr in ("kernel_initializer", "depthwise_initializer", "pointwise_initializer"):
                if hasattr(l, attr):
                    setattr(l, attr, keras.initializers.get(plan.kernel_initializer))
            if hasattr(l, "bias_initializer"):
                l.bias_initializer = keras.initializers.get("zeros")
            for v in l.weights:
                name = v.path.rsplit("/", 1)[-1]
                if name.endswith("kernel"):
                    v.assign(init(tuple(v.shape)))
                elif name == "bias":
                    v.assign(keras.ops.zeros(tuple(v.shape)))
    if "activation" in wanted:
        changed = 0
        for l in hidden:
            if activation_name(l) not in ("linear", "softmax"):
                l.activation = keras.activations.get(plan.activation)
                changed += 1
        for l in layers:
            if isinstance(l, activations) and isinstance(l, keras.layers.Activation) and l not in (output,):
                l.activation = keras.activations.get(plan.activation)
                changed += 1
        if not changed:
            raise NotApplicable("model.activation: the subclassed model has no hidden activation set on a layer")
    if "kernel_regularizer" in wanted:
        kind = plan.kernel_regularizer[0]
        reg = None if kind == "none" else _regularizer(plan.kernel_regularizer)
        found = 0
        for l in dense:
            if getattr(l, "kernel_regularizer", None) is not None or (reg is not None and l in hidden):
                found += getattr(l, "kernel_regularizer", None) is not None
                l.kernel_regularizer = reg
                for v in l.weights:
                    if v.path.endswith("kernel"):
                        v.regularizer = reg
        if kind == "none" and not found:
            raise NotApplicable("model.kernel_regularizer: the model has no weight regularizer to remove")
    if "dropout_rate" in wanted:
        drops = [l for l in layers if _is_dropout(l)]
        if not drops:
            raise NotApplicable("model.dropout_rate: the model has no Dropout layer")
        for l in drops:
            l.rate = float(plan.dropout_rate)
    if "width" in wanted or "min_width" in wanted:
        for l in hidden:
            key = "units" if hasattr(l, "units") else "filters" if hasattr(l, "filters") else None
            if key and plan.width is not None:
                setattr(l, key, int(plan.width))
            if key and plan.min_width is not None and getattr(l, key) < plan.min_width:
                setattr(l, key, int(plan.min_width))
    return Rewritten(model)


def _describe(wanted: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in wanted.items()) or "the same structure"


def map_layers(model: Any, change: Callable[[Any, dict[str, Any]], Any]) -> Any:
    """For plugins: a copy of a functional or Sequential model in which
    ``change(layer, config)`` may return a new layer (or a changed config) for any
    layer; weights are copied where shapes still match. Layers ``change`` leaves
    alone (returns ``None``) are the model's own."""
    functional = to_functional(model)
    if functional is None:
        raise NotApplicable(f"{type(model).__name__} is subclassed: its layers cannot be changed")

    pairs = []
    memo: dict[int, Any] = {}

    def operation_fn(old: Any) -> Any:
        if id(old) in memo:
            return memo[id(old)]
        result = change(old, dict(old.get_config()))
        if isinstance(result, dict):
            new = old.__class__.from_config(result)
            pairs.append((old, new))
        elif result is None:
            new = old
        else:
            new = result
            pairs.append((old, new))
        memo[id(old)] = new
        return new

    new = walk(functional, operation_fn, lambda layer, *a, **k: layer(*a, **k))
    for old, layer in pairs:
        a, b = old.get_weights(), layer.get_weights()
        if a and len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b)):
            layer.set_weights(a)
    return new
