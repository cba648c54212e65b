"""Dropout rate."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import FloatRange, ModelPlan, Remedy


class DropoutRateRemedy(Remedy):
    """The model's own Dropout layers get this rate (0 removes them); a model
    without any gets a Dropout of this rate after each hidden activation."""

    name = "dropout_rate"
    description = "Dropout rate: the model's own Dropout layers get it (0 removes them); none in the model: inserted after hidden activations"
    space = FloatRange(0.0, 0.95, examples=(0.0, 0.2, 0.5))
    baseline = 0.0
    touches = ("model.dropout_rate",)
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("dropout_rate", float(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        if "heavy_dropout" in symptoms or ("underfitting" in symptoms and facts.get("dropout_layers")):
            return [0.0, 0.2]
        return ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return [0.0, 0.2] if facts.get("dropout_layers") else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        if float(value) == 0.0:
            return "remove the Dropout layers"
        return f"Dropout rate {value:g} in every Dropout layer"
