"""Learning rate."""

from __future__ import annotations

from typing import Any

from .base import CompilePlan, FloatRange, Remedy


class LearningRateRemedy(Remedy):
    name = "learning_rate"
    description = "Optimizer learning rate"
    space = FloatRange(1e-6, 10.0, log=True, examples=(0.001, 0.01, 0.05))
    baseline = 0.001
    touches = ("compile.learning_rate",)

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if float(value) != self.baseline:
            compile.set("learning_rate", float(value), by=self.name)
