"""Named symptoms: what a run's curves, a model's structure or the data show.

One table (:data:`SYMPTOMS`) names each symptom and says what it means; the rules
that find them are the two functions below. The report, ``trials.csv`` and
``doctor`` all use these names.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from remedysweep.errors import one_line

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
    "underfitting": "training accuracy stays far from 1 and close to the validation accuracy: the model cannot fit its own training data",
    "slow_convergence": "the loss barely moves per epoch, or the accuracy is still climbing steeply at the last epoch",
    "penalty_dominates": "the regularization penalty is most of the loss: the weights are pulled to zero instead of fitting the data",
    # from the model's structure and loss
    "softmax_twice": "softmax (or sigmoid) is applied twice at the output",
    "softmax_missing": "the model outputs logits but its loss expects probabilities (from_logits=False)",
    "probabilities_from_logits": "the model outputs probabilities but its loss is told from_logits=True",
    "improper_output_activation": "the output activation is neither softmax, sigmoid nor linear (or a softmax over one unit)",
    "handwritten_loss": "a loss on probabilities that Keras cannot fuse into the stable form (hand-written, or not a cross-entropy)",
    "custom_loss_on_logits": "the model outputs logits into a loss Keras does not know: if that loss expects probabilities (clips or logs them), it is given logits",
    "cannot_learn_easy_data": "the same model cannot learn easy data (one input pattern per class)",
    # static faults, read off the model and its compile settings (engine/faults.py)
    "bottleneck": "a hidden layer has fewer units than there are classes",
    "linear_hidden": "hidden layers without an activation: stacked, they are one linear map",
    "softmax_hidden": "softmax as a hidden activation",
    "saturating_sgd": "sigmoid hidden layers trained by plain SGD: the gradients shrink layer by layer",
    "constant_initializer": "a kernel starts with all weights equal (zeros or a constant): its units cannot differ",
    "initializer_scale": "initial kernels far from the Glorot/He scale",
    "negative_biases": "biases initialised so low that ReLUs start switched off",
    "heavy_regularization": "an L1/L2 penalty far above the usual range (1e-5 to 1e-3)",
    "heavy_dropout": "a dropout rate far above the usual range (0.1 to 0.5)",
    "learning_rate_high": "the learning rate is far above its optimizer's usual range",
    "learning_rate_low": "the learning rate is far below its optimizer's usual range",
    "runaway_momentum": "momentum at 0.99 or more: the updates overshoot and keep going",
    "warmup_longer_than_run": "the learning-rate schedule is still warming up when the run ends: the model trains at a fraction of its rate",
    "schedule_decays_early": "the learning-rate schedule has decayed to almost nothing a quarter of the way into the run",
    "inputs_scaled_twice": "the model rescales inputs that the data already scaled: what reaches the first layer is tiny",
    "no_signal": "nothing tried rose above chance and a plain reference classifier does no better: the labels may not follow from the inputs",
}

#: Symptoms read off the model and its settings before it trains.
STATIC_FAULTS = ("bottleneck", "linear_hidden", "softmax_hidden", "saturating_sgd", "constant_initializer", "initializer_scale",
                 "negative_biases", "heavy_regularization", "heavy_dropout", "learning_rate_high", "learning_rate_low",
                 "runaway_momentum", "warmup_longer_than_run", "schedule_decays_early", "inputs_scaled_twice")

#: A model "fits its own training data" when its final training accuracy gets
#: this far from chance to 1; below it (and close to the validation accuracy)
#: it underfits, and doctor searches even when it trains healthy.
FITS_TRAINING = 0.85

OUTCOME_SYMPTOMS = ("collapsed", "never_learned", "diverged", "degraded", "failed")

#: Symptoms that name a cause seen in the model, its settings or the data:
#: remedies that remove one are tried before those that relieve what runs show.
ROOT_CAUSES = frozenset({"softmax_twice", "improper_output_activation", "softmax_missing", "probabilities_from_logits",
                         "handwritten_loss", "custom_loss_on_logits", "unscaled_inputs", "bottleneck", "linear_hidden", "softmax_hidden", "saturating_sgd",
                         "constant_initializer", "initializer_scale", "negative_biases", "heavy_regularization", "heavy_dropout",
                         "learning_rate_high", "learning_rate_low", "runaway_momentum",
                         "warmup_longer_than_run", "schedule_decays_early", "inputs_scaled_twice"})


def suggested_changes(registry: Any, symptoms: Any, facts: Mapping[str, Any]) -> list[tuple[int, str, Any, str]]:
    """The single changes the remedies suggest for ``symptoms``, in the order
    doctor tries them: first those that remove a cause (:data:`ROOT_CAUSES`),
    then the rest, each group least invasive first, the remedies' own order
    within. Each is ``(rank, remedy, value, error)``: rank under 10 for a cause;
    ``error`` says why a remedy's ``suggest`` failed (value ``None``). Doctor's
    search and Watch's page both take this list."""
    out: list[tuple[int, int, str, Any, str]] = []
    seen: set[tuple[str, Any]] = set()
    symptoms = frozenset(symptoms)
    roots = symptoms & ROOT_CAUSES
    order = 0
    for tier, visible in ((0, roots), (1, symptoms)):
        if not visible:
            continue
        for name, remedy in registry.remedies.items():
            try:
                values = list(remedy.suggest(visible, facts))
            except Exception as exc:
                if tier == 0 or not roots:  # said once, however many tiers ask
                    out.append((99, order, name, None, f"suggest() raised {one_line(exc)}"))
                    order += 1
                continue
            for v in values:
                if (name, v) in seen or remedy.check_value(v):
                    continue
                seen.add((name, v))
                out.append((tier * 10 + remedy.invasiveness, order, name, v, ""))
                order += 1
    out.sort(key=lambda c: (c[0], c[1]))
    return [(rank, name, v, error) for rank, _, name, v, error in out]


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]


def evidence(symptom: str, r: Any, chance: float) -> str:
    """The numbers behind ``symptom`` in run ``r`` (a :class:`~.result.RunResult`),
    in one line; its definition where the run holds no number for it. What
    Watch prints and doctor lists."""
    c = r.curves
    val, acc, loss = _finite(c.get("val_accuracy", ())), _finite(c.get("accuracy", ())), _finite(c.get("loss", ()))

    def last(key: str) -> float:
        v = _finite(c.get(key, ()))
        return v[-1] if v else float("nan")

    def peak(key: str) -> float:
        v = _finite(c.get(key, ()))
        return max(v) if v else float("nan")

    first, final = _finite(c.get("grad_norm_first", ())), _finite(c.get("grad_norm_last", ()))
    ratios = sorted(a / b for a, b in zip(first, final) if b > 0)
    window = max(2, len(val) // 4)
    text = {
        "collapsed": f"validation accuracy {val[-1]:.3f} (chance {chance:.3f}) after a peak of {r.peak_val_accuracy:.3f}" if val else "",
        "never_learned": f"validation accuracy {val[-1]:.3f}, never above chance {chance:.3f} by the rise margin" if val else "",
        "diverged": f"loss or weights NaN/Inf from epoch {r.first_nonfinite_epoch}",
        "degraded": f"validation accuracy {val[-1]:.3f}, {r.peak_val_accuracy - val[-1]:.3f} below its peak" if val else "",
        "exploding_logits": f"mean |logit| {peak('logit_abs_mean'):.1f}",
        "dead_units": f"{last('dead_fraction'):.0%} of hidden units never active on the probe batch",
        "zero_gradients": f"{last('zero_grad_fraction'):.0%} of kernel gradient entries exactly zero",
        "exploding_gradients": f"gradient norm {peak('grad_norm'):.3g}",
        "vanishing_gradients": f"first layer's gradient {ratios[len(ratios) // 2]:.1e} of the last layer's (median over epochs)" if ratios else "",
        "penalty_dominates": f"penalty {last('penalty'):.3g} of a loss of {last('loss'):.3g}",
        "oscillation": f"{r.oscillations} swings of the validation accuracy",
        "underfitting": f"training accuracy {acc[-1]:.3f}, validation {val[-1]:.3f} (chance {chance:.3f})" if acc and val else "",
        "slow_convergence": (f"loss {loss[0]:.3g} -> {loss[-1]:.3g}; validation accuracy {val[-1 - window]:.3f} -> {val[-1]:.3f} "
                             f"over the last {window} epochs") if loss and len(val) > window else "",
    }.get(symptom, "")
    return text or SYMPTOMS.get(symptom, "")


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
    if (facts.get("input_abs_mean", 0) > 5 or facts.get("input_abs_max", 0) > 100) and not facts.get("input_normalized"):
        out.append("unscaled_inputs")
    out += learning_symptoms(curves, facts.get("chance"))
    return out


def learning_symptoms(curves: Mapping[str, Sequence[Any]], chance: float | None) -> list[str]:
    """How a run that trains learns: underfitting, slow convergence, a penalty
    that dominates the loss."""
    out = []
    acc, val = _finite(curves.get("accuracy", ())), _finite(curves.get("val_accuracy", ()))
    loss = _finite(curves.get("loss", ()))
    chance = chance if chance is not None and math.isfinite(chance) else 0.0
    gap = max(1e-6, 1.0 - chance)
    if len(acc) >= 3 and val:
        fitted = (acc[-1] - chance) / gap  # how far from chance to 1 the training accuracy got
        if 0.1 < fitted < FITS_TRAINING and acc[-1] - val[-1] < 0.1 * gap:
            out.append("underfitting")
    if len(loss) >= 3 and loss[0] > 0:
        barely = 0 <= (loss[0] - loss[-1]) / loss[0] < 0.1  # a loss that rose is not slow: it went the wrong way
        window = max(2, len(val) // 4)
        climbing = len(val) > window and (val[-1] - val[-1 - window]) > 0.1 * gap and val[-1] < chance + 0.9 * gap
        if barely or climbing:
            out.append("slow_convergence")
    penalty = _finite(curves.get("penalty", ()))
    if penalty and loss and loss[-1] > 0 and penalty[-1] > 0.5 * loss[-1]:
        out.append("penalty_dominates")
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
    if not info.keras_cross_entropy and final == "linear" and info.loss not in ("", "none", None):
        out.append("custom_loss_on_logits")  # a possible cause, not a certain one: searched only with other evidence
    return out
