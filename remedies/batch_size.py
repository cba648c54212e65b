"""Batch size."""

from __future__ import annotations

from typing import Any

from .base import FitPlan, IntRange, Remedy


class BatchSizeRemedy(Remedy):
    name = "batch_size"
    description = "Training batch size"
    space = IntRange(1, 65536, log=True, examples=(16, 32, 128))
    baseline = 32
    touches = ("fit.batch_size",)

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        if int(value) != self.baseline:
            fit.set("batch_size", int(value), by=self.name)
