"""The doctor's search: targeted candidates first, then pairs of the best
partial fixes, then Optuna over the rest of the remedy space, within a budget
of epochs trained. Every round's candidates train together (packed where they
can) and are halved as they train (:class:`~remedysweep.engine.recorder.Peers`):
each configuration gets a few epochs, and only the most promising go on to
the full length. Once a change makes the model train cleanly on every seed
and fit its own training data (what doctor asks of a healthy model), the
search ends at the first round after it that finds nothing materially better;
otherwise it spends the budget.

The space is the remedies' own: each remedy's ``suggest`` (values for these
symptoms) and ``explore`` (values worth trying on this model) hooks, plugins
included; a value that cannot apply to the model is dropped with the reason.
With ``strategy="random"`` the same budget goes to Optuna's random sampler over
the same space instead (the benchmark's comparison).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from remedysweep.errors import one_line
from remedysweep.remedies import RemedyConflict

from .evidence import Candidate, median, needed_gain, rank_key, trains_well

#: Configurations per exploration round (each round is one pack, halved as it trains).
ROUND = 6
#: Most changes in one configuration the exploration proposes.
MAX_CHANGES = 3


@dataclass
class SearchLog:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    space: dict[str, list[Any]] = field(default_factory=dict)
    #: single changes that remove a cause seen in the model, its settings or the data
    root_changes: set[tuple[str, Any]] = field(default_factory=set)
    spent: int = 0  # epochs trained
    settled: bool = True
    #: why the search ended before its budget was spent ("" when it spent it)
    ended: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)


class Search:
    """One search (see the module text). ``evaluate(configs, source)`` trains
    each configuration over the seeds and returns its :class:`Candidate`.
    ``budget``: the most epochs the search trains. ``eta``: the share of a
    round's configurations (1/eta) that goes on at each rung of the halving."""

    def __init__(self, setup: Any, facts: dict[str, Any], symptoms: set[str], seeds: int, budget: int,
                 evaluate: Callable[[list[dict[str, Any]], str], list[Candidate]], echo: Callable[[str], None],
                 strategy: str = "targeted", sampler_seed: int = 0, eta: int = 3):
        from remedysweep.engine.recorder import Peers

        self.setup, self.facts, self.symptoms = setup, facts, set(symptoms)
        self.seeds, self.budget = seeds, budget
        self.epochs = setup.sweep.training.epochs
        self.rungs = Peers(eta=eta).rungs(self.epochs)
        self.eta = eta
        self.evaluate, self.echo = evaluate, echo
        self.strategy, self.sampler_seed = strategy, sampler_seed
        self.log = SearchLog()
        self.root_changes: set[tuple[str, Any]] = set()
        self._applicable: dict[tuple[tuple[str, Any], ...], str] = {}

    @property
    def registry(self) -> Any:
        return self.setup.registry

    def _why_not(self, knobs: dict[str, Any]) -> str:
        """Why a configuration cannot apply to the model ("" if it can)."""
        from remedysweep.engine.build import build_run
        from remedysweep.engine.config import build_plan

        key = tuple(sorted(knobs.items(), key=lambda kv: kv[0]))
        if key not in self._applicable:
            try:
                build_plan(knobs, self.registry)
                build_run(self.setup, knobs, 0, compile=False)
                self._applicable[key] = ""
            except RemedyConflict as exc:
                self._applicable[key] = str(exc)
            except Exception as exc:
                self._applicable[key] = one_line(exc, with_type=False)
        return self._applicable[key]

    # -- the space -----------------------------------------------------------------

    def targeted(self) -> list[tuple[str, Any]]:
        """Single changes the remedies suggest for the symptoms: first those that
        remove a cause seen in the model or data, then the rest, each group least
        invasive first; those that cannot apply are logged and dropped."""
        from remedysweep.engine.symptoms import suggested_changes

        out: list[tuple[int, int, str, Any]] = []
        for order, (rank, name, v, error) in enumerate(suggested_changes(self.registry, self.symptoms, self.facts)):
            if error:  # a plugin's suggest is its own code
                self.log.skipped.append({"fix": name, "why": error})
                continue
            why = self._why_not({name: v})
            if why:
                self.log.skipped.append({"fix": f"{name}={v}", "why": why})
                self.echo(f"    {name} = {v}: cannot apply ({why[:200]})")
                continue
            out.append((rank, order, name, v))
        out.sort(key=lambda c: (c[0], c[1]))
        self.root_changes = {(name, v) for rank, _, name, v in out if rank < 10}
        return [(name, v) for _, _, name, v in out]

    def space(self, targeted: Sequence[tuple[str, Any]]) -> dict[str, list[Any]]:
        """Knob -> values the exploration may combine: the targeted values and
        each remedy's ``explore`` values that apply to this model."""
        space: dict[str, list[Any]] = {}
        for name, v in targeted:
            space.setdefault(name, []).append(v)
        for name, remedy in self.registry.remedies.items():
            try:
                values = list(remedy.explore(self.facts))
            except Exception:
                continue
            for v in values:
                if v in space.get(name, []) or remedy.check_value(v) or self._why_not({name: v}):
                    continue
                space.setdefault(name, []).append(v)
        return space

    # -- the rounds ------------------------------------------------------------------

    def round_cost(self, n: int) -> int:
        """Epochs a round of ``n`` configurations trains when it is halved as
        planned: every one to the first rung, a 1/eta share on to each next one."""
        cost, reached, go_on = 0, 0, n
        for rung in (*self.rungs, self.epochs):
            cost += go_on * self.seeds * (rung - reached)
            reached, go_on = rung, max(1, math.ceil(go_on / self.eta))
        return cost

    def _room(self) -> int:
        """Configurations the rest of the budget pays for, in one halved round."""
        left = self.budget - self.log.spent
        n = 0
        while self.round_cost(n + 1) <= left and n < 1000:
            n += 1
        return n

    def _round(self, configs: list[dict[str, Any]], source: str) -> list[Candidate]:
        if len(configs) > self._room():
            self.log.settled = False  # the budget cut the round short: what was left out was never looked at
        configs = configs[: self._room()]
        if not configs:
            return []
        halved = f", halved at epoch {', '.join(map(str, self.rungs))}" if self.rungs and len(configs) > 1 else ""
        self.echo(f"    training {len(configs)} {source} change(s) x {self.seeds} seed(s) together{halved} ...")  # a round can take minutes
        found = self.evaluate(configs, source)  # each with its invasiveness
        self.log.spent += sum(int(r.epochs_run or 0) for c in found for r in c.results)
        self.log.candidates += found
        best = min(self.log.candidates, key=rank_key)
        self.log.rounds.append({"source": source, "configs": len(configs), "best": best.label, "best_median": median(best.summary)})
        return found

    def prepare(self) -> dict[str, list[Any]]:
        """The targeted changes and the space, before anything trains."""
        self._targeted = self.targeted()
        self.log.root_changes = set(self.root_changes)
        self.log.space = self.space(self._targeted)
        return self.log.space

    def fixed(self, baseline: Candidate) -> Candidate | None:
        """The best change so far that does what doctor asks of a healthy model
        (:func:`~.evidence.trains_well`) and beats the model as built materially
        (fewer seeds at chance, or the gain the confirmation asks for); None
        for random search, which spends its budget."""
        if self.strategy != "targeted":
            return None
        good = [c for c in self.log.candidates if not c.cut and trains_well(c.summary, self.setup.data.chance)
                and self._better(c, baseline)]
        return min(good, key=rank_key) if good else None

    def _better(self, c: Candidate, than: Candidate) -> bool:
        """``c`` does materially better than ``than``: fewer seeds at chance or
        failed, or a median higher by the gain the confirmation asks for."""
        return c.bad < than.bad or median(c.summary) - median(than.summary) >= needed_gain(self.setup.data.chance)

    def _stop_if_fixed(self, baseline: Candidate, before: Candidate | None, what: str) -> bool:
        """The search ends when a change already trained well before the round
        ``what`` and that round found nothing materially better: one round more
        than the first fix, so that a fix that trains well but falls short of
        what a combination reaches is not the last word."""
        now = self.fixed(baseline)
        if before is None or now is None or (now is not before and self._better(now, before)):
            return False
        self.log.ended = (f"{before.label} trains cleanly on every seed and fits its training data, and the {what} found "
                          "nothing materially better: the search stopped there")
        return True

    def run(self, baseline: Candidate) -> SearchLog:
        if not hasattr(self, "_targeted"):
            self.prepare()
        if self.strategy == "targeted" and self._targeted:
            self._round([{k: v} for k, v in self._targeted], "targeted")
            before = self.fixed(baseline)
            if self._pairs(baseline) and self._stop_if_fixed(baseline, before, "pairs of the best changes"):
                return self.log
        if self._room() and self.log.space:
            self._explore(self.log.space, baseline)
        elif self.log.space:
            self.log.settled = False  # the targeted changes spent the budget: the rest of the space was never looked at
        return self.log

    def _pairs(self, baseline: Candidate) -> bool:
        """Pairs of the best single changes that each did better than the model as built."""
        better = [c for c in sorted(self.log.candidates, key=rank_key) if not c.cut and rank_key(c) < rank_key(baseline)][:3]
        pairs = []
        for a, b in itertools.combinations(better, 2):
            merged = {**a.knobs, **b.knobs}
            if len(merged) < len(a.knobs) + len(b.knobs) or self._why_not(merged):
                continue
            pairs.append(merged)
        if pairs:
            return bool(self._round(pairs, "pair"))
        return False

    def _explore(self, space: dict[str, list[Any]], baseline: Candidate) -> None:
        """Optuna proposes configurations of up to :data:`MAX_CHANGES` changes
        drawn from ``space`` (TPE, or random), told every result so far; rounds
        of :data:`ROUND` until the budget is spent. Each change is one parameter
        over the options "knob=value" (the later ones may be "none"), so that a
        proposal stays a small change to the model, not a new model."""
        import optuna

        options = [f"{k}={v}" for k, vs in space.items() for v in vs]
        value_of = {f"{k}={v}": (k, v) for k, vs in space.items() for v in vs}
        dists = {f"change_{i + 1}": optuna.distributions.CategoricalDistribution(options if i == 0 else ["none", *options])
                 for i in range(MAX_CHANGES)}
        import warnings

        if self.strategy == "random":
            sampler: Any = optuna.samplers.RandomSampler(seed=self.sampler_seed)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # multivariate TPE is marked experimental
                sampler = optuna.samplers.TPESampler(seed=self.sampler_seed, n_startup_trials=4, multivariate=True, group=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        known: dict[tuple[tuple[str, Any], ...], float] = {}

        def knobs_of(params: dict[str, Any]) -> dict[str, Any] | None:
            out: dict[str, Any] = {}
            for name in sorted(params):
                if params[name] == "none":
                    continue
                k, v = value_of[params[name]]
                if k in out:
                    return None  # two values for one knob
                out[k] = v
            return out

        for c in self.log.candidates:  # what the targeted rounds found teaches the sampler
            labels = [f"{k}={v}" for k, v in c.changes]
            if 1 <= len(labels) <= MAX_CHANGES and all(l in value_of for l in labels):
                params = {f"change_{i + 1}": (labels[i] if i < len(labels) else "none") for i in range(MAX_CHANGES)}
                known[tuple(sorted(c.changes))] = _score(c)
                study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=_score(c)))
        attempts = 0
        while self._room() and attempts < 300:
            batch: list[tuple[Any, dict[str, Any]]] = []
            want = min(ROUND, self._room())
            while len(batch) < want and attempts < 300:
                attempts += 1
                trial = study.ask(dists)
                knobs = knobs_of(trial.params)
                key = tuple(sorted(knobs.items())) if knobs is not None else None
                if key is None or not key:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                if key in known:
                    study.tell(trial, known[key])
                    continue
                if any(tuple(sorted(k.items())) == key for _, k in batch) or self._why_not(knobs):
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                batch.append((trial, knobs))
            if not batch:
                break
            last_best = min(self.log.candidates, key=rank_key) if self.log.candidates else baseline
            before = self.fixed(baseline)
            found = self._round([k for _, k in batch], "explore")
            for (trial, knobs), cand in zip(batch, found):
                known[tuple(sorted(knobs.items()))] = _score(cand)
                study.tell(trial, _score(cand))
            now = min(self.log.candidates, key=rank_key)
            self.log.settled = not rank_key(now) < rank_key(last_best) or median(now.summary) - median(last_best.summary) < 0.01
            if self._stop_if_fixed(baseline, before, "last exploration round"):
                self.log.settled = True
                return


def _score(c: Candidate) -> float:
    """The exploration's objective: mean final accuracy over seeds, a run at
    chance (or failed) counting as chance."""
    values = [r.score for r in c.results]
    return float(sum(values) / len(values)) if values else 0.0
