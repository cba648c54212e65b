"""Input scaling."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, FitPlan, Remedy


class InputScalingRemedy(Remedy):
    """``standardize``: every input feature to zero mean and unit variance;
    ``minmax``: to [0, 1]; both computed on the training data and applied to
    every split. ``times_F``: every float input multiplied by F, which undoes a
    ``Rescaling(1/F)`` layer of the model's own that divides inputs the loader
    already scaled (the model then sees what it would without the layer).
    Integer inputs (token ids) are left alone."""

    name = "input_scaling"
    description = "Scale the inputs: none, standardize (mean 0, std 1 per feature), minmax (to [0, 1])"
    space = Categorical(["none", "standardize", "minmax"])
    baseline = "none"
    touches = ("fit.input_scaling",)
    invasiveness = 0

    def configure_fit(self, value: Any, fit: FitPlan) -> None:
        if value != "none":
            fit.set("input_scaling", value, by=self.name)

    def check_value(self, value: Any) -> str | None:
        if isinstance(value, str) and value.startswith("times_"):
            return None if factor(value) is not None else "times_F needs a positive factor F, e.g. times_255"
        return super().check_value(value)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        out = []
        scale = facts.get("model_rescaling")
        if "inputs_scaled_twice" in symptoms and isinstance(scale, (int, float)) and 0 < scale < 1:
            out.append(undo(scale))  # what removing the model's own Rescaling does
        if symptoms & {"unscaled_inputs", "inputs_scaled_twice"}:
            out.append("standardize")
        return out

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["standardize"] if "input_abs_mean" in facts else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        f = factor(value)
        if f is not None:
            return (f"remove the model's Rescaling layer (scale 1/{f:g}): your loader already scales the inputs, and "
                    f"the layer divides them again (doctor tried it by feeding the inputs {f:g} times larger, which "
                    f"the layer brings back to the loader's scale)")
        if value == "standardize":
            return "standardize the inputs: x = (x - x_train.mean(0)) / x_train.std(0)"
        return "scale the inputs to [0, 1]: x = (x - x_train.min(0)) / (x_train.max(0) - x_train.min(0))"


def factor(value: Any) -> float | None:
    """F of a ``times_F`` value (None for any other value, or an F that is not a positive number below 1e9)."""
    if not (isinstance(value, str) and value.startswith("times_")):
        return None
    try:
        f = float(value[len("times_"):])
    except ValueError:
        return None
    return f if 0 < f < 1e9 else None


def undo(scale: float) -> str:
    """The ``times_F`` value that undoes a ``Rescaling(scale)`` layer."""
    return f"times_{1.0 / scale:.6g}"
