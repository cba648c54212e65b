"""Layer width."""

from __future__ import annotations

from typing import Any

from .base import IntRange, ModelPlan, Remedy


class WidthRemedy(Remedy):
    name = "width"
    description = "Units per hidden layer"
    space = IntRange(1, 8192, log=True, examples=(32, 128, 512))
    baseline = 64
    touches = ("model.width",)

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if int(value) != self.baseline:
            model.set("width", int(value), by=self.name)
