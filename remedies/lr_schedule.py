"""Learning-rate warmup and decay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .base import Categorical, CompilePlan, Remedy


@dataclass(frozen=True)
class Schedule:
    """``schedule(learning_rate, steps_per_epoch, epochs)`` -> a Keras schedule."""

    kind: str

    def __call__(self, learning_rate: float, steps_per_epoch: int, epochs: int) -> Any:
        import keras

        warm = max(1, steps_per_epoch)
        total = max(1, steps_per_epoch * epochs)
        if self.kind == "warmup":  # linear warmup over the first epoch, then constant
            return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1, alpha=1.0, warmup_target=learning_rate, warmup_steps=warm)
        if self.kind == "warmup_cosine":  # warmup, then cosine decay to 0 at the last step
            return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=max(1, total - warm), warmup_target=learning_rate, warmup_steps=warm)
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)


SCHEDULES = ("warmup", "warmup_cosine", "cosine")


class LRScheduleRemedy(Remedy):
    name = "lr_schedule"
    description = "Learning-rate schedule: constant, warmup (1 epoch), warmup then cosine decay, cosine decay"
    space = Categorical(["constant", *SCHEDULES])
    baseline = "constant"
    touches = ("compile.learning_rate_schedule",)
    invasiveness = 0

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value != "constant":
            compile.set("learning_rate_schedule", Schedule(value), by=self.name)

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["warmup_cosine"] if symptoms & {"oscillation", "collapsed"} else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        return {"warmup": "a one-epoch linear learning-rate warmup", "warmup_cosine": "a one-epoch warmup, then cosine decay",
                "cosine": "cosine learning-rate decay", "constant": "a constant learning rate"}[value]
