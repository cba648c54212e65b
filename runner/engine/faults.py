"""Static faults: what a model's layers, weights and compile settings show before
it trains (the fault families of DeepCrime's mutation operators and NeuraLint's
rules): a bottleneck narrower than the classes, hidden layers without an
activation or with a softmax, constant or badly scaled initial weights, biases
that switch ReLUs off, regularizers and dropout far outside their usual ranges,
a learning rate outside its optimizer's usual range, runaway momentum.

:func:`static_faults` returns ``{name: evidence}``; the names are symptoms
(:data:`~.symptoms.SYMPTOMS`) like those the runs show, and remedies suggest
fixes for them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: L1/L2 factors above this dominate the loss of a classifier (usual: 1e-5 to 1e-3).
HEAVY_PENALTY = 0.01
#: Dropout rates above this leave too little signal (usual: 0.1 to 0.5).
HEAVY_DROPOUT = 0.6
#: Momentum (SGD's, or Adam's beta_1) at or above this runs away.
RUNAWAY_MOMENTUM = 0.99
#: Initial kernel scale this many times above or below Glorot's.
SCALE_FACTOR = 5.0


def _fans(kernel: np.ndarray) -> tuple[int, int]:
    if kernel.ndim < 2:
        return 1, 1
    receptive = int(np.prod(kernel.shape[:-2])) if kernel.ndim > 2 else 1
    return kernel.shape[-2] * receptive, kernel.shape[-1] * receptive


def _weighted_layers(model: Any) -> list[Any]:
    from .surgery import _kinds

    weighted = _kinds()[0]
    return [l for l in model._flatten_layers(include_self=False, recursive=True) if isinstance(l, weighted)]


def _factor(reg: Any) -> float:
    if reg is None:
        return 0.0
    values = [getattr(reg, k, 0.0) or 0.0 for k in ("l1", "l2")]
    try:
        return float(max(float(v) for v in values))
    except (TypeError, ValueError):
        return 0.0


def learning_rate_schedule(model: Any, steps: int) -> dict[str, Any] | None:
    """The optimizer's learning-rate schedule read over a run of ``steps``
    updates (``None`` for a constant rate): its name, its value at the first and
    last step, the highest value within the run, and the highest value it ever
    reaches (looked up to far beyond the run) with the step where it does."""
    import keras

    opt = getattr(model, "optimizer", None)
    opt = getattr(opt, "inner_optimizer", None) or opt
    schedule = getattr(opt, "_learning_rate", None)
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return None
    steps = max(1, int(steps))
    value = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    try:
        within = sorted({int(x) for x in np.linspace(0, steps, 65)})
        run = [value(x) for x in within]
        beyond = sorted({int(x) for x in np.geomspace(steps, max(1000 * steps, 10**7), 65)})
        far = [value(x) for x in beyond]
    except Exception:
        return None
    top = int(np.argmax(far))
    peak, peak_step = (far[top], beyond[top]) if far[top] > max(run) else (max(run), within[int(np.argmax(run))])
    peak = float(f"{peak:.2g}")  # read off a sample of steps: to two figures
    quarter = value(max(1, steps // 4))
    return {"name": type(schedule).__name__, "start": run[0], "end": run[-1], "in_run": max(run), "peak": peak, "peak_step": peak_step,
            "steps": steps, "quarter": quarter}


#: A schedule whose rate a quarter of the way into the run is at most this
#: share of its highest value in the run has decayed too early.
DECAYED = 0.01


#: A Rescaling layer that divides by at least this much counts as scaling raw values
#: (1/255 for pixels, 1/16 for the digits' 0..16)...
RESCALES = 10.0
#: ...and inputs whose largest absolute value is at most this are already scaled.
SCALED_INPUTS = 1.5


def model_rescaling(model: Any) -> float | None:
    """The scale of the first ``Rescaling`` layer that divides by at least
    :data:`RESCALES` (None when there is none)."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Rescaling):
            scale = float(np.max(np.abs(np.asarray(layer.scale, dtype="float64"))))
            if 0 < scale <= 1.0 / RESCALES:
                return scale
    return None


def rescaled_twice(model: Any, data: Any) -> str:
    """Evidence that the model rescales inputs the data already scaled (a
    ``Rescaling(1/255)`` layer fed pixels already divided by 255), or ""."""
    import keras

    from .data import input_arrays

    try:
        largest = max(float(np.max(np.abs(a))) for a in input_arrays(data.x_train) if a.dtype.kind == "f")
    except ValueError:
        return ""
    if largest > SCALED_INPUTS:
        return ""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Rescaling):
            scale = float(np.max(np.abs(np.asarray(layer.scale, dtype="float64"))))
            if 0 < scale <= 1.0 / RESCALES:
                return (f"layer {layer.name!r} (Rescaling, scale {scale:.3g}) divides inputs that are already scaled (at most "
                        f"{largest:.3g} in the data): after it they reach at most {largest * scale:.2g}")
    return ""


def static_faults(model: Any, n_classes: int, steps: int | None = None, data: Any = None) -> dict[str, str]:
    """Faults read off a built, compiled base model: ``{symptom name: evidence}``.
    ``steps``: the updates of one run, to read a learning-rate schedule over the
    run; ``data``: the training data, to see inputs scaled twice."""
    from .surgery import activation_name, main_kernel, structure, to_functional

    out: dict[str, str] = {}
    layers = _weighted_layers(model)
    functional = to_functional(model)
    s = structure(functional) if functional is not None else None
    hidden = list(s.hidden) if s is not None else layers[:-1]

    widths = [(l.name, int(getattr(l, "units", 0) or getattr(l, "filters", 0) or 0)) for l in hidden]
    narrow = [(n, w) for n, w in widths if 0 < w < max(n_classes, 2)]
    if narrow:
        name, w = min(narrow, key=lambda t: t[1])
        out["bottleneck"] = f"hidden layer {name!r} has {w} unit(s) for {n_classes} classes"

    if s is not None and hidden:
        linear = [l.name for l in s.linear_hidden]
        if linear and 2 * len(linear) >= len(hidden):
            out["linear_hidden"] = (f"{len(linear)} of {len(hidden)} hidden layers ({', '.join(repr(n) for n in linear[:3])}) have no activation: "
                                    "stacked, they are one linear map")
        softmax = [l.name for l in hidden if activation_name(l) == "softmax"] + [l.name for l in s.hidden_softmax]
    else:
        softmax = [l.name for l in hidden if activation_name(l) == "softmax"]
    if softmax:
        out["softmax_hidden"] = f"softmax as a hidden activation in {', '.join(repr(n) for n in softmax[:3])}"

    saturating = [l.name for l in hidden if activation_name(l) in ("sigmoid", "hard_sigmoid")]
    if s is not None:  # Dense(4) + Activation("sigmoid") is the same network as Dense(4, activation="sigmoid")
        saturating += [l.name for l in s.hidden_acts if activation_name(l) in ("sigmoid", "hard_sigmoid")]
    opt_name, lr, momentum = _optimizer_facts(model)
    schedule = learning_rate_schedule(model, steps) if steps else None
    if schedule is not None:
        lr = schedule["in_run"]  # the rate the run reaches, not the schedule's value before its first step
        if schedule["in_run"] < 0.5 * schedule["peak"] and schedule["end"] >= 0.99 * schedule["in_run"]:
            out["warmup_longer_than_run"] = (f"the learning rate ({schedule['name']}) rises from {schedule['start']:.3g} to only "
                                             f"{schedule['end']:.3g} by the run's last step ({schedule['steps']}); it would reach "
                                             f"{schedule['peak']:.3g} only around step {schedule['peak_step']}")
        elif schedule["quarter"] <= DECAYED * schedule["in_run"]:
            out["schedule_decays_early"] = (f"the learning rate ({schedule['name']}) falls from {schedule['in_run']:.3g} to "
                                            f"{schedule['quarter']:.2g} by step {max(1, schedule['steps'] // 4)}, a quarter of the "
                                            f"run's {schedule['steps']} steps: the rest trains at almost no rate")
    if data is not None:
        twice = rescaled_twice(model, data)
        if twice:
            out["inputs_scaled_twice"] = twice
    if saturating and opt_name == "SGD" and momentum < 0.5:
        out["saturating_sgd"] = f"sigmoid hidden layers ({len(saturating)}) trained by plain SGD: gradients shrink layer by layer"

    constant, scaled = [], []
    for l in layers:
        kernel = main_kernel(l)
        if kernel is None:
            continue
        k = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel)
        if k.size < 2:
            continue
        if float(np.ptp(k)) == 0.0:
            constant.append(f"{l.name!r} (all {float(k.flat[0]):g})")
            continue
        fan_in, fan_out = _fans(k)
        glorot = math.sqrt(2.0 / (fan_in + fan_out))
        ratio = float(np.std(k)) / glorot
        if ratio > SCALE_FACTOR * math.sqrt(2) or ratio < 1.0 / (SCALE_FACTOR * 4):
            scaled.append(f"{l.name!r} (std {float(np.std(k)):.3g}, {ratio:.3g}x Glorot's)")
    if constant:
        out["constant_initializer"] = f"every weight of {', '.join(constant[:3])} starts equal: the units cannot differ"
    if scaled:
        out["initializer_scale"] = f"initial kernels far from the Glorot/He scale: {', '.join(scaled[:3])}"

    relu_family = {"relu", "relu6", "leaky_relu", "elu", "selu", "gelu"}
    dead = []
    for l in hidden:
        bias = getattr(l, "bias", None)
        if bias is None or activation_name(l) not in relu_family and (s is None or id(l) not in s.activated):
            continue
        b = np.asarray(bias.numpy())
        if b.size and float(np.median(b)) <= -1.0:
            dead.append(f"{l.name!r} (median bias {float(np.median(b)):.3g})")
    if dead:
        out["negative_biases"] = f"biases that switch ReLUs off: {', '.join(dead[:3])}"

    heavy = []
    for l in layers:
        for attr in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer", "pointwise_regularizer"):
            f = _factor(getattr(l, attr, None))
            if f > HEAVY_PENALTY:
                heavy.append(f"{attr.split('_')[0]} penalty {f:g} on {l.name!r}")
    if heavy:
        out["heavy_regularization"] = f"{', '.join(heavy[:3])} (usual: 1e-5 to 1e-3)"

    from .surgery import _is_dropout

    drops = [(l.name, float(l.rate)) for l in model._flatten_layers(include_self=False, recursive=True) if _is_dropout(l)]
    high = [(n, r) for n, r in drops if r > HEAVY_DROPOUT]
    if high:
        out["heavy_dropout"] = f"dropout rate {max(r for _, r in high):g} in {', '.join(repr(n) for n, _ in high[:3])} (usual: 0.1 to 0.5)"

    if lr is not None and opt_name:
        from remedysweep.remedies.learning_rate import usual

        low, _, high_lr = usual({"optimizer": opt_name, "momentum": momentum})
        if lr > high_lr * 3:
            out["learning_rate_high"] = f"{opt_name} at learning rate {lr:.3g}, above its usual range {low:g} to {high_lr:g}"
        elif lr < low / 3:
            out["learning_rate_low"] = f"{opt_name} at learning rate {lr:.3g}, below its usual range {low:g} to {high_lr:g}"
    if momentum >= RUNAWAY_MOMENTUM:
        out["runaway_momentum"] = f"{opt_name} momentum {momentum:g}: updates keep their direction for ~{1 / (1 - momentum + 1e-12):.0f} steps"
    return out


def head_faults(model: Any, info: Any) -> dict[str, str]:
    """Faults of the output head and the loss read off the layers (softmax
    applied twice, a loss that expects logits given probabilities, ...):
    ``{symptom name: evidence}``, naming the layers where the model is functional
    or Sequential. ``info`` is the model's :class:`~.surgery.ModelInfo`."""
    from .surgery import activation_name, structure, to_functional
    from .symptoms import SYMPTOMS, model_symptoms

    names = model_symptoms(info)
    if not names:
        return {}
    head: list[str] = []
    functional = to_functional(model)
    if functional is not None:
        s = structure(functional)
        steps = ([s.output_layer] if s.output_layer is not None else []) + list(reversed(s.head_layers))
        head = [f"{l.name!r} ({activation_name(l)})" for l in steps if activation_name(l) != "linear"]
    out = {}
    for name in names:
        evidence = SYMPTOMS.get(name, name)
        if head and name in ("softmax_twice", "improper_output_activation", "probabilities_from_logits", "handwritten_loss"):
            evidence += f"; the output passes through {' then '.join(head)}"
        if name in ("softmax_missing", "probabilities_from_logits", "handwritten_loss"):
            evidence += f"; loss {info.loss}" + (" (from_logits=True)" if info.from_logits else "")
        out[name] = evidence
    return out


def model_facts(model: Any) -> dict[str, Any]:
    """What the remedies' ``suggest`` and ``explore`` hooks read of a model beyond
    :class:`~.surgery.ModelInfo`: hidden widths, momentum, Dropout layers, penalties."""
    from .surgery import _is_dropout, structure, to_functional

    functional = to_functional(model)
    layers = _weighted_layers(model)
    hidden = structure(functional).hidden if functional is not None else layers[:-1]
    _, _, momentum = _optimizer_facts(model)
    all_layers = model._flatten_layers(include_self=False, recursive=True)
    return {
        "hidden_widths": [int(getattr(l, "units", 0) or getattr(l, "filters", 0) or 0) for l in hidden],
        "momentum": momentum,
        "dropout_layers": sum(_is_dropout(l) for l in all_layers),
        "regularized": any(getattr(l, a, None) is not None for l in layers
                           for a in ("kernel_regularizer", "bias_regularizer", "activity_regularizer")),
    }


def _optimizer_facts(model: Any) -> tuple[str, float | None, float]:
    """(class name, learning rate, momentum) of the optimizer that updates the weights."""
    import keras

    opt = getattr(model, "optimizer", None)
    opt = getattr(opt, "inner_optimizer", None) or opt
    if opt is None:
        return "", None, 0.0
    try:
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
    except Exception:
        lr = None
    cfg = {}
    try:
        cfg = opt.get_config()
    except Exception:
        pass
    momentum = float(cfg.get("momentum", 0.0) or 0.0) if type(opt).__name__ in ("SGD", "RMSprop") else float(cfg.get("beta_1", 0.0) or 0.0)
    if type(opt).__name__ not in ("SGD", "RMSprop") and momentum < RUNAWAY_MOMENTUM:
        momentum = 0.0  # Adam's beta_1 counts only when it runs away
    return type(opt).__name__, lr, momentum
