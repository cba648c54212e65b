"""Building one run: the plan from the knobs, the base model for the seed,
rewritten and compiled (Keras Tuner's build step), the targets and the inputs.

:class:`Setup` holds what every run of a sweep shares in one process: the
sweep, the remedies, the data and the model source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from remedysweep.remedies import AS_BUILT, LossFormulation, ProbeMetric, Registry, TrialPlan

from .config import Sweep, build_plan
from .data import Dataset, input_arrays
from .sources import ModelSource, adopt_label_format, load_data
from .surgery import ModelInfo, NotApplicable, Rewritten, compiled_loss, describe_model, normalizes_inputs, rewrite


@dataclass
class Setup:
    """What the runs of a sweep share in one process."""

    sweep: Sweep
    registry: Registry
    data: Dataset
    source: ModelSource
    info: ModelInfo | None = None
    _scaled: dict[str, Dataset] = field(default_factory=dict)

    @classmethod
    def load(cls, sweep: Sweep, registry: Registry | None = None, data: Dataset | None = None) -> "Setup":
        from remedysweep.remedies import discover

        registry = registry or discover(plugin_files=sweep.plugins)
        data = data or load_data(sweep.data, sweep.source)
        return cls(sweep, registry, data, ModelSource(sweep.model, sweep.source))

    def data_for(self, scaling: str | None) -> Dataset:
        if not scaling:
            return self.data
        if scaling not in self._scaled:
            self._scaled[scaling] = self.data.scaled(scaling)
        return self._scaled[scaling]

    def base_info(self) -> ModelInfo:
        """The base model's structure (built once, seed 0)."""
        if self.info is None:
            model = self.source.build(0, self.data)
            self.info = describe_model(model, self.data)
            self.data = adopt_label_format(self.data, self.info.output_units)
        return self.info


@dataclass
class BuiltRun:
    """A model rewritten, compiled and ready to train, with what the loop needs."""

    knobs: dict[str, Any]
    seed: int
    plan: TrialPlan
    model: Any
    rewritten: Rewritten
    data: Dataset
    loss: Any  # what the model was compiled with, called for the probe's gradient
    target_format: str
    y_train: np.ndarray
    y_val: np.ndarray
    batch_size: int
    epochs: int
    probe_metrics: tuple[ProbeMetric, ...]
    facts: dict[str, Any]
    base_optimizer: Any = None

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.data.n_train / self.batch_size))

    @property
    def binary(self) -> bool:
        return self.rewritten.binary


def accuracy_metric(binary: bool, probabilities: bool) -> Any:
    """Accuracy for any head and target format: argmax for several classes,
    a threshold (0.5 on a probability, 0 on a logit) for one output unit."""
    import keras
    import tensorflow as tf

    def accuracy(y_true: Any, y_pred: Any) -> Any:
        if binary:
            pred = tf.cast(y_pred[:, 0] > (0.5 if probabilities else 0.0), tf.float32)
            true = tf.cast(tf.reshape(y_true, [-1]) > 0.5, tf.float32)
        else:
            pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
            if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] not in (1, None):
                true = tf.argmax(y_true, axis=-1, output_type=tf.int32)
            else:
                true = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        return tf.cast(tf.equal(pred, true), tf.float32)

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


def inner_optimizer(optimizer: Any) -> Any:
    """The optimizer that updates the weights: a ``LossScaleOptimizer``'s inner one
    (mixed precision), or the optimizer itself."""
    return getattr(optimizer, "inner_optimizer", None) or optimizer


def make_optimizer(plan: TrialPlan, base_optimizer: Any, steps_per_epoch: int, epochs: int) -> Any:
    """The plan's optimizer, or the base model's with the plan's learning rate,
    schedule and clipping. A base model's loss scaling (mixed precision) is kept:
    the learning rate and clipping go to the optimizer inside it."""
    import keras

    c = plan.compile
    scaled = base_optimizer is not None and inner_optimizer(base_optimizer) is not base_optimizer
    inner = inner_optimizer(base_optimizer) if base_optimizer is not None else None
    base_cfg = inner.get_config() if inner is not None else {}
    lr: Any = c.learning_rate
    if lr is None:
        lr = base_cfg.get("learning_rate", 0.001)
        if isinstance(lr, dict):  # the base model's own schedule
            lr = keras.optimizers.schedules.deserialize(lr)
    if c.learning_rate_schedule is not None:
        start = lr if isinstance(lr, (int, float)) else float(keras.ops.convert_to_numpy(inner.learning_rate))
        lr = c.learning_rate_schedule(float(start), steps_per_epoch, epochs)
    clip = {k: v for k, v in (("clipnorm", c.clipnorm), ("global_clipnorm", c.global_clipnorm), ("clipvalue", c.clipvalue)) if v is not None}
    if c.optimizer is not None:
        opt = c.optimizer(lr, **clip)
    elif inner is None:
        opt = keras.optimizers.Adam(lr, **clip)
    else:
        cfg = {**base_cfg, **clip, "learning_rate": lr}
        cfg.pop("name", None)
        opt = type(inner).from_config(cfg)
    if scaled:
        outer = base_optimizer.get_config()
        opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=outer.get("initial_scale", 2.0**15),
                                                  dynamic_growth_steps=outer.get("dynamic_growth_steps", 2000))
    return opt


def user_compile(base: Any) -> dict[str, Any]:
    """What the user's ``compile`` call was given, as the objects themselves
    (nothing serialized: a loss or metric nobody registered is used as it is)."""
    config = getattr(getattr(base, "_compile_config", None), "config", None) or {}
    return dict(config)


def user_metrics(base: Any) -> list[Any]:
    """The user's metrics for a recompiled model: names and functions as given,
    metric objects copied (a fresh state per run); accuracy is remedysweep's own
    (it reads any head), so the user's accuracy entries are left out."""
    import copy

    import keras

    metrics = user_compile(base).get("metrics") or []
    if isinstance(metrics, dict) or not isinstance(metrics, (list, tuple)):
        return []  # metrics per output: remedysweep models have one output
    out = []
    for m in metrics:
        if isinstance(m, str):
            if m.lower() not in ("accuracy", "acc"):
                out.append(m)
        elif isinstance(m, keras.metrics.Metric):
            if m.name in ("accuracy", "acc"):
                continue
            try:
                out.append(type(m).from_config(m.get_config()))
            except Exception:
                try:
                    out.append(copy.deepcopy(m))
                except Exception:
                    continue  # a metric object that cannot be copied: left out, training is unaffected
        elif callable(m) and getattr(m, "__name__", "") not in ("accuracy",):
            out.append(m)
    return out


def build_run(setup: Setup, knobs: Mapping[str, Any], seed: int, *, compile: bool = True, cache: dict[Any, Any] | None = None) -> BuiltRun:
    """Seed, plan, base model, rewrite, transforms, compile. Raises
    :class:`~.surgery.NotApplicable` when a knob cannot apply to the model, and
    whatever a remedy or Keras raises. ``cache`` (packed training, nothing
    compiled or trained) shares one rewritten model among runs of the same seed
    and model plan."""
    sweep, registry = setup.sweep, setup.registry
    info = setup.base_info()
    plan = build_plan(knobs, registry)
    if plan.fit.input_scaling and not any(a.dtype.kind == "f" for a in input_arrays(setup.data.x_train)):
        raise NotApplicable("input_scaling: the inputs hold no float features (text or integer ids); nothing to scale")
    data = setup.data_for(plan.fit.input_scaling)
    key = (seed, repr(plan.model), plan.fit.input_scaling)
    if cache is not None and key in cache:
        base, rewritten = cache[key]
    else:
        base = setup.source.build(seed, data)
        rewritten = rewrite(base, plan.model, data.input_shape)
        if cache is not None:
            cache[key] = (base, rewritten)
    model = rewritten.model
    if rewritten.logits is None and rewritten.model is base:  # not rewritable: the head as the base model shows it
        rewritten.binary, rewritten.probabilities = info.output_units == 1, info.output_probabilities
    transformed = False
    for name, value in knobs.items():
        remedy = registry[name]
        if value != AS_BUILT and remedy.transforms():
            model = remedy.transform_model(value, model)
            transformed = True
    if transformed:
        from remedysweep.remedies import ModelPlan

        rewritten = rewrite(model, ModelPlan(), data.input_shape)
        model = rewritten.model

    loss = plan.compile.loss
    if loss is None:
        loss = compiled_loss(base)
        target_format = data.label_format
    else:
        if isinstance(loss, LossFormulation) and (loss.head == "logits") == rewritten.probabilities:
            raise NotApplicable(f"loss {loss.name!r} needs a {loss.head} head, but the model outputs {'probabilities' if rewritten.probabilities else 'logits'}")
        target_format = "binary" if rewritten.binary else "one_hot"
    smoothing = plan.fit.label_smoothing or 0.0
    if smoothing and target_format == "int":
        raise NotApplicable("label_smoothing needs one-hot targets, but the model's loss takes integer labels; sweep the loss knob too")
    batch = plan.fit.batch_size or sweep.training.batch_size
    steps = max(1, math.ceil(data.n_train / batch))
    if compile:
        own = user_compile(base)
        model.compile(
            optimizer=make_optimizer(plan, base.optimizer, steps, sweep.training.epochs),
            loss=loss,
            # the user's metrics take the user's targets and outputs: kept while the loss and head are theirs
            metrics=[accuracy_metric(rewritten.binary, rewritten.probabilities),
                     *(user_metrics(base) if plan.compile.loss is None and plan.model.head is None else ())],
            steps_per_execution=sweep.training.steps_per_execution,
            jit_compile=False,
            run_eagerly=bool(own.get("run_eagerly", False)),
        )
    metrics: list[ProbeMetric] = []
    facts: dict[str, Any] = {**data.facts, "relu_family": rewritten.relu_family, "input_normalized": normalizes_inputs(rewritten.model)}
    for name, value in knobs.items():
        if value == AS_BUILT:
            continue
        metrics += list(registry[name].probe_metrics(value))
        facts.update(registry[name].run_facts(value))
    if info.output_units == 1 and not rewritten.binary:
        raise NotApplicable("the rewrite changed the number of output units")
    return BuiltRun(
        knobs=dict(knobs), seed=int(seed), plan=plan, model=model, rewritten=rewritten, data=data,
        loss=loss if not isinstance(loss, str) else _keras_loss(loss), target_format=target_format,
        y_train=data.targets(data.y_train, target_format, smoothing), y_val=data.targets(data.y_val, target_format),
        batch_size=batch, epochs=sweep.training.epochs, probe_metrics=tuple(metrics), facts=facts,
        base_optimizer=base.optimizer,
    )


def _keras_loss(name: str) -> Any:
    import keras

    return keras.losses.get(name)
