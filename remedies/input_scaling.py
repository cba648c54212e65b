"""Input scaling."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, FitPlan, Remedy


class InputScalingRemedy(Remedy):
    """``standardize``: every input feature to zero mean and unit variance;
    ``minmax``: to [0, 1]; both computed on the training data and applied to
    every split. Integer inputs (token ids) are left alone."""

    name = "input_scaling"
    description = "Scale the inputs: none, standardize (mean 0, std 1 per feature), minmax (to [0, 1])"
    space = Categorical(["none", "standardize", "minmax"])
    baseline = "none"
    touches = ("fit.input_scaling",)
    invasiveness = 0

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        if value != "none":
            fit.set("input_scaling", value, by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["standardize"] if symptoms & {"unscaled_inputs", "inputs_scaled_twice"} else ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["standardize"] if "input_abs_mean" in facts else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        if value == "standardize":
            return "standardize the inputs: x = (x - x_train.mean(0)) / x_train.std(0)"
        return "scale the inputs to [0, 1]: x = (x - x_train.min(0)) / (x_train.max(0) - x_train.min(0))"
