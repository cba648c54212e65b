"""Kernel initializer and re-initialisation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, ModelPlan, Remedy


class InitializerRemedy(Remedy):
    """Re-initialises every Dense and convolution layer: kernels with this
    initializer, biases with zeros (a bad bias initialisation is undone too)."""

    name = "initializer"
    description = "Re-initialise every layer: this kernel initializer, zero biases"
    space = Categorical(["glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "orthogonal"])
    baseline = "glorot_uniform"
    touches = ("model.kernel_initializer",)
    invasiveness = 1

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("kernel_initializer", value, by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        relu = set(facts.get("hidden_activations", ())) & {"relu", "leaky_relu", "elu", "gelu", "swish", "silu"}
        if symptoms & {"constant_initializer", "initializer_scale", "negative_biases"}:
            return ["he_normal", "glorot_uniform"] if relu else ["glorot_uniform", "he_normal"]
        if relu and symptoms & {"dead_units", "exploding_gradients", "vanishing_gradients"}:
            return ["he_normal"]
        return ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["he_normal", "glorot_uniform"]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"kernel_initializer='{value}', bias_initializer='zeros' on every layer"
