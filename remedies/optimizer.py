"""Optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .base import Categorical, CompilePlan, Remedy

# name -> (Keras class name, extra constructor arguments)
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "adam": ("Adam", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
    "adamw": ("AdamW", {}),
    "nadam": ("Nadam", {}),
}


@dataclass(frozen=True)
class OptimizerFactory:
    """``factory(learning_rate, **clip_options)`` -> a new Keras optimizer.
    A frozen dataclass, so plans compare and pickle."""

    name: str

    def __call__(self, learning_rate: Any, **options: Any) -> Any:
        import keras

        cls, extra = OPTIMIZERS[self.name]
        return getattr(keras.optimizers, cls)(learning_rate=learning_rate, **extra, **options)


class OptimizerRemedy(Remedy):
    """Replaces the optimizer, keeping the learning rate (and clipping) of the
    plan or of the base model. ``momentum`` is SGD with momentum 0.9."""

    name = "optimizer"
    description = "Optimizer: sgd, momentum (SGD 0.9), adam, rmsprop, adagrad, adamw, nadam"
    space = Categorical(list(OPTIMIZERS))
    baseline = "adam"
    touches = ("compile.optimizer",)
    invasiveness = 1

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        compile.set("optimizer", OptimizerFactory(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        out = []
        sgd = facts.get("optimizer") == "SGD"
        if "runaway_momentum" in symptoms:
            out += ["adam", "momentum"] if sgd else ["adam"]
        if sgd and symptoms & {"never_learned", "vanishing_gradients", "cannot_learn_easy_data", "saturating_sgd", "slow_convergence",
                               "learning_rate_low"}:
            out.append("adam")
        return list(dict.fromkeys(out))

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        current = {"SGD": "momentum" if facts.get("momentum") else "sgd", "Adam": "adam", "RMSprop": "rmsprop"}.get(str(facts.get("optimizer")))
        return [v for v in ("adam", "momentum", "rmsprop") if v != current]

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        cls, extra = OPTIMIZERS[value]
        args = ", ".join(f"{k}={v}" for k, v in extra.items())
        return f"optimizer=keras.optimizers.{cls}(learning_rate=<as before>{', ' + args if args else ''})"
