"""Classify a run from its validation-accuracy curve. Pure functions, no TensorFlow.

``healthy``: none of the below.
``collapsed``: rose clearly above chance (peak >= chance + rise_margin*(1-chance),
    counting the early in-epoch probes), then every epoch of the final window sat at
    chance (<= chance + chance_margin*(1-chance)).
``never_learned``: never rose clearly above chance.
``diverged``: the loss or the weights became NaN/Inf.
``degraded``: final accuracy more than ``degrade_drop`` below the peak, above chance.
``failed``: an exception ended the run; its message is kept.

A never-learned run and a collapsed run both end at chance; only the rise tells
them apart, which is why the runner probes inside the first epoch.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Sequence

from .config import OutcomeSpec


class RunOutcome(str, enum.Enum):
    HEALTHY = "healthy"
    COLLAPSED = "collapsed"
    NEVER_LEARNED = "never_learned"
    DIVERGED = "diverged"
    DEGRADED = "degraded"
    FAILED = "failed"


OUTCOMES = tuple(o.value for o in RunOutcome)


@dataclass(frozen=True)
class Thresholds:
    chance: float
    rise: float
    at_chance: float

    @classmethod
    def for_classes(cls, n_classes: int, spec: OutcomeSpec) -> "Thresholds":
        chance = 1.0 / n_classes
        return cls(
            chance=chance,
            rise=chance + spec.rise_margin * (1 - chance),
            at_chance=chance + spec.chance_margin * (1 - chance),
        )


@dataclass(frozen=True)
class Classification:
    outcome: RunOutcome
    peak: float
    peak_epoch: float | None  # fractional for an in-epoch probe
    final: float
    collapse_epoch: int | None  # 1-based first epoch of the final stretch at chance


def classify(
    val_accuracy: Sequence[float],
    n_classes: int,
    spec: OutcomeSpec,
    *,
    early_probes: Sequence[tuple[float, float]] = (),
    nonfinite_epoch: int | None = None,
    error: str | None = None,
) -> Classification:
    """Classify one run. ``val_accuracy[i]`` is the accuracy after epoch i+1;
    ``early_probes`` are ``(fractional_epoch, accuracy)`` points inside epochs."""
    th = Thresholds.for_classes(n_classes, spec)
    points = [(float(i + 1), float(a)) for i, a in enumerate(val_accuracy) if a is not None and math.isfinite(a)]
    points += [(float(e), float(a)) for e, a in early_probes if math.isfinite(a)]
    final = float(val_accuracy[-1]) if val_accuracy and math.isfinite(val_accuracy[-1]) else float("nan")
    if points:
        peak_epoch, peak = max(points, key=lambda p: (p[1], -p[0]))
    else:
        peak_epoch, peak = None, float("nan")
    if error is not None:
        return Classification(RunOutcome.FAILED, peak, peak_epoch, final, None)
    if nonfinite_epoch is not None:
        return Classification(RunOutcome.DIVERGED, peak, peak_epoch, final, None)
    if not val_accuracy:
        return Classification(RunOutcome.FAILED, peak, peak_epoch, final, None)
    if not peak >= th.rise:
        return Classification(RunOutcome.NEVER_LEARNED, peak, peak_epoch, final, None)
    window = val_accuracy[-spec.window:]
    if len(window) >= min(spec.window, len(val_accuracy)) and all(a <= th.at_chance for a in window):
        start = len(val_accuracy)
        while start > 0 and val_accuracy[start - 1] <= th.at_chance:
            start -= 1
        return Classification(RunOutcome.COLLAPSED, peak, peak_epoch, final, start + 1)
    if final < peak - spec.degrade_drop:
        return Classification(RunOutcome.DEGRADED, peak, peak_epoch, final, None)
    return Classification(RunOutcome.HEALTHY, peak, peak_epoch, final, None)


def should_stop(
    val_accuracy: Sequence[float],
    rose: bool,
    n_classes: int,
    outcome_spec: OutcomeSpec,
    patience: int,
) -> bool:
    """Collapse-aware early stop: the run rose, then sat at chance ``patience`` epochs."""
    if not rose or len(val_accuracy) < patience:
        return False
    th = Thresholds.for_classes(n_classes, outcome_spec)
    return all(a <= th.at_chance for a in val_accuracy[-patience:])
