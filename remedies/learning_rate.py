"""Learning rate."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .base import CompilePlan, FloatRange, Remedy

#: Each optimizer class's usual learning rates (low, typical, high); far outside,
#: training is too slow or unstable. Read by the static fault checks too.
USUAL_LEARNING_RATES: dict[str, tuple[float, float, float]] = {
    "SGD": (1e-3, 1e-2, 1.0),
    "SGD+momentum": (1e-4, 1e-2, 0.3),
    "Adam": (1e-5, 1e-3, 3e-2),
    "AdamW": (1e-5, 1e-3, 3e-2),
    "Nadam": (1e-5, 1e-3, 3e-2),
    "Adamax": (1e-5, 2e-3, 5e-2),
    "RMSprop": (1e-5, 1e-3, 2e-2),
    "Adagrad": (1e-3, 1e-2, 1.0),
    "Adadelta": (1e-2, 1.0, 10.0),
    "Lion": (1e-6, 1e-4, 3e-3),
}
TOO_HIGH = {"collapsed", "diverged", "exploding_logits", "exploding_gradients", "zero_gradients", "oscillation", "degraded",
            "learning_rate_high", "runaway_momentum"}
TOO_LOW = {"never_learned", "vanishing_gradients", "cannot_learn_easy_data", "slow_convergence", "learning_rate_low", "saturating_sgd"}


def _round(v: float) -> float:
    return float(f"{v:.3g}")


def _same_rate(a: float, b: float) -> bool:
    """Equal as learning rates: a model's rate is read back as float32
    (0.001 -> 0.0010000000475), and trying it again changes nothing."""
    return math.isclose(a, b, rel_tol=1e-5)


def usual(facts: Mapping[str, Any]) -> tuple[float, float, float]:
    name = str(facts.get("optimizer", ""))
    if name == "SGD" and facts.get("momentum"):
        name = "SGD+momentum"
    return USUAL_LEARNING_RATES.get(name, (1e-5, 1e-3, 1.0))


class LearningRateRemedy(Remedy):
    """Replaces the optimizer's learning rate (a schedule of the base model is
    replaced by this constant)."""

    name = "learning_rate"
    description = "Optimizer learning rate"
    space = FloatRange(1e-6, 10.0, log=True, examples=(0.001, 0.01, 0.05))
    baseline = 0.001
    touches = ("compile.learning_rate",)
    invasiveness = 0

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        compile.set("learning_rate", float(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        """Decades in the direction the symptoms point; a rate far outside its
        optimizer's usual range gets that optimizer's typical rate first."""
        lr = facts.get("learning_rate")
        if not lr:
            return ()
        low, typical, high = usual(facts)
        out: list[float] = []
        if "learning_rate_high" in symptoms or "learning_rate_low" in symptoms:
            out.append(typical)
            beyond = typical * 10 if "learning_rate_low" in symptoms else typical / 10  # the typical rate may still be short
            if low <= beyond <= high:
                out.append(beyond)
            steps = round(math.log10(typical / lr))
            out += [lr * 10 ** k for k in (range(1, steps) if steps > 0 else range(-1, steps, -1))]
        if "warmup_longer_than_run" in symptoms:  # a constant rate in place of the schedule: the usual one, and the schedule's peak
            out += [typical, *([facts["lr_schedule_peak"]] if facts.get("lr_schedule_peak") else [])]
        held = []  # the schedule's own highest rate, held constant: a change even where it equals the rate read off the model
        if "schedule_decays_early" in symptoms:
            held.append(lr)
            out.append(typical)
        if symptoms & TOO_HIGH:
            out += [lr / 10, lr / 100]
        elif symptoms & TOO_LOW and lr * 10 <= 1.0:
            out += [lr * 10, lr * 100]
        return list(dict.fromkeys([*(_round(v) for v in held),
                                    *(_round(v) for v in out if 1e-6 <= v <= 10.0 and not _same_rate(v, lr))]))

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        lr = facts.get("learning_rate")
        if not lr:
            return ()
        low, typical, high = usual(facts)
        values = [lr / 100, lr / 10, lr * 10, lr * 100, typical, typical * 10, typical / 10]
        return list(dict.fromkeys(_round(v) for v in values if 1e-6 <= v <= 10.0 and not _same_rate(v, lr)))

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        before = facts.get("learning_rate")
        if facts.get("lr_schedule"):  # the knob sets a constant rate: the schedule goes
            return f"a constant learning_rate={value:g} in place of your {facts['lr_schedule']} schedule (its highest rate in the run: {before:g})"
        return f"learning_rate={value:g}" + (f" (was {before:g})" if before else "")
