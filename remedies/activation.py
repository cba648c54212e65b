"""Hidden-layer activation."""

from __future__ import annotations

from typing import Any

from .base import Categorical, ModelPlan, Remedy


class ActivationRemedy(Remedy):
    name = "activation"
    description = "Activation of every hidden layer"
    space = Categorical(["relu", "leaky_relu", "elu", "tanh", "gelu", "selu", "swish"])
    baseline = "relu"
    touches = ("model.activation",)

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value != self.baseline:
            model.set("activation", value, by=self.name)
