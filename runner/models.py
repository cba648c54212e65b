"""Base classifiers, built from a :class:`~remedysweep.remedies.ModelPlan`.

Layer names are fixed so the diagnostics can find them: ``dense_i`` (hidden
Dense), ``preact_i`` (what enters the activation, after normalization),
``act_i``, ``logits`` and, for a softmax head, ``probabilities``.
"""

from __future__ import annotations

from typing import Any

from remedysweep.remedies import ModelPlan

from .config import ModelSpec


def _hidden_stack(keras: Any, h: Any, plan: ModelPlan) -> Any:
    regularizer = None
    if plan.kernel_regularizer:
        kind, factor = plan.kernel_regularizer
        regularizer = {"l2": keras.regularizers.L2, "l1": keras.regularizers.L1}[kind](factor)
    constraint = None
    if plan.kernel_constraint:
        kind, value = plan.kernel_constraint
        constraint = {"max_norm": keras.constraints.MaxNorm, "unit_norm": None}[kind](value)
    for i in range(1, plan.depth + 1):
        h = keras.layers.Dense(
            plan.width,
            kernel_initializer=plan.kernel_initializer,
            kernel_regularizer=regularizer,
            kernel_constraint=constraint,
            use_bias=plan.normalization != "batchnorm",
            name=f"dense_{i}",
        )(h)
        if plan.normalization == "batchnorm":
            h = keras.layers.BatchNormalization(name=f"preact_{i}")(h)
        elif plan.normalization == "layernorm":
            h = keras.layers.LayerNormalization(name=f"preact_{i}")(h)
        else:
            h = keras.layers.Identity(name=f"preact_{i}")(h)
        h = keras.layers.Activation(plan.activation, name=f"act_{i}")(h)
        if plan.dropout:
            h = keras.layers.Dropout(plan.dropout, name=f"dropout_{i}")(h)
    return h


def build_model(spec: ModelSpec, plan: ModelPlan, input_shape: tuple[int, ...], n_classes: int, vocab_size: int = 0) -> Any:
    """The base classifier for ``spec.kind`` with the plan's architecture."""
    import keras

    if spec.kind == "embedding":
        inputs = keras.Input(input_shape, dtype="int32", name="tokens")
        h = keras.layers.Embedding(vocab_size, spec.embedding_dim, name="embedding")(inputs)
        h = keras.layers.Flatten(name="flatten")(h)
    else:
        inputs = keras.Input(input_shape, name="features")
        h = inputs
    h = _hidden_stack(keras, h, plan)
    outputs = keras.layers.Dense(n_classes, kernel_initializer=plan.kernel_initializer, name="logits")(h)
    if plan.head == "softmax":
        outputs = keras.layers.Activation("softmax", name="probabilities")(outputs)
    elif plan.head != "logits":
        raise ValueError(f"unknown model head {plan.head!r}; allowed: softmax, logits")
    return keras.Model(inputs, outputs, name=f"{spec.kind}_{plan.depth}x{plan.width}")
