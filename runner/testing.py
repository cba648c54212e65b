"""The contract every remedy meets, as checks a plugin author can run on their
own package (like scikit-learn's ``parametrize_with_checks``)::

    from remedysweep.testing import parametrize_with_checks

    @parametrize_with_checks(["focal_loss"])      # or None: every installed remedy
    def test_remedy_contract(remedy, check):
        assert check(remedy) is None              # a broken contract raises AssertionError

Each check trains real tiny models with TensorFlow and uses a real Optuna journal
storage in a temporary folder. An application of the engine: it builds and
trains runs exactly as a sweep does.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from remedysweep.remedies import AS_BUILT, Categorical, IntRange, Registry, Remedy, check_remedy, discover

Check = Callable[[Remedy], None]


def _tiny_sweep(remedy: Remedy, values: Sequence[Any]) -> Any:
    from .engine.config import DataSpec, ModelSpec, make_sweep

    sweep = make_sweep("contract", model=ModelSpec(kind="mlp", depth=1), data=DataSpec(dataset="blobs", n_classes=3, n_features=4, n_samples=96),
                       knobs={remedy.name: tuple(values)}, epochs=1, early_probes=0, probe_size=16, pack=False)
    return dataclasses.replace(sweep, early_stop=dataclasses.replace(sweep.early_stop, enabled=False))


def _registry(remedy: Remedy) -> Registry:
    reg = Registry()
    reg.remedies[remedy.name] = remedy
    reg.sources[remedy.name] = "contract"
    return reg


def _setup(remedy: Remedy, sweep: Any) -> Any:
    from .engine.build import Setup

    return Setup.load(sweep, registry=_registry(remedy))


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
    """Name pattern, a one-line description, a value space, a baseline within it,
    touches naming plan fields."""
    problem = check_remedy(remedy)
    assert problem is None, f"{remedy.name}: {problem}"


def check_every_value_trains(remedy: Remedy) -> None:
    """Each value yields a model that trains an epoch on tiny data, through the
    trainers a sweep uses (packed where the values allow, else alone)."""
    from .engine.trainers import TRAINERS, train_batch

    values = sample_values(remedy)
    sweep = _tiny_sweep(remedy, values)
    setup = _setup(remedy, sweep)
    for v, r in zip(values, train_batch(setup, [({remedy.name: v}, 0) for v in values], trainers=TRAINERS)):
        assert r.outcome.value != "failed", f"{remedy.name}={v!r} failed to train ({r.path}): {r.message}"
        assert r.epochs_run == 1, f"{remedy.name}={v!r} ran {r.epochs_run} epochs, expected 1"


def check_baseline_changes_nothing(remedy: Remedy) -> None:
    """At its baseline, on the built-in classifier, one epoch of training gives
    the same losses and weights as with the knob left as built."""
    import numpy as np

    from .engine.build import build_run

    sweep = _tiny_sweep(remedy, [remedy.baseline])
    setup = _setup(remedy, sweep)
    results = []
    for knobs in ({remedy.name: remedy.baseline}, {remedy.name: AS_BUILT}):
        b = build_run(setup, knobs, 0)
        h = b.model.fit(b.data.x_train, b.y_train, batch_size=b.batch_size, epochs=1, verbose=0, shuffle=False)
        results.append((h.history["loss"][0], [w.copy() for w in b.model.get_weights()]))
    (loss_a, wa), (loss_b, wb) = results
    assert math.isclose(loss_a, loss_b, rel_tol=1e-5, abs_tol=1e-7), f"{remedy.name} at baseline: loss {loss_a} vs {loss_b} as built"
    assert len(wa) == len(wb) and all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(wa, wb)), (
        f"{remedy.name} at baseline: weights after one epoch differ from the model as built"
    )


def check_applies_or_says_why(remedy: Remedy) -> None:
    """Every value either applies to models written the way people write them
    (a functional model with a Softmax layer, a convolutional Sequential) or
    says why not; it never fails in another way."""
    from .engine.build import Setup, build_run
    from .engine.config import DataSpec, ModelSpec
    from .engine.data import Dataset
    from .engine.surgery import NotApplicable

    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    for kind in ("functional", "conv"):
        shape = (6, 6, 1) if kind == "conv" else (5,)
        x = rng.standard_normal((48, *shape)).astype("float32")
        y = rng.integers(0, 3, 48).astype("int32")
        data = Dataset("contract", x[:36], y[:36], x[36:], y[36:], 3, "int")

        def build(kind: str = kind, shape: tuple[int, ...] = shape) -> Any:
            inputs = keras.Input(shape)
            if kind == "conv":
                h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
                h = keras.layers.Flatten()(h)
            else:
                h = keras.layers.Dense(8, activation="tanh")(inputs)
            out = keras.layers.Softmax()(keras.layers.Dense(3)(h))
            model = keras.Model(inputs, out)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            return model

        sweep = dataclasses.replace(_tiny_sweep(remedy, sample_values(remedy)), model=ModelSpec(builder="contract:build"), data=DataSpec(loader="contract:data"))
        setup = Setup(sweep, _registry(remedy), data, _Source(build))  # type: ignore[arg-type]
        for v in sample_values(remedy):
            try:
                build_run(setup, {remedy.name: v}, 0)
            except NotApplicable as exc:
                assert str(exc).strip(), f"{remedy.name}={v!r} on a {kind} model: NotApplicable without a reason"


class _Source:
    """A model source for a builder function defined in Python."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.spec = None

    def build(self, seed: int, data: Any) -> Any:
        import keras

        keras.utils.set_random_seed(seed)
        return self.fn()


def check_values_round_trip(remedy: Remedy) -> None:
    """Values survive the study storage (a real journal file) and trials.csv."""
    import optuna

    from remedysweep.files import atomic_write, read_csv

    from .engine.queue import RunQueue, StorageSpec
    from .engine.result import RunOutcome, RunResult
    from .engine.folder import JOURNAL_FILE, TRIALS_CSV, results_frames

    values = sample_values(remedy)
    sweep = _tiny_sweep(remedy, values)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        queue = RunQueue.create(StorageSpec.journal(Path(tmp) / JOURNAL_FILE), sweep, "contract")
        for v in values:
            queue.record({remedy.name: v}, 0, RunResult(RunOutcome.HEALTHY, 0.5, 0.5, 1, 0.1, 1 / 3))
        reread = RunQueue.open(queue.spec, sweep.name)
        for run in reread.results():
            got = run.knobs[remedy.name]
            assert any(type(got) is type(v) and got == v for v in values), f"{remedy.name}: {got!r} came back from the storage changed"
        trials, _, _ = results_frames(reread)
        csv = Path(tmp) / TRIALS_CSV
        atomic_write(csv, trials.to_csv(index=False))
        back = read_csv(csv, 1 << 30, keep_default_na=False, na_values=[""])[remedy.name].tolist()
    for v, b in zip(values, back):
        same = (float(v) == float(b)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v) == str(b)
        assert same, f"{remedy.name}: {v!r} came back from trials.csv as {b!r}"


CHECKS: tuple[Check, ...] = (
    check_declaration,
    check_every_value_trains,
    check_baseline_changes_nothing,
    check_applies_or_says_why,
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
    params = [pytest.param(registry[n], check, id=f"{n}-{check.__name__}") for n in selected for check in CHECKS]
    return pytest.mark.parametrize("remedy, check", params)
