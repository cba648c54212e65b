"""Hidden-layer activation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, ModelPlan, Remedy


class ActivationRemedy(Remedy):
    """Every hidden activation becomes this one (the output activation is the
    loss knob's business)."""

    name = "activation"
    description = "Activation of every hidden layer"
    space = Categorical(["relu", "leaky_relu", "elu", "tanh", "gelu", "selu", "swish", "sigmoid"])
    baseline = "relu"
    touches = ("model.activation",)
    invasiveness = 2

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("activation", value, by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        hidden = set(facts.get("hidden_activations", ()))
        out = []
        if symptoms & {"linear_hidden", "softmax_hidden"}:
            return ["relu", "leaky_relu"]
        if "saturating_sgd" in symptoms:
            out.append("relu")
        if symptoms & {"dead_units", "negative_biases"} or ("collapsed" in symptoms and "relu" in hidden):
            out.append("leaky_relu")
        saturating = hidden & {"sigmoid", "tanh", "softsign", "hard_sigmoid"}
        if "vanishing_gradients" in symptoms or (symptoms & {"never_learned", "cannot_learn_easy_data", "slow_convergence"} and saturating):
            out += ["relu", "leaky_relu"]
        return [v for v in dict.fromkeys(out) if hidden and {v} != hidden]

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        if not facts.get("hidden_layers"):
            return ()
        hidden = set(facts.get("hidden_activations", ()))
        return [v for v in ("relu", "leaky_relu", "tanh") if {v} != hidden]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return f"activation='{value}' in every hidden layer"
