"""The three softmax cross-entropy formulations, and the check that shows which one
Keras actually computes.

Keras 3 on TensorFlow looks under the tensor it is given: if it was produced by a
Softmax op, ``categorical_crossentropy`` takes the op's input (the logits) and
computes the stable fused form (``keras/src/backend/tensorflow/nn.py``,
``_get_logits``). ``unfused`` below is written so that no such rewrite can happen:
the loss itself takes the log of the clipped probabilities.
"""

from __future__ import annotations

from typing import Any, Callable


def unfused(y_true: Any, probs: Any) -> Any:
    """``-sum(y * log(clip(p, eps, 1 - eps)))``: the classic written-out form.

    Where a probability is clipped its gradient is zero, so a run whose logits grow
    large can stop learning for good."""
    import keras
    import tensorflow as tf

    eps = keras.config.epsilon()
    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(probs, eps, 1.0 - eps)), axis=-1)


def fused_logits(y_true: Any, logits: Any) -> Any:
    """The stable fused form on the logits, labels under ``stop_gradient``."""
    import tensorflow as tf

    return tf.nn.softmax_cross_entropy_with_logits(labels=tf.stop_gradient(y_true), logits=logits)


def keras_default(y_true: Any, probs: Any) -> Any:
    """Keras's ``categorical_crossentropy`` on the softmax output (fused by Keras)."""
    import keras

    return keras.losses.categorical_crossentropy(y_true, probs)


BUILTIN_LOSSES: dict[str, Callable[[Any, Any], Any]] = {
    "unfused": unfused,
    "keras_default": keras_default,
    "fused_logits": fused_logits,
}
LOGIT_LOSSES = frozenset({"fused_logits"})


def resolve_loss(loss: Any, head: str) -> Callable[[Any, Any], Any]:
    """The loss callable for a plan, checked against the model head."""
    if callable(loss):
        return loss
    if loss not in BUILTIN_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(BUILTIN_LOSSES)} or a callable")
    wants_logits = loss in LOGIT_LOSSES
    if wants_logits != (head == "logits"):
        raise ValueError(f"loss {loss!r} needs a {'logits' if wants_logits else 'softmax'} head, the model has a {head} head")
    return BUILTIN_LOSSES[loss]


_FUSION: dict[str, float] | None = None


def keras_fusion_check() -> dict[str, float]:
    """Ask Keras, inside a compiled graph as in training, for the cross-entropy of a
    softmax output whose true-class logit is 40 below another class.

    The fused form gives 40.0; the clipped written-out form gives -log(1e-7) ~ 16.1.
    Whatever Keras returns shows which form it computed. Cached per process."""
    global _FUSION
    if _FUSION is None:
        import keras
        import numpy as np
        import tensorflow as tf

        logits = tf.constant(np.array([[0.0, 40.0, 0.0]], dtype="float32"))
        y = tf.constant(np.array([[1.0, 0.0, 0.0]], dtype="float32"))
        layer = keras.layers.Activation("softmax")

        @tf.function
        def in_graph(z: Any, t: Any) -> Any:
            return keras.losses.categorical_crossentropy(t, layer(z))

        keras_value = float(in_graph(logits, y)[0])
        fused_value = float(fused_logits(y, logits)[0])
        unfused_value = float(unfused(y, tf.nn.softmax(logits))[0])
        _FUSION = {
            "keras": keras_value,
            "fused": fused_value,
            "unfused": unfused_value,
            "keras_fuses": float(abs(keras_value - fused_value) < 1e-3 * fused_value),
        }
    return dict(_FUSION)
