"""Learning-rate warmup and decay."""

from __future__ import annotations

from typing import Any

from .base import Categorical, CompilePlan, Remedy


def warmup(learning_rate: float, steps_per_epoch: int, epochs: int) -> Any:
    """Linear warmup from 0 over the first epoch, then constant."""
    import keras

    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=1,
        alpha=1.0,
        warmup_target=learning_rate,
        warmup_steps=max(1, steps_per_epoch),
    )


def warmup_cosine(learning_rate: float, steps_per_epoch: int, epochs: int) -> Any:
    """Linear warmup over the first epoch, then cosine decay to 0 at the last step."""
    import keras

    warm = max(1, steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, steps_per_epoch * epochs - warm),
        warmup_target=learning_rate,
        warmup_steps=warm,
    )


def cosine(learning_rate: float, steps_per_epoch: int, epochs: int) -> Any:
    """Cosine decay from the learning rate to 0 at the last step."""
    import keras

    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps_per_epoch * epochs))


SCHEDULES = {"warmup": warmup, "warmup_cosine": warmup_cosine, "cosine": cosine}


class LRScheduleRemedy(Remedy):
    name = "lr_schedule"
    description = "Learning-rate schedule: constant, warmup (1 epoch), warmup then cosine decay, cosine decay"
    space = Categorical(["constant", *SCHEDULES])
    baseline = "constant"
    touches = ("compile.learning_rate_schedule",)

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value != self.baseline:
            compile.set("learning_rate_schedule", SCHEDULES[value], by=self.name)
