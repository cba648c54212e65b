"""Normalization layers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, ModelPlan, Remedy

LAYERS = {"batchnorm": "BatchNormalization", "layernorm": "LayerNormalization"}


class NormalizationRemedy(Remedy):
    """``batchnorm``/``layernorm`` inserted between each hidden layer and its
    activation, in Sequential and functional models; ``none`` inserts nothing."""

    name = "normalization"
    description = "Normalization between each hidden layer and its activation: none, batchnorm, layernorm"
    space = Categorical(["none", *LAYERS])
    baseline = "none"
    touches = ("model.normalization",)
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value != "none":
            model.set("normalization", value, by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        if symptoms & {"vanishing_gradients", "exploding_gradients", "dead_units", "cannot_learn_easy_data", "collapsed",
                       "initializer_scale", "saturating_sgd"}:
            return ["batchnorm"]
        return ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["batchnorm"] if facts.get("hidden_layers") else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"keras.layers.{LAYERS[value]}() between each hidden layer and its activation"
