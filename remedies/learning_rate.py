"""Learning rate."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import CompilePlan, FloatRange, Remedy


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
        lr = facts.get("learning_rate")
        if not lr:
            return ()
        out: list[float] = []
        too_high = {"collapsed", "diverged", "exploding_logits", "exploding_gradients", "zero_gradients", "oscillation", "degraded"}
        if symptoms & too_high:
            out += [lr / 10, lr / 100]
        elif symptoms & {"never_learned", "vanishing_gradients", "cannot_learn_easy_data"} and lr * 10 <= 0.5:
            out += [lr * 10]
        return [float(f"{v:.3g}") for v in dict.fromkeys(out) if 1e-6 <= v <= 10.0]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        before = facts.get("learning_rate")
        return f"learning_rate={value:g}" + (f" (was {before:g})" if before else "")
