"""The one recorder every trainer feeds.

A trainer reports, per run, the in-epoch probe accuracies and, after each epoch,
Keras's metrics and the diagnostics on the probe batch; the :class:`Recorder`
keeps the curves, notices NaN/Inf, decides the early stop, and at the end
classifies the run and assembles its :class:`~.result.RunResult`.

The diagnostics themselves are computed by :func:`diagnostics`, written once over
tensors with a leading "slice" axis: the Keras path passes one slice, the packed
trainer one slice per run of its pack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .result import DIAGNOSTIC_KEYS, RunOutcome, RunResult, Thresholds, classify, oscillations, should_stop
from .symptoms import run_symptoms


#: A swing of validation accuracy counts towards ``oscillations`` when it is at
#: least this share of the gap between chance and perfect accuracy.
OSCILLATION_AMPLITUDE = 0.06


def probe_steps(steps_per_epoch: int, n: int) -> list[int]:
    """Steps of an epoch after which the probe accuracy is read: geometric
    (1, 2, 3, 7, 12, 23, ...), since a collapse can happen within a few steps."""
    if not n or steps_per_epoch <= 1:
        return []
    n = min(n, 64)  # a sweep file cannot ask for more (and more would only repeat steps)
    return sorted({max(1, round(steps_per_epoch ** (k / n))) for k in range(n)} - {steps_per_epoch})


@dataclass(frozen=True)
class ProbeSchedule:
    """Where in an epoch the probe accuracy is read, for every trainer and Watch:
    after each of ``steps`` in the first ``epochs`` epochs (:func:`probe_steps`)."""

    steps: tuple[int, ...]
    epochs: int
    steps_per_epoch: int

    @classmethod
    def of(cls, steps_per_epoch: int, training: Any) -> "ProbeSchedule":
        """The schedule a sweep's ``[training]`` asks for (``early_probes``, ``early_probe_epochs``)."""
        steps = tuple(probe_steps(steps_per_epoch, training.early_probes))
        return cls(steps, min(training.early_probe_epochs, training.epochs) if steps else 0, steps_per_epoch)

    def cuts(self, epoch: int) -> list[int]:
        """Step boundaries of epoch ``epoch`` (0-based): train from one to the
        next, reading the probe at each inner boundary."""
        return [0, *(self.steps if epoch < self.epochs else ()), self.steps_per_epoch]

    def crossed(self, epoch: int, before: int, after: int) -> bool:
        """Whether a probe step lies in ``(before, after]`` of epoch ``epoch``:
        for a loop that learns its step count only after a batch (or several,
        with ``steps_per_execution``)."""
        return epoch < self.epochs and any(before < s <= after for s in self.steps)


#: Where this process reports the share of epochs its runs in flight have
#: trained (``report(recorder id, share or None when it finished)``); set by a
#: sweep's worker for the coordinator's progress line, unset elsewhere.
_EPOCH_SINK: Any = None


def report_epochs_to(sink: Any) -> None:
    """Send every recorder's progress in this process to ``sink`` (``None``: nowhere)."""
    global _EPOCH_SINK
    _EPOCH_SINK = sink


def _report(recorder: Any, share: float | None) -> None:
    if _EPOCH_SINK is not None:
        try:
            _EPOCH_SINK(id(recorder), share)
        except Exception:
            pass  # progress is a courtesy: it never costs a run


class Peers:
    """Runs trained as one batch of several configurations (a doctor search
    round), so that the unpromising ones stop first. Runs of one configuration
    are judged together and never stop each other.

    * Hopeless: a run whose configuration has not risen above chance on any seed
      by ``share`` of its epochs (at least 2), when another configuration of the
      batch had risen by that epoch, stops there.
    * Successive halving (asynchronous, as in ASHA): at each rung (the run's
      epochs divided by ``eta``, ``eta``², ... while at least 2 epochs), a
      configuration goes on only if it is among the best ``1/eta`` of the
      configurations that have reached that rung, by their mean validation
      accuracy there over their seeds (a diverged run counts below any other).
      A configuration less than one validation sample's worth behind another is
      not behind it, and configurations tied at the boundary all go on, unless
      they are not above chance there while another is ahead of them. The
      configurations in ``protect`` (changes that remove a cause seen in the
      model) are never halved: they train their full length unless hopeless.

    Runs trained together (one pack) see each other epoch by epoch (the pack's
    loop records every run's epoch before it asks, :meth:`Recorder.consult_peers`);
    a run trained after another has finished sees what that one showed."""

    def __init__(self, share: float = 1 / 3, eta: int = 3, halving: bool = True, protect: frozenset[str] = frozenset()):
        self.share, self.eta, self.halving, self.protect = share, eta, halving, protect
        self.risen_at: dict[str, int] = {}  # configuration -> the first epoch (1-based) one of its runs had risen by
        self.at_rung: dict[int, dict[str, list[float]]] = {}  # rung -> configuration -> each run's accuracy there
        self.decided: dict[tuple[str, int], bool] = {}  # (configuration, rung) -> stopped there
        self.above: set[tuple[str, int]] = set()  # (configuration, rung) where a run of it was above chance

    def note(self, key: str, epochs_run: int) -> None:
        self.risen_at.setdefault(key, epochs_run)

    def hopeless(self, key: str, epochs_run: int, epochs: int) -> bool:
        if key in self.risen_at or epochs_run < max(2, math.ceil(self.share * epochs)) or epochs_run >= epochs:
            return False
        return any(at <= epochs_run for other, at in self.risen_at.items() if other != key)

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs at which a run of ``epochs`` is judged against its peers."""
        if not self.halving:
            return ()
        out, k = set(), 1
        while epochs / self.eta ** k >= 2:
            out.add(round(epochs / self.eta ** k))
            k += 1
        return tuple(sorted(r for r in out if r < epochs))

    def reached(self, key: str, epochs_run: int, epochs: int, accuracy: float, above_chance: bool = True) -> None:
        """A run of ``key`` ended epoch ``epochs_run`` at validation ``accuracy``
        (``above_chance``: by the outcome rules' rise margin)."""
        if epochs_run in self.rungs(epochs):
            self.at_rung.setdefault(epochs_run, {}).setdefault(key, []).append(accuracy if math.isfinite(accuracy) else -1.0)
            if above_chance and math.isfinite(accuracy):
                self.above.add((key, epochs_run))

    def halved(self, key: str, epochs_run: int, epochs: int, grain: float) -> bool:
        """Whether ``key`` stops at this rung (decided once per configuration and rung)."""
        if epochs_run not in self.rungs(epochs) or key in self.protect:
            return False
        if (key, epochs_run) not in self.decided:
            scores = {k: sum(v) / len(v) for k, v in self.at_rung.get(epochs_run, {}).items() if v}
            mine = scores.get(key)
            keep = max(1, math.ceil(len(scores) / self.eta))
            ahead = sum(1 for k, s in scores.items() if k != key and mine is not None and s > mine + grain)
            # not above chance there, with another configuration ahead: a tie at chance is no reason to go on
            self.decided[(key, epochs_run)] = mine is not None and (ahead >= keep or (ahead and (key, epochs_run) not in self.above))
        return self.decided[(key, epochs_run)]


class Recorder:
    """The record of one run while it trains.

    ``sweep``: the run's :class:`~.config.Sweep` (epochs, outcome rules, early stop).
    ``chance``: the majority-class rate of the validation labels.
    ``extra_curves``: names of the remedies' probe metrics."""

    def __init__(self, sweep: Any, chance: float, steps_per_epoch: int, extra_curves: Sequence[str] = (), early_stop: bool | None = None,
                 n_val: int | None = None, peers: tuple[Peers, str] | None = None, diagnostics: bool = True):
        self.sweep = sweep
        #: whether the trainer computes the probe diagnostics each epoch (else only
        #: Keras's metrics, the probe accuracy and whether the weights are finite)
        self.diagnostics = diagnostics
        self.chance = chance
        self.thresholds = Thresholds.of(chance, sweep.outcome, n_val)
        self.early_stop = sweep.early_stop.enabled if early_stop is None else early_stop
        self.steps_per_epoch = steps_per_epoch
        self.schedule = ProbeSchedule.of(steps_per_epoch, sweep.training)
        keys = ("loss", "accuracy", "val_loss", "val_accuracy", *DIAGNOSTIC_KEYS, *extra_curves, "nonfinite")
        self.curves: dict[str, list[float]] = {k: [] for k in dict.fromkeys(keys)}
        self.dead_by_layer: list[list[float]] = []
        self.early_probes: list[tuple[float, float]] = []
        self.nonfinite_epoch: int | None = None
        self.early_stopped = False
        self.stopped = False
        self.peers = peers  # (the batch's Peers, this run's configuration)
        self.hopeless = False  # stopped by its peers: still at chance while other configurations had risen
        self.halved_at: int | None = None  # stopped by its peers at this rung of successive halving
        self.n_val = n_val

    @classmethod
    def for_run(cls, built: Any, sweep: Any, early_stop: bool | None = None, peers: Peers | None = None,
                diagnostics: bool = True) -> "Recorder":
        """The recorder of one built run, as every trainer makes it."""
        from .config import config_id

        return cls(sweep, built.data.chance, built.steps_per_epoch, [m.name for m in built.probe_metrics], early_stop,
                   n_val=len(built.data.y_val), peers=(peers, config_id(built.knobs)) if peers is not None else None,
                   diagnostics=diagnostics)

    @property
    def probe_epochs(self) -> int:
        return self.schedule.epochs

    @property
    def epochs_run(self) -> int:
        return len(self.curves["val_accuracy"])

    def add_probe(self, epoch: int, step: int, accuracy: float) -> None:
        """The probe accuracy after ``step`` steps of epoch ``epoch`` (0-based)."""
        if not self.stopped:
            self.early_probes.append((round(epoch + step / self.steps_per_epoch, 4), float(accuracy)))

    def end_epoch(self, metrics: dict[str, float], diagnostics: dict[str, Any] | None, weights_finite: bool = True,
                  consult_peers: bool = True) -> bool:
        """Record one epoch; returns True when the run should stop here.
        ``consult_peers=False``: the batch's other runs are still to record this
        epoch; the caller asks :meth:`consult_peers` once they have."""
        if self.stopped:
            return True
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.curves[key].append(float(metrics.get(key, float("nan"))))
        diagnostics = diagnostics or {}
        for key in self.curves:
            if key in ("loss", "accuracy", "val_loss", "val_accuracy", "nonfinite"):
                continue
            self.curves[key].append(float(diagnostics.get(key, float("nan"))))
        dead = [float(v) for v in diagnostics.get("dead_by_layer", [])]
        self.dead_by_layer.append(dead)
        nonfinite = not math.isfinite(self.curves["loss"][-1]) or not weights_finite
        self.curves["nonfinite"].append(float(nonfinite))
        epoch = self.epochs_run
        if nonfinite and self.nonfinite_epoch is None:
            self.nonfinite_epoch = epoch
        last = epoch >= self.sweep.training.epochs
        stop = False
        val = self.curves["val_accuracy"]
        rose = max([*val, *(a for _, a in self.early_probes)]) >= self.thresholds.rise
        if self.peers is not None:
            if rose:
                self.peers[0].note(self.peers[1], epoch)
            self.peers[0].reached(self.peers[1], epoch, self.sweep.training.epochs, -1.0 if nonfinite else val[-1],
                                  above_chance=not nonfinite and val[-1] >= self.thresholds.rise)
        if self.early_stop:
            stop = nonfinite or should_stop(val, rose, self.thresholds, self.sweep.early_stop.patience)
        if stop:
            self.early_stopped = not last
        self.stopped = stop or last
        _report(self, 1.0 if self.stopped else epoch / max(1, self.sweep.training.epochs))
        if consult_peers and not self.stopped:
            return self.consult_peers()
        return stop

    def consult_peers(self) -> bool:
        """Whether the batch's other configurations stop this run after the
        epoch it recorded last (hopeless, or halved at a rung); stops it if so."""
        if self.stopped or not self.early_stop or self.peers is None:
            return self.stopped
        peers, key = self.peers
        epoch, epochs = self.epochs_run, self.sweep.training.epochs
        if peers.hopeless(key, epoch, epochs):
            self.hopeless = True
        elif peers.halved(key, epoch, epochs, 1.0 / self.n_val if self.n_val else 0.0):
            self.halved_at = epoch
        else:
            return False
        self.early_stopped = self.stopped = True
        _report(self, 1.0)
        return True

    def finish(self, *, error: str | None = None, seconds: float = 0.0, n_params: int = 0, path: str = "keras",
               pack_size: int = 0, path_note: str = "", facts: dict[str, Any] | None = None) -> RunResult:
        facts = dict(facts or {})
        if self.hopeless:
            facts["stopped_hopeless"] = True
        if self.halved_at is not None:
            facts["stopped_halving"] = self.halved_at
        _report(self, None)
        c = classify(self.curves["val_accuracy"], self.thresholds, self.sweep.outcome, early_probes=self.early_probes,
                     nonfinite_epoch=self.nonfinite_epoch, error=error)
        swings = oscillations(self.curves["val_accuracy"], OSCILLATION_AMPLITUDE * (1 - self.chance))
        symptoms = [c.outcome.value] if c.outcome is not RunOutcome.HEALTHY else []
        symptoms += run_symptoms(self.curves, swings, {**facts, "chance": self.chance})
        return RunResult(
            outcome=c.outcome,
            peak_val_accuracy=c.peak,
            final_val_accuracy=c.final,
            epochs_run=self.epochs_run,
            train_seconds=round(seconds, 4),
            chance=self.chance,
            peak_epoch=c.peak_epoch,
            collapse_epoch=c.collapse_epoch,
            first_nonfinite_epoch=self.nonfinite_epoch,
            early_stopped=self.early_stopped,
            oscillations=swings,
            message=(error or "")[:2000],
            symptoms=symptoms,
            curves=self.curves,
            early_probes=self.early_probes,
            dead_by_layer=self.dead_by_layer,
            n_params=n_params,
            path=path,
            pack_size=pack_size,
            path_note=path_note,
            facts=facts,
        )


def diagnostics(
    logits: Any,
    targets: Any,
    preacts: Sequence[Any],
    grads: Sequence[Any],
    kernel_grads: Sequence[Any],
    first_last: tuple[Any, Any] | None,
    weights: Sequence[Any],
    binary: bool,
    probe_metrics: Sequence[Any] = (),
    penalty: Any = None,
) -> dict[str, Any]:
    """Per-slice diagnostics on the probe batch. Every tensor has a leading slice
    axis ``S``: logits ``[S, B, C]``, one-hot targets ``[S, B, C]``, hidden
    pre-activations ``[S, B, ..., units]``, gradients and weights ``[S, ...]``.
    ``penalty``: the regularization losses, ``[S]`` (or a scalar for one slice).
    Returns ``[S]`` tensors (``dead_by_layer``: ``[S, layers]``)."""
    import tensorflow as tf

    def per_slice_sq(ts: Sequence[Any]) -> Any:
        return tf.add_n([tf.reduce_sum(tf.square(t), axis=list(range(1, len(t.shape)))) for t in ts])

    S = tf.shape(weights[0])[0] if weights else 1
    out: dict[str, Any] = {
        "grad_norm": tf.sqrt(per_slice_sq(grads)) if grads else tf.zeros([S]),
        "weight_norm": tf.sqrt(per_slice_sq(weights)) if weights else tf.zeros([S]),
    }
    if logits is not None:
        out["logit_abs_mean"] = tf.reduce_mean(tf.abs(logits), axis=[1, 2])
        out["logit_max"] = tf.reduce_max(tf.abs(logits), axis=[1, 2])
        # spread across classes; for one output unit, the spread of the logit itself
        out["logit_spread"] = tf.reduce_mean(tf.math.reduce_std(logits, axis=-1), axis=1) if not binary else tf.math.reduce_std(logits[..., 0], axis=1)
    if kernel_grads:
        zeros = tf.add_n([tf.reduce_sum(tf.cast(tf.equal(g, 0.0), tf.float32), axis=list(range(1, len(g.shape)))) for g in kernel_grads])
        total = float(sum(int(math.prod(g.shape[1:])) for g in kernel_grads))
        out["zero_grad_fraction"] = zeros / total
    if first_last is not None:
        first, last = first_last
        out["grad_norm_first"] = tf.sqrt(per_slice_sq([first]))
        out["grad_norm_last"] = tf.sqrt(per_slice_sq([last]))
    if preacts:
        # a unit (channel) is dead if its pre-activation is <= 0 for every sample and position
        dead = [tf.reduce_mean(tf.cast(tf.reduce_all(p <= 0.0, axis=list(range(1, len(p.shape) - 1))), tf.float32), axis=-1) for p in preacts]
        out["dead_by_layer"] = tf.stack(dead, axis=1)
        out["dead_fraction"] = tf.reduce_mean(out["dead_by_layer"], axis=1)
    if penalty is not None:
        out["penalty"] = penalty * tf.ones([S])
    for metric in probe_metrics if logits is not None else ():
        out[metric.name] = metric.fn(logits, targets, binary)
    return out


def slice_values(d: dict[str, Any], s: int) -> dict[str, Any]:
    """The diagnostics of slice ``s`` as Python numbers."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        v = v[s]
        out[k] = [float(x) for x in v] if getattr(v, "ndim", 0) else float(v)
    return out
