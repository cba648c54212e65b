"""Regularizers and weight clamping."""

from __future__ import annotations

from typing import Any

from .base import Categorical, ModelPlan, Remedy

L2_FACTOR = 1e-4
DROPOUT_RATE = 0.2
MAX_NORM = 3.0


class RegularizerRemedy(Remedy):
    """``l2``: L2 penalty 1e-4 on hidden kernels. ``dropout``: rate 0.2 after each
    hidden layer. ``maxnorm``: weight clamping, each hidden unit's incoming weight
    vector rescaled to norm <= 3 after every step (Keras ``MaxNorm`` constraint)."""

    name = "regularizer"
    description = "Regularizer on hidden layers: none, l2 (1e-4), dropout (0.2), maxnorm (weight clamping, 3.0)"
    space = Categorical(["none", "l2", "dropout", "maxnorm"])
    baseline = "none"
    touches = ("model.kernel_regularizer", "model.dropout", "model.kernel_constraint")

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value == "l2":
            model.set("kernel_regularizer", ("l2", L2_FACTOR), by=self.name)
        elif value == "dropout":
            model.set("dropout", DROPOUT_RATE, by=self.name)
        elif value == "maxnorm":
            model.set("kernel_constraint", ("max_norm", MAX_NORM), by=self.name)
