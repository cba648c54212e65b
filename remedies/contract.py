"""The contract every remedy meets, as checks a plugin author can run on their own
package (like scikit-learn's ``parametrize_with_checks``)::

    from remedysweep.remedies.contract import parametrize_with_checks

    @parametrize_with_checks(["focal_loss"])      # or None: every installed remedy
    def test_remedy_contract(remedy, check):
        assert check(remedy) is None              # a broken contract raises AssertionError

Each check trains real tiny models with TensorFlow and uses a real Optuna journal
storage in a temporary folder.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .base import Categorical, IntRange, Remedy
from .registry import Registry, check_remedy, discover

Check = Callable[[Remedy], None]


def _tiny_sweep(remedy: Remedy, values: Sequence[Any]) -> Any:
    from remedysweep.runner.config import (
        DataSpec, EarlyStopSpec, KnobSpec, ModelSpec, OutcomeSpec, SamplerSpec, Sweep, TrainingSpec,
    )

    return Sweep(
        name="contract",
        source="<contract>",
        data=DataSpec(dataset="blobs", n_classes=3, n_features=4, n_samples=96, validation_fraction=0.25),
        model=ModelSpec(kind="mlp", depth=1),
        training=TrainingSpec(epochs=1, early_probes=0, probe_size=16),
        knobs=(KnobSpec(name=remedy.name, values=tuple(values)),),
        seeds=(0,),
        baseline=((remedy.name, remedy.baseline),),
        sampler=SamplerSpec(),
        outcome=OutcomeSpec(window=1),
        early_stop=EarlyStopSpec(enabled=False, patience=1),
    )


def _registry_with(remedy: Remedy) -> Registry:
    reg = Registry()
    reg.remedies[remedy.name] = remedy
    reg.sources[remedy.name] = "contract"
    return reg


def sample_values(remedy: Remedy) -> list[Any]:
    """Every categorical value; for a range its ends, its examples and the baseline."""
    space = remedy.space
    if isinstance(space, Categorical):
        return list(space.choices)
    values = [space.low, space.high, *space.grid_values(), remedy.baseline]
    if isinstance(space, IntRange):
        # The ends of a wide integer range (batch size 65536) are not trainable on
        # tiny data in a test's time; keep those within 4x of the baseline.
        values = [v for v in values if v <= max(4 * int(remedy.baseline), 1)] or [remedy.baseline]
    out: list[Any] = []
    for v in values:
        if not any(v == u for u in out):
            out.append(v)
    return out


def check_declaration(remedy: Remedy) -> None:
    """Name pattern, a one-line description, a value space, a baseline within it."""
    problem = check_remedy(remedy)
    assert problem is None, f"{remedy.name}: {problem}"


def check_every_value_trains(remedy: Remedy) -> None:
    """Each value yields a model that trains an epoch on tiny data."""
    from remedysweep.runner.data import load_dataset
    from remedysweep.runner.trial import TrialConfig, run_trial

    values = sample_values(remedy)
    sweep = _tiny_sweep(remedy, values)
    reg = _registry_with(remedy)
    data = load_dataset(sweep.data)
    for v in values:
        r = run_trial(sweep, TrialConfig.of({remedy.name: v}, 0), reg, data)
        assert r.outcome != "failed", f"{remedy.name}={v!r} failed to train: {r.message}"
        assert r.epochs_run == 1, f"{remedy.name}={v!r} ran {r.epochs_run} epochs, expected 1"


def check_baseline_changes_nothing(remedy: Remedy) -> None:
    """At the baseline the plan equals the base plan, and training gives the same
    losses and weights as with no remedy at all."""
    import numpy as np

    from remedysweep.runner.data import load_dataset
    from remedysweep.runner.trial import TrialConfig, base_plan, build_trial

    sweep = _tiny_sweep(remedy, [remedy.baseline])
    base = base_plan(sweep)
    plan = base_plan(sweep)
    remedy.apply(remedy.baseline, plan)
    assert plan.same_as(base), f"{remedy.name} at its baseline {remedy.baseline!r} changed the plan: {plan.changes()}"
    data = load_dataset(sweep.data)
    with_remedy = build_trial(sweep, TrialConfig.of({remedy.name: remedy.baseline}, 0), _registry_with(remedy), data)
    without = build_trial(sweep, TrialConfig.of({}, 0), Registry(), data)
    results = []
    for built in (with_remedy, without):
        h = built.model.fit(built.x_train, built.y_train, batch_size=built.plan.fit.batch_size, epochs=1, verbose=0, shuffle=False)
        results.append((h.history["loss"][0], [w.copy() for w in built.model.get_weights()]))
    (loss_a, wa), (loss_b, wb) = results
    assert math.isclose(loss_a, loss_b, rel_tol=1e-5, abs_tol=1e-7), f"{remedy.name} at baseline: loss {loss_a} vs {loss_b} without it"
    assert len(wa) == len(wb) and all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(wa, wb)), (
        f"{remedy.name} at baseline: weights after one epoch differ from the base trial's"
    )


def check_values_round_trip(remedy: Remedy) -> None:
    """Values survive the study storage (a real journal file) and trials.csv."""
    import optuna
    import pandas as pd

    from remedysweep.runner import study as st
    from remedysweep.runner.orchestrate import results_frames
    from remedysweep.runner.trial import TrialConfig

    values = sample_values(remedy)
    sweep = _tiny_sweep(remedy, values)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        spec = st.StorageSpec.journal(Path(tmp) / "study.journal")
        study = st.create_or_load(spec.open(), sweep, "contract")
        for v in values:
            st.enqueue(study, {remedy.name: v}, 0)
        reread = optuna.load_study(study_name=sweep.name, storage=spec.open())
        for v in values:
            tid = st.claim(reread)
            assert tid is not None
            trial = optuna.trial.Trial(reread, tid)
            got = trial.suggest_categorical(remedy.name, list(values))
            assert type(got) is type(v) and got == v, f"{remedy.name}: {v!r} came back from the storage as {got!r}"
            config = TrialConfig.of({remedy.name: got}, 0)
            st.save_result(reread, tid, {"outcome": "healthy", "knobs": config.knob_dict, "seed": 0, "curves": {}}, [0.5])
        trials, _, _ = results_frames(reread, sweep)
        csv = Path(tmp) / "trials.csv"
        trials.to_csv(csv, index=False)
        back = pd.read_csv(csv)[remedy.name].tolist()
    for v, b in zip(values, back):
        same = (float(v) == float(b)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v) == str(b)
        assert same, f"{remedy.name}: {v!r} came back from trials.csv as {b!r}"


CHECKS: tuple[Check, ...] = (
    check_declaration,
    check_every_value_trains,
    check_baseline_changes_nothing,
    check_values_round_trip,
)


def check_registry(registry: Registry) -> None:
    """Registry-level contract: unique names, non-empty descriptions, no load errors."""
    names = list(registry.remedies)
    assert len(names) == len(set(names)), "remedy names repeat"
    for name, remedy in registry.remedies.items():
        assert remedy.description.strip(), f"{name}: empty description"
    assert not registry.errors, "; ".join(str(e) for e in registry.errors)


def parametrize_with_checks(names: Iterable[str] | None = None, plugin_files: Sequence[str] = ()) -> Any:
    """A ``pytest.mark.parametrize`` over (remedy, check) for the named remedies,
    or every installed one."""
    import pytest

    registry = discover(plugin_files=plugin_files)
    selected = list(names) if names is not None else list(registry.remedies)
    missing = [n for n in selected if n not in registry]
    if missing:
        raise LookupError(f"remedies not installed: {', '.join(missing)}; errors: {registry.errors}")
    params = [
        pytest.param(registry[n], check, id=f"{n}-{check.__name__}") for n in selected for check in CHECKS
    ]
    return pytest.mark.parametrize("remedy, check", params)
