"""One diagnosis, step by step: read the model, check it on easy data, train it
as built over the seeds, search the remedies, confirm the best change on fresh
seeds, and say what it reached.

Steps, each printed:

1. The model: its structure and settings, and the static faults they show
   (:mod:`remedysweep.engine.faults`).
2. Sanity check: the same architecture and loss, Adam at 1e-3, on easy data
   (one pattern per class, a little noise per sample). A failure is a
   symptom the remedies may act on, never a stop.
3. Baseline: the model as built over the seeds, with the diagnostics and the
   symptoms its runs show. A model with no definite problem (no seed at chance,
   failed or degraded, no fault seen in it, no strong run symptom) gets "no
   change needed" here.
4. Search (:mod:`.search`): targeted candidates, pairs, then Optuna, within
   ``budget`` epochs trained (default :data:`BUDGET_RUNS` runs' worth);
   candidates of a round train together and are halved as they train; the
   search stops at the first change that makes the model train well.
5. Verdict: the best change, or among those within the seed noise of it the
   least invasive, re-run with the model as built on as many fresh seeds and
   claimed only when it beats it beyond noise (:mod:`.evidence`); otherwise
   the best partial fix, "no change needed", or, when nothing rose above
   chance and a plain logistic regression does no better, "no remedy helps;
   the labels may not follow from the inputs".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from remedysweep.remedies import AS_BUILT, LossFormulation

from remedysweep.engine.config import DataSpec, KnobSpec, ModelSpec, Sweep, make_sweep
from remedysweep.engine.folder import JOURNAL_FILE, JOURNAL_FILES
from remedysweep.engine.result import RunResult, Thresholds
from remedysweep.engine.symptoms import FITS_TRAINING, STATIC_FAULTS, SYMPTOMS, evidence, model_symptoms

from .evidence import Candidate, confirmed, contenders, median, rank_key, reference_accuracy, select, tolerance, training_fit, within_noise
from .search import Search, SearchLog

#: Symptoms that make a model need a fix even when no seed ended at chance.
DEFINITE = frozenset({"softmax_twice", "improper_output_activation", "softmax_missing", "probabilities_from_logits",
                      "oscillation", "unscaled_inputs", "dead_units", "vanishing_gradients", "exploding_gradients",
                      "zero_gradients", "penalty_dominates", *STATIC_FAULTS})
#: The sanity check trains at least this many epochs and this many updates,
#: whatever the class count, and stops as soon as it passes.
SANITY_EPOCHS, SANITY_UPDATES, SANITY_PASS = 30, 300, 0.95
#: How close to the best change seen a change that removes a root cause must get to be preferred.
REPAIR_MARGIN = 0.05
#: Largest sizes doctor accepts (a bigger request is refused before anything runs); the budget is in epochs.
MAX_SEEDS, MAX_EPOCHS, MAX_BUDGET = 50, 10_000, 1_000_000


def default_budget(epochs: int) -> int:
    """The search's budget when none is given: as many epochs as
    :data:`~remedysweep.engine.config.DOCTOR_BUDGET_RUNS` runs of ``epochs``."""
    from remedysweep.engine.config import DOCTOR_BUDGET_RUNS

    return DOCTOR_BUDGET_RUNS * epochs


def doctor_sweep(model: ModelSpec, data: DataSpec, *, epochs: int, seeds: int, knobs: dict[str, tuple[Any, ...]] | None = None,
                 plugins: tuple[str, ...] = (), name: str = "doctor", pack: bool = True) -> Sweep:
    sweep = make_sweep(name, model=model, data=data, knobs=knobs or {}, seeds=tuple(range(seeds)), epochs=epochs, early_probes=4,
                       pack=pack)
    return replace(sweep, source=f"<{name}>", plugins=tuple(str(Path(p).resolve()) for p in plugins),
                   baseline=tuple((k, AS_BUILT) for k in (knobs or {})))


def _where(spec: str) -> str:
    """``file.py:function`` without the folders, or a file's name."""
    if not spec:
        return ""
    target, sep, func = spec.rpartition(":")
    if sep and not target.endswith((".keras", ".h5")) and "/" not in func:
        return f"{Path(target).name}:{func}"
    path = Path(spec)
    if path.name in ("model.keras", "data.npz") and (path.parent / "watch.json").is_file():
        return f"{path.parent.name}/{path.name}"  # a watched run's folder: its name says which run
    return path.name


def _number(x: float | None) -> str:
    """A setting as the user wrote it: 0.1, not 0.10000000149011612."""
    return "?" if x is None else f"{float(f'{x:.6g}'):g}"


class Doctor:
    """One diagnosis (see the module text); :meth:`run` returns the verdict."""

    def __init__(self, model: ModelSpec, data: DataSpec, *, epochs: int, seeds: int, budget: int | None, plugins: tuple[str, ...],
                 echo: Callable[[str], None], out: Path | None, strategy: str = "targeted", pack: bool = True,
                 watched: dict[str, Any] | None = None):
        self.model, self.data_spec = model, data
        self.epochs, self.seeds, self.plugins = epochs, seeds, plugins
        self.budget = default_budget(epochs) if budget is None else budget  # epochs the search may train
        self.echo, self.out, self.strategy, self.pack = echo, out, strategy, pack
        self.watched = watched or {}
        self.queue = None
        self.root_changes: set[tuple[str, Any]] = set()
        self.epochs_trained = 0  # every epoch of every run doctor trained on the data: baseline, search, confirmation
        self.runs_trained = 0
        self.sanity_steps = 0  # the sanity check's updates on easy data
        self.steps_per_epoch = 0  # of the user's data at the sweep's batch size

    # -- the steps -----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Every step; the verdict says how much training it all took."""
        verdict = self._run()
        sanity = round(self.sanity_steps / self.steps_per_epoch) if self.sanity_steps and self.steps_per_epoch else 0
        verdict["trained"] = {"runs": self.runs_trained, "epochs": self.epochs_trained + sanity, "sanity_steps": self.sanity_steps,
                              "sanity_epochs": sanity}
        self.echo(f"    trained {self.runs_trained} runs, {self.epochs_trained + sanity} epochs in all"
                  + (f" (the sanity check's {self.sanity_steps} steps on easy data counted as {sanity} epoch{'s' if sanity != 1 else ''} of your data)"
                     if self.sanity_steps else ""))
        return verdict

    def _run(self) -> dict[str, Any]:
        import optuna

        from remedysweep.engine.faults import head_faults, learning_rate_schedule, model_facts, model_rescaling, static_faults
        from remedysweep.engine.runtime import configure_tensorflow
        from remedysweep.engine.sources import check_problem

        configure_tensorflow()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep = doctor_sweep(self.model, self.data_spec, epochs=self.epochs, seeds=self.seeds, plugins=self.plugins, pack=self.pack)
        data = check_problem(sweep)  # one-line errors before anything runs
        setup = self._setup(sweep, data)
        info = setup.info
        base_model = setup.source.build(0, setup.data)
        if base_model.built and base_model.weights and not base_model.trainable_weights:  # seed noise would pass for a fix
            from remedysweep.errors import SweepError

            raise SweepError("--model", None, "the model has no trainable weights (every layer frozen): nothing in it can learn, "
                                              "so no change can be verified; unfreeze the layers that should train")
        self.steps_per_epoch = -(-setup.data.n_train // sweep.training.batch_size)
        steps = self.steps_per_epoch * self.epochs
        faults = {**head_faults(base_model, info), **static_faults(base_model, setup.data.n_classes, steps=steps, data=setup.data)}
        facts = {**info.facts(), **setup.data.facts, **model_facts(base_model), "one_hot_labels": setup.data.label_format == "one_hot",
                 "n_classes": setup.data.n_classes, "batch_size": sweep.training.batch_size, "chance": setup.data.chance,
                 "label_format": setup.data.label_format}
        if "inputs_scaled_twice" in faults:  # the scale a change must undo
            facts["model_rescaling"] = model_rescaling(base_model)
        schedule = learning_rate_schedule(base_model, steps)
        if schedule is not None:  # read over the run, not at its first step (a warmup starts at 0)
            facts.update(learning_rate=schedule["in_run"], lr_schedule=schedule["name"], lr_schedule_peak=schedule["peak"])
        data = setup.data
        where = f"{_where(self.model.builder or self.model.path)} on {_where(self.data_spec.loader or self.data_spec.path)}"
        verdict: dict[str, Any] = {"model": where, "facts": facts, "n_classes": data.n_classes, "epochs": self.epochs,
                                   "seeds": self.seeds, "budget": self.budget, "chance": data.chance, "strategy": self.strategy,
                                   "static_faults": faults}
        self.echo(f"model: {info.n_params} parameters, {info.output_units} output unit(s) ending in {info.output_activation}, "
                  f"loss {info.loss}, {info.optimizer} {_rate_phrase(info.learning_rate, schedule)}; "
                  f"{data.n_train} training samples, {data.n_classes} classes, chance {data.chance:.2f}")
        for name, shown in faults.items():
            self.echo(f"    fault: {name}: {shown}")

        replay = self._replay_differences(sweep, data)
        if replay:
            self.echo(f"    the replay differs from the watched run: {replay}")
        self.echo(f"1/5 baseline over {self.seeds} seeds, {self.epochs} epochs ...")
        baseline = self.evaluate(setup, [{}], "baseline", seeds=range(self.seeds))[0]
        base = baseline.summary
        symptoms = set(model_symptoms(info)) | set(faults) | set(base["symptoms"])
        outcome_problems = {k for k in ("at_chance", "failed", "degraded") if base[k]}
        fit = training_fit(base, data.chance)
        underfits = fit is not None and fit < FITS_TRAINING and not outcome_problems  # a run at chance is not "underfitting"
        symptoms.discard("underfitting")  # over the seeds, not one seed's: the verdict and the symptom list say the same
        if underfits:
            symptoms.add("underfitting")
        problems = outcome_problems | (symptoms & DEFINITE) | ({"underfitting"} if underfits else set())
        outcome = max(base["outcomes"], key=base["outcomes"].get)
        self.echo(f"    baseline {outcome}: " + ", ".join(f"{k} {v}" for k, v in base["outcomes"].items())
                  + f"; final accuracy per seed {_per_seed(base)}")
        said = {s: self._evidence(s, baseline, faults, data.chance) for s in sorted(symptoms)}
        for s in sorted(symptoms - set(faults)):
            self.echo(f"    symptom: {s}: {said[s]}")
        for m in base["messages"]:
            self.echo(f"    message: {m}")
        if problems - {"underfitting"}:  # a model that trains healthy, or rises well above chance, can learn: easy data would tell nothing more
            self.echo("2/5 sanity check on easy data (one input pattern per class) ...")
            sanity = self.sanity_check(sweep, data)
            self.echo(f"    {'passed' if sanity['passed'] else 'FAILED'}: accuracy {sanity['accuracy']:.2f} after {sanity['epochs']} epochs"
                      + (f" ({sanity['message']})" if sanity.get("message") else ""))
            if not sanity["passed"]:
                symptoms.add("cannot_learn_easy_data")
        else:
            sanity = {"passed": None, "accuracy": None, "epochs": 0, "message": "not needed: the model trains healthy on every seed"}
            if underfits:
                self.echo(f"    it does not fit its own training data (training accuracy {_train_phrase(base)}): searching for a change "
                          "that does materially better")
        verdict.update(sanity_check=sanity, baseline=base, baseline_outcome=outcome,
                       symptoms=[f"{s}: {said.get(s) or self._evidence(s, baseline, faults, data.chance)}" for s in sorted(symptoms)],
                       symptom_names=sorted(symptoms),
                       baseline_curves=[r.curves.get("val_accuracy", []) for r in baseline.results])
        unreproduced = self._unreproduced(base, replay, faults)
        if unreproduced:
            verdict.update(recommendation=None, tried=[], best_partial=None, watched=self.watched, conclusion=unreproduced)
            self.echo(f"5/5 verdict: {unreproduced}")
            return verdict
        if not problems:
            verdict.update(recommendation=None, tried=[], best_partial=None,
                           conclusion=f"no change needed: healthy on {_seeds_phrase(self.seeds)} (median final accuracy {median(base):.3f}) "
                                      f"and fits its own training data (training accuracy {_train_phrase(base)})"
                           + (f"; noted: {', '.join(sorted(symptoms))}" if symptoms else ""))
            self.echo("2/5 nothing to fix: no sanity check needed; 3/5 search and 4/5 confirmation skipped")
            self.echo(f"5/5 verdict: {verdict['conclusion']}")
            return verdict

        if self.budget == 0:
            self.echo("3/5 search and 4/5 confirmation skipped: the budget is 0 epochs")
        else:
            self.echo(f"3/5 search: targeted changes, then {'Optuna TPE' if self.strategy == 'targeted' else 'random search'} "
                      f"(budget {self.budget} epochs, {self.budget / max(1, self.epochs):g} runs' worth; changes are halved as they train) ...")
        search = Search(setup, facts, symptoms, self.seeds, self.budget, lambda configs, source: self.evaluate(setup, configs, source),
                        self.echo, strategy=self.strategy)
        self._open_study(setup, search.prepare())
        self.root_changes = set(search.root_changes)  # never halved in a round: a change that removes a seen cause trains in full
        self._record({}, baseline.results, range(self.seeds))
        step = "searching"
        try:
            log = search.run(baseline)
            self.echo(f"    search: {log.spent} of {self.budget} epochs spent" + (f"; {log.ended}" if log.ended else ""))
            step = "confirming"
            if log.candidates:
                self.echo("4/5 confirming the best change on fresh seeds ...")
            verdict.update(self.conclude(setup, baseline, log, facts, symptoms, outcome_problems, faults))
        except Exception as exc:  # a fault of doctor's own, late: the verdict keeps what was found, never a traceback
            from remedysweep.errors import one_line

            found = list(search.log.candidates)
            best = min(found, key=rank_key) if found else None
            verdict.update(recommendation=None, best_partial=None, tried=[_tried(c) for c in found], search=None,
                           conclusion=f"doctor stopped with an error of its own while {step} ({one_line(exc)}); "
                                      f"{len(found)} change(s) had been tried" + (
                                          f", the best {best.label} with median final accuracy {median(best.summary):.3f} against "
                                          f"{median(base):.3f} for your model (not confirmed)" if best is not None else ""))
        self.echo(f"5/5 verdict: {verdict['conclusion']}")
        rec = verdict.get("recommendation")
        for line in (rec or {}).get("code", []):
            self.echo(f"    change: {line}")
        return verdict

    @staticmethod
    def _evidence(symptom: str, baseline: Candidate, faults: dict[str, str], chance: float) -> str:
        """A symptom's numbers: a static fault's own evidence, or the first
        baseline run that shows it (and on how many seeds), or, for what is read
        off the model, its meaning."""
        if symptom in faults:
            return faults[symptom]
        if symptom == "underfitting":
            return (f"final training accuracy {_train_phrase(baseline.summary)} over {len(baseline.results)} seed(s), "
                    f"validation {median(baseline.summary):.3f} (chance {chance:.3f})")
        showing = [r for r in baseline.results if symptom in r.symptoms or r.outcome.value == symptom]
        if not showing:
            return SYMPTOMS.get(symptom, "")
        return evidence(symptom, showing[0], chance) + (f" (on {len(showing)} of {len(baseline.results)} seeds)"
                                                       if len(baseline.results) > 1 else "")

    def _replay_differences(self, sweep: Sweep, data: Any) -> str:
        """How the replay differs from the run Watch saw ("" when it does not,
        or when there is no watched run): the training rows and steps per epoch."""
        w = self.watched
        if not w:
            return ""
        steps = -(-data.n_train // max(1, sweep.training.batch_size))
        parts = []
        if w.get("sample_is_split_of_validation"):
            parts.append(f"Watch was given no train_data, so the replay trains on a split of the validation sample "
                         f"({data.n_train} rows)")
        watched_steps = w.get("steps_per_epoch")
        if isinstance(watched_steps, int) and watched_steps != steps:
            parts.append(f"{steps} steps per epoch at batch size {sweep.training.batch_size} against the watched run's {watched_steps}")
        return "; ".join(parts)

    def _unreproduced(self, base: dict[str, Any], replay: str, faults: dict[str, str]) -> str:
        """The verdict when the user watched their run break and the replay here
        trained healthy: a different experiment, never "no change needed"."""
        w = self.watched
        if not w or w.get("outcome") in (None, "healthy") or base["at_chance"] or base["failed"] or base["degraded"]:
            return ""
        final = w.get("final_val_accuracy")
        seen = f"ended {w['outcome']}" + (f" (final validation accuracy {final:.3f})" if isinstance(final, (int, float)) else "")
        how = (replay + ". To replay it faithfully, give Watch train_data=(x_train, y_train) (or doctor --data with the "
               "training data), so that the replay trains on as many rows with as many steps per epoch") if replay else \
            "the difference is in the seeds or the data sample: run doctor with --data holding the full training data"
        return (f"not reproduced: the run you watched {seen}, but the replay here trained healthy on {_seeds_phrase(self.seeds)} "
                f"(median final accuracy {median(base):.3f}); it is not the same experiment: {how}. No fix can be verified "
                f"against a failure the replay does not show" + (f"; read off the model all the same: {', '.join(sorted(faults))}" if faults else ""))

    def _setup(self, sweep: Sweep, data: Any) -> Any:
        from remedysweep.engine.build import Setup

        setup = Setup.load(sweep, data=data)
        setup.base_info()
        return setup

    def sanity_check(self, sweep: Sweep, data: Any) -> dict[str, Any]:
        """The same architecture and loss, Adam at 1e-3, on easy data."""
        from remedysweep.engine.data import easy_version
        from remedysweep.engine.keras_trainer import error_message, run_alone

        batch = 32
        easy = easy_version(data, per_class=max(16, -(-5 * batch // data.n_classes)))  # five steps an epoch for any class count
        steps = -(-easy.n_train // min(batch, easy.n_train))
        epochs = max(SANITY_EPOCHS, -(-SANITY_UPDATES // steps))
        knobs = {"optimizer": ("adam",), "learning_rate": (1e-3,)}
        s = replace(doctor_sweep(self.model, self.data_spec, epochs=epochs, seeds=1, knobs=knobs, plugins=self.plugins, name="sanity"),
                    early_stop=replace(sweep.early_stop, enabled=False))
        s = replace(s, training=replace(s.training, early_probes=0, batch_size=min(batch, easy.n_train)))
        try:
            setup = self._setup(s, easy)
            with _Heartbeat(self.echo, f"sanity check: training up to {epochs} epochs", 1):
                r = run_alone(setup, {"optimizer": "adam", "learning_rate": 1e-3}, 0, callbacks=(_StopWhenLearned(SANITY_PASS),))
        except Exception as exc:
            return {"passed": False, "accuracy": float("nan"), "epochs": 0, "message": error_message(exc)}
        self.runs_trained += 1
        self.sanity_steps = int(r.epochs_run or 0) * steps  # counted in epochs of the user's data (run())
        acc = r.final_val_accuracy
        return {"passed": bool(acc == acc and acc >= SANITY_PASS), "accuracy": acc, "epochs": r.epochs_run, "steps": self.sanity_steps,
                "message": r.message}

    def evaluate(self, setup: Any, configs: list[dict[str, Any]], source: str, seeds: Any = None) -> list[Candidate]:
        """Train every configuration over the seeds, all in one batch (packed
        where the runs allow), store the runs in the study and print one line each."""
        from remedysweep.engine.config import config_id
        from remedysweep.engine.recorder import Peers
        from remedysweep.engine.trainers import train_batch

        seeds = list(seeds if seeds is not None else range(self.seeds))
        runs = [(knobs, s) for knobs in configs for s in seeds]
        with _Heartbeat(self.echo, f"{source}: training {len(runs)} run(s)", len(runs)) as beat:
            # a search round stops its hopeless changes first and halves the rest as they train; the reduction
            # compares whole runs; your model and the confirmation train every epoch
            # the search's changes are judged by their accuracy: their runs skip the probe's gradient diagnostics
            # (a gradient traced per run), which your model's runs and the confirmation keep
            whole = source in ("baseline", "confirmation", "confirmation, second look")
            peers = None if whole else Peers(halving=source != "reduce", protect=frozenset(config_id(dict([ch])) for ch in self.root_changes))
            results = train_batch(setup, runs, on_done=beat.done, peers=peers, diagnostics=whole)
        self.runs_trained += len(results)
        self.epochs_trained += sum(int(r.epochs_run or 0) for r in results)
        out = []
        for i, knobs in enumerate(configs):
            mine = results[i * len(seeds):(i + 1) * len(seeds)]
            order = {k: n for n, k in enumerate(setup.registry.remedies)}
            cand = Candidate(tuple(sorted(knobs.items(), key=lambda kv: order.get(kv[0], 99))), source, mine)
            cand.invasiveness = sum(setup.registry[k].invasiveness for k in knobs)
            out.append(cand)
            if source != "baseline":
                self._record(knobs, mine, seeds)
                s = cand.summary
                halved = max((r.facts.get("stopped_halving") or 0 for r in mine), default=0)
                self.echo(f"    {cand.label}: {s['at_chance']}/{s['runs']} at chance, "
                          + (f"stopped at epoch {halved}, behind the others, at {_per_seed(s)}" if halved else
                             f"final accuracy per seed {_per_seed(s)}"))
        return out

    def conclude(self, setup: Any, baseline: Candidate, log: SearchLog, facts: dict[str, Any], symptoms: set[str],
                 outcome_problems: set[str], faults: dict[str, str]) -> dict[str, Any]:
        """Select, confirm on fresh seeds, and word the verdict."""
        chance = setup.data.chance
        base = baseline.summary
        skipped = [{"fix": s["fix"], "applicable": False, "why": s["why"]} for s in log.skipped]
        out: dict[str, Any] = {"tried": [_tried(c) for c in log.candidates] + skipped,
                               "search": {"spent": log.spent, "budget": self.budget, "unit": "epochs", "ended": log.ended,
                                          "settled": log.settled, "rounds": log.rounds,
                                          "space": {k: [str(v) for v in vs] for k, vs in log.space.items()}},
                               "recommendation": None, "best_partial": None}
        no_signal = self._no_signal(setup, baseline, log)
        if no_signal is not None:
            out.update(no_signal)
            return out
        fresh = range(self.seeds, 2 * self.seeds)
        pool = contenders(log.candidates, baseline)
        attempts = 0
        base_again: Candidate | None = None  # your model on the fresh seeds: trained once, whatever is confirmed against it
        fresh_more = range(2 * self.seeds, 3 * self.seeds)
        base_more: Candidate | None = None  # and on the second look's fresh seeds
        unreduced: tuple[Candidate, Candidate] | None = None
        while pool and attempts < 2:
            if unreduced is not None:  # the reduced change fell short of confirmation: the whole combination gets the next look
                (original, best), unreduced = unreduced, None
                chosen = original
            else:
                chosen, best = select(pool)
                if chosen is None:
                    break
                # a change that removes the cause seen in the model is preferred to
                # tuning around it, as long as it gets as far (within the repair margin)
                fixing, _ = select([c for c in pool if set(c.changes) & log.root_changes])
                if fixing is not None and fixing is not chosen and rank_key(fixing)[0] <= rank_key(chosen)[0] \
                        and median(fixing.summary) >= median(best.summary) - REPAIR_MARGIN:
                    chosen = fixing
                original, chosen = chosen, self._reduce(setup, chosen, log)
            attempts += 1
            if base_again is None:
                again, base_again = self.evaluate(setup, [chosen.knobs, {}], "confirmation", seeds=fresh)
                self._record({}, base_again.results, fresh)
            else:
                again, = self.evaluate(setup, [chosen.knobs], "confirmation", seeds=fresh)
            mine, theirs = chosen.results + again.results, baseline.results + base_again.results
            ok, figures = confirmed(mine, theirs, chance)
            self._say_look(chosen.label, figures, ok)
            if figures["borderline"]:  # the second look: as many fresh seeds again, on both sides
                if base_more is None:
                    more, base_more = self.evaluate(setup, [chosen.knobs, {}], "confirmation, second look", seeds=fresh_more)
                    self._record({}, base_more.results, fresh_more)
                else:
                    more, = self.evaluate(setup, [chosen.knobs], "confirmation, second look", seeds=fresh_more)
                ok, figures = confirmed(mine + more.results, theirs + base_more.results, chance, look=2)
                self._say_look(chosen.label, figures, ok)
            described = self._describe(setup, chosen, best, figures, facts, _causes(setup, chosen, symptoms, faults, facts, self.epochs))
            out["tried"] = [_tried(c) for c in log.candidates] + skipped  # with the reduction's runs
            if ok:
                out["recommendation"] = described
                out["conclusion"] = described["summary"] + ("" if log.settled else
                                                            "; the budget ran out before the search settled: a larger --budget may find more")
                return out
            out["best_partial"] = out["best_partial"] or described
            if chosen is not original:
                unreduced = (original, best)
            pool = [c for c in pool if c is not chosen and c is not original]
        best_any = min(log.candidates, key=rank_key) if log.candidates else None
        if not log.candidates and self.budget == 0:
            out["conclusion"] = "nothing was tried: the search's budget is 0 epochs (give --budget to search for a fix)"
            if not outcome_problems:
                out["conclusion"] += (f"; healthy on {_seeds_phrase(self.seeds)} (median final accuracy {median(base):.3f}), but it "
                                      f"does not fit its own training data (training accuracy {_train_phrase(base)})")
            return out
        if not outcome_problems and not (symptoms & set(faults)):
            noted = ", ".join(sorted(symptoms))
            out["best_partial"] = None
            out["conclusion"] = (f"no change needed: healthy on {_seeds_phrase(self.seeds)} (median final accuracy {median(base):.3f}), "
                                 f"and the search found nothing materially better: none of the {len(log.candidates)} changes tried "
                                 f"was confirmed" + (f" (best: {best_any.label}, median {median(best_any.summary):.3f})" if best_any else "")
                                 + f"; noted: {noted}")
            return out
        if out["best_partial"]:
            out["conclusion"] = "no change tried was confirmed as a fix; the best partial fix is " + out["best_partial"]["summary"]
        elif best_any is not None:
            out["conclusion"] = (f"no change tried did better than your model (best: {best_any.label}, median "
                                 f"{median(best_any.summary):.3f} against {median(base):.3f})")
        else:
            out["conclusion"] = "no remedy applies to these symptoms"
        return out

    def _say_look(self, label: str, figures: dict[str, Any], ok: bool) -> None:
        verdict = "confirmed" if ok else "borderline: a second look on more fresh seeds" if figures["borderline"] else "not confirmed"
        self.echo(f"    {label}: median {median(figures['baseline']):.3f} -> {median(figures['candidate']):.3f} over "
                  f"{figures['candidate']['runs']} seeds, one-sided Mann-Whitney p = {figures['p_value']:.2g} "
                  f"(look {figures['look']} of up to 2, at {figures['alpha']}) -> {verdict}")

    def _reduce(self, setup: Any, chosen: Candidate, log: SearchLog) -> Candidate:
        """The smallest part of ``chosen`` that does as well: drop each change in
        turn (reusing runs the search already has; never one that removes a
        cause seen in the model), keep the drop that stays within the seed
        noise, and repeat while more than one change is left."""
        tol = tolerance(log.candidates, chosen)
        while len(chosen.changes) > 1:
            seen = {tuple(sorted(c.changes)): c for c in log.candidates if not c.cut}  # a halved change is trained again in full
            # a change that removes a cause seen in the model stays: the cause is part of the fix
            subsets = [tuple(ch for ch in chosen.changes if ch != drop) for drop in chosen.changes if drop not in log.root_changes]
            if not subsets:
                break
            new = [dict(sub) for sub in subsets if tuple(sorted(sub)) not in seen]
            if new:
                self.echo(f"    reducing {chosen.label}: training {len(new)} smaller combination(s) x {self.seeds} seed(s) ...")
                for c in self.evaluate(setup, new, "reduce"):
                    log.candidates.append(c)
                    seen[tuple(sorted(c.changes))] = c
            smaller = [seen[tuple(sorted(sub))] for sub in subsets]
            keep = [c for c in smaller if within_noise(c, chosen, tol)]
            if not keep:
                break
            best = min(keep, key=lambda c: (c.invasiveness, rank_key(c)))
            dropped = [f"{k}={v}" for k, v in chosen.changes if (k, v) not in best.changes]
            self.echo(f"    dropped {', '.join(dropped)}: {best.label} alone does as well (median {median(best.summary):.3f} "
                      f"against {median(chosen.summary):.3f}, seed noise {tol:.3f})")
            chosen = best
        return chosen

    def _no_signal(self, setup: Any, baseline: Candidate, log: SearchLog) -> dict[str, Any] | None:
        """"No remedy helps; the labels may not follow from the inputs": nothing
        tried rose clearly above chance (a median below the outcome rules' rise
        threshold), and a plain logistic regression on the raw inputs does no
        better (or, for inputs it cannot read, the model fits its training data
        without anything generalizing)."""
        chance = setup.data.chance
        rise = Thresholds.of(chance, setup.sweep.outcome, len(setup.data.y_val)).rise
        tried = [baseline, *log.candidates]
        if any(median(c.summary) >= rise for c in tried):
            return None
        reference = reference_accuracy(setup.data)
        memorised = any(_fits_training(r, chance) for c in tried for r in c.results)
        if not ((reference is not None and reference < rise) or (reference is None and memorised)):
            return None
        ref = (f"a logistic regression on the raw inputs reaches {reference:.3f} (chance {chance:.3f})" if reference is not None
               else "the model fits its training data but nothing it learns carries over to the validation data")
        return {"no_signal": {"reference_accuracy": reference, "memorised": memorised},
                "conclusion": (f"no remedy helps; the labels may not follow from the inputs: none of the {len(log.candidates)} changes "
                               f"tried rose above chance (best median {max(median(c.summary) for c in tried):.3f}, chance {chance:.3f}), "
                               f"and {ref}")}

    def _describe(self, setup: Any, chosen: Candidate, best: Candidate | None, figures: dict[str, Any], facts: dict[str, Any],
                  causes: dict[str, str] | None = None) -> dict[str, Any]:
        c, b = figures["candidate"], figures["baseline"]
        n = c["runs"]
        text = (f"{' and '.join(f'{k} = {v}' for k, v in chosen.changes)}: median final accuracy {median(b):.3f} -> {median(c):.3f} "
                f"over {n} seeds (per seed {_per_seed(c)} against {_per_seed(b)}); seeds at chance {b['at_chance']}/{n} -> "
                f"{c['at_chance']}/{n}; one-sided Mann-Whitney p = {figures['p_value']:.2g} ({n - self.seeds} of the seeds fresh; "
                f"look {figures['look']} of up to 2, each at {figures['alpha']} for an overall 0.05)")
        if best is not None and best is not chosen:
            text += (f"; the best change seen, {best.label}, reached {median(best.summary):.3f} on the search seeds "
                     f"(within the seed noise of this less invasive one)")
        if causes:
            text += "; the cause it removes: " + "; ".join(f"{name} ({shown})" for name, shown in causes.items())
        return {
            "causes": dict(causes or {}),
            "changes": [f"{k}={v}" for k, v in chosen.changes],
            "description": " and ".join(f"{k} = {v}" for k, v in chosen.changes),
            "code": [setup.registry[k].describe_change(v, facts) for k, v in chosen.changes],
            "evidence": c,
            "baseline_evidence": b,
            "p_value": figures["p_value"],
            "look": figures["look"],
            "gain": figures["gain"],
            "best_seen": best.label if best is not None else None,
            "best_seen_median": median(best.summary) if best is not None else None,
            "summary": text,
        }

    # -- the study and its runs ----------------------------------------------------------

    def _open_study(self, setup: Any, space: dict[str, list[Any]]) -> None:
        """An Optuna study (journal in the output folder) holding every run of the
        search: one knob per remedy the search may change, with every value it may
        try, ``as_built`` where a run leaves it alone; the seeds include the fresh
        ones of the confirmation."""
        self.study_knobs = {k: [AS_BUILT, *v] for k, v in space.items()}
        if self.out is None:
            return
        from remedysweep.version import __version__

        from remedysweep.engine.queue import RunQueue, StorageSpec

        sweep = replace(setup.sweep, knobs=tuple(KnobSpec(k, tuple(v)) for k, v in self.study_knobs.items()),
                        baseline=tuple((k, AS_BUILT) for k in self.study_knobs), seeds=tuple(range(2 * self.seeds)))
        from remedysweep.files import folder_kind, mark_folder

        self.out.mkdir(parents=True, exist_ok=True)
        if folder_kind(self.out) is None:
            mark_folder(self.out, "doctor")  # checked before anything ran: new, empty, or doctor's own
        for name in JOURNAL_FILES:
            (self.out / name).unlink(missing_ok=True)
        self.study_sweep = sweep
        self.queue = RunQueue.create(StorageSpec.journal(self.out / JOURNAL_FILE), sweep, __version__)

    def _record(self, knobs: dict[str, Any], results: list[RunResult], seeds: Any) -> None:
        """Store runs trained here in the study, ``as_built`` for the knobs they leave alone."""
        if self.queue is None:
            return
        full = {k: knobs.get(k, AS_BUILT) for k in self.study_knobs}
        if any(k not in full for k in knobs):
            return  # a change outside the declared space (cannot happen: the search proposes from it)
        for seed, result in zip(seeds, results):
            self.queue.record(full, seed, result)


#: While doctor trains, it says so at least this often (seconds).
HEARTBEAT_S = 15.0


class _Heartbeat:
    """A line every HEARTBEAT_S seconds while a batch of runs trains, with how
    many are done: doctor never sits silent through a long round."""

    def __init__(self, echo: Callable[[str], None], what: str, total: int) -> None:
        import threading

        self.echo, self.what, self.total, self.finished = echo, what, total, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="remedysweep-doctor-heartbeat", daemon=True)

    def done(self, n: int) -> None:
        self.finished = n

    def _beat(self) -> None:
        import time

        start = time.monotonic()
        while not self._stop.wait(HEARTBEAT_S):
            self.echo(f"    ... {self.what}: {self.finished}/{self.total} done after {time.monotonic() - start:.0f} s")

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _causes(setup: Any, chosen: Candidate, symptoms: set[str], faults: dict[str, str], facts: dict[str, Any], epochs: int) -> dict[str, str]:
    """The causes seen in the model (:data:`~remedysweep.engine.symptoms.ROOT_CAUSES`)
    that ``chosen`` removes, ``{name: evidence}``: read again off the model as
    the change builds it, the fault is gone, and one of the changes is a remedy
    for it (so that a fault the rebuilt model merely hides is not credited)."""
    from remedysweep.engine.build import build_run
    from remedysweep.engine.faults import head_faults, static_faults
    from remedysweep.engine.surgery import describe_model
    from remedysweep.engine.symptoms import ROOT_CAUSES

    seen = {name: faults.get(name) or SYMPTOMS.get(name, name) for name in sorted(symptoms & ROOT_CAUSES)}
    if not seen:
        return {}
    try:
        b = build_run(setup, dict(chosen.knobs), 0)
        # a loss formulation of remedysweep's own matches the head it builds (or the build refuses): its head is sound
        head = {} if isinstance(b.plan.compile.loss, LossFormulation) else head_faults(b.model, describe_model(b.model, b.data))
        after = {**head, **static_faults(b.model, b.data.n_classes, steps=b.steps_per_epoch * epochs, data=b.data)}
    except Exception:
        return {}
    out = {}
    for name, shown in seen.items():
        if name in after:
            continue
        for remedy, _ in chosen.changes:
            try:
                if setup.registry[remedy].suggest(frozenset({name}), facts):
                    out[name] = shown
                    break
            except Exception:
                continue
    return out


def _rate_phrase(rate: float | None, schedule: dict[str, Any] | None) -> str:
    if schedule is None:
        return f"at learning rate {_number(rate)}"
    return (f"with a learning-rate schedule ({schedule['name']}) going from {schedule['start']:.3g} to {schedule['end']:.3g} over the run's "
            f"{schedule['steps']} steps")


def _seeds_phrase(seeds: int) -> str:
    return f"all {seeds} seeds" if seeds > 1 else "its seed"


def _per_seed(s: dict[str, Any]) -> str:
    return ", ".join("nan" if f != f else f"{f:.2f}" for f in s["final_accuracy"])


def _train_median(s: dict[str, Any]) -> float | None:
    """The median final training accuracy over the seeds (None where the runs
    recorded none)."""
    train = [a for a in s.get("train_accuracy", []) if a is not None and a == a]
    return statistics.median(train) if train else None


def _train_phrase(s: dict[str, Any]) -> str:
    train = _train_median(s)
    return "not recorded" if train is None else f"median {train:.3f}"


def _fits_training(r: RunResult, chance: float) -> bool:
    acc = [a for a in r.curves.get("accuracy", []) if a == a]
    return bool(acc) and acc[-1] >= chance + 0.5 * (1 - chance)


def _tried(c: Candidate) -> dict[str, Any]:
    s = c.summary
    halved = [r.facts.get("stopped_halving") for r in c.results if r.facts.get("stopped_halving")]
    return {"fix": c.label, "applicable": True, "changes": [list(x) for x in c.changes], "source": c.source,
            "invasiveness": c.invasiveness, **s, "median": median(s), "halved_at": max(halved) if halved else None,
            "spread": _pstdev_finite(s["final_accuracy"])}


def _pstdev_finite(values: list[float]) -> float:
    """The spread of the finite values (0 with fewer than two): a diverged
    seed's NaN is counted by the outcome, not by the spread."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.pstdev(finite) if len(finite) > 1 else 0.0


def _StopWhenLearned(target: float) -> Any:
    """A Keras callback that ends training once the validation accuracy reaches
    ``target``: the sanity check has its answer then."""
    import keras

    class StopWhenLearned(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            acc = (logs or {}).get("val_accuracy")
            if acc is not None and acc == acc and float(acc) >= target:
                self.model.stop_training = True

    return StopWhenLearned()
