"""One way to train: the trainer contract and the one router every caller uses.

A :class:`Trainer` says which built runs it takes (:meth:`Trainer.why_not`,
with a cheaper look at the plan first, :meth:`Trainer.plan_problem`) and
trains a group of them (:meth:`Trainer.train`), feeding one
:class:`~.recorder.Recorder` per run on the group's one
:class:`~.recorder.ProbeSchedule`. The packing trainers share one epoch loop
(:func:`epoch_loop`), each supplying its compiled steps (:class:`Pack`); the
Keras path is Keras's own ``fit`` loop with the recorder as a callback. The
three built in are tried in order (:data:`TRAINERS`):

- ``stacked`` (:mod:`.packed`): models that are Dense chains, their weights
  stacked along a slice axis, one batched matmul per layer for the whole pack;
- ``graph`` (:mod:`.graph_pack`): any model built from allow-listed layers, each
  run its own compiled model, the pack one compiled function;
- ``keras`` (:mod:`.keras_trainer`): Keras's own ``fit``, which takes every run.

:func:`train_batch` is the router: it builds each run once, gives it to the
first trainer that takes it, cuts each trainer's runs into packs of at most
``max_pack``, and trains a pack that fails again run by run on the Keras path,
saying why in ``path_note``. A sweep's worker, doctor and ``bench`` all train
through it. The coordinator's pack keys (:func:`pack_assignment`) only decide
which queued runs a worker claims together.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence

from remedysweep.remedies import Registry, TrialPlan

from .build import BuiltRun, Setup, build_run
from .config import build_plan
from .keras_trainer import error_message
from .recorder import Peers, ProbeSchedule, Recorder
from .result import RunResult

Run = tuple[Mapping[str, Any], int]  # (knobs, seed)


class Trainer:
    """What every trainer provides. ``name`` is the ``path`` column of
    ``trials.csv``. ``shares_model``: the trainer only reads a built model's
    initial weights, so runs of one seed and model plan may share one built,
    uncompiled model. ``packs``: it trains several runs at once."""

    name = ""
    shares_model = False
    packs = True

    def plan_problem(self, setup: Setup, plan: TrialPlan, knobs: Mapping[str, Any]) -> str:
        """Why the run cannot be taken, read off its plan before anything is built ("" if it may)."""
        return ""

    def why_not(self, built: BuiltRun) -> str:
        """Why this built run is not taken ("" if it is): the trainer's allow-list."""
        raise NotImplementedError

    def group(self, built: BuiltRun) -> Hashable:
        """Runs of one group may train together."""
        return id(built)

    def train(self, builts: Sequence[BuiltRun], schedule: ProbeSchedule, recorders: Sequence[Recorder],
              epoch_seconds: list[float] | None = None) -> float:
        """Train ``builts`` together, each feeding its recorder at ``schedule``'s
        probe steps; returns the wall time. Raises if the group's training
        itself fails (the router then trains its runs alone)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<trainer {self.name}>"


class StackedTrainer(Trainer):
    name = "stacked"
    shares_model = True

    def plan_problem(self, setup: Setup, plan: TrialPlan, knobs: Mapping[str, Any]) -> str:
        from .packed import stack_problem

        return _callbacks_problem(plan) or stack_problem(plan, knobs, setup.registry) or _base_chain_problem(setup)

    def why_not(self, built: BuiltRun) -> str:
        from .packed import stack_facts

        return stack_facts(built)[1]

    def group(self, built: BuiltRun) -> Hashable:
        from .packed import stack_facts

        return stack_facts(built)[0].key

    def train(self, builts: Sequence[BuiltRun], schedule: ProbeSchedule, recorders: Sequence[Recorder],
              epoch_seconds: list[float] | None = None) -> float:
        from .packed import PackedTrainer, stack_facts

        facts = [stack_facts(b)[0] for b in builts]
        pack = PackedTrainer(builts, [f.chain for f in facts], recorders[0].sweep, facts[0].optimizer_cls, facts[0].optimizer_config,
                             [f.learning_rate for f in facts])
        return epoch_loop(pack, recorders, schedule, recorders[0].sweep.training.epochs, epoch_seconds)


class GraphTrainer(Trainer):
    name = "graph"

    def plan_problem(self, setup: Setup, plan: TrialPlan, knobs: Mapping[str, Any]) -> str:
        return _callbacks_problem(plan)

    def why_not(self, built: BuiltRun) -> str:
        from .graph_pack import graph_problem

        return graph_problem(built)

    def group(self, built: BuiltRun) -> Hashable:
        return built.batch_size

    def train(self, builts: Sequence[BuiltRun], schedule: ProbeSchedule, recorders: Sequence[Recorder],
              epoch_seconds: list[float] | None = None) -> float:
        from .graph_pack import GraphPack

        return epoch_loop(GraphPack(builts, recorders[0].sweep, diagnostics=recorders[0].diagnostics), recorders, schedule, recorders[0].sweep.training.epochs, epoch_seconds)


class KerasTrainer(Trainer):
    """Keras's own ``fit``, one run at a time; takes every run. ``callbacks``:
    more Keras callbacks for every run (doctor's sanity check). Whether the
    probe diagnostics are computed is the run's recorder's to say, as for the
    graph packs (``train_batch(..., diagnostics=False)``)."""

    name = "keras"
    packs = False

    def __init__(self, callbacks: tuple[Any, ...] = ()):
        self.callbacks = tuple(callbacks)

    def why_not(self, built: BuiltRun) -> str:
        return ""

    def train(self, builts: Sequence[BuiltRun], schedule: ProbeSchedule, recorders: Sequence[Recorder],
              epoch_seconds: list[float] | None = None) -> float:
        from .keras_trainer import fit_run

        seconds = 0.0
        for built, recorder in zip(builts, recorders):
            seconds += fit_run(built, recorder, callbacks=self.callbacks, diagnostics_on=recorder.diagnostics)
        return seconds


class Pack(Protocol):
    """What a packing trainer's compiled pack does for :func:`epoch_loop`: the
    loop is written once, the steps are the pack's own. ``live``: the indices of
    the runs still training (not stopped)."""

    steps: int  # steps per epoch

    def begin_epoch(self, epoch: int, live: list[int]) -> None:
        """Prepare the epoch's batches (each run's own order)."""

    def train_steps(self, start: int, stop: int) -> None:
        """Steps ``[start, stop)`` of the epoch, for the live runs."""

    def probe_accuracies(self, live: list[int]) -> list[float]:
        """Each live run's accuracy on the probe batch, now."""

    def end_epoch(self, live: list[int]) -> list[tuple[dict[str, float], dict[str, Any], bool]]:
        """Each live run's (metrics, diagnostics, weights finite) for the epoch."""

    def shrink(self, live: list[int], seconds: list[float], epochs_left: int) -> "Pack | None":
        """A smaller pack of the live runs when that saves time (their state
        carried over), or ``None`` to go on as is."""


def epoch_loop(pack: Pack, recorders: Sequence[Recorder], schedule: ProbeSchedule, epochs: int,
               epoch_seconds: list[float] | None = None) -> float:
    """The epoch loop of every packing trainer: the pack trains from probe step
    to probe step (:meth:`~.recorder.ProbeSchedule.cuts`), each live run's
    recorder hears the probe accuracies and the epoch's end, and runs that
    stopped stop costing (the pack skips them, or shrinks). Returns the wall time."""

    recorders = list(recorders)
    index = list(range(len(recorders)))  # the pack's run i is recorders[index[i]]
    t0 = time.perf_counter()
    seconds: list[float] = []
    for epoch in range(epochs):
        live = [i for i, r in enumerate(index) if not recorders[r].stopped]
        if not live:
            break
        started = time.perf_counter()
        pack.begin_epoch(epoch, live)
        cuts = schedule.cuts(epoch)
        for a, b in zip(cuts[:-1], cuts[1:]):
            pack.train_steps(a, b)
            if b < pack.steps:
                for i, accuracy in zip(live, pack.probe_accuracies(live)):
                    recorders[index[i]].add_probe(epoch, b, accuracy)
        for i, (metrics, diagnostics, finite) in zip(live, pack.end_epoch(live)):
            recorders[index[i]].end_epoch(metrics, diagnostics, finite, consult_peers=False)
        for i in live:  # every run of the pack has recorded the epoch: now they may be judged against each other
            recorders[index[i]].consult_peers()
        seconds.append(time.perf_counter() - started)
        if epoch_seconds is not None:
            epoch_seconds.append(seconds[-1])
        still = [i for i in live if not recorders[index[i]].stopped]
        if still and len(still) < len(index):
            smaller = pack.shrink(still, seconds, epochs - epoch - 1)
            if smaller is not None:
                pack, index = smaller, [index[i] for i in still]
    return time.perf_counter() - t0


STACKED, GRAPH, KERAS = StackedTrainer(), GraphTrainer(), KerasTrainer()
#: The trainers, in the order the router offers them a run.
TRAINERS: tuple[Trainer, ...] = (STACKED, GRAPH, KERAS)


def _callbacks_problem(plan: TrialPlan) -> str:
    if plan.fit.callbacks:
        owner = plan.fit.owner("callbacks") or "a plugin"
        return f"fit.callbacks (set by {owner}) run inside fit"
    return ""


def _base_chain_problem(setup: Setup) -> str:
    """Why the sweep's base model is not a Dense chain ("" if it is), read once per setup."""
    cached = getattr(setup, "_chain_problem", None)
    if cached is None:
        from .packed import chain_of

        if setup.sweep.model.kind == "mlp":
            cached = ""
        else:
            try:
                cached = chain_of(build_run(setup, {}, 0, compile=False).model)[1]
            except Exception as exc:
                cached = f"the model cannot be read layer by layer: {error_message(exc)}"
        setup._chain_problem = cached  # type: ignore[attr-defined]
    return cached


def base_problem(setup: Setup) -> str:
    """Why no run of this sweep can be packed ("" if runs may be): the base
    model, as built, must be a Dense chain (stacked) or be built from layers on
    the graph pack's allow-list. Read once per setup."""
    cached = getattr(setup, "_pack_problem", None)
    if cached is None:
        cached = _base_chain_problem(setup)
        if cached and not cached.startswith("the model cannot be read"):
            try:
                cached = GRAPH.why_not(build_run(setup, {}, 0))
            except Exception as exc:
                cached = f"the model cannot be read layer by layer: {error_message(exc)}"
        setup._pack_problem = cached  # type: ignore[attr-defined]
    return cached


def pack_key(plan: TrialPlan, knobs: Mapping[str, Any], registry: Registry) -> tuple[str | None, str]:
    """``(key, "")`` for a queued run that a worker may claim with the runs of the
    same key, or ``(None, why not)``: runs of one batch size and input scaling
    may end up in one pack once built (:func:`train_batch` decides)."""
    why = _callbacks_problem(plan)
    if why:
        return None, why
    return repr((plan.fit.batch_size, plan.fit.input_scaling)), ""


def pack_assignment(setup: Setup) -> Callable[[dict[str, Any]], str]:
    """``knobs -> pack key`` ("" for a run that trains alone) for the coordinator."""
    if not setup.sweep.training.pack or base_problem(setup):
        return lambda knobs: ""

    def pack_of(knobs: dict[str, Any]) -> str:
        try:
            key, _ = pack_key(build_plan(knobs, setup.registry), knobs, setup.registry)
        except Exception:
            return ""
        return key or ""

    return pack_of


def route(setup: Setup, knobs: Mapping[str, Any], seed: int, trainers: Sequence[Trainer],
          cache: dict[Any, Any] | None = None) -> tuple[BuiltRun, Trainer, str]:
    """Build the run (once, unless a trainer that shares models turns down the
    shared build) and give it to the first of ``trainers`` that takes it:
    ``(built, trainer, why the packing trainers did not take it)``. Raises
    what building raises."""
    plan = build_plan(knobs, setup.registry)
    built, shared, notes = None, False, []
    for trainer in trainers:
        why = trainer.plan_problem(setup, plan, knobs)
        if not why:
            if built is None or (shared and not trainer.shares_model):
                shared = trainer.shares_model
                built = build_run(setup, knobs, seed, compile=not shared, cache=cache if shared else None)
            why = trainer.why_not(built)
            if not why:
                return built, trainer, "" if trainer.packs else (notes[-1] if notes else "")
        notes.append(why)
    raise ValueError(f"no trainer takes this run: {'; '.join(notes)}")


def train_batch(setup: Setup, runs: Sequence[Run], *, trainers: Sequence[Trainer] | None = None, max_pack: int | None = None,
                on_done: Callable[[int], None] | None = None, epoch_seconds: list[float] | None = None,
                early_stop: bool | None = None, peers: Peers | None = None, diagnostics: bool = True) -> list[RunResult]:
    """Train ``runs`` ((knobs, seed) pairs) in this process and return their
    results in the order given; never raises for a fault inside a run.

    ``trainers``: offered each run in order (default :data:`TRAINERS`, or the
    Keras path alone when the sweep turns packing off); the last must take
    every run. ``max_pack``: the largest pack (default the sweep's). ``on_done(n)``
    hears how many runs are done after each run or pack. ``epoch_seconds`` gets
    each packed epoch's wall time (``bench``). ``early_stop``: overrides the
    sweep's early stop for these runs. ``peers``: the runs are one batch whose
    hopeless configurations stop first (:class:`~.recorder.Peers`).
    ``diagnostics=False``: the trainers that compute the probe diagnostics in a
    function of each run's own (graph packs, the Keras path) skip them and check
    only that the weights are finite, which saves tracing a gradient per run
    (doctor's search rounds, where a change is judged by its accuracy)."""
    sweep = setup.sweep
    if trainers is None:
        trainers = TRAINERS if sweep.training.pack else (KERAS,)
    size = max(1, max_pack or sweep.training.max_pack)
    results: dict[int, RunResult] = {}
    cache: dict[Any, Any] = {}
    packs: dict[tuple[str, Hashable], list[tuple[int, BuiltRun]]] = {}
    trainer_of: dict[str, Trainer] = {}

    def done() -> None:
        if on_done is not None:
            on_done(len(results))

    for i, (knobs, seed) in enumerate(runs):
        try:
            built, trainer, note = route(setup, knobs, seed, trainers, cache)
        except Exception as exc:  # a knob that cannot apply, or a model that does not build
            results[i] = RunResult.failure(error_message(exc), setup.data.chance if setup.data is not None else float("nan"))
            done()
            continue
        if not trainer.packs:  # trained at once: the run's model is not kept waiting for the others
            results[i] = _train_group(setup, trainer, [built], [runs[i]], note, early_stop, peers=peers, diagnostics=diagnostics)[0]
            done()
            continue
        trainer_of[trainer.name] = trainer
        packs.setdefault((trainer.name, trainer.group(built)), []).append((i, built))
    for (name, _), members in packs.items():
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            for (i, _), result in zip(chunk, _train_group(setup, trainer_of[name], [b for _, b in chunk], [runs[i] for i, _ in chunk],
                                                          "", early_stop, epoch_seconds, peers, diagnostics)):
                results[i] = result
            done()
    return [results[i] for i in range(len(runs))]


def _train_group(setup: Setup, trainer: Trainer, builts: list[BuiltRun], runs: list[Run], note: str,
                 early_stop: bool | None, epoch_seconds: list[float] | None = None, peers: Peers | None = None,
                 diagnostics: bool = True) -> list[RunResult]:
    recorders = [Recorder.for_run(b, setup.sweep, early_stop, peers, diagnostics) for b in builts]
    started = time.perf_counter()
    try:
        seconds = trainer.train(builts, recorders[0].schedule, recorders, epoch_seconds)
    except Exception as exc:
        if not trainer.packs:  # a fault inside the run: a failed result with its message and what it recorded
            b, rec = builts[0], recorders[0]
            return [rec.finish(error=error_message(exc), seconds=time.perf_counter() - started, n_params=_params(b), path=trainer.name,
                               path_note=note, facts=b.facts)]
        why = f"its {trainer.name} pack failed ({error_message(exc)[:200]}); trained alone"
        return [replace(train_batch(setup, [run], trainers=(KERAS,), early_stop=early_stop, diagnostics=diagnostics)[0], path_note=why)
                for run in runs]
    pack = len(builts) if trainer.packs else 0
    return [rec.finish(seconds=seconds / len(builts), n_params=_params(b), path=trainer.name, pack_size=pack, path_note=note, facts=b.facts)
            for b, rec in zip(builts, recorders)]


def _params(built: BuiltRun) -> int:
    try:
        return int(built.model.count_params())
    except Exception:
        return 0
