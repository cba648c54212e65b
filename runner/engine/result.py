"""A run's result: the outcome rules, the record stored for every run, and the
CSV schema of ``trials.csv``, ``curves.csv`` and ``early_probes.csv``.

This module is the one owner of these facts; the storage, the exports, the
reports and ``doctor`` import them from here. Pure Python: no TensorFlow.

Outcomes (chance = the majority-class rate of the validation labels, 1/N when
balanced):

``healthy``: none of the below.
``collapsed``: rose clearly above chance (peak >= chance + rise_margin*(1-chance),
    counting the early in-epoch probes), then every epoch of the final window sat
    at chance (<= chance + chance_margin*(1-chance)).
``never_learned``: never rose clearly above chance.
``diverged``: the loss or the weights became NaN/Inf, or the final accuracy is NaN.
``degraded``: final accuracy more than ``degrade_drop`` below the peak, above chance.
``failed``: an exception ended the run (or a remedy could not apply); its message is kept.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence


class RunOutcome(str, enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    COLLAPSED = "collapsed"
    NEVER_LEARNED = "never_learned"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def at_chance(self) -> bool:
        """Ended at chance, however it got there: collapsed, never learned or diverged."""
        return self in (RunOutcome.COLLAPSED, RunOutcome.NEVER_LEARNED, RunOutcome.DIVERGED)

    @property
    def description(self) -> str:
        return OUTCOME_TEXT[self]

    @classmethod
    def parse(cls, value: Any) -> "RunOutcome | None":
        try:
            return cls(value)
        except ValueError:
            return None


OUTCOME_TEXT = {
    RunOutcome.HEALTHY: "none of the below",
    RunOutcome.DEGRADED: "final accuracy more than degrade_drop below the peak, above chance",
    RunOutcome.COLLAPSED: "rose clearly above chance, then sat at chance for the final window",
    RunOutcome.NEVER_LEARNED: "never rose clearly above chance",
    RunOutcome.DIVERGED: "the loss or the weights became NaN/Inf, or the final accuracy is NaN",
    RunOutcome.FAILED: "an exception ended the run, or a remedy could not apply; the message says which",
}
OUTCOMES = tuple(o.value for o in RunOutcome)
AT_CHANCE = tuple(o.value for o in RunOutcome if o.at_chance)


@dataclass(frozen=True)
class Thresholds:
    chance: float
    rise: float
    at_chance: float

    @classmethod
    def of(cls, chance: float, spec: Any, n_val: int | None = None) -> "Thresholds":
        """``spec``: an :class:`~.config.OutcomeSpec` (rise_margin, chance_margin).
        ``n_val``: the validation samples, when known: a rise must then be worth
        more than one sample and a half (with 4 validation points one sample is
        0.25 of accuracy; a blip of one is not a rise, and the plateau after it
        not a collapse)."""
        rise = chance + spec.rise_margin * (1 - chance)
        if n_val:
            rise = min(max(rise, chance + 1.5 / n_val), 1.0)
        return cls(chance, rise, chance + spec.chance_margin * (1 - chance))


@dataclass(frozen=True)
class Classification:
    outcome: RunOutcome
    peak: float
    peak_epoch: float | None  # fractional for an in-epoch probe
    final: float
    collapse_epoch: int | None  # 1-based first epoch of the final stretch at chance


def classify(
    val_accuracy: Sequence[float],
    thresholds: Thresholds,
    spec: Any,
    *,
    early_probes: Sequence[tuple[float, float]] = (),
    nonfinite_epoch: int | None = None,
    error: str | None = None,
) -> Classification:
    """Classify one run. ``val_accuracy[i]`` is the accuracy after epoch i+1;
    ``early_probes`` are ``(fractional_epoch, accuracy)`` points inside epochs;
    ``spec`` is the sweep's :class:`~.config.OutcomeSpec`."""
    th = thresholds
    points = [(float(i + 1), float(a)) for i, a in enumerate(val_accuracy) if a is not None and math.isfinite(a)]
    points += [(float(e), float(a)) for e, a in early_probes if math.isfinite(a)]
    final = float(val_accuracy[-1]) if val_accuracy and math.isfinite(val_accuracy[-1]) else float("nan")
    peak_epoch, peak = max(points, key=lambda p: (p[1], -p[0])) if points else (None, float("nan"))
    if error is not None or not val_accuracy and nonfinite_epoch is None:
        return Classification(RunOutcome.FAILED, peak, peak_epoch, final, None)
    if nonfinite_epoch is not None or (points and not math.isfinite(final)):
        # a non-finite final accuracy is divergence too (a mixed-precision model's
        # NaN outputs): never healthy, never better than a finite run
        return Classification(RunOutcome.DIVERGED, peak, peak_epoch, final, None)
    if not peak >= th.rise:
        return Classification(RunOutcome.NEVER_LEARNED, peak, peak_epoch, final, None)
    window = val_accuracy[-spec.window:]
    if all(a <= th.at_chance for a in window):
        start = len(val_accuracy)
        while start > 0 and val_accuracy[start - 1] <= th.at_chance:
            start -= 1
        return Classification(RunOutcome.COLLAPSED, peak, peak_epoch, final, start + 1)
    if final < peak - spec.degrade_drop:
        return Classification(RunOutcome.DEGRADED, peak, peak_epoch, final, None)
    return Classification(RunOutcome.HEALTHY, peak, peak_epoch, final, None)


def should_stop(val_accuracy: Sequence[float], rose: bool, thresholds: Thresholds, patience: int) -> bool:
    """Collapse-aware early stop: the run rose, then sat at chance ``patience`` epochs."""
    if not rose or len(val_accuracy) < patience:
        return False
    return all(a <= thresholds.at_chance for a in val_accuracy[-patience:])


def oscillations(curve: Sequence[float], amplitude: float) -> int:
    """How many times the curve turns back after moving at least ``amplitude``:
    the swings of a too-high learning rate."""
    values = [v for v in curve if v is not None and math.isfinite(v)]
    turns, direction, anchor = 0, 0, values[0] if values else 0.0
    for v in values[1:]:
        move = v - anchor
        if abs(move) >= amplitude:
            new = 1 if move > 0 else -1
            if direction and new != direction:
                turns += 1
            direction, anchor = new, v
        elif direction and (v - anchor) * direction > 0:
            anchor = v  # still moving the same way: extend the swing
    return turns


# ----------------------------------------------------------------------------
# The record of one run
# ----------------------------------------------------------------------------


@dataclass
class RunResult:
    """Everything recorded for one run; stored whole as the run's result."""

    outcome: RunOutcome
    peak_val_accuracy: float
    final_val_accuracy: float
    epochs_run: int
    train_seconds: float
    chance: float
    peak_epoch: float | None = None
    collapse_epoch: int | None = None
    first_nonfinite_epoch: int | None = None
    early_stopped: bool = False
    oscillations: int = 0
    message: str = ""
    symptoms: list[str] = field(default_factory=list)
    curves: dict[str, list[float | None]] = field(default_factory=dict)
    early_probes: list[tuple[float, float]] = field(default_factory=list)
    dead_by_layer: list[list[float]] = field(default_factory=list)
    n_params: int = 0
    path: str = "keras"
    pack_size: int = 0
    path_note: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """The collapse-aware accuracy every search optimises: the final
        validation accuracy, except that a run that ended at chance, failed or
        is not finite scores as chance (0 where chance is unknown), not as its peak."""
        score = self.final_val_accuracy
        if self.outcome.at_chance or self.outcome is RunOutcome.FAILED or not math.isfinite(score):
            score = self.chance if math.isfinite(self.chance) else 0.0
        return float(score)

    @classmethod
    def failure(cls, message: str, chance: float = float("nan"), **extra: Any) -> "RunResult":
        return cls(RunOutcome.FAILED, float("nan"), float("nan"), 0, 0.0, chance, message=message[:2000], **extra)

    def to_record(self) -> dict[str, Any]:
        """Strict JSON (NaN/Inf as null, tuples as lists)."""
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return clean_json(d)

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> "RunResult":
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["outcome"] = RunOutcome.parse(d.get("outcome")) or RunOutcome.FAILED
        for key in ("peak_val_accuracy", "final_val_accuracy", "chance"):
            kwargs[key] = float("nan") if kwargs.get(key) is None else float(kwargs[key])
        kwargs["early_probes"] = [tuple(p) for p in d.get("early_probes") or []]
        kwargs.setdefault("epochs_run", 0)
        kwargs.setdefault("train_seconds", 0.0)
        return cls(**kwargs)


def clean_json(value: Any) -> Any:
    """NaN/Inf -> None, tuples -> lists, numpy scalars -> Python, so JSON is strict."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return clean_json(value.item())
    return str(value)


# ----------------------------------------------------------------------------
# CSV schema, declared once
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    doc: str


TRIAL_COLUMNS: tuple[Column, ...] = (
    Column("trial_number", "Optuna trial number of the run"),
    Column("config_id", "stable id of the knob configuration (seed excluded)"),
    Column("<knob>", "one column per swept knob: its value in the run (as_built: left as built)"),
    Column("seed", "the run's seed (initial weights, data order, dropout)"),
    Column("outcome", "healthy, degraded, collapsed, never_learned, diverged or failed"),
    Column("peak_val_accuracy", "best validation accuracy, counting the in-epoch probes"),
    Column("final_val_accuracy", "validation accuracy after the last epoch run"),
    Column("chance", "majority-class rate of the validation labels"),
    Column("epochs_run", "epochs actually trained (fewer if stopped early)"),
    Column("train_seconds", "wall time of training (a packed run: the pack's time divided by its runs)"),
    Column("peak_epoch", "when the peak was reached (fractional for an in-epoch probe)"),
    Column("collapse_epoch", "first epoch of the final stretch at chance (collapsed runs)"),
    Column("first_nonfinite_epoch", "first epoch whose loss or weights were NaN/Inf"),
    Column("early_stopped", "stopped before the last epoch by the collapse-aware early stop"),
    Column("oscillations", "times the validation accuracy turned back after a swing of at least 6% of the gap between chance and 1"),
    Column("symptoms", "named symptoms seen in the run, separated by ';' (see the report's Symptoms)"),
    Column("n_params", "parameters of the model"),
    Column("path", "keras (trained alone through Keras fit) or packed (trained with others in one graph)"),
    Column("pack_size", "runs trained together in the run's pack (0 on the Keras path)"),
    Column("path_note", "why a run that could have been packed took the Keras path"),
    Column("message", "the exception of a failed run"),
    Column("<fact>", "values a remedy records once per run, e.g. keras_fuses (whether Keras computed the fused form)"),
)
CURVE_COLUMNS: tuple[Column, ...] = (
    Column("trial_number", "which run"),
    Column("config_id", "its configuration"),
    Column("seed", "its seed"),
    Column("epoch", "epoch, 1-based"),
    Column("loss", "training loss (Keras's, mean over the epoch)"),
    Column("accuracy", "training accuracy over the epoch"),
    Column("val_loss", "validation loss"),
    Column("val_accuracy", "validation accuracy"),
    Column("logit_abs_mean", "mean absolute logit (the output layer's pre-activation) on the probe batch"),
    Column("logit_max", "largest absolute logit on the probe batch"),
    Column("logit_spread", "std of the logits across classes, averaged over probe samples"),
    Column("dead_fraction", "share of hidden units (channels) whose pre-activation is <= 0 for every probe sample"),
    Column("dead_fraction_layerN", "the same for hidden layer N"),
    Column("grad_norm", "global norm of the loss gradient on the probe batch"),
    Column("grad_norm_first", "gradient norm of the first layer's kernel"),
    Column("grad_norm_last", "gradient norm of the output layer's kernel"),
    Column("zero_grad_fraction", "share of kernel gradient entries exactly zero"),
    Column("weight_norm", "global L2 norm of the trainable weights"),
    Column("penalty", "the model's regularization losses (weight penalties, `model.losses`) at the epoch's end"),
    Column("nonfinite", "1 if the loss or weights were NaN/Inf at that epoch"),
    Column("<probe metric>", "curves a remedy adds, e.g. probe_keras_ce, probe_fused_ce, probe_unfused_ce"),
)
PROBE_COLUMNS: tuple[Column, ...] = (
    Column("trial_number", "which run"),
    Column("config_id", "its configuration"),
    Column("seed", "its seed"),
    Column("epoch", "fractional epoch of the probe (0.25 = a quarter into epoch 1)"),
    Column("probe_accuracy", "accuracy on the probe batch at that step"),
)

CURVE_KEYS = tuple(c.name for c in CURVE_COLUMNS[4:] if not c.name.startswith("<") and c.name != "dead_fraction_layerN")
DIAGNOSTIC_KEYS = tuple(k for k in CURVE_KEYS if k not in ("loss", "accuracy", "val_loss", "val_accuracy", "nonfinite"))
_TRIAL_FIXED = tuple(c.name for c in TRIAL_COLUMNS if not c.name.startswith("<") and c.name not in ("trial_number", "config_id", "seed"))


def trial_row(trial_number: int, config_id: str, knobs: Mapping[str, Any], seed: int, r: RunResult) -> dict[str, Any]:
    row: dict[str, Any] = {"trial_number": trial_number, "config_id": config_id, **knobs, "seed": seed}
    for name in _TRIAL_FIXED:
        value = getattr(r, name)
        row[name] = ";".join(value) if name == "symptoms" else (value.value if isinstance(value, RunOutcome) else value)
    for k, v in r.facts.items():
        row.setdefault(k, v)
    return row


def curve_rows(trial_number: int, config_id: str, seed: int, r: RunResult) -> Iterable[dict[str, Any]]:
    n = len(r.curves.get("val_accuracy", []))
    for i in range(n):
        row: dict[str, Any] = {"trial_number": trial_number, "config_id": config_id, "seed": seed, "epoch": i + 1}
        for key, values in r.curves.items():
            row[key] = values[i] if i < len(values) else None
        for j, v in enumerate(r.dead_by_layer[i] if i < len(r.dead_by_layer) else []):
            row[f"dead_fraction_layer{j + 1}"] = v
        yield row


def probe_rows(trial_number: int, config_id: str, seed: int, r: RunResult) -> Iterable[dict[str, Any]]:
    for e, a in r.early_probes:
        yield {"trial_number": trial_number, "config_id": config_id, "seed": seed, "epoch": e, "probe_accuracy": a}


def trial_columns(knobs: Sequence[str], facts: Sequence[str] = ()) -> list[str]:
    return ["trial_number", "config_id", *knobs, "seed", *_TRIAL_FIXED, *[f for f in facts if f not in _TRIAL_FIXED]]


PROBE_COLUMN_NAMES = tuple(c.name for c in PROBE_COLUMNS)
