"""A worker: take queued runs from the study and run them until none is left.

The same loop serves ``remedysweep run`` (in-process, or N local processes through
joblib) and ``remedysweep worker`` (any machine that reaches the storage).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any, Callable

import optuna

from remedysweep.remedies import discover

from . import study as st
from .config import Sweep, run_key
from .packed import run_packed, why_not_packable
from .trial import RunResult, TrialConfig, configure_tensorflow, run_trial

PROPOSED_ATTR = "remedysweep:proposed"


def objective_values(sweep: Sweep, result: RunResult, n_classes: int) -> list[float] | None:
    """Collapse-aware objective: a collapsed, diverged or never-learned run scores
    as chance, not as its peak. ``None`` for a failed run (Optuna FAIL)."""
    if result.outcome == "failed":
        return None
    chance = 1.0 / n_classes
    score = result.final_val_accuracy
    if result.outcome in ("collapsed", "diverged", "never_learned") or score != score:
        score = chance
    if sweep.sampler.objective == "accuracy_vs_time":
        return [score, result.train_seconds]
    if sweep.sampler.objective == "accuracy_vs_collapse":
        return [score, 1.0 if result.outcome in ("collapsed", "diverged") else 0.0]
    return [score]


def _suggest(trial: optuna.Trial, sweep: Sweep) -> TrialConfig:
    """Read (or, for a sampler's new configuration, draw) the knob values and seed."""
    knobs: dict[str, Any] = {}
    for knob in sweep.knobs:
        if not knob.is_range:
            knobs[knob.name] = trial.suggest_categorical(knob.name, list(knob.values))
        elif knob.integer:
            knobs[knob.name] = trial.suggest_int(knob.name, int(knob.low), int(knob.high), log=knob.log)
        else:
            knobs[knob.name] = trial.suggest_float(knob.name, float(knob.low), float(knob.high), log=knob.log)
    seed = trial.suggest_categorical("seed", list(sweep.seeds))
    return TrialConfig.of(knobs, int(seed))


def _proposed_count(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.system_attrs.get(PROPOSED_ATTR))


def _queue_proposal(study: optuna.Study, sweep: Sweep) -> bool:
    """Random/TPE: queue a slot whose seed is pinned to the first seed; the worker
    that takes it lets the sampler draw the knob values. False once the budget of
    configurations is spent."""
    if _proposed_count(study) >= sweep.sampler.n_configs:
        return False
    study.enqueue_trial({"seed": sweep.seeds[0]})
    return True


def _claim_siblings(study: optuna.Study, sweep: Sweep, config: TrialConfig, isolated: bool) -> list[int]:
    """Claim the other queued seeds of ``config`` to train them packed."""
    keys = frozenset(run_key(config.knob_dict, s) for s in sweep.seeds if s != config.seed)
    out = []
    while True:
        tid = st.claim(study, keys, isolated)
        if tid is None:
            return out
        out.append(tid)


def _already_proposed(study: optuna.Study, config: TrialConfig) -> bool:
    return any(st.trial_key(t) == config.key for t in study.get_trials(deepcopy=False))


def _is_proposal(study: optuna.Study, trial_id: int, sweep: Sweep) -> bool:
    fixed = study._storage.get_trial_system_attrs(trial_id).get("fixed_params", {})
    return not all(k in fixed for k in sweep.knob_names)


def work(
    spec: st.StorageSpec,
    study_name: str,
    *,
    threads: int | None = None,
    max_runs: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    only_keys: frozenset[str] | None = None,
    isolated: bool = False,
) -> int:
    """Run queued runs of the study until none is left; returns how many ran.
    ``only_keys``: take only those runs. ``isolated``: this process runs alone, so
    if it dies the run it holds is to blame."""
    configure_tensorflow(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = spec.open()
    study, sweep = st.load(storage, study_name)
    registry = discover(plugin_files=sweep.plugins)
    from .data import load_dataset

    dataset = load_dataset(sweep.data)
    done = 0
    duplicates = 0
    while max_runs is None or done < max_runs:
        tid = st.claim(study, only_keys, isolated)
        if tid is None and only_keys is None and sweep.sampler.kind != "grid" and _queue_proposal(study, sweep):
            tid = st.claim(study, None, isolated)
        if tid is None:
            break
        group = [tid]
        try:
            with contextlib.ExitStack() as beats:
                beats.enter_context(st.Heartbeat(storage, tid))
                trial = optuna.trial.Trial(study, tid)
                config = _suggest(trial, sweep)
                if _is_proposal(study, tid, sweep):
                    if _already_proposed(study, config):
                        # The sampler drew a configuration that already runs: give
                        # the slot back (no result, no key) and draw again.
                        st.release(study, tid)
                        duplicates += 1
                        if duplicates > 50:
                            break
                        continue
                    storage.set_trial_user_attr(tid, st.KEY_ATTR, config.key)
                    storage.set_trial_system_attr(tid, PROPOSED_ATTR, True)
                    for seed in sweep.seeds[1:]:
                        st.enqueue(study, config.knob_dict, seed)
                configs = [config]
                reason = why_not_packable(sweep, config.knob_dict, registry) if sweep.training.pack_seeds else None
                if sweep.training.pack_seeds and reason is None and only_keys is None:
                    for sibling in _claim_siblings(study, sweep, config, isolated):
                        group.append(sibling)
                        beats.enter_context(st.Heartbeat(storage, sibling))
                        configs.append(_suggest(optuna.trial.Trial(study, sibling), sweep))
                if sweep.training.pack_seeds and reason is None:
                    results = run_packed(sweep, config.knob_dict, [c.seed for c in configs], registry, dataset)
                    for r in results:
                        r.packed_seeds = len(configs)
                else:
                    results = [run_trial(sweep, config, registry, dataset)]
                    results[0].pack_note = reason or ""
            for t, c, result in zip(group, configs, results):
                payload = asdict(result)
                payload["knobs"] = c.knob_dict
                payload["seed"] = c.seed
                payload["key"] = run_key(c.knob_dict, c.seed)
                st.save_result(study, t, payload, objective_values(sweep, result, dataset.n_classes))
                done += 1
                if on_result is not None:
                    on_result(result)
        except BaseException:
            for t in group:
                st.release(study, t)  # Ctrl-C or a crash of the worker itself: queue them again
            raise
    return done


def worker_process(url: str, study_name: str, threads: int, only_keys: frozenset[str] | None = None, isolated: bool = False) -> int:
    """Entry point of a local worker process (joblib)."""
    return work(st.StorageSpec(url), study_name, threads=threads, only_keys=only_keys, isolated=isolated)
