"""Named symptoms: what a run's curves, a model's structure or the data show.

One table (:data:`SYMPTOMS`) names each symptom and says what it means; the rules
that find them are the two functions below. The report, ``trials.csv`` and
``doctor`` all use these names.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

SYMPTOMS: dict[str, str] = {
    # from a run's curves
    "collapsed": "rose above chance, then fell back to chance and stayed there",
    "never_learned": "never rose clearly above chance",
    "diverged": "the loss or the weights became NaN/Inf",
    "degraded": "ended well below its own peak",
    "failed": "an exception ended the run",
    "exploding_logits": "mean |logit| grew past 50: the softmax saturates",
    "zero_gradients": "every kernel gradient was exactly zero at the end: learning had stopped",
    "dead_units": "more than half of the hidden ReLU-family units never activate on the probe batch",
    "vanishing_gradients": "the first layer's gradient is under 1/1000 of the last layer's",
    "exploding_gradients": "the gradient norm passed 1000",
    "oscillation": "validation accuracy swung up and down three or more times",
    "unscaled_inputs": "the inputs are far from unit scale (mean |x| above 5 or max |x| above 100)",
    # from the model's structure and loss
    "softmax_twice": "softmax (or sigmoid) is applied twice at the output",
    "softmax_missing": "the model outputs logits but its loss expects probabilities (from_logits=False)",
    "probabilities_from_logits": "the model outputs probabilities but its loss is told from_logits=True",
    "improper_output_activation": "the output activation is neither softmax, sigmoid nor linear (or a softmax over one unit)",
    "handwritten_loss": "a loss on probabilities that Keras cannot fuse into the stable form (hand-written, or not a cross-entropy)",
    "cannot_learn_easy_data": "the same model cannot learn easy data (one input pattern per class)",
}

OUTCOME_SYMPTOMS = ("collapsed", "never_learned", "diverged", "degraded", "failed")


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def run_symptoms(curves: Mapping[str, Sequence[Any]], oscillation_count: int, facts: Mapping[str, Any]) -> list[str]:
    """Symptoms seen in one run's curves (its outcome aside)."""
    out = []
    logits = _finite(curves.get("logit_abs_mean", ()))
    if logits and max(logits) > 50:
        out.append("exploding_logits")
    zero = _finite(curves.get("zero_grad_fraction", ()))
    if zero and zero[-1] >= 0.999:
        out.append("zero_gradients")
    dead = _finite(curves.get("dead_fraction", ()))
    if dead and dead[-1] > 0.5 and facts.get("relu_family"):
        out.append("dead_units")
    first, last = _finite(curves.get("grad_norm_first", ())), _finite(curves.get("grad_norm_last", ()))
    ratios = [a / b for a, b in zip(first, last) if b > 0]
    if len(ratios) >= 1 and sorted(ratios)[len(ratios) // 2] < 1e-3:
        out.append("vanishing_gradients")
    grads = _finite(curves.get("grad_norm", ()))
    if grads and max(grads) > 1e3:
        out.append("exploding_gradients")
    if oscillation_count >= 3:
        out.append("oscillation")
    if facts.get("input_abs_mean", 0) > 5 or facts.get("input_abs_max", 0) > 100:
        out.append("unscaled_inputs")
    return out


def model_symptoms(info: Any) -> list[str]:
    """Symptoms read off the base model: its head and its loss (``info`` is a
    :class:`~.surgery.ModelInfo`)."""
    out = []
    head = info.head_activations
    probs = [a for a in head if a in ("softmax", "sigmoid")]
    if len(probs) >= 2:
        out.append("softmax_twice")
    final = head[-1] if head else "linear"
    if final not in ("softmax", "sigmoid", "linear") or (final == "softmax" and info.output_units == 1):
        out.append("improper_output_activation")  # a softmax over one unit is always 1
    if info.keras_cross_entropy and not info.from_logits and final == "linear":
        out.append("softmax_missing")
    if info.keras_cross_entropy and info.from_logits and final in ("softmax", "sigmoid"):
        out.append("probabilities_from_logits")
    if not info.keras_cross_entropy and final in ("softmax", "sigmoid"):
        out.append("handwritten_loss")
    return out
