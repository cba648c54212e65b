"""The remedy API: one small class per knob, shared by built-ins and plugins.

A trial is described by a :class:`TrialPlan` (what to build, how to compile, how to
fit). The runner starts from the base plan the sweep file describes, lets every
remedy of the sweep edit it at its value, then builds, compiles and trains from the
edited plan. Remedies never build or train anything themselves, so two remedies
that set the same thing are caught (:class:`RemedyConflict`) instead of one
silently overriding the other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

__all__ = [
    "Categorical",
    "CompilePlan",
    "FitPlan",
    "FloatRange",
    "IntRange",
    "ModelPlan",
    "Remedy",
    "RemedyConflict",
    "Space",
    "TrialPlan",
]


class RemedyConflict(ValueError):
    """Two remedies set the same part of a trial."""


# ----------------------------------------------------------------------------
# Value spaces
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Categorical:
    """A finite set of values (str, int, float or bool)."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any]):
        object.__setattr__(self, "choices", tuple(choices))

    def contains(self, value: Any) -> bool:
        return any(_same_value(value, c) for c in self.choices)

    def describe(self) -> str:
        return ", ".join(repr(c) for c in self.choices)

    def grid_values(self) -> tuple[Any, ...]:
        return self.choices


class _Range:
    """Shared part of the numeric ranges; ``examples`` are the values the contract
    suite and a grid use when no list is given."""

    low: Any
    high: Any
    log: bool
    examples: tuple[Any, ...]
    kind = ""

    def _typed(self, value: Any) -> bool:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        return self._typed(value) and self.low <= value <= self.high

    def describe(self) -> str:
        scale = ", log scale" if self.log else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{scale}"

    def grid_values(self) -> tuple[Any, ...]:
        return self.examples


@dataclass(frozen=True)
class FloatRange(_Range):
    """A continuous range; ``log=True`` samples it on a log scale."""

    low: float
    high: float
    log: bool = False
    examples: tuple[float, ...] = ()
    kind = "float"

    def _typed(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class IntRange(_Range):
    """An integer range; ``log=True`` samples it on a log scale."""

    low: int
    high: int
    log: bool = False
    examples: tuple[int, ...] = ()
    kind = "integer"

    def _typed(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


Space = Categorical | FloatRange | IntRange


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


# ----------------------------------------------------------------------------
# The trial plan remedies edit
# ----------------------------------------------------------------------------


class _Plan:
    """Base of the plan sections: records which remedy set which field."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_owners", {})

    def set(self, field_name: str, value: Any, *, by: str) -> None:
        """Set ``field_name`` to ``value`` on behalf of the remedy ``by``.

        Raises :class:`RemedyConflict` if another remedy already set it.
        """
        if field_name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise AttributeError(f"{type(self).__name__} has no field {field_name!r}")
        owners: dict[str, str] = self._owners  # type: ignore[attr-defined]
        previous = owners.get(field_name)
        if previous is not None and previous != by:
            raise RemedyConflict(
                f"remedies {previous!r} and {by!r} both set {type(self).__name__}.{field_name}"
            )
        owners[field_name] = by
        object.__setattr__(self, field_name, value)

    def owner(self, field_name: str) -> str | None:
        return self._owners.get(field_name)  # type: ignore[attr-defined]

    def changed_fields(self) -> dict[str, str]:
        """Field name -> remedy that set it."""
        return dict(self._owners)  # type: ignore[attr-defined]


@dataclass(eq=True)
class ModelPlan(_Plan):
    """What the base classifier builds.

    ``head`` is ``"softmax"`` (a softmax layer ends the model) or ``"logits"`` (the
    model ends at the pre-softmax logits and the loss must take logits).
    """

    width: int = 64
    depth: int = 2
    activation: str = "relu"
    normalization: str = "none"
    kernel_initializer: str = "glorot_uniform"
    kernel_regularizer: tuple[str, float] | None = None
    kernel_constraint: tuple[str, float] | None = None
    dropout: float = 0.0
    head: str = "softmax"


@dataclass(eq=True)
class CompilePlan(_Plan):
    """How the model is compiled.

    ``loss`` is a name the runner knows (``"keras_default"``, ``"unfused"``,
    ``"fused_logits"``) or a callable ``loss(y_true_one_hot, y_pred)`` returning
    per-sample losses. ``optimizer`` is a name or a callable
    ``optimizer(learning_rate, **optimizer_options) -> keras.optimizers.Optimizer``.
    ``learning_rate_schedule`` is ``None`` or a callable
    ``schedule(learning_rate, steps_per_epoch, epochs)`` returning a Keras schedule.
    """

    loss: str | Callable[..., Any] = "keras_default"
    optimizer: str | Callable[..., Any] = "adam"
    learning_rate: float = 0.001
    learning_rate_schedule: Callable[..., Any] | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    clipvalue: float | None = None


@dataclass(eq=True)
class FitPlan(_Plan):
    """How the model is trained.

    ``callbacks`` are factories ``callback_factory(context) -> keras.callbacks.Callback``
    so that a plan stays picklable and comparable. ``label_smoothing`` mixes the
    one-hot targets with the uniform distribution before any loss sees them.
    """

    batch_size: int = 32
    label_smoothing: float = 0.0
    callbacks: tuple[Callable[..., Any], ...] = ()


@dataclass
class TrialPlan:
    """The three sections a remedy may edit."""

    model: ModelPlan = field(default_factory=ModelPlan)
    compile: CompilePlan = field(default_factory=CompilePlan)
    fit: FitPlan = field(default_factory=FitPlan)

    def changes(self) -> dict[str, str]:
        """``"section.field" -> remedy`` for every field a remedy set."""
        out: dict[str, str] = {}
        for section in ("model", "compile", "fit"):
            for name, owner in getattr(self, section).changed_fields().items():
                out[f"{section}.{name}"] = owner
        return out

    def same_as(self, other: "TrialPlan") -> bool:
        return self.model == other.model and self.compile == other.compile and self.fit == other.fit


# ----------------------------------------------------------------------------
# Remedy
# ----------------------------------------------------------------------------


class Remedy:
    """A remedy knob: a name, the values it may take, its baseline, and hooks.

    Subclasses declare four class attributes and override the hooks they need.

    Required:
        ``name``: the knob's name, a column in ``trials.csv`` (``[a-z][a-z0-9_]*``).
        ``description``: one line, shown by ``remedysweep remedies`` and the report.
        ``space``: a :class:`Categorical`, :class:`FloatRange` or :class:`IntRange`.
        ``baseline``: the value that changes nothing about the base trial.
        ``touches``: the plan fields the remedy may set, as ``"section.field"``
        (``"compile.optimizer"``), so that conflicts are found before training.
        At least one hook.

    Call order, for every trial, for each remedy of the sweep in the order the
    sweep file lists them:

    1. :meth:`configure_model` edits ``plan.model`` before the base classifier is built.
    2. :meth:`configure_compile` edits ``plan.compile``.
    3. :meth:`configure_fit` edits ``plan.fit``.
    4. The runner builds the model from ``plan.model``.
    5. :meth:`transform_model` may return a changed model (e.g. a clone).
    6. The runner compiles and trains.

    Hooks receive the knob's value for the trial and default to no change. At the
    baseline value every hook must leave the plan as it was. Edits go through
    ``section.set(field, value, by=self.name)``; setting a field another remedy set
    raises :class:`RemedyConflict`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    space: ClassVar[Space]
    baseline: ClassVar[Any] = None
    touches: ClassVar[tuple[str, ...]] = ()

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        """Edit what the base classifier builds."""

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        """Edit loss, optimizer, learning rate and gradient clipping."""

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        """Edit batch size, targets and callbacks."""

    def transform_model(self, value: Any, model: Any) -> Any:
        """Return the built ``keras.Model``, changed or not."""
        return model

    def check_value(self, value: Any) -> str | None:
        """Return why ``value`` is not allowed, or ``None`` if it is."""
        if self.space.contains(value):
            return None
        return f"allowed: {self.space.describe()}"

    def apply(self, value: Any, plan: TrialPlan) -> None:
        """Run the three plan hooks in order (steps 1-3 above)."""
        self.configure_model(value, plan.model)
        self.configure_compile(value, plan.compile)
        self.configure_fit(value, plan.fit)

    def __repr__(self) -> str:
        return f"<remedy {self.name}: {self.space.describe()}; baseline {self.baseline!r}>"
