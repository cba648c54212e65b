"""Loss formulation: the write-up's main remedy.

Three ways to put the output activation and the cross-entropy together, for a
softmax head (several classes) and a sigmoid head (one output unit):

``unfused``: the model ends in a softmax (sigmoid) and the loss is written out,
    ``-sum(y * log(clip(p, eps, 1 - eps)))``, so Keras cannot see an activation op
    under its loss: the classic unstable form. Where a probability is clipped its
    gradient is exactly zero, so once the logits grow large, learning stops.
``keras_default``: the model ends in a softmax (sigmoid) and the loss is Keras's
    ``categorical_crossentropy`` (``binary_crossentropy``). Keras 3 on TensorFlow
    looks under the activation and computes the fused form on its logits
    (``_get_logits`` in ``keras/src/backend/tensorflow/nn.py``).
``fused_logits``: the model ends at the logits and the loss is
    ``tf.nn.softmax_cross_entropy_with_logits`` (``sigmoid_cross_entropy_with_logits``),
    labels under ``stop_gradient``.

On any model the knob rewrites the head: it finds the output activation (a
Dense/convolution ``activation``, an ``Activation`` layer or a ``Softmax``
layer, also an improper one such as ReLU) and replaces it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import Categorical, CompilePlan, LossFormulation, ModelPlan, ProbeMetric, Remedy, ReportSection

#: Losses Keras ships, by the names a compiled model reports: anything else is the user's own.
KERAS_LOSSES = frozenset({
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "categorical_focal_crossentropy",
    "binary_focal_crossentropy", "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "hinge", "squared_hinge", "categorical_hinge", "kl_divergence", "kld", "poisson",
    "huber", "log_cosh", "cosine_similarity", "k_l_divergence",
})


def _snake(name: str) -> str:
    """``SparseCategoricalCrossentropy`` -> ``sparse_categorical_crossentropy``."""
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _binary(y_pred: Any) -> bool:
    return y_pred.shape[-1] == 1


def _activate(logits: Any, binary: bool) -> Any:
    import tensorflow as tf

    return tf.nn.sigmoid(logits) if binary else tf.nn.softmax(logits)


class Unfused(LossFormulation):
    """``-sum(y * log(clip(p, eps, 1 - eps)))`` on probabilities, written out."""

    name = "unfused"
    head = "probabilities"

    def __call__(self, y_true: Any, probs: Any) -> Any:
        import keras
        import tensorflow as tf

        eps = keras.config.epsilon()
        p = tf.clip_by_value(probs, eps, 1.0 - eps)
        if _binary(probs):
            return -tf.reduce_sum(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p), axis=-1)
        return -tf.reduce_sum(y_true * tf.math.log(p), axis=-1)

    def from_logits(self, y_true: Any, logits: Any, binary: bool) -> Any:
        return self(y_true, _activate(logits, binary))


class KerasDefault(LossFormulation):
    """Keras's own cross-entropy on probabilities (which Keras fuses)."""

    name = "keras_default"
    head = "probabilities"

    def __call__(self, y_true: Any, probs: Any) -> Any:
        import keras

        if _binary(probs):
            return keras.losses.binary_crossentropy(y_true, probs)
        return keras.losses.categorical_crossentropy(y_true, probs)

    def from_logits(self, y_true: Any, logits: Any, binary: bool) -> Any:
        return self(y_true, _activate(logits, binary))


class FusedLogits(LossFormulation):
    """The stable fused form on the logits, labels under ``stop_gradient``."""

    name = "fused_logits"
    head = "logits"

    def __call__(self, y_true: Any, logits: Any) -> Any:
        return self.from_logits(y_true, logits, _binary(logits))

    def from_logits(self, y_true: Any, logits: Any, binary: bool) -> Any:
        import tensorflow as tf

        labels = tf.stop_gradient(y_true)
        if binary:
            return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=-1)
        return tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)


FORMULATIONS: dict[str, LossFormulation] = {f.name: f for f in (Unfused(), KerasDefault(), FusedLogits())}


def _mean_over_batch(fn: Any) -> Any:
    def probe(logits: Any, targets: Any, binary: bool) -> Any:
        import tensorflow as tf

        return tf.reduce_mean(fn(targets, logits, binary), axis=-1)

    return probe


_FUSION: dict[str, float] | None = None


def keras_fusion_check() -> dict[str, float]:
    """Ask Keras, inside a compiled graph as in training, for the cross-entropy of
    a softmax output whose true-class logit is 40 below another class.

    The fused form gives 40.0; the clipped written-out form gives -log(1e-7) ~
    16.1. Whatever Keras returns shows which form it computed. Cached per process."""
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
        fused_value = float(FORMULATIONS["fused_logits"](y, logits)[0])
        unfused_value = float(FORMULATIONS["unfused"](y, tf.nn.softmax(logits))[0])
        _FUSION = {
            "keras": keras_value,
            "fused": fused_value,
            "unfused": unfused_value,
            "keras_fuses": bool(abs(keras_value - fused_value) < 1e-3 * fused_value),
        }
    return dict(_FUSION)


class LossRemedy(Remedy):
    """Rewrites the head and the loss of any classifier (see the module text)."""

    name = "loss"
    description = "Softmax/sigmoid + cross-entropy formulation: unfused (written-out log), Keras default, fused on logits"
    space = Categorical(list(FORMULATIONS))
    baseline = "keras_default"
    touches = ("model.head", "compile.loss")
    invasiveness = 1

    def configure_model(self, value: Any, model: ModelPlan) -> None:
        model.set("head", FORMULATIONS[value].head, by=self.name)

    def configure_compile(self, value: Any, compile: CompilePlan) -> None:
        compile.set("loss", FORMULATIONS[value], by=self.name)

    def probe_metrics(self, value: Any) -> Sequence[ProbeMetric]:
        return (
            ProbeMetric("probe_keras_ce", _mean_over_batch(FORMULATIONS["keras_default"].from_logits),
                        "Keras's cross-entropy of the probe batch's softmax output"),
            ProbeMetric("probe_fused_ce", _mean_over_batch(FORMULATIONS["fused_logits"].from_logits),
                        "the fused cross-entropy on the probe batch's logits"),
            ProbeMetric("probe_unfused_ce", _mean_over_batch(FORMULATIONS["unfused"].from_logits),
                        "the clipped written-out cross-entropy on the probe batch"),
        )

    def run_facts(self, value: Any) -> Mapping[str, Any]:
        if value != "keras_default":
            return {}
        return {"keras_fuses": keras_fusion_check()["keras_fuses"]}

    def suggest(self, symptoms: frozenset[str], facts: Mapping[str, Any]) -> Sequence[Any]:
        trigger = {"collapsed", "diverged", "exploding_logits", "zero_gradients", "handwritten_loss", "softmax_twice",
                   "improper_output_activation", "softmax_missing", "probabilities_from_logits", "custom_loss_on_logits"}
        return ["fused_logits"] if symptoms & trigger else ()

    def explore(self, facts: Mapping[str, Any]) -> Sequence[Any]:
        return ["fused_logits"] if facts.get("rewritable") else ()

    def describe_change(self, value: Any, facts: Mapping[str, Any]) -> str:
        binary = facts.get("output_units") == 1
        if value == "fused_logits":
            loss = "BinaryCrossentropy" if binary else ("CategoricalCrossentropy" if facts.get("one_hot_labels") else "SparseCategoricalCrossentropy")
            heads = [a for a in facts.get("head_activations") or [] if a != "linear"]
            if len(heads) > 1:  # softmax twice: both go
                what = f"remove all {len(heads)} output activations ({' then '.join(heads)}; the last layer then outputs logits)"
            elif heads:
                what = f"remove the output activation ({heads[0]}; the last layer then outputs logits)"
            else:
                what = "keep the output as it is (it already outputs logits)"
            text = (f"{what} and compile with loss=keras.losses.{loss}(from_logits=True); "
                    f"apply {'sigmoid' if binary else 'softmax'} only to read probabilities")
            own = facts.get("loss")
            if isinstance(own, str) and own and _snake(own) not in KERAS_LOSSES:
                # the fused loss replaces a loss of the user's own: what it adds (a class weight, a focal term) is not in it
                text += (f"; this replaces your own loss ({own}): if it weights classes or samples, keep that by passing "
                         f"class_weight= or sample_weight= to fit; if it adds a term (a focal factor, a penalty), write it on "
                         f"the logits (e.g. keras.losses.{'BinaryFocalCrossentropy' if binary else 'CategoricalFocalCrossentropy'}"
                         f"(from_logits=True) for a focal loss)")
            return text
        if value == "keras_default":
            return f"end the model in {'sigmoid' if binary else 'softmax'} and use Keras's {'binary' if binary else 'categorical'}_crossentropy"
        return "end the model in softmax and write the cross-entropy out on the probabilities (the unstable form)"

    def report_section(self, trials: Any, curves: Any) -> ReportSection | None:
        """For ``keras_default`` runs: what Keras computed in the runs' processes,
        and how far their curves are from the ``fused_logits`` and ``unfused`` runs
        with the same seed and other knobs."""
        import numpy as np

        if "loss" not in trials or not (trials["loss"] == "keras_default").any():
            return None
        kd = trials[trials["loss"] == "keras_default"]
        fuses = kd["keras_fuses"].dropna() if "keras_fuses" in kd else []
        n_fuses = int(sum(str(v).lower() in ("true", "1", "1.0") for v in fuses))
        knob_cols = [c for c in trials.attrs.get("knobs", []) if c != "loss"]
        rows: list[tuple[Any, ...]] = [("keras_default runs compared with", "pairs (same seed and other knobs)",
                                         "identical val. accuracy curves", "largest difference in val. accuracy")]
        # keyed and grouped once (not one filter per run): a report of 100,000 runs stays fast
        key = trials[["seed", *knob_cols]].astype(str).agg("|".join, axis=1)
        first = {}
        for loss, k, number in zip(trials["loss"], key, trials["trial_number"]):
            first.setdefault((loss, k), number)
        val = {n: g.to_numpy(dtype=float) for n, g in curves.groupby("trial_number")["val_accuracy"]} if not curves.empty else {}
        for other in ("fused_logits", "unfused"):
            diffs = []
            for number, k in zip(kd["trial_number"], key[kd.index]):
                match = first.get((other, k))
                if match is None or number not in val or match not in val:
                    continue
                a, b = val[number], val[match]
                n = min(len(a), len(b))
                if n:
                    diffs.append(float(np.nanmax(np.abs(a[:n] - b[:n]))))
            rows.append((other, len(diffs), sum(d < 1e-6 for d in diffs), f"{max(diffs):.3g}" if diffs else "–"))
        return ReportSection(
            title="Keras fused keras_default",
            paragraphs=(
                f"Asked inside a compiled graph for the cross-entropy of a softmax output whose true-class logit is "
                f"40 below another class, Keras returned the fused value (40) rather than the clipped written-out one "
                f"(16.1) in {n_fuses} of {len(fuses)} keras_default runs: it took the logits from under the softmax "
                f"(_get_logits in Keras's TensorFlow backend).",
                "So a softmax layer followed by Keras's own loss is not the unstable case in Keras 3: the written-out "
                "unfused form is.",
            ),
            table=tuple(rows),
        )
