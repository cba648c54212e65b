"""``remedysweep doctor``: diagnose a user's own Keras classifier and find the
least invasive remedy that verifiably fixes it.

An application of the sweep engine, not a second one: the model and data go
through the same sources and checks as a sweep file's, every run is trained,
recorded and classified by the same trainers and recorder, the fixes are the
registry's remedies (plugins included, through their ``suggest`` hook), the
runs live in an Optuna study in the output folder, and the report is rendered
by the same report code.

Steps, each printed:

1. Sanity check: the same architecture and loss, Adam at 1e-3, on easy data
   (one input pattern per class). A model that cannot learn it gets the symptom
   ``cannot_learn_easy_data``, which remedies may act on; nothing stops here.
2. Baseline: the model as built, over the seeds, with the diagnostics; the
   symptoms of its structure, its runs and its data.
3. A targeted search over the remedies that apply to those symptoms, single
   changes least invasive first, then pairs of the best partial fixes, each over
   the same seeds, within a budget of runs.
4. Verdict: the least invasive change that fixed every seed and beat the
   baseline, with its evidence (seeds at chance, median final accuracy before
   and after) and the code change; or the best partial fix.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from remedysweep.errors import SweepError
from remedysweep.files import atomic_write
from remedysweep.remedies import AS_BUILT, RemedyConflict

from .engine.config import DataSpec, KnobSpec, ModelSpec, Sweep, build_plan, make_sweep
from .engine.result import RunResult
from .engine.symptoms import SYMPTOMS, model_symptoms

#: Causes the doctor can see in the model or the data: remedies that remove one
#: are tried before remedies that only relieve what the runs show.
ROOT_CAUSES = frozenset({"softmax_twice", "improper_output_activation", "softmax_missing", "probabilities_from_logits",
                         "handwritten_loss", "unscaled_inputs"})
#: Symptoms that make a model need a fix even when no seed ended at chance.
DEFINITE = frozenset({"softmax_twice", "improper_output_activation", "softmax_missing", "probabilities_from_logits",
                      "oscillation", "cannot_learn_easy_data", "unscaled_inputs"})
SANITY_EPOCHS = 40


# ----------------------------------------------------------------------------
# The user's model and data, as a sweep
# ----------------------------------------------------------------------------


def _source_specs(model: str, data: str) -> tuple[ModelSpec, DataSpec]:
    from .engine.config import CALLABLE_PATTERN, _callable_spec

    if model.endswith((".keras", ".h5")):
        if not Path(model).is_file():
            raise SweepError("--model", None, f"{model}: file not found")
        model_spec = ModelSpec(path=str(Path(model).resolve()))
    elif CALLABLE_PATTERN.match(model):
        model_spec = ModelSpec(builder=_callable_spec("--model", None, model, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--model", None, f"{model!r}: expected FILE.py:FUNCTION, package.module:FUNCTION or a .keras file")
    path = Path(data)
    if data.endswith((".npz", ".csv")) or path.is_dir():
        if not path.exists():
            raise SweepError("--data", None, f"{data}: not found")
        data_spec = DataSpec(path=str(path.resolve()))
    elif CALLABLE_PATTERN.match(data):
        data_spec = DataSpec(loader=_callable_spec("--data", None, data, Path.cwd()))  # type: ignore[arg-type]
    else:
        raise SweepError("--data", None, f"{data!r}: expected FILE.py:FUNCTION, package.module:FUNCTION, an .npz, a .csv or an image folder")
    return model_spec, data_spec


def doctor_sweep(model: ModelSpec, data: DataSpec, *, epochs: int, seeds: int, knobs: dict[str, tuple[Any, ...]] | None = None,
                 plugins: tuple[str, ...] = (), name: str = "doctor") -> Sweep:
    sweep = make_sweep(name, model=model, data=data, knobs=knobs or {}, seeds=tuple(range(seeds)), epochs=epochs, early_probes=4)
    return replace(sweep, source=f"<{name}>", plugins=tuple(str(Path(p).resolve()) for p in plugins),
                   baseline=tuple((k, AS_BUILT) for k in (knobs or {})))


# ----------------------------------------------------------------------------
# Summaries of a set of runs
# ----------------------------------------------------------------------------


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    from remedysweep.reports.analysis import wilson

    n = len(results)
    bad = sum(r.outcome.at_chance for r in results)
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome.value] = outcomes.get(r.outcome.value, 0) + 1
    finals = [r.final_val_accuracy for r in results if r.final_val_accuracy == r.final_val_accuracy]
    return {
        "runs": n,
        "at_chance": bad,
        "at_chance_interval": list(wilson(bad, n)),
        "failed": outcomes.get("failed", 0),
        "degraded": outcomes.get("degraded", 0),
        "oscillating": sum(r.oscillations >= 3 for r in results),
        "outcomes": outcomes,
        "final_accuracy": finals,
        "median_final_accuracy": float(statistics.median(finals)) if finals else None,
        "symptoms": sorted({s for r in results for s in r.symptoms}),
        "messages": sorted({r.message for r in results if r.message})[:3],
    }


def _median(s: dict[str, Any]) -> float:
    m = s.get("median_final_accuracy")
    return float(m) if m is not None else 0.0


def beats(candidate: dict[str, Any], baseline: dict[str, Any], needs: set[str]) -> bool:
    """A verified fix: no seed at chance or failed, and better than the baseline
    on what was wrong (fewer seeds at chance, fewer degraded or oscillating
    seeds, or a higher median final accuracy), never clearly worse."""
    if candidate["at_chance"] or candidate["failed"] or not candidate["runs"]:
        return False
    gain = _median(candidate) - _median(baseline)
    if gain < -0.02:
        return False
    if baseline["at_chance"] or baseline["failed"]:
        return candidate["degraded"] <= baseline["degraded"] or gain > 0.05
    if baseline["degraded"] and candidate["degraded"] < baseline["degraded"]:
        return True
    if "oscillation" in needs and candidate["oscillating"] < baseline["oscillating"]:
        return True
    return gain >= 0.02 and candidate["degraded"] <= baseline["degraded"]


def score(s: dict[str, Any]) -> tuple[float, ...]:
    """Lower is better: seeds at chance, failed, degraded, oscillating, then accuracy."""
    return (s["at_chance"] + s["failed"], s["degraded"], s["oscillating"], -_median(s))


# ----------------------------------------------------------------------------
# The diagnosis
# ----------------------------------------------------------------------------


class Doctor:
    """One diagnosis (see the module text); :meth:`run` returns the verdict."""

    def __init__(self, model: ModelSpec, data: DataSpec, *, epochs: int, seeds: int, budget: int, plugins: tuple[str, ...],
                 echo: Callable[[str], None], out: Path | None):
        self.model, self.data_spec = model, data
        self.epochs, self.seeds, self.budget, self.plugins = epochs, seeds, budget, plugins
        self.echo = echo
        self.out = out

    def _setup(self, sweep: Sweep, data: Any) -> Any:
        from .engine.build import Setup

        setup = Setup.load(sweep, data=data)
        setup.base_info()
        return setup

    def run(self) -> dict[str, Any]:
        import optuna

        from .engine.runtime import configure_tensorflow
        from .engine.sources import check_problem

        configure_tensorflow()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        probe_sweep = doctor_sweep(self.model, self.data_spec, epochs=self.epochs, seeds=self.seeds, plugins=self.plugins)
        data = check_problem(probe_sweep)  # one-line errors for bad input, before anything runs
        setup = self._setup(probe_sweep, data)
        info = setup.info
        facts = {**info.facts(), **data.facts, "one_hot_labels": data.label_format == "one_hot", "n_classes": data.n_classes,
                 "batch_size": probe_sweep.training.batch_size, "chance": data.chance, "label_format": data.label_format}
        where = self.model.builder or Path(self.model.path).name
        verdict: dict[str, Any] = {"model": f"{where} on {self.data_spec.loader or Path(self.data_spec.path).name}", "facts": facts,
                                   "n_classes": data.n_classes, "epochs": self.epochs, "seeds": self.seeds, "budget": self.budget,
                                   "chance": data.chance}
        self.echo(f"model: {info.n_params} parameters, {info.output_units} output unit(s) ending in {info.output_activation}, "
                  f"loss {info.loss}, {info.optimizer} at learning rate {f'{info.learning_rate:.3g}' if info.learning_rate is not None else '?'}; "
                  f"{data.n_train} training samples, {data.n_classes} classes, chance {data.chance:.2f}")
        static = model_symptoms(info)

        self.echo("1/4 sanity check on easy data (one input pattern per class) ...")
        sanity = self.sanity_check(probe_sweep, data)
        verdict["sanity_check"] = sanity
        self.echo(f"    {'passed' if sanity['passed'] else 'FAILED'}: accuracy {sanity['accuracy']:.2f} after {sanity['epochs']} epochs"
                  + (f" ({sanity['message']})" if sanity.get("message") else ""))

        self.echo(f"2/4 baseline over {self.seeds} seeds, {self.epochs} epochs ...")
        base_results = self.base_results = self._baseline(setup)
        base = summarize(base_results)
        symptoms = set(static) | set(base["symptoms"])
        if not sanity["passed"]:
            symptoms.add("cannot_learn_easy_data")
        verdict.update(baseline=base, baseline_outcome=max(base["outcomes"], key=base["outcomes"].get),
                       symptoms=[f"{s}: {SYMPTOMS.get(s, '')}" for s in sorted(symptoms)], symptom_names=sorted(symptoms),
                       baseline_curves=[r.curves.get("val_accuracy", []) for r in base_results])
        self.echo(f"    {verdict['baseline_outcome']}: " + ", ".join(f"{k} {v}" for k, v in base["outcomes"].items())
                  + (f"; median final accuracy {_median(base):.3f}" if base["median_final_accuracy"] is not None else ""))
        for s in sorted(symptoms):
            self.echo(f"    symptom: {s}: {SYMPTOMS.get(s, '')}")
        for m in base["messages"]:
            self.echo(f"    message: {m}")
        problems = ({"at_chance"} if base["at_chance"] else set()) | ({"failed"} if base["failed"] else set()) \
            | ({"degraded"} if base["degraded"] else set()) | (symptoms & DEFINITE)
        if not problems:
            verdict.update(recommendation=None, tried=[], best_partial=None,
                           conclusion=f"healthy on all {self.seeds} seeds (median final accuracy {_median(base):.3f}): no change needed"
                           + (f"; noted: {', '.join(sorted(symptoms))}" if symptoms else ""))
            self.echo("3/4 nothing to fix")
            self.echo(f"4/4 verdict: {verdict['conclusion']}")
            self.queue = None
            return verdict

        self.echo(f"3/4 targeted search over the remedies, least invasive first (budget {self.budget} runs) ...")
        singles = self.candidates(setup, frozenset(symptoms), facts)
        tried, recommendation, best = self.search(setup, singles, base, symptoms, facts)
        verdict["tried"] = tried
        verdict["recommendation"] = recommendation
        verdict["best_partial"] = best if recommendation is None else None
        if recommendation:
            ev = recommendation["evidence"]
            lo, hi = ev["at_chance_interval"]
            verdict["conclusion"] = (f"{recommendation['description']}: {ev['at_chance']} of {ev['runs']} seeds ended at chance "
                                     f"(95% CI {lo:.0%}–{hi:.0%}) against {base['at_chance']} of {base['runs']} for your model; "
                                     f"median final accuracy {_median(base):.3f} -> {_median(ev):.3f}")
        elif best:
            ev = best["evidence"]
            verdict["conclusion"] = (f"no change tried fixed every seed; the best partial fix is {best['description']}: "
                                     f"{ev['at_chance']} of {ev['runs']} seeds at chance against {base['at_chance']} of {base['runs']}, "
                                     f"median final accuracy {_median(base):.3f} -> {_median(ev):.3f}")
        else:
            verdict["conclusion"] = "no remedy applies to these symptoms" if not singles else "no change tried did better than your model"
        self.echo(f"4/4 verdict: {verdict['conclusion']}")
        if recommendation:
            for line in recommendation["code"]:
                self.echo(f"    change: {line}")
        return verdict

    # -- steps -------------------------------------------------------------------

    def sanity_check(self, sweep: Sweep, data: Any) -> dict[str, Any]:
        """The same architecture and loss, Adam at 1e-3, on easy data."""
        from .engine.data import easy_version
        from .engine.keras_trainer import run_alone

        easy = easy_version(data)
        knobs = {"optimizer": ("adam",), "learning_rate": (1e-3,)}
        s = replace(doctor_sweep(self.model, self.data_spec, epochs=SANITY_EPOCHS, seeds=1, knobs=knobs, plugins=self.plugins, name="sanity"),
                    early_stop=replace(sweep.early_stop, enabled=False))
        s = replace(s, training=replace(s.training, early_probes=0, batch_size=min(32, easy.n_train)))
        try:
            setup = self._setup(s, easy)
            r = run_alone(setup, {"optimizer": "adam", "learning_rate": 1e-3}, 0)
        except Exception as exc:
            from .engine.keras_trainer import error_message

            return {"passed": False, "accuracy": float("nan"), "epochs": 0, "message": error_message(exc)}
        acc = r.final_val_accuracy
        return {"passed": bool(acc == acc and acc >= 0.95), "accuracy": acc, "epochs": r.epochs_run, "message": r.message}

    def _baseline(self, setup: Any) -> list[RunResult]:
        from .engine.keras_trainer import run_alone
        from .engine.packed import train_pack
        from .engine.worker import why_alone

        runs = [({}, s) for s in range(self.seeds)]
        note = why_alone(setup, {})
        if setup.sweep.training.pack and not note:
            return train_pack(setup, runs)
        return [run_alone(setup, k, s, path_note=note) for k, s in runs]

    def candidates(self, setup: Any, symptoms: frozenset[str], facts: dict[str, Any]) -> list[tuple[int, int, str, Any]]:
        """Single changes the remedies suggest, as (rank, order, knob, value):
        first those that remove a cause seen in the model or the data, then the
        rest, each group least invasive first. Changes that cannot apply to the
        model are dropped, with the reason (in :attr:`skipped`)."""
        from .engine.build import build_run

        out = []
        self.skipped: list[dict[str, Any]] = []
        seen: set[tuple[str, Any]] = set()
        order = 0
        roots = symptoms & ROOT_CAUSES
        for tier, visible in ((0, roots), (1, symptoms)):
            if not visible:
                continue
            for name, remedy in setup.registry.remedies.items():
                try:
                    values = list(remedy.suggest(frozenset(visible), facts))
                except Exception as exc:  # a plugin's suggest is its own code
                    self.skipped.append({"fix": name, "why": f"suggest() raised {type(exc).__name__}: {exc}"})
                    continue
                for v in values:
                    if (name, v) in seen or remedy.check_value(v):
                        continue
                    seen.add((name, v))
                    try:
                        build_run(setup, {name: v}, 0, compile=False)
                    except Exception as exc:
                        self.skipped.append({"fix": f"{name}={v}", "why": str(exc)[:300]})
                        self.echo(f"    {name} = {v}: cannot apply ({str(exc)[:200]})")
                        continue
                    out.append((tier * 10 + remedy.invasiveness, order, name, v))
                    order += 1
        out.sort(key=lambda c: (c[0], c[1]))
        return out

    def search(self, setup: Any, singles: list[tuple[int, int, str, Any]], base: dict[str, Any], symptoms: set[str],
               facts: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
        """Singles least invasive first, then pairs of the best partial fixes,
        within the budget; stops at the first verified fix."""
        needs = set(symptoms)
        tried: list[dict[str, Any]] = [{"fix": s["fix"], "applicable": False, "why": s["why"]} for s in self.skipped]
        spent = 0
        results: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        queue = self.queue = self._open_study(setup, singles)
        self._record(queue, {}, self.base_results)

        def evaluate(changes: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
            nonlocal spent
            if spent + self.seeds > self.budget:
                return None
            knobs = dict(changes)
            summary = self._run_config(setup, queue, knobs)
            spent += self.seeds
            results[changes] = summary
            label = " + ".join(f"{k}={v}" for k, v in changes)
            ok = beats(summary, base, needs)
            tried.append({"fix": label, "applicable": True, "changes": [list(c) for c in changes], **summary, "verified": ok,
                          "invasiveness": sum(setup.registry[k].invasiveness for k, _ in changes)})
            self.echo(f"    {label}: {summary['at_chance']}/{summary['runs']} at chance, median final accuracy "
                      f"{_median(summary):.3f}{' -> fixes it' if ok else ''}")
            return summary if ok else None

        fix = None
        for _, _, name, value in singles:
            if evaluate(((name, value),)):
                fix = ((name, value),)
                break
        if fix is None and results:
            partial = sorted(results, key=lambda c: score(results[c]))[:4]
            pairs = []
            for a, b in itertools.combinations(partial, 2):
                merged = dict(a)
                if set(merged) & set(dict(b)):
                    continue
                merged.update(dict(b))
                try:
                    build_plan(merged, setup.registry)
                except RemedyConflict:
                    continue
                pairs.append(tuple(sorted(merged.items(), key=lambda kv: setup.registry[kv[0]].invasiveness)))
            rank = {c: i for i, c in enumerate(partial)}
            # the best partial fixes first, then the less invasive pair
            pairs.sort(key=lambda c: (sum(rank.get(((k, v),), 9) for k, v in c), sum(setup.registry[k].invasiveness for k, _ in c)))
            for combo in pairs:
                if evaluate(combo):
                    fix = combo
                    break

        def describe(changes: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
            summary = results[changes]
            return {
                "changes": [f"{k}={v}" for k, v in changes],
                "description": " and ".join(f"{k} = {v}" for k, v in changes),
                "code": [setup.registry[k].describe_change(v, facts) for k, v in changes],
                "evidence": summary,
            }

        recommendation = describe(fix) if fix else None
        best = None
        if fix is None and results:
            top = min(results, key=lambda c: score(results[c]))
            if score(results[top]) < score(base):
                best = describe(top)
        return tried, recommendation, best

    # -- the study and its runs ------------------------------------------------------

    def _open_study(self, setup: Any, singles: list[tuple[int, int, str, Any]]) -> Any:
        """An Optuna study (journal in the output folder) holding every run of the
        search: one knob per remedy tried, ``as_built`` where it is not changed."""
        if self.out is None:
            return None
        from remedysweep.version import __version__

        from .engine.queue import RunQueue, StorageSpec

        knob_values: dict[str, list[Any]] = {}
        for _, _, name, value in singles:
            knob_values.setdefault(name, [AS_BUILT]).append(value)
        sweep = replace(setup.sweep, knobs=tuple(KnobSpec(k, tuple(v)) for k, v in knob_values.items()),
                        baseline=tuple((k, AS_BUILT) for k in knob_values))
        self.out.mkdir(parents=True, exist_ok=True)
        for name in ("study.journal", "study.journal.lock", "study.journal.queue.lock"):
            (self.out / name).unlink(missing_ok=True)
        self.study_sweep = sweep
        return RunQueue.create(StorageSpec.journal(self.out / "study.journal"), sweep, __version__)

    def _run_config(self, setup: Any, queue: Any, knobs: dict[str, Any]) -> dict[str, Any]:
        from .engine.keras_trainer import run_alone
        from .engine.packed import train_pack
        from .engine.worker import why_alone

        runs = [(knobs, s) for s in range(self.seeds)]
        note = why_alone(setup, knobs)
        if setup.sweep.training.pack and not note:
            results = train_pack(setup, runs)
        else:
            results = [run_alone(setup, knobs, s, path_note=note) for s in range(self.seeds)]
        self._record(queue, knobs, results)
        return summarize(results)

    def _record(self, queue: Any, knobs: dict[str, Any], results: list[RunResult]) -> None:
        """Store runs trained here in the study, with ``as_built`` for the knobs
        they leave alone."""
        if queue is None:
            return
        full = {k.name: knobs.get(k.name, AS_BUILT) for k in queue.sweep.knobs}
        for seed, result in enumerate(results):
            queue.record(full, seed, result)


def diagnose_sources(model: str, data: str, *, epochs: int = 10, seeds: int = 3, budget: int = 30, plugins: tuple[str, ...] = (),
                     echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None) -> dict[str, Any]:
    """Diagnose a model given as ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``,
    or a ``.keras`` file) on data given as ``FILE.py:FUNCTION`` (or an ``.npz``,
    a ``.csv``, an image folder). Raises :class:`~remedysweep.errors.SweepError`
    for bad input; a fault inside a run is part of the verdict."""
    model_spec, data_spec = _source_specs(model, data)
    return diagnose(model_spec, data_spec, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo, out=out)


def diagnose(model: ModelSpec, data: DataSpec, *, epochs: int = 10, seeds: int = 3, budget: int = 30, plugins: tuple[str, ...] = (),
             echo: Callable[[str], None] = lambda s: None, out: str | Path | None = None) -> dict[str, Any]:
    """Run every step and return the verdict (a JSON-friendly dict); with
    ``out``, the search's runs are stored there as a run folder."""
    doctor = Doctor(model, data, epochs=epochs, seeds=seeds, budget=budget, plugins=plugins, echo=echo,
                    out=Path(out) if out is not None else None)
    verdict = doctor.run()
    verdict["_doctor"] = doctor
    return verdict


def write_doctor_report(verdict: dict[str, Any], out: Path) -> Path:
    """doctor.json, the search's run folder (trials.csv, curves.csv) and doctor.html."""
    from remedysweep.engine.result import clean_json
    from remedysweep.reports.doctor import render_doctor

    doctor = verdict.pop("_doctor", None)
    out.mkdir(parents=True, exist_ok=True)
    if doctor is not None and getattr(doctor, "queue", None) is not None and doctor.out == out:
        from .sweep import SWEEP_FILE, export

        export(doctor.queue, out)
        atomic_write(out / SWEEP_FILE, json.dumps({"fingerprint": doctor.study_sweep.fingerprint(), "sweep": doctor.study_sweep.to_dict()}, indent=2))
    atomic_write(out / "doctor.json", json.dumps(clean_json(verdict), indent=2, default=str))
    path = out / "doctor.html"
    atomic_write(path, render_doctor(verdict, out))
    return path
