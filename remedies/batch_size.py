"""Batch size."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import FitPlan, IntRange, Remedy


class BatchSizeRemedy(Remedy):
    name = "batch_size"
    description = "Training batch size"
    space = IntRange(1, 65536, log=True, examples=(16, 32, 128))
    baseline = 32
    touches = ("fit.batch_size",)
    invasiveness = 0

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        fit.set("batch_size", int(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        return [int(facts.get("batch_size", 32)) * 4] if "oscillation" in symptoms else ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        b = int(facts.get("batch_size", 32))
        return [v for v in (b // 4, b * 4) if v >= 4]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"batch_size={value} in fit()"
