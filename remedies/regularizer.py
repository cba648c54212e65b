"""Regularizers and weight clamping."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, ModelPlan, Remedy

L2_FACTOR = 1e-4
DROPOUT_RATE = 0.2
MAX_NORM = 3.0


class RegularizerRemedy(Remedy):
    """``l2``: L2 penalty 1e-4 on hidden kernels (and in place of any penalty the
    model has elsewhere). ``dropout``: rate 0.2 after each hidden activation.
    ``maxnorm``: weight clamping, each hidden unit's incoming weight vector
    rescaled to norm <= 3 after every step (Keras ``MaxNorm``). ``remove``: every
    L1/L2 penalty the model has (kernel, bias, activity) taken off."""

    name = "regularizer"
    description = "Regularizer on hidden layers: none, l2 (1e-4), dropout (0.2), maxnorm (weight clamping, 3.0), remove (the model's own penalties)"
    space = Categorical(["none", "l2", "dropout", "maxnorm", "remove"])
    baseline = "none"
    touches = ("model.kernel_regularizer", "model.dropout", "model.kernel_constraint")
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value == "l2":
            model.set("kernel_regularizer", ("l2", L2_FACTOR), by=self.name)
        elif value == "dropout":
            model.set("dropout", DROPOUT_RATE, by=self.name)
        elif value == "maxnorm":
            model.set("kernel_constraint", ("max_norm", MAX_NORM), by=self.name)
        elif value == "remove":
            model.set("kernel_regularizer", ("none", 0.0), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        out = []
        if symptoms & {"heavy_regularization", "penalty_dominates"}:
            out += ["remove", "l2"]
        if symptoms & {"exploding_logits", "collapsed", "diverged"}:
            out.append("maxnorm")
        return out

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["remove"] if facts.get("regularized") else ["l2"]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return {
            "l2": f"kernel_regularizer=keras.regularizers.L2({L2_FACTOR}) on hidden layers",
            "dropout": f"keras.layers.Dropout({DROPOUT_RATE}) after each hidden activation",
            "maxnorm": f"kernel_constraint=keras.constraints.MaxNorm({MAX_NORM}) on hidden layers",
            "remove": "remove the kernel/bias/activity regularizers",
            "none": "no regularizer",
        }[value]
