"""Optimizer."""

from __future__ import annotations

from typing import Any

from .base import Categorical, CompilePlan, Remedy


class OptimizerRemedy(Remedy):
    """``momentum`` is SGD with Nesterov-free momentum 0.9."""

    name = "optimizer"
    description = "Optimizer: sgd, momentum (SGD 0.9), adam, rmsprop, adagrad, adamw, nadam"
    space = Categorical(["sgd", "momentum", "adam", "rmsprop", "adagrad", "adamw", "nadam"])
    baseline = "adam"
    touches = ("compile.optimizer",)

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value != self.baseline:
            compile.set("optimizer", value, by=self.name)
