"""``remedysweep doctor``: diagnose a user's own Keras model.

Steps, each reported:

1. Sanity check: the same architecture and loss, with Adam at 1e-3, on easy data
   (one distinct input pattern per class) must reach 95%; if not, the model or the
   loss is broken and doctor stops there.
2. Baseline: the user's model as compiled (loss, optimizer, learning rate), over
   several seeds, with the per-epoch diagnostics; the symptoms.
3. A targeted sweep: the fixes that apply to those symptoms, least invasive first,
   each over the same seeds, with the collapse-aware early stop.
4. Verdict: the smallest change that avoided ending at chance on every seed, its
   interval, and the code change to make.

Fixes that change the architecture work on Sequential and functional models
through ``keras.models.clone_model`` with a ``clone_function``; one that cannot
apply says why and is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import EarlyStopSpec, OutcomeSpec, Sweep, TrainingSpec, DataSpec, ModelSpec
from .data import Dataset
from .trial import BuiltTrial, RunResult, configure_tensorflow, train_and_record

AT_CHANCE = ("collapsed", "never_learned", "diverged")


class DoctorError(ValueError):
    """Input doctor cannot use (one line, exit 2)."""


class NotApplicable(Exception):
    """A fix that does not apply to this model."""


# ----------------------------------------------------------------------------
# Loading the user's model and data
# ----------------------------------------------------------------------------


def load_callable(spec: str, what: str) -> Callable[[], Any]:
    """``package.module:function`` or ``path/to/file.py:function``."""
    if ":" not in spec:
        raise DoctorError(f"--{what} {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    target, func = spec.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise DoctorError(f"--{what} {spec!r}: file {target} not found")
            mod_name = f"remedysweep_user_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            module = importlib.import_module(target)
    except DoctorError:
        raise
    except Exception as exc:
        raise DoctorError(f"--{what} {spec!r}: cannot import {target}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise DoctorError(f"--{what} {spec!r}: {target} has no function {func!r}")
    return fn


@dataclass
class Problem:
    """The user's model factory and data, with labels as integers."""

    model_fn: Callable[[], Any]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    one_hot_labels: bool
    source: str = ""

    def labels(self, y: np.ndarray) -> np.ndarray:
        """Labels in the format the user's loss expects."""
        return np.eye(self.n_classes, dtype="float32")[y] if self.one_hot_labels else y

    def dataset(self) -> Dataset:
        return Dataset("user", self.x_train, self.y_train, self.x_val, self.y_val, self.n_classes)


def _as_int_labels(y: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype("int32"), True
    if y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1 or not np.all(np.equal(np.mod(y, 1), 0)):
        raise DoctorError(f"--data: {name} must be integer class labels or one-hot rows, got shape {y.shape}")
    return y.astype("int32"), False


def load_problem(model_spec: str, data_spec: str) -> Problem:
    """From ``MODULE:FUNCTION`` pairs, or a saved ``.keras`` model and an ``.npz``."""
    configure_tensorflow()
    import keras

    if model_spec.endswith(".keras"):
        path = Path(model_spec)
        if not path.is_file():
            raise DoctorError(f"--model {model_spec}: file not found")

        def model_fn() -> Any:
            try:
                return keras.models.load_model(path)
            except Exception as exc:
                raise DoctorError(f"--model {model_spec}: cannot load: {type(exc).__name__}: {exc}") from None
    else:
        model_fn = load_callable(model_spec, "model")
    if data_spec.endswith(".npz"):
        try:
            arrays = np.load(data_spec)
            data = ((arrays["x_train"], arrays["y_train"]), (arrays["x_val"], arrays["y_val"]))
        except (OSError, KeyError) as exc:
            raise DoctorError(f"--data {data_spec}: needs arrays x_train, y_train, x_val, y_val ({exc})") from None
    else:
        try:
            data = load_callable(data_spec, "data")()
        except DoctorError:
            raise
        except Exception as exc:
            raise DoctorError(f"--data {data_spec}: the function raised {type(exc).__name__}: {exc}") from None
    try:
        (x_tr, y_tr), (x_va, y_va) = data
    except (TypeError, ValueError):
        raise DoctorError(f"--data {data_spec}: must return ((x_train, y_train), (x_val, y_val))") from None
    y_tr, one_hot_tr = _as_int_labels(y_tr, "y_train")
    y_va, _ = _as_int_labels(y_va, "y_val")
    n_classes = int(max(y_tr.max(), y_va.max()) + 1)
    if n_classes < 2:
        raise DoctorError(f"--data {data_spec}: needs at least two classes")
    x_tr, x_va = np.asarray(x_tr), np.asarray(x_va)
    if x_tr.dtype.kind == "f":
        x_tr, x_va = x_tr.astype("float32"), x_va.astype("float32")
    return Problem(model_fn, x_tr, y_tr, x_va, y_va, n_classes, one_hot_tr, source=f"{model_spec} on {data_spec}")


# ----------------------------------------------------------------------------
# Looking at the model
# ----------------------------------------------------------------------------


def _activation_name(layer: Any) -> str | None:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if act is not None else None


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__


KERAS_CE = {"categorical_crossentropy", "sparse_categorical_crossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy"}


def inspect_model(model: Any, problem: Problem) -> dict[str, Any]:
    """Static facts: output activation, loss, optimizer, structural symptoms."""
    import keras

    last = model.layers[-1]
    prev = model.layers[-2] if len(model.layers) > 1 else None
    softmax_out = _activation_name(last) == "softmax"
    double_softmax = softmax_out and prev is not None and _activation_name(prev) == "softmax"
    loss = model.loss
    loss_name = _loss_name(loss)
    from_logits = bool(getattr(loss, "get_config", lambda: {})().get("from_logits", False)) if not isinstance(loss, str) else False
    opt = model.optimizer
    facts = {
        "output_softmax": softmax_out,
        "double_softmax": double_softmax,
        "loss": loss_name,
        "keras_cross_entropy": loss_name in KERAS_CE,
        "from_logits": from_logits,
        "optimizer": type(opt).__name__ if opt is not None else None,
        "learning_rate": float(keras.ops.convert_to_numpy(opt.learning_rate)) if opt is not None else None,
        "hidden_activations": sorted({a for l in model.layers[:-1] for a in [_activation_name(l)] if a and a != "linear"}),
        "sequential": isinstance(model, keras.Sequential),
        "n_params": int(model.count_params()),
    }
    symptoms = []
    if double_softmax:
        symptoms.append("softmax applied twice: the last two layers both end in softmax")
    if not softmax_out and facts["keras_cross_entropy"] and not from_logits:
        symptoms.append("softmax missing: the model outputs logits but the loss expects probabilities (from_logits=False)")
    if softmax_out and from_logits:
        symptoms.append("softmax applied before a loss told from_logits=True")
    sparse = "sparse" in loss_name.lower()
    if facts["keras_cross_entropy"] and sparse == problem.one_hot_labels:
        symptoms.append(f"labels/loss mismatch: {'one-hot' if problem.one_hot_labels else 'integer'} labels with {loss_name}")
    if softmax_out and not facts["keras_cross_entropy"]:
        facts["handwritten_loss_on_softmax"] = True
    return {"facts": facts, "symptoms": symptoms}


# ----------------------------------------------------------------------------
# Fixes
# ----------------------------------------------------------------------------


def _recompile(model: Any, base: Any, *, loss: Any = None, lr_factor: float = 1.0, clip: float | None = None) -> Any:
    import keras

    opt_cfg = base.optimizer.get_config()
    opt_cfg["learning_rate"] = float(keras.ops.convert_to_numpy(base.optimizer.learning_rate)) * lr_factor
    if clip is not None:
        opt_cfg["global_clipnorm"] = clip
    optimizer = type(base.optimizer).from_config(opt_cfg)
    model.compile(optimizer=optimizer, loss=loss if loss is not None else base.loss, metrics=["accuracy"])
    return model


def clone_model(base: Any, clone_function: Callable[[Any], Any] | None = None) -> Any:
    """``keras.models.clone_model`` that also re-compiles models whose loss is a
    user function Keras cannot look up by name."""
    import keras

    custom = {}
    for obj in (base.loss, getattr(base, "_compile_loss", None)):
        if callable(obj) and hasattr(obj, "__name__"):
            custom[obj.__name__] = obj
    with keras.saving.custom_object_scope(custom):
        return keras.models.clone_model(base, clone_function=clone_function)


def _clone(base: Any, change: Callable[[Any, dict], dict | None]) -> Any:
    """Clone with a per-layer config change (fresh, seeded weights)."""

    def clone_function(layer: Any) -> Any:
        cfg = layer.get_config()
        new = change(layer, dict(cfg))
        return layer.__class__.from_config(new if new is not None else cfg)

    return clone_model(base, clone_function=clone_function)


@dataclass(frozen=True)
class Fix:
    name: str
    description: str
    code: str
    apply: Callable[[Any, Problem], Any]  # compiled base model -> new compiled model
    when: Callable[[dict[str, Any], set[str]], bool]


def _fused(base: Any, problem: Problem) -> Any:
    import keras

    last = base.layers[-1]
    if _activation_name(last) != "softmax":
        raise NotApplicable("the model does not end in a softmax")
    if isinstance(last, keras.layers.Activation):
        inner = keras.Model(base.inputs, base.layers[-2].output)
        model = clone_model(inner)
    else:
        model = _clone(base, lambda l, c: {**c, "activation": "linear"} if l is last else None)
    loss = (keras.losses.CategoricalCrossentropy if problem.one_hot_labels else keras.losses.SparseCategoricalCrossentropy)(from_logits=True)
    return _recompile(model, base, loss=loss)


def _lr(factor: float) -> Callable[[Any, Problem], Any]:
    def apply(base: Any, problem: Problem) -> Any:

        return _recompile(clone_model(base), base, lr_factor=factor)

    return apply


def _clipnorm(base: Any, problem: Problem) -> Any:

    return _recompile(clone_model(base), base, clip=1.0)


def _leaky(base: Any, problem: Problem) -> Any:
    last = base.layers[-1]
    if "relu" not in {_activation_name(l) for l in base.layers}:
        raise NotApplicable("no ReLU activation to replace")
    model = _clone(base, lambda l, c: {**c, "activation": "leaky_relu"} if l is not last and c.get("activation") == "relu" else None)
    return _recompile(model, base)


def _maxnorm(base: Any, problem: Problem) -> Any:
    import keras

    last = base.layers[-1]
    model = _clone(base, lambda l, c: {**c, "kernel_constraint": keras.constraints.serialize(keras.constraints.MaxNorm(3.0))}
                   if "kernel_constraint" in c and l is not last else None)
    return _recompile(model, base)


def _narrower(base: Any, problem: Problem) -> Any:
    import keras

    dense = [l for l in base.layers if isinstance(l, keras.layers.Dense)]
    if len(dense) < 2:
        raise NotApplicable("no hidden Dense layer to narrow")
    hidden = set(id(l) for l in dense[:-1])
    model = _clone(base, lambda l, c: {**c, "units": max(1, c["units"] // 4)} if id(l) in hidden else None)
    return _recompile(model, base)


def _batchnorm(base: Any, problem: Problem) -> Any:
    import keras

    if not isinstance(base, keras.Sequential):
        raise NotApplicable("inserting layers needs a Sequential model; this one is functional")
    dense = [l for l in base.layers if isinstance(l, keras.layers.Dense)]
    layers: list[Any] = [keras.Input(base.inputs[0].shape[1:], dtype=base.inputs[0].dtype)]
    for layer in base.layers:
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.Dense) and layer is not dense[-1]:
            act = cfg.get("activation", "linear")
            layers += [keras.layers.Dense.from_config({**cfg, "activation": "linear", "name": cfg["name"] + "_pre"}),
                       keras.layers.BatchNormalization(), keras.layers.Activation(act)]
        else:
            layers.append(layer.__class__.from_config(cfg))
    return _recompile(keras.Sequential(layers), base)


FIXES: tuple[Fix, ...] = (
    Fix("fused_loss", "remove the final softmax and use the fused cross-entropy on the logits",
        "make the last layer Dense(n_classes) with no activation and compile with "
        "loss=keras.losses.{Sparse}CategoricalCrossentropy(from_logits=True); apply softmax only to read probabilities",
        _fused, lambda f, s: f["output_softmax"] and (not f["keras_cross_entropy"] or f["from_logits"] or f["double_softmax"])),
    Fix("learning_rate_x0.1", "divide the learning rate by 10",
        "optimizer=<same optimizer>(learning_rate=<current> / 10)", _lr(0.1), lambda f, s: True),
    Fix("global_clipnorm_1", "clip the global gradient norm to 1",
        "optimizer=<same optimizer>(..., global_clipnorm=1.0)", _clipnorm, lambda f, s: bool(s & {"diverged", "exploding"})),
    Fix("learning_rate_x0.01", "divide the learning rate by 100",
        "optimizer=<same optimizer>(learning_rate=<current> / 100)", _lr(0.01), lambda f, s: True),
    Fix("leaky_relu", "replace ReLU with leaky ReLU in hidden layers",
        "activation='leaky_relu' instead of 'relu' in hidden layers", _leaky, lambda f, s: "relu" in f["hidden_activations"]),
    Fix("maxnorm_3", "clamp each hidden unit's weights to norm 3",
        "kernel_constraint=keras.constraints.MaxNorm(3.0) on hidden layers", _maxnorm, lambda f, s: True),
    Fix("batchnorm", "batch normalization before each hidden activation",
        "Dense(units) -> BatchNormalization() -> Activation(...) for each hidden layer", _batchnorm, lambda f, s: True),
    Fix("narrower", "a network 4x narrower",
        "units=<current> // 4 in hidden Dense layers", _narrower, lambda f, s: True),
)


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------


def _doctor_sweep(epochs: int, seeds: int) -> Sweep:
    return Sweep(
        name="doctor",
        source="<doctor>",
        data=DataSpec(),
        model=ModelSpec(),
        training=TrainingSpec(epochs=epochs, probe_size=256),
        knobs=(),
        seeds=tuple(range(seeds)),
        baseline=(),
        outcome=OutcomeSpec(window=min(3, epochs)),
        early_stop=EarlyStopSpec(enabled=True, patience=max(3, min(3, epochs))),
    )


def _built(model: Any, problem: Problem, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, seed: int, batch_size: int = 32) -> BuiltTrial:
    from remedysweep.remedies import TrialPlan

    loss = model.loss
    if isinstance(loss, str):
        import keras

        loss = keras.losses.get(loss)
    plan = TrialPlan()
    plan.fit.batch_size = batch_size
    return BuiltTrial(model, loss, plan, x_tr, problem.labels(y_tr), x_va, problem.labels(y_va), max(1, math.ceil(len(x_tr) / batch_size)), seed)


def run_variant(problem: Problem, fix: Fix | None, seed: int, sweep: Sweep) -> RunResult:
    import keras

    def build() -> BuiltTrial:
        keras.utils.set_random_seed(seed)
        base = problem.model_fn()
        model = fix.apply(base, problem) if fix else base
        return _built(model, problem, problem.x_train, problem.y_train, problem.x_val, problem.y_val, seed)

    return train_and_record(sweep, build, problem.dataset())


def sanity_check(problem: Problem, epochs: int = 40) -> dict[str, Any]:
    """Same architecture and loss, Adam 1e-3, one distinct input per class."""
    import keras

    keras.utils.set_random_seed(0)
    base = problem.model_fn()
    rng = np.random.default_rng(0)
    shape = problem.x_train.shape[1:]
    if problem.x_train.dtype.kind in "iu":
        high = int(problem.x_train.max()) + 1
        patterns = rng.integers(0, max(2, high), size=(problem.n_classes, *shape)).astype(problem.x_train.dtype)
    else:
        scale = float(np.std(problem.x_train)) or 1.0
        patterns = (rng.standard_normal((problem.n_classes, *shape)) * scale).astype("float32")
    y = np.repeat(np.arange(problem.n_classes, dtype="int32"), 16)
    x = patterns[y]
    model = clone_model(base)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=base.loss, metrics=["accuracy"])
    try:
        hist = model.fit(x, problem.labels(y), batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    except Exception as exc:  # the user's model or loss cannot even train
        from .trial import _error_message

        return {"accuracy": float("nan"), "loss": float("nan"), "passed": False, "epochs": 0, "error": _error_message(exc)}
    acc = float(hist.history["accuracy"][-1])
    loss = float(hist.history["loss"][-1])
    return {"accuracy": acc, "loss": loss, "passed": bool(acc >= 0.95 and math.isfinite(loss)), "epochs": epochs}


def _nan_layer(problem: Problem, seed: int, sweep: Sweep) -> str | None:
    """Re-run the baseline to its first non-finite epoch and name the first layer
    whose weights are NaN/Inf then."""
    import keras

    keras.utils.set_random_seed(seed)
    model = problem.model_fn()
    found: list[str] = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            layers = [l for l in self.model.layers if l.weights]
            for i, layer in enumerate(layers, 1):
                for w in layer.weights:
                    if not np.all(np.isfinite(keras.ops.convert_to_numpy(w))):
                        found.append(f"{layer.name} (weight layer {i} of {len(layers)}, step {batch + 1})")
                        self.model.stop_training = True
                        return

    model.fit(problem.x_train, problem.labels(problem.y_train), batch_size=32, epochs=sweep.training.epochs, verbose=0, callbacks=[Watch()])
    return found[0] if found else None


def summarize(results: list[RunResult]) -> dict[str, Any]:
    from remedysweep.reports.analysis import wilson

    n = len(results)
    bad = sum(r.outcome in AT_CHANCE for r in results)
    lo, hi = wilson(bad, n)
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    finals = [r.final_val_accuracy for r in results if r.final_val_accuracy == r.final_val_accuracy]
    return {
        "runs": n,
        "at_chance": bad,
        "at_chance_interval": [lo, hi],
        "outcomes": outcomes,
        "final_accuracy": finals,
        "median_final_accuracy": float(np.median(finals)) if finals else None,
    }


def _symptom_tags(results: list[RunResult], n_classes: int) -> tuple[set[str], list[str]]:
    tags: set[str] = set()
    text: list[str] = []
    outcomes = [r.outcome for r in results]
    for o in ("collapsed", "never_learned", "diverged", "degraded", "failed"):
        k = outcomes.count(o)
        if k:
            tags.add(o)
            text.append(f"{o} on {k} of {len(results)} seeds")
    logits = [max(r.curves.get("logit_abs_mean") or [0]) for r in results]
    if logits and max(logits) > 50:
        tags.add("exploding")
        text.append(f"exploding logits: mean |logit| reached {max(logits):.3g}")
    dead = [r.curves.get("dead_fraction", [0])[-1] for r in results if r.curves.get("dead_fraction")]
    if dead and max(dead) > 0.5:
        tags.add("dead_units")
        text.append(f"dead units: up to {max(dead):.0%} of hidden units never activate on the probe batch")
    return tags, text


def diagnose(problem: Problem, *, epochs: int = 10, seeds: int = 3, echo: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run every step and return the verdict (a JSON-friendly dict)."""
    configure_tensorflow()
    sweep = _doctor_sweep(epochs, seeds)
    base_model = problem.model_fn()
    static = inspect_model(base_model, problem)
    facts = static["facts"]
    verdict: dict[str, Any] = {"model": problem.source, "facts": facts, "n_classes": problem.n_classes, "epochs": epochs, "seeds": seeds}
    echo(f"model: {facts['n_params']} parameters, output {'softmax' if facts['output_softmax'] else 'logits'}, "
         f"loss {facts['loss']}, {facts['optimizer']} at learning rate {facts['learning_rate']:g}")

    echo("1/4 sanity check on easy data (one input pattern per class) ...")
    sanity = sanity_check(problem)
    verdict["sanity_check"] = sanity
    if "error" in sanity:
        echo(f"    FAILED: training raised {sanity['error']}")
    else:
        echo(f"    {'passed' if sanity['passed'] else 'FAILED'}: accuracy {sanity['accuracy']:.2f} after {sanity['epochs']} epochs")
    if not sanity["passed"]:
        why = f" (training raised {sanity['error']})" if "error" in sanity else ""
        verdict.update(
            baseline_outcome=None,
            symptoms=[f"the model cannot learn easy data: the architecture, loss or labels are broken{why}", *static["symptoms"]],
            recommendation=None,
            stopped_at="sanity_check",
            conclusion="stopped at the sanity check: " + "; ".join(static["symptoms"] or ["the model cannot learn easy data"]),
        )
        return verdict

    echo(f"2/4 baseline over {seeds} seeds, {epochs} epochs ...")
    baseline = [run_variant(problem, None, s, sweep) for s in range(seeds)]
    base_summary = summarize(baseline)
    tags, symptom_text = _symptom_tags(baseline, problem.n_classes)
    if "diverged" in tags:
        first = next(r for r in baseline if r.outcome == "diverged")
        layer = _nan_layer(problem, baseline.index(first), sweep)
        symptom_text.append(f"first NaN/Inf at epoch {first.first_nonfinite_epoch}" + (f", in layer {layer}" if layer else ""))
    if facts.get("handwritten_loss_on_softmax"):
        symptom_text.append("a hand-written loss on softmax probabilities: Keras cannot fuse it into the stable form")
    symptoms = [*static["symptoms"], *symptom_text]
    outcome_counts = base_summary["outcomes"]
    baseline_outcome = max(outcome_counts, key=outcome_counts.get)
    verdict.update(baseline_outcome=baseline_outcome, baseline=base_summary, symptoms=symptoms,
                   baseline_curves=[r.curves.get("val_accuracy", []) for r in baseline])
    echo(f"    {baseline_outcome}: " + ", ".join(f"{k} {v}" for k, v in outcome_counts.items()))
    for s in symptoms:
        echo(f"    symptom: {s}")
    if base_summary["at_chance"] == 0 and "degraded" not in tags and "failed" not in tags and not static["symptoms"]:
        verdict["recommendation"] = None
        verdict["tried"] = []
        verdict["conclusion"] = f"healthy on all {seeds} seeds: no change needed"
        echo("3/4 nothing to fix")
        echo(f"4/4 verdict: {verdict['conclusion']}")
        return verdict

    echo("3/4 targeted sweep, least invasive fix first ...")
    tried: list[dict[str, Any]] = []
    recommendation = None
    for fix in FIXES:
        if not fix.when(facts, tags):
            continue
        try:
            fix.apply(problem.model_fn(), problem)
        except NotApplicable as exc:
            tried.append({"fix": fix.name, "applicable": False, "why": str(exc)})
            echo(f"    {fix.name}: cannot apply ({exc})")
            continue
        results = [run_variant(problem, fix, s, sweep) for s in range(seeds)]
        summary = summarize(results)
        ok = summary["at_chance"] == 0 and not summary["outcomes"].get("failed")
        tried.append({"fix": fix.name, "applicable": True, "description": fix.description, **summary, "avoids_collapse": ok,
                      "curves": [r.curves.get("val_accuracy", []) for r in results]})
        echo(f"    {fix.name}: {summary['at_chance']}/{summary['runs']} at chance, median final accuracy "
             f"{summary['median_final_accuracy'] if summary['median_final_accuracy'] is not None else float('nan'):.3f}")
        if ok:
            recommendation = {
                "changes": [fix.name],
                "description": fix.description,
                "code": fix.code.replace("{Sparse}", "" if problem.one_hot_labels else "Sparse"),
                "evidence": summary,
            }
            break
    verdict["tried"] = tried
    verdict["recommendation"] = recommendation
    if recommendation:
        lo, hi = recommendation["evidence"]["at_chance_interval"]
        verdict["conclusion"] = (f"{recommendation['description']}: 0 of {seeds} seeds ended at chance (95% CI {lo:.0%}–{hi:.0%}), "
                                 f"against {base_summary['at_chance']} of {seeds} for your model")
    else:
        verdict["conclusion"] = "no single fix avoided ending at chance on every seed"
    echo(f"4/4 verdict: {verdict['conclusion']}")
    return verdict


def write_doctor_report(verdict: dict[str, Any], out: Path) -> Path:
    from remedysweep.reports.render import render_doctor

    from .orchestrate import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "doctor.json", json.dumps(verdict, indent=2, default=str))
    path = out / "doctor.html"
    atomic_write(path, render_doctor(verdict))
    return path
