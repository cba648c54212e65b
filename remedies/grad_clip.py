"""Gradient clipping."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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
    invasiveness = 0

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value == "norm_1":
            compile.set("clipnorm", 1.0, by=self.name)
        elif value == "global_norm_1":
            compile.set("global_clipnorm", 1.0, by=self.name)
        elif value == "value_0.5":
            compile.set("clipvalue", 0.5, by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["global_norm_1"] if symptoms & {"diverged", "exploding_gradients", "exploding_logits", "initializer_scale"} else ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["global_norm_1"]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return {"norm_1": "clipnorm=1.0 on the optimizer", "global_norm_1": "global_clipnorm=1.0 on the optimizer",
                "value_0.5": "clipvalue=0.5 on the optimizer", "none": "no gradient clipping"}[value]
