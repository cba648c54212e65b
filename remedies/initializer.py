"""Kernel initializer."""

from __future__ import annotations

from typing import Any

from .base import Categorical, ModelPlan, Remedy


class InitializerRemedy(Remedy):
    name = "initializer"
    description = "Kernel initializer of every Dense layer"
    space = Categorical(["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "orthogonal"])
    baseline = "glorot_uniform"
    touches = ("model.kernel_initializer",)

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value != self.baseline:
            model.set("kernel_initializer", value, by=self.name)
