"""Minimum layer width: widen bottlenecks."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import IntRange, ModelPlan, Remedy


class MinWidthRemedy(Remedy):
    """Hidden Dense layers with fewer units (convolutions with fewer filters) than
    this get this many; wider layers keep theirs."""

    name = "min_width"
    description = "Widen hidden layers narrower than this (units or filters); the others stay as they are"
    space = IntRange(1, 8192, log=True, examples=(16, 64))
    baseline = 1
    touches = ("model.min_width",)
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("min_width", int(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        if "bottleneck" not in symptoms:
            return ()
        classes = int(facts.get("n_classes", 2))
        others = sorted(w for w in facts.get("hidden_widths", ()) if w >= max(classes, 2))
        typical = others[len(others) // 2] if others else 0
        return [max(typical, 4 * classes, 16)]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"at least {value} units (filters) in every hidden layer (widen the narrow ones)"
