"""Loss formulation: the post's main remedy."""

from __future__ import annotations

from typing import Any

from .base import Categorical, CompilePlan, ModelPlan, Remedy


class LossRemedy(Remedy):
    """How softmax and cross-entropy are put together.

    ``unfused``: a softmax layer, then ``-sum(y * log(clip(p, eps, 1 - eps)))`` written
    out, so Keras cannot see a Softmax op under its loss; the classic unstable form.
    ``keras_default``: a softmax layer and Keras ``categorical_crossentropy``, which
    Keras 3 on TensorFlow silently rewrites to the logits form.
    ``fused_logits``: no softmax layer; ``tf.nn.softmax_cross_entropy_with_logits`` on
    the logits, labels under ``stop_gradient``.
    """

    name = "loss"
    description = "Softmax + cross-entropy formulation: unfused (written-out log), Keras default, fused on logits"
    space = Categorical(["unfused", "keras_default", "fused_logits"])
    baseline = "keras_default"
    touches = ("model.head", "compile.loss")

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        if value == "fused_logits":
            model.set("head", "logits", by=self.name)

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        if value != self.baseline:
            compile.set("loss", value, by=self.name)
