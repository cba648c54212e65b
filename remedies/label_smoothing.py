"""Label smoothing."""

from __future__ import annotations

from typing import Any

from .base import FitPlan, FloatRange, Remedy


class LabelSmoothingRemedy(Remedy):
    """Targets become ``(1 - a) * one_hot + a / n_classes`` for any loss that takes
    one-hot targets."""

    name = "label_smoothing"
    description = "Label smoothing factor applied to the one-hot targets"
    space = FloatRange(0.0, 0.5, examples=(0.0, 0.1))
    baseline = 0.0
    touches = ("fit.label_smoothing",)
    invasiveness = 0

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        if float(value):
            fit.set("label_smoothing", float(value), by=self.name)
