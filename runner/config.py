"""Sweep files: TOML in, a validated, typed :class:`Sweep` out, before anything runs.

Every problem is reported as one :class:`SweepError` naming the file, the key and
what is allowed. Nothing here writes anything or imports TensorFlow.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from remedysweep.remedies import Categorical, FloatRange, IntRange, Registry, RemedyConflict, TrialPlan, discover

DATASETS = ("digits", "easy_words", "blobs")
MODELS = ("mlp", "embedding")
SAMPLERS = ("grid", "random", "tpe")
OBJECTIVES = ("accuracy", "accuracy_vs_time", "accuracy_vs_collapse")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SweepError(ValueError):
    """A sweep file that cannot run. ``str()`` is the one-line message."""

    def __init__(self, file: str | Path, key: str | None, message: str):
        self.file = str(file)
        self.key = key
        self.message = message
        where = f"{self.file}: " + (f"key '{key}': " if key else "")
        super().__init__(where + message)


# ----------------------------------------------------------------------------
# Typed configuration
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """The data set. ``n_classes``/``n_features``/``n_samples``/``cluster_std`` are
    used by ``blobs``; ``n_classes``/``samples_per_class`` by ``easy_words``."""

    dataset: str = "digits"
    validation_fraction: float = 0.25
    n_classes: int = 10
    n_features: int = 16
    n_samples: int = 2000
    cluster_std: float = 1.0
    samples_per_class: int = 40


@dataclass(frozen=True)
class ModelSpec:
    """The base classifier: ``mlp`` (Dense stack) or ``embedding`` (token
    embedding, then the Dense stack; for ``easy_words``)."""

    kind: str = "mlp"
    depth: int = 2
    embedding_dim: int = 8


@dataclass(frozen=True)
class TrainingSpec:
    """``early_probes``: accuracy checks on the probe batch inside each of the first
    ``early_probe_epochs`` epochs, at geometrically spaced steps (1, 2, 3, 7, ...),
    to see a rise that falls before the epoch ends.
    ``probe_size``: samples in the fixed probe batch the diagnostics use.
    ``pack_seeds``: train all seeds of an MLP configuration together in one graph
    (see :mod:`remedysweep.runner.packed`); what cannot be packed runs alone."""

    epochs: int = 15
    early_probes: int = 6
    early_probe_epochs: int = 1
    probe_size: int = 256
    steps_per_execution: int = 1
    pack_seeds: bool = False


@dataclass(frozen=True)
class OutcomeSpec:
    """Thresholds for classifying a run; accuracies are validation accuracies.

    ``rise_margin``: a run "rose" if its peak reached chance + rise_margin*(1-chance).
    ``chance_margin``: "at chance" means <= chance + chance_margin*(1-chance).
    ``window``: the final epochs that must all be at chance for ``collapsed``.
    ``degrade_drop``: final below peak by more than this (absolute) is ``degraded``.
    """

    rise_margin: float = 0.2
    chance_margin: float = 0.1
    window: int = 3
    degrade_drop: float = 0.2


@dataclass(frozen=True)
class EarlyStopSpec:
    """Stop a run that sat at chance for ``patience`` epochs after rising, or whose
    loss went NaN/Inf."""

    enabled: bool = True
    patience: int = 3


@dataclass(frozen=True)
class SamplerSpec:
    """``grid``: every combination of the knob values, each over every seed.
    ``random``/``tpe``: ``n_configs`` configurations drawn by Optuna, each run over
    every seed. ``objective`` picks what the samplers optimise."""

    kind: str = "grid"
    n_configs: int = 0
    objective: str = "accuracy"


@dataclass(frozen=True)
class KnobSpec:
    """One swept knob: explicit ``values``, or a numeric range for random/TPE."""

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None


@dataclass(frozen=True)
class Sweep:
    name: str
    source: str
    data: DataSpec
    model: ModelSpec
    training: TrainingSpec
    knobs: tuple[KnobSpec, ...]
    seeds: tuple[int, ...]
    baseline: tuple[tuple[str, Any], ...]
    sampler: SamplerSpec = SamplerSpec()
    outcome: OutcomeSpec = OutcomeSpec()
    early_stop: EarlyStopSpec = EarlyStopSpec()
    plugins: tuple[str, ...] = ()
    description: str = ""

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def baseline_config(self) -> dict[str, Any]:
        return dict(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; travels in the study so workers need nothing else."""
        d = asdict(self)
        d["baseline"] = dict(self.baseline)
        return d

    def fingerprint(self) -> str:
        """Hash of everything that changes results (not the description or path)."""
        d = self.to_dict()
        d.pop("source", None)
        d.pop("description", None)
        d["plugins"] = [Path(p).name for p in self.plugins]
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every knob combination, in a stable order (grid sampler)."""
        names = self.knob_names
        for combo in itertools.product(*(k.values for k in self.knobs)):
            yield dict(zip(names, combo))

    def n_configs(self) -> int:
        if self.sampler.kind == "grid":
            return math.prod(len(k.values) for k in self.knobs)
        return self.sampler.n_configs

    def n_runs(self) -> int:
        return self.n_configs() * len(self.seeds)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Sweep":
        """Inverse of :meth:`to_dict` (no validation: the dict came from a valid sweep)."""
        return cls(
            name=d["name"],
            source=d.get("source", ""),
            data=DataSpec(**d["data"]),
            model=ModelSpec(**d["model"]),
            training=TrainingSpec(**d["training"]),
            knobs=tuple(KnobSpec(**{**k, "values": tuple(k["values"])}) for k in d["knobs"]),
            seeds=tuple(d["seeds"]),
            baseline=tuple(d["baseline"].items()),
            sampler=SamplerSpec(**d["sampler"]),
            outcome=OutcomeSpec(**d["outcome"]),
            early_stop=EarlyStopSpec(**d["early_stop"]),
            plugins=tuple(d.get("plugins", ())),
            description=d.get("description", ""),
        )


def config_id(knobs: Mapping[str, Any]) -> str:
    """A short stable id of a knob configuration (seed excluded)."""
    return hashlib.sha256(json.dumps(dict(sorted(knobs.items())), sort_keys=True).encode()).hexdigest()[:10]


def run_key(knobs: Mapping[str, Any], seed: int) -> str:
    """The exactly-once key of a run: its configuration and its seed."""
    return f"{config_id(knobs)}:{seed}"


# ----------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------

_TOP_KEYS = {
    "name", "description", "seeds", "plugins", "data", "model", "training", "knobs",
    "baseline", "sampler", "outcome", "early_stop",
}
_SECTION_TYPES = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "sampler": SamplerSpec,
    "outcome": OutcomeSpec,
    "early_stop": EarlyStopSpec,
}


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[t]


def _check_type(file: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is not bool and isinstance(value, bool) or not isinstance(value, expected):
        raise SweepError(file, key, f"must be {_type_name(expected)}, got {value!r}")
    if expected is float and not math.isfinite(value):
        raise SweepError(file, key, f"must be a finite number, got {value!r}")
    return value


def _section(file: str, raw: Mapping[str, Any], name: str) -> Any:
    cls = _SECTION_TYPES[name]
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise SweepError(file, name, "must be a table, e.g. [" + name + "]")
    fields = cls.__dataclass_fields__
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise SweepError(
                file, f"{name}.{key}", f"unknown key{_did_you_mean(key, fields)}; allowed: {', '.join(fields)}"
            )
        expected = type(getattr(cls(), key))
        kwargs[key] = _check_type(file, f"{name}.{key}", value, expected)
    return cls(**kwargs)


def _positive(file: str, key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise SweepError(file, key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _fraction(file: str, key: str, value: float, *, low_open: bool = True) -> None:
    if not (0 < value < 1) if low_open else not (0 <= value < 1):
        raise SweepError(file, key, f"must be between 0 and 1, got {value!r}")


def load_sweep(path: str | Path, registry: Registry | None = None, extra_plugins: tuple[str, ...] = ()) -> tuple[Sweep, Registry]:
    """Read and validate a sweep file. Raises :class:`SweepError`; writes nothing."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(file, None, "file not found") from None
    except IsADirectoryError:
        raise SweepError(file, None, "is a folder, not a sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(file, None, f"cannot be read: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(file, None, f"TOML syntax error: {exc}") from None
    return parse_sweep(raw, file, registry=registry, extra_plugins=extra_plugins, base_dir=path.parent)


def parse_sweep(
    raw: Mapping[str, Any],
    file: str,
    *,
    registry: Registry | None = None,
    extra_plugins: tuple[str, ...] = (),
    base_dir: Path | None = None,
) -> tuple[Sweep, Registry]:
    """Validate the parsed TOML of a sweep file (see :func:`load_sweep`)."""
    for key in raw:
        if key not in _TOP_KEYS:
            raise SweepError(file, key, f"unknown key{_did_you_mean(key, _TOP_KEYS)}; allowed: {', '.join(sorted(_TOP_KEYS))}")

    name = raw.get("name", Path(file).stem)
    _check_type(file, "name", name, str)
    if not NAME_PATTERN.match(name):
        raise SweepError(file, "name", f"must be 1-64 letters, digits, '_', '-' or '.', got {name!r}")
    description = _check_type(file, "description", raw.get("description", ""), str)

    # Plugins first: knobs may name them.
    plugins_raw = raw.get("plugins", [])
    if not isinstance(plugins_raw, list) or not all(isinstance(p, str) for p in plugins_raw):
        raise SweepError(file, "plugins", "must be a list of paths to Python files")
    base_dir = base_dir or Path(file).parent
    plugins = tuple(str((base_dir / p).resolve()) if not Path(p).is_absolute() else p for p in plugins_raw)
    plugins += tuple(str(Path(p).resolve()) for p in extra_plugins)
    for p in plugins:
        if not Path(p).is_file():
            raise SweepError(file, "plugins", f"plugin file {p} not found")
    if registry is None or plugins:
        registry = discover(plugin_files=plugins)

    data = _section(file, raw, "data")
    if data.dataset not in DATASETS:
        raise SweepError(file, "data.dataset", f"unknown dataset {data.dataset!r}{_did_you_mean(data.dataset, DATASETS)}; allowed: {', '.join(DATASETS)}")
    _fraction(file, "data.validation_fraction", data.validation_fraction)
    if not 2 <= data.n_classes <= 1000:
        raise SweepError(file, "data.n_classes", f"must be between 2 and 1000, got {data.n_classes}")
    for key in ("n_features", "n_samples", "samples_per_class"):
        _positive(file, f"data.{key}", getattr(data, key))
    _positive(file, "data.cluster_std", data.cluster_std)
    if data.dataset == "blobs" and data.n_samples * data.validation_fraction < data.n_classes:
        raise SweepError(file, "data.n_samples", f"too few samples ({data.n_samples}) for {data.n_classes} classes with a validation split")

    model = _section(file, raw, "model")
    if model.kind not in MODELS:
        raise SweepError(file, "model.kind", f"unknown model {model.kind!r}{_did_you_mean(model.kind, MODELS)}; allowed: {', '.join(MODELS)}")
    if (model.kind == "embedding") != (data.dataset == "easy_words"):
        raise SweepError(file, "model.kind", "the 'embedding' model takes dataset 'easy_words' and only it; 'mlp' takes 'digits' or 'blobs'")
    if not 1 <= model.depth <= 32:
        raise SweepError(file, "model.depth", f"must be between 1 and 32, got {model.depth}")
    _positive(file, "model.embedding_dim", model.embedding_dim)

    training = _section(file, raw, "training")
    if not 1 <= training.epochs <= 10000:
        raise SweepError(file, "training.epochs", f"must be between 1 and 10000, got {training.epochs}")
    _positive(file, "training.early_probes", training.early_probes, allow_zero=True)
    _positive(file, "training.early_probe_epochs", training.early_probe_epochs, allow_zero=True)
    _positive(file, "training.probe_size", training.probe_size)
    _positive(file, "training.steps_per_execution", training.steps_per_execution)

    outcome = _section(file, raw, "outcome")
    for key in ("rise_margin", "chance_margin", "degrade_drop"):
        _fraction(file, f"outcome.{key}", getattr(outcome, key))
    if outcome.chance_margin >= outcome.rise_margin:
        raise SweepError(file, "outcome.chance_margin", f"must be below outcome.rise_margin ({outcome.rise_margin}), got {outcome.chance_margin}")
    if not 1 <= outcome.window <= training.epochs:
        raise SweepError(file, "outcome.window", f"must be between 1 and training.epochs ({training.epochs}), got {outcome.window}")

    early_stop = _section(file, raw, "early_stop")
    if early_stop.patience < outcome.window:
        raise SweepError(file, "early_stop.patience", f"must be at least outcome.window ({outcome.window}) so a stopped run is classified on its final window, got {early_stop.patience}")

    sampler = _section(file, raw, "sampler")
    if sampler.kind not in SAMPLERS:
        raise SweepError(file, "sampler.kind", f"unknown sampler {sampler.kind!r}{_did_you_mean(sampler.kind, SAMPLERS)}; allowed: {', '.join(SAMPLERS)}")
    if sampler.objective not in OBJECTIVES:
        raise SweepError(file, "sampler.objective", f"unknown objective {sampler.objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if sampler.kind == "grid" and sampler.n_configs:
        raise SweepError(file, "sampler.n_configs", "only applies to the random and tpe samplers (grid runs every combination)")
    if sampler.kind != "grid" and not 1 <= sampler.n_configs <= 100000:
        raise SweepError(file, "sampler.n_configs", f"the {sampler.kind} sampler needs a run budget: n_configs between 1 and 100000, got {sampler.n_configs}")

    seeds = raw.get("seeds")
    if seeds is None:
        raise SweepError(file, "seeds", "missing: list the seeds every configuration runs with, e.g. seeds = [0, 1, 2]")
    if not isinstance(seeds, list) or not seeds:
        raise SweepError(file, "seeds", "must be a non-empty list of integers")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31:
            raise SweepError(file, "seeds", f"seeds must be integers in [0, 2^31), got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise SweepError(file, "seeds", "seeds must not repeat")

    knobs = _parse_knobs(file, raw, registry, sampler)
    baseline = _parse_baseline(file, raw, registry, knobs)
    sweep = Sweep(
        name=name,
        source=file,
        description=description,
        data=data,
        model=model,
        training=training,
        knobs=knobs,
        seeds=tuple(seeds),
        baseline=tuple(baseline.items()),
        sampler=sampler,
        outcome=outcome,
        early_stop=early_stop,
        plugins=plugins,
    )
    check_conflicts(sweep, registry)
    return sweep, registry


def _parse_knobs(file: str, raw: Mapping[str, Any], registry: Registry, sampler: SamplerSpec) -> tuple[KnobSpec, ...]:
    table = raw.get("knobs")
    if not isinstance(table, dict) or not table:
        raise SweepError(file, "knobs", "missing or empty: add a [knobs] table, e.g. loss = [\"unfused\", \"fused_logits\"]")
    knobs = []
    broken = registry.broken_names()
    for name, spec in table.items():
        key = f"knobs.{name}"
        if name not in registry:
            if name in broken:
                raise SweepError(file, key, f"the remedy is broken and cannot run: {broken[name]}")
            raise SweepError(file, key, f"unknown knob{_did_you_mean(name, registry.names())}; installed: {', '.join(sorted(registry.names()))}")
        remedy = registry[name]
        if isinstance(spec, dict):
            knobs.append(_parse_range(file, key, spec, remedy, sampler))
            continue
        if not isinstance(spec, list):
            spec = [spec]
        if not spec:
            raise SweepError(file, key, f"empty list of values; allowed: {remedy.space.describe()}")
        values = []
        for v in spec:
            if isinstance(remedy.space, FloatRange) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            problem = remedy.check_value(v)
            if problem:
                hint = _did_you_mean(v, remedy.space.choices) if isinstance(v, str) and isinstance(remedy.space, Categorical) else ""
                raise SweepError(file, key, f"value {v!r} not allowed{hint}; {problem}")
            if any(type(v) is type(u) and v == u for u in values):
                raise SweepError(file, key, f"value {v!r} is listed twice")
            values.append(v)
        knobs.append(KnobSpec(name=name, values=tuple(values)))
    return tuple(knobs)


def _parse_range(file: str, key: str, spec: Mapping[str, Any], remedy: Any, sampler: SamplerSpec) -> KnobSpec:
    if sampler.kind == "grid":
        raise SweepError(file, key, "a range needs the random or tpe sampler; the grid sampler takes a list of values")
    space = remedy.space
    if not isinstance(space, (FloatRange, IntRange)):
        raise SweepError(file, key, f"is categorical; give a list of values: {space.describe()}")
    for k in spec:
        if k not in ("low", "high", "log"):
            raise SweepError(file, f"{key}.{k}", f"unknown key{_did_you_mean(k, ('low', 'high', 'log'))}; allowed: low, high, log")
    if "low" not in spec or "high" not in spec:
        raise SweepError(file, key, "a range needs both low and high")
    integer = isinstance(space, IntRange)
    low = _check_type(file, f"{key}.low", spec["low"], int if integer else float)
    high = _check_type(file, f"{key}.high", spec["high"], int if integer else float)
    log = _check_type(file, f"{key}.log", spec.get("log", False), bool)
    if not space.contains(low) or not space.contains(high) or low >= high:
        raise SweepError(file, key, f"needs low < high inside {space.describe()}, got [{low}, {high}]")
    if log and low <= 0:
        raise SweepError(file, f"{key}.low", "a log-scale range needs low > 0")
    return KnobSpec(name=remedy.name, low=low, high=high, log=log, integer=integer)


def _parse_baseline(file: str, raw: Mapping[str, Any], registry: Registry, knobs: tuple[KnobSpec, ...]) -> dict[str, Any]:
    """The configuration the user starts from: [baseline] entries, else each
    remedy's own baseline if swept, else the knob's first value."""
    table = raw.get("baseline", {})
    if not isinstance(table, dict):
        raise SweepError(file, "baseline", "must be a table of knob = value")
    names = [k.name for k in knobs]
    for name in table:
        if name not in names:
            raise SweepError(file, f"baseline.{name}", f"not a swept knob{_did_you_mean(name, names)}; swept: {', '.join(names)}")
    baseline: dict[str, Any] = {}
    for knob in knobs:
        remedy = registry[knob.name]
        if knob.name in table:
            value = table[knob.name]
            if knob.is_range:
                if remedy.check_value(value) or not (knob.low <= value <= knob.high):
                    raise SweepError(file, f"baseline.{knob.name}", f"must lie in [{knob.low}, {knob.high}], got {value!r}")
            elif not any(type(value) is type(v) and value == v or (isinstance(v, float) and isinstance(value, int) and float(value) == v) for v in knob.values):
                raise SweepError(file, f"baseline.{knob.name}", f"must be one of the swept values {list(knob.values)}, got {value!r}")
            baseline[knob.name] = float(value) if isinstance(remedy.space, FloatRange) else value
        elif knob.is_range:
            baseline[knob.name] = remedy.baseline if knob.low <= remedy.baseline <= knob.high else knob.low
        else:
            baseline[knob.name] = remedy.baseline if any(_eq(remedy.baseline, v) for v in knob.values) else knob.values[0]
    return baseline


def _eq(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (isinstance(a, float) and isinstance(b, float) and a == b)


def check_conflicts(sweep: Sweep, registry: Registry) -> None:
    """Refuse two knobs that may set the same plan field with non-baseline values,
    then apply every grid configuration to a plan to catch value-dependent ones."""
    active = []
    for knob in sweep.knobs:
        remedy = registry[knob.name]
        if knob.is_range or any(not _eq(v, remedy.baseline) for v in knob.values):
            active.append(remedy)
    for a, b in itertools.combinations(active, 2):
        shared = sorted(set(a.touches) & set(b.touches))
        if shared:
            raise SweepError(
                sweep.source,
                f"knobs.{b.name}",
                f"conflicts with knob '{a.name}': both set {', '.join(shared)}; sweep one of them, or fix the other to its baseline",
            )
    if sweep.sampler.kind == "grid" and sweep.n_configs() <= 100000:
        for config in sweep.grid():
            try:
                build_plan(config, registry)
            except RemedyConflict as exc:
                raise SweepError(sweep.source, "knobs", f"conflicting knobs for {config}: {exc}") from None
            except Exception as exc:  # a plugin hook is user code
                raise SweepError(sweep.source, "knobs", f"a remedy hook failed for {config}: {type(exc).__name__}: {exc}") from None


def build_plan(config: Mapping[str, Any], registry: Registry, base: TrialPlan | None = None) -> TrialPlan:
    """Apply each knob's remedy, in order, to a fresh plan (or ``base``)."""
    plan = base if base is not None else TrialPlan()
    for name, value in config.items():
        registry[name].apply(value, plan)
    return plan
