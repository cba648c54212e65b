"""Gradient clipping."""

from __future__ import annotations

from typing import Any

from .base import Categorical, CompilePlan, Remedy


class GradClipRemedy(Remedy):
    """``norm_1``: each gradient tensor clipped to norm 1 (``clipnorm``).
    ``global_norm_1``: all gradients together clipped to global norm 1.
    ``value_0.5``: each gradient element clipped to [-0.5, 0.5]."""

    name = "grad_clip"
    description = "Gradient clipping: none, per-tensor norm 1, global norm 1, value 0.5"
    space = Categorical(["none", "norm_1", "global_norm_1", "value_0.5"])
    baseline = "none"
    touches = ("compile.clipnorm", "compile.global_clipnorm", "compile.clipvalue")

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value == "norm_1":
            compile.set("clipnorm", 1.0, by=self.name)
        elif value == "global_norm_1":
            compile.set("global_clipnorm", 1.0, by=self.name)
        elif value == "value_0.5":
            compile.set("clipvalue", 0.5, by=self.name)
