"""The probe: one model's diagnostics and accuracy on the fixed probe batch.

Every trainer that trains a model of its own (the Keras path, graph packs) and
``Watch`` read a model through one :class:`Probe`; the stacked trainer, whose
weights are stacked, computes the same :func:`~.recorder.diagnostics` on its
stacked tensors. What differs between callers is only how the logits and the
hidden pre-activations are read off the model (``taps``) and how its loss is
computed (``loss_of``).

The diagnostics run in inference mode in one compiled function, traced once per
model, so they consume no randomness and leave training as it would be without
them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .recorder import diagnostics, slice_values

#: ``taps(x, prediction) -> (logits or None, [hidden pre-activations])``, inside the compiled function.
Taps = Callable[[Any, Any], tuple[Any, list[Any]]]


class Probe:
    """Diagnostics (:meth:`diagnostics`) and accuracy (:meth:`accuracy`) of
    ``model`` on the probe batch ``x`` (inputs, as the model takes them) with
    labels ``y_true`` and their one-hot rows ``onehot`` (one column for a
    binary model).

    ``binary``: one output unit; ``probabilities``: the output is a probability
    (a threshold of 0.5, else of 0 on a logit). ``first``/``last``: the first
    and last main kernels, for the gradient ratio; ``kernels``: ids of every
    main kernel, for the zero-gradient share. ``metrics``: remedies' probe metrics."""

    def __init__(self, model: Any, x: Any, y_true: Any, onehot: Any, *, binary: bool, probabilities: bool, taps: Taps,
                 loss_of: Callable[[Any], Any], first: Any = None, last: Any = None, kernels: frozenset[int] = frozenset(),
                 metrics: Sequence[Any] = ()):
        import tensorflow as tf

        self.model, self.x, self.binary, self.probabilities = model, x, binary, probabilities
        self.y_true = tf.constant(y_true)
        onehot = tf.constant(onehot, dtype=tf.float32)

        @tf.function(autograph=False)
        def compute() -> dict[str, Any]:
            with tf.GradientTape() as tape:
                pred = model(x, training=False)
                loss = loss_of(pred)
            variables = model.trainable_variables
            grads = tape.gradient(loss, variables)
            pairs = [(v, tf.convert_to_tensor(g)) for v, g in zip(variables, grads) if g is not None]  # embeddings: IndexedSlices
            logits, preacts = taps(x, pred)
            grad_of = {id(v): g for v, g in pairs}
            f32 = lambda t: tf.cast(t, tf.float32)[None]  # noqa: E731  (mixed precision: diagnostics in float32)
            first_last = (f32(grad_of[id(first)]), f32(grad_of[id(last)])) \
                if first is not None and last is not None and id(first) in grad_of and id(last) in grad_of else None
            d = diagnostics(
                f32(logits) if logits is not None else None, onehot[None], [f32(p) for p in preacts],
                [f32(g) for _, g in pairs], [f32(g) for v, g in pairs if id(v) in kernels], first_last,
                [f32(v) for v in variables], binary, metrics,
                penalty=tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) if model.losses else tf.constant(0.0),
            )
            d["weights_finite"] = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.weights if "float" in str(v.dtype)])
            return d

        self.compute = compute  # traced once per model: its tracing count says so
        self._finite: Any = None

    def weights_finite(self) -> bool:
        """Whether every float weight of the model is finite: the one check kept
        when the diagnostics are off (a function of the weights alone, cheap to trace)."""
        import tensorflow as tf

        if self._finite is None:
            weights = [v for v in self.model.weights if "float" in str(v.dtype)]
            self._finite = tf.function(lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in weights])
                                       if weights else tf.constant(True), autograph=False)
        return bool(self._finite())

    def predictions(self, out: Any) -> Any:
        import tensorflow as tf

        if self.binary:
            return tf.cast(tf.cast(out, tf.float32)[:, 0] > (0.5 if self.probabilities else 0.0), tf.int32)
        return tf.argmax(out, axis=-1, output_type=tf.int32)

    def diagnostics(self) -> dict[str, Any]:
        """This epoch's diagnostics as numbers, with ``weights_finite``."""
        d = {k: v.numpy() for k, v in self.compute().items()}
        finite = bool(d.pop("weights_finite"))
        return {**slice_values(d, 0), "weights_finite": finite}

    def accuracy(self) -> float:
        import tensorflow as tf

        out = self.model(self.x, training=False)
        return float(tf.reduce_mean(tf.cast(tf.equal(self.predictions(out), self.y_true), tf.float32)))
