"""Layer width."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import IntRange, ModelPlan, Remedy


class WidthRemedy(Remedy):
    """Units of every hidden Dense layer and filters of every hidden convolution."""

    name = "width"
    description = "Units (filters) per hidden layer"
    space = IntRange(1, 8192, log=True, examples=(32, 128, 512))
    baseline = 64
    touches = ("model.width",)
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("width", int(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        widest = facts.get("max_hidden_width")
        if widest and widest >= 32 and symptoms & {"collapsed", "exploding_logits"}:
            return [max(8, widest // 4)]
        return ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"{value} units (filters) in every hidden layer"
