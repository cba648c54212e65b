"""Focal loss (Lin et al., 2017) as a remedysweep remedy.

Focal loss down-weights examples the model already gets right:
``-(1 - p_t) ** gamma * log(p_t)``, computed from the logits for stability.
"""

from remedysweep.remedies import Categorical, CompilePlan, ModelPlan, Remedy

GAMMAS = {"gamma_1": 1.0, "gamma_2": 2.0}


def focal_loss(gamma: float):
    def loss(y_true, logits):
        import tensorflow as tf

        log_p = tf.nn.log_softmax(logits, axis=-1)
        weight = tf.pow(1.0 - tf.exp(log_p), gamma)
        return -tf.reduce_sum(tf.stop_gradient(y_true) * weight * log_p, axis=-1)

    loss.__name__ = f"focal_gamma_{gamma:g}"
    return loss


class FocalLoss(Remedy):
    """``off``: no change. ``gamma_1``/``gamma_2``: the model ends at the logits and
    trains with focal loss of that gamma."""

    name = "focal_loss"
    description = "Focal loss on the logits (gamma 1 or 2) instead of cross-entropy"
    space = Categorical(["off", *GAMMAS])
    baseline = "off"
    touches = ("model.head", "compile.loss")

    def configure_model(self, value, model: ModelPlan) -> None:
        if value != "off":
            model.set("head", "logits", by=self.name)

    def configure_compile(self, value, compile: CompilePlan) -> None:
        if value != "off":
            compile.set("loss", focal_loss(GAMMAS[value]), by=self.name)
