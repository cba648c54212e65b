"""The remedy API: one small class per knob, shared by built-ins and plugins.

A run is described by a :class:`TrialPlan`: what to change in the model, how to
compile it, how to fit it. Every field starts as ``None``, meaning "as the base
classifier was built" (the user's own model, or the built-in MLP). The runner
lets the remedy of every swept knob edit the plan at its value, then rewrites the
base model to the plan, compiles and trains. Remedies never build or train
anything themselves, so two remedies that set the same thing are caught
(:class:`RemedyConflict`) instead of one silently overriding the other.

This module imports nothing from the rest of remedysweep and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

__all__ = [
    "AS_BUILT",
    "Categorical",
    "CompilePlan",
    "FitPlan",
    "FloatRange",
    "IntRange",
    "LossFormulation",
    "ModelPlan",
    "ProbeMetric",
    "Remedy",
    "RemedyConflict",
    "ReportSection",
    "Space",
    "TrialPlan",
]

#: The knob value that leaves the model as built: accepted for every knob in a
#: sweep file; the remedy's hooks are not called for it.
AS_BUILT = "as_built"


class RemedyConflict(ValueError):
    """Two remedies set the same part of a run; ``remedies`` names them, first
    setter first."""

    def __init__(self, message: str, remedies: tuple[str, str] = ("", "")):
        super().__init__(message)
        self.remedies = remedies


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
        return any(same_value(value, c) for c in self.choices)

    def describe(self) -> str:
        return ", ".join(repr(c) for c in self.choices)

    def grid_values(self) -> tuple[Any, ...]:
        return self.choices


@dataclass(frozen=True)
class _Range:
    """A numeric range; ``examples`` are the values the contract suite uses."""

    low: Any
    high: Any
    log: bool = False
    examples: tuple[Any, ...] = ()

    kind: ClassVar[str] = ""

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

    kind: ClassVar[str] = "float"

    def _typed(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class IntRange(_Range):
    """An integer range; ``log=True`` samples it on a log scale."""

    kind: ClassVar[str] = "integer"

    def _typed(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


Space = Categorical | FloatRange | IntRange


def same_value(a: Any, b: Any) -> bool:
    """Knob values compare by type family: 0.1 == 0.1, 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


# ----------------------------------------------------------------------------
# The plan remedies edit
# ----------------------------------------------------------------------------


class _Plan:
    """Base of the plan sections: records which remedy set which field."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_owners", {})

    def set(self, field_name: str, value: Any, *, by: str) -> None:
        """Set ``field_name`` to ``value`` on behalf of the remedy ``by``.

        Raises :class:`RemedyConflict` if another remedy already set it."""
        if field_name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise AttributeError(f"{type(self).__name__} has no field {field_name!r}")
        owners: dict[str, str] = self._owners  # type: ignore[attr-defined]
        previous = owners.get(field_name)
        if previous is not None and previous != by:
            raise RemedyConflict(f"remedies {previous!r} and {by!r} both set {self.section}.{field_name}", (previous, by))
        owners[field_name] = by
        object.__setattr__(self, field_name, value)

    section: ClassVar[str] = ""

    def owner(self, field_name: str) -> str | None:
        return self._owners.get(field_name)  # type: ignore[attr-defined]

    def changed_fields(self) -> dict[str, str]:
        """Field name -> remedy that set it."""
        return dict(self._owners)  # type: ignore[attr-defined]


@dataclass(eq=True)
class ModelPlan(_Plan):
    """What to change in the base model; ``None`` keeps it as built.

    "Hidden" layers are every Dense and convolution layer but the output layer.

    ``activation``: every hidden activation (a layer's own ``activation``, or an
    ``Activation``/``ReLU``/``LeakyReLU``/``ELU`` layer) becomes this one.
    ``width``: units of hidden Dense layers and filters of hidden convolutions.
    ``normalization``: ``"batchnorm"`` or ``"layernorm"`` inserted between each
    hidden layer and its activation (``"none"`` inserts nothing).
    ``kernel_initializer``: every Dense/convolution kernel is re-initialised with it
    and every bias re-initialised to zero.
    ``min_width``: hidden layers narrower than this get this many units (filters);
    the others keep theirs.
    ``kernel_regularizer`` / ``kernel_constraint``: ``(kind, amount)`` set on every
    hidden layer (``("l2", 1e-4)``, ``("max_norm", 3.0)``); a regularizer also
    replaces the model's own on any other layer, and ``("none", 0.0)`` removes
    every weight regularizer the model has.
    ``dropout``: a Dropout of this rate after each hidden activation.
    ``dropout_rate``: the rate of every Dropout layer the model already has (0
    removes them).
    ``head``: ``"logits"`` (the model ends at the pre-activation of its output
    layer) or ``"probabilities"`` (it ends in a softmax, or a sigmoid for one
    output unit).
    """

    section: ClassVar[str] = "model"

    activation: str | None = None
    width: int | None = None
    min_width: int | None = None
    normalization: str | None = None
    kernel_initializer: str | None = None
    kernel_regularizer: tuple[str, float] | None = None
    kernel_constraint: tuple[str, float] | None = None
    dropout: float | None = None
    dropout_rate: float | None = None
    head: str | None = None


@dataclass(eq=True)
class CompilePlan(_Plan):
    """How the model is compiled; ``None`` keeps the base model's setting.

    ``loss``: a formulation name the runner knows (``"unfused"``,
    ``"keras_default"``, ``"fused_logits"``) or a callable
    ``loss(y_true_one_hot, y_pred)`` returning per-sample losses (``y_true`` is
    ``[batch, 1]`` 0/1 for a one-unit binary head).
    ``optimizer``: a name (``"sgd"``, ``"momentum"``, ``"adam"``, ``"rmsprop"``,
    ``"adagrad"``, ``"adamw"``, ``"nadam"``) or a callable
    ``optimizer(learning_rate, **clip_options) -> keras.optimizers.Optimizer``.
    ``learning_rate_schedule``: a callable ``schedule(learning_rate,
    steps_per_epoch, epochs)`` returning a Keras schedule.
    """

    section: ClassVar[str] = "compile"

    loss: str | Callable[..., Any] | None = None
    optimizer: str | Callable[..., Any] | None = None
    learning_rate: float | None = None
    learning_rate_schedule: Callable[..., Any] | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    clipvalue: float | None = None


@dataclass(eq=True)
class FitPlan(_Plan):
    """How the model is trained; ``None`` keeps the sweep's setting.

    ``label_smoothing``: targets become ``(1 - a) * one_hot + a / n_classes``.
    ``input_scaling``: ``"standardize"`` (zero mean, unit variance per feature,
    from the training data) or ``"minmax"`` (to [0, 1]).
    ``callbacks``: factories ``factory(built_run) -> keras.callbacks.Callback``, so
    that a plan stays picklable and comparable.
    """

    section: ClassVar[str] = "fit"

    batch_size: int | None = None
    label_smoothing: float | None = None
    input_scaling: str | None = None
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
        for section in (self.model, self.compile, self.fit):
            for name, owner in section.changed_fields().items():
                out[f"{section.section}.{name}"] = owner
        return out

    def value(self, path: str) -> Any:
        section, _, name = path.partition(".")
        return getattr(getattr(self, section), name)


PLAN_FIELDS = frozenset(
    f"{cls.section}.{f.name}" for cls in (ModelPlan, CompilePlan, FitPlan) for f in dataclasses.fields(cls)
)
#: ``touches`` entry declaring that a remedy rewrites the built model itself.
TRANSFORM = "model.transform"


# ----------------------------------------------------------------------------
# Losses the engine can also compute from logits
# ----------------------------------------------------------------------------


class LossFormulation:
    """A loss that knows which model head it needs and can be computed from the
    logits as well, so that packed training can use it.

    ``__call__(y_true, y_pred)`` is what Keras calls on the model's output
    (probabilities for ``head = "probabilities"``, logits for ``"logits"``);
    ``from_logits(y_true, logits, binary)`` computes the same per-sample loss
    from logits, applying the softmax (sigmoid for a binary head) itself where
    the formulation takes probabilities. Targets are one-hot (``[..., 1]`` 0/1
    for a binary head)."""

    name: str = ""
    head: str = "probabilities"

    def __call__(self, y_true: Any, y_pred: Any) -> Any:
        raise NotImplementedError

    def from_logits(self, y_true: Any, logits: Any, binary: bool) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<loss {self.name}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and getattr(other, "name", None) == self.name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))


# ----------------------------------------------------------------------------
# What a remedy may contribute besides its edits
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeMetric:
    """A curve measured on the probe batch after every epoch.

    ``fn(logits, targets, binary)`` gets logits ``[slices, batch, classes]`` (one
    column for a binary head) and one-hot targets of the same shape, and returns
    one value per slice ``[slices]`` (TensorFlow ops). It becomes a column of
    ``curves.csv``."""

    name: str
    fn: Callable[[Any, Any, bool], Any]
    description: str = ""


@dataclass(frozen=True)
class ReportSection:
    """A section a remedy adds to the report: a title, paragraphs of plain text
    and an optional table (header row, then rows), all shown escaped."""

    title: str
    paragraphs: tuple[str, ...] = ()
    table: tuple[tuple[Any, ...], ...] = ()


# ----------------------------------------------------------------------------
# Remedy
# ----------------------------------------------------------------------------


class Remedy:
    """A remedy knob: a name, the values it may take, its baseline, and hooks.

    Subclasses declare these class attributes and override the hooks they need.

    ``name``: the knob's name, a column in ``trials.csv`` (``[a-z][a-z0-9_]*``).
    ``description``: one line, shown by ``remedysweep remedies`` and the report.
    ``space``: a :class:`Categorical`, :class:`FloatRange` or :class:`IntRange`.
    ``baseline``: the value the built-in classifier already has, so that it
    changes nothing there (the contract suite checks this).
    ``touches``: the plan fields the remedy may set, as ``"section.field"``
    (``"compile.optimizer"``), plus ``"model.transform"`` if it overrides
    :meth:`transform_model`; conflicts are found before training.
    ``invasiveness``: for ``doctor``, how big a change this is (0 = a training
    setting, 1 = the loss or the optimizer, 2 = the architecture).

    Call order, for every run, for each swept knob in the order the sweep file
    lists them (a knob at ``"as_built"`` is skipped):

    1. :meth:`configure_model` edits ``plan.model``.
    2. :meth:`configure_compile` edits ``plan.compile``.
    3. :meth:`configure_fit` edits ``plan.fit``.
    4. The runner builds the base model for the run's seed and rewrites it to
       ``plan.model``.
    5. :meth:`transform_model` may return a changed model.
    6. The runner compiles to ``plan.compile`` and trains to ``plan.fit``.

    Hooks receive the knob's value and apply it: a value is an instruction
    (``activation = "relu"`` replaces the activations of any model), never
    "change nothing unless different". Edits go through
    ``section.set(field, value, by=self.name)``; setting a field another remedy
    set raises :class:`RemedyConflict`. A remedy that cannot apply to a model
    raises ``remedysweep.engine.surgery.NotApplicable`` (or any exception) from
    :meth:`transform_model`: the run is then ``failed`` with that message.

    Optional contributions, all defaulting to nothing: :meth:`probe_metrics`
    (extra curves), :meth:`run_facts` (values recorded once per run),
    :meth:`report_section` (a section of the report), :meth:`suggest` and
    :meth:`describe_change` (what ``doctor`` may try for which symptoms, and the
    code change), :meth:`explore` (values doctor's exploration may try).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    space: ClassVar[Space]
    baseline: ClassVar[Any] = None
    touches: ClassVar[tuple[str, ...]] = ()
    invasiveness: ClassVar[int] = 1

    # -- edits ---------------------------------------------------------------

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        """Edit what to change in the base model."""

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        """Edit loss, optimizer, learning rate and gradient clipping."""

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        """Edit batch size, targets, inputs and callbacks."""

    def transform_model(self, value: Any, model: Any) -> Any:
        """Return the rewritten ``keras.Model``, changed or not."""
        return model

    # -- contributions ---------------------------------------------------------

    def probe_metrics(self, value: Any) -> Sequence[ProbeMetric]:
        """Extra per-epoch curves on the probe batch for runs at ``value``."""
        return ()

    def run_facts(self, value: Any) -> Mapping[str, Any]:
        """JSON values recorded once per run at ``value`` (columns of trials.csv)."""
        return {}

    def report_section(self, trials: Any, curves: Any) -> ReportSection | None:
        """A report section from the sweep's ``trials`` and ``curves`` DataFrames."""
        return None

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        """Values ``doctor`` should try for a model with these symptoms, most
        promising first. ``facts`` describe the model (``learning_rate``,
        ``hidden_activations``, ``output_units``, ...)."""
        return ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        """Values ``doctor``'s exploration may try on this model whatever its
        symptoms (after the targeted ``suggest`` values), as Optuna's search space."""
        return ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        """The code change that ``value`` makes, in the user's terms."""
        return f"{self.name} = {value!r}"

    # -- helpers ---------------------------------------------------------------

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

    def transforms(self) -> bool:
        return type(self).transform_model is not Remedy.transform_model

    def __repr__(self) -> str:
        return f"<remedy {self.name}: {self.space.describe()}; baseline {self.baseline!r}>"
