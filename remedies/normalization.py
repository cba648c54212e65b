"""Normalization layers."""

from __future__ import annotations

from typing import Any

from .base import Categorical, ModelPlan, Remedy


class NormalizationRemedy(Remedy):
    """``batchnorm`` puts a BatchNormalization between each Dense and its activation."""

    name = "normalization"
    description = "Normalization between each hidden Dense layer and its activation"
    space = Categorical(["none", "batchnorm", "layernorm"])
    baseline = "none"
    touches = ("model.normalization",)

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value != self.baseline:
            model.set("normalization", value, by=self.name)
