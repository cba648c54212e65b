"""Sweep files: TOML in, a validated, typed :class:`Sweep` out, before anything runs.

Every problem is one :class:`~remedysweep.errors.SweepError` naming the file, the
key and what is allowed. Nothing here writes anything or imports TensorFlow;
checks that need the user's model or data (shapes, labels, the loss) are in
:mod:`.sources`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from remedysweep.errors import SweepError, one_line
from remedysweep.files import file_digest, not_a_file, read_limited
from remedysweep.remedies import AS_BUILT, Categorical, FloatRange, IntRange, Registry, RemedyConflict, TrialPlan, discover, same_value

DATASETS = ("digits", "easy_words", "blobs")
MODELS = ("mlp", "embedding")
SAMPLERS = ("grid", "random", "tpe")
OBJECTIVES = ("accuracy", "accuracy_vs_time", "accuracy_vs_collapse")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CALLABLE_PATTERN = re.compile(r"^(?P<target>.+):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")
DEFAULT_MAX_RUNS = 100_000
MAX_VALUES_PER_KNOB = 10_000
MAX_SWEEP_BYTES = 16 << 20
#: Doctor's defaults, for the command line, the Python API and the benchmark alike.
#: doctor's defaults; its search's budget is in epochs, by default DOCTOR_BUDGET_RUNS runs' worth
DOCTOR_EPOCHS, DOCTOR_SEEDS, DOCTOR_BUDGET_RUNS = 10, 3, 48

# ----------------------------------------------------------------------------
# Typed configuration
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """The data: a built-in ``dataset`` (``digits``, ``blobs``, ``easy_words``),
    a file or folder (``path``: ``.npz`` with ``x_train, y_train, x_val, y_val``;
    ``.csv`` with a ``label_column``; a folder of class subfolders of images), or
    a ``loader`` function returning ``((x_train, y_train), (x_val, y_val))``.

    ``n_classes``/``n_features``/``n_samples``/``cluster_std`` are used by
    ``blobs``; ``n_classes``/``samples_per_class`` by ``easy_words``;
    ``validation_fraction`` splits built-in data, CSVs and image folders."""

    dataset: str = ""
    path: str = ""
    loader: str = ""
    label_column: str = "label"
    image_size: tuple[int, ...] = (32, 32)
    validation_fraction: float = 0.25
    n_classes: int = 10
    n_features: int = 16
    n_samples: int = 2000
    cluster_std: float = 1.0
    samples_per_class: int = 40

    @property
    def builtin(self) -> bool:
        return bool(self.dataset)

    def describe(self) -> str:
        return self.dataset or Path(self.path).name or self.loader


@dataclass(frozen=True)
class ModelSpec:
    """The base classifier: a built-in ``kind`` (``mlp``: a Dense stack of
    ``depth`` layers of ``width`` units with ``activation``; ``embedding``: a token
    embedding, then the same stack), a ``builder`` function returning a compiled
    ``keras.Model``, or a saved model ``path`` (``.keras``)."""

    kind: str = ""
    builder: str = ""
    path: str = ""
    depth: int = 2
    width: int = 64
    activation: str = "relu"
    embedding_dim: int = 8

    @property
    def builtin(self) -> bool:
        return bool(self.kind)

    def describe(self) -> str:
        if self.kind:
            return f"{self.kind} (depth {self.depth}, width {self.width}, {self.activation})"
        return self.builder or Path(self.path).name


@dataclass(frozen=True)
class TrainingSpec:
    """``batch_size``: the batch size of every run (the ``batch_size`` knob changes it).
    ``early_probes``: accuracy checks on the probe batch inside each of the first
    ``early_probe_epochs`` epochs, at geometrically spaced steps (1, 2, 3, 7,
    ...), to see a rise that falls before the epoch ends.
    ``probe_size``: samples in the fixed probe batch the diagnostics use.
    ``pack``: train runs whose models have the same shapes together in one graph
    (configurations and seeds; see :mod:`.packed`); the rest train one by one
    through Keras. ``max_pack``: the most runs in one pack."""

    epochs: int = 15
    batch_size: int = 32
    early_probes: int = 6
    early_probe_epochs: int = 1
    probe_size: int = 256
    steps_per_execution: int = 1
    pack: bool = True
    max_pack: int = 128


@dataclass(frozen=True)
class OutcomeSpec:
    """Thresholds for classifying a run; accuracies are validation accuracies and
    chance is the majority-class rate of the validation labels.

    ``rise_margin``: a run "rose" if its peak reached chance + rise_margin*(1-chance).
    ``chance_margin``: "at chance" means <= chance + chance_margin*(1-chance).
    ``window``: the final epochs that must all be at chance for ``collapsed``
    (default: 3, or the number of epochs if fewer).
    ``degrade_drop``: final below peak by more than this (absolute) is ``degraded``.
    """

    rise_margin: float = 0.2
    chance_margin: float = 0.1
    window: int = 0
    degrade_drop: float = 0.2


@dataclass(frozen=True)
class EarlyStopSpec:
    """Stop a run that sat at chance for ``patience`` epochs after rising (default:
    the outcome window, at least 3), or whose loss went NaN/Inf."""

    enabled: bool = True
    patience: int = 0


@dataclass(frozen=True)
class SamplerSpec:
    """``grid``: every combination of the knob values, each over every seed.
    ``random``/``tpe``: ``n_configs`` configurations drawn by Optuna, each run over
    every seed. ``objective`` picks what the samplers optimise."""

    kind: str = "grid"
    n_configs: int = 0
    objective: str = "accuracy"


@dataclass(frozen=True)
class LimitsSpec:
    """``max_runs``: a sweep with more runs than this is refused before anything
    runs (the count is computed, never the grid itself)."""

    max_runs: int = DEFAULT_MAX_RUNS


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
    outcome: OutcomeSpec = OutcomeSpec(window=3)
    early_stop: EarlyStopSpec = EarlyStopSpec(patience=3)
    limits: LimitsSpec = LimitsSpec()
    plugins: tuple[str, ...] = ()
    description: str = ""
    #: what identifies code and files outside the sweep file: plugin code, the
    #: model and data sources (hashes), so that an edit is a different sweep
    identity: tuple[tuple[str, str], ...] = ()

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def baseline_config(self) -> dict[str, Any]:
        return dict(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples as lists); travels in the study so that workers need
        nothing else."""
        d = asdict(self)
        d["baseline"] = dict(self.baseline)
        d["identity"] = dict(self.identity)
        return json.loads(json.dumps(d, default=str))

    def fingerprint(self) -> str:
        """Hash of everything that changes results (not the description or path)."""
        d = self.to_dict()
        d.pop("source", None)
        d.pop("description", None)
        d["plugins"] = [Path(p).name for p in self.plugins]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every knob combination, lazily, in a stable order (grid sampler)."""
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
        data = dict(d["data"])
        data["image_size"] = tuple(data.get("image_size", (32, 32)))
        return cls(
            name=d["name"],
            source=d.get("source", ""),
            data=DataSpec(**data),
            model=ModelSpec(**d["model"]),
            training=TrainingSpec(**d["training"]),
            knobs=tuple(KnobSpec(**{**k, "values": tuple(k["values"])}) for k in d["knobs"]),
            seeds=tuple(d["seeds"]),
            baseline=tuple(d["baseline"].items()),
            sampler=SamplerSpec(**d["sampler"]),
            outcome=OutcomeSpec(**d["outcome"]),
            early_stop=EarlyStopSpec(**d["early_stop"]),
            limits=LimitsSpec(**d.get("limits", {})),
            plugins=tuple(d.get("plugins", ())),
            description=d.get("description", ""),
            identity=tuple(d.get("identity", {}).items()),
        )


def config_id(knobs: Mapping[str, Any]) -> str:
    """A short stable id of a knob configuration (seed excluded)."""
    return hashlib.sha256(json.dumps(dict(sorted(knobs.items())), sort_keys=True).encode()).hexdigest()[:10]


def run_key(knobs: Mapping[str, Any], seed: int) -> str:
    """The exactly-once key of a run: its configuration and its seed."""
    return f"{config_id(knobs)}:{seed}"


def build_plan(config: Mapping[str, Any], registry: Registry, base: TrialPlan | None = None) -> TrialPlan:
    """Apply each knob's remedy, in order, to a fresh plan (``as_built`` knobs are skipped)."""
    plan = base if base is not None else TrialPlan()
    for name, value in config.items():
        if value != AS_BUILT:
            registry[name].apply(value, plan)
    return plan


def sweep_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``key: old -> new`` for every setting that differs (source path ignored)."""

    def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            out: dict[str, Any] = {}
            for k, v in d.items():
                out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
            return out
        if isinstance(d, list) and d and all(isinstance(x, dict) and "name" in x for x in d):
            return {f"{prefix}.{x['name']}": {k: v for k, v in x.items() if k != "name"} for x in d}
        return {prefix: d}

    a = flatten(json.loads(json.dumps(old, default=str)))
    b = flatten(json.loads(json.dumps(new, default=str)))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in ("source", "description") or key.startswith("plugins"):
            continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {json.dumps(a.get(key, '(unset)'))} -> {json.dumps(b.get(key, '(unset)'))}")
    return "; ".join(diffs) if diffs else "(none)"


# ----------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------

_TOP_KEYS = {
    "name", "description", "seeds", "plugins", "data", "model", "training", "knobs",
    "baseline", "sampler", "outcome", "early_stop", "limits",
}
_SECTION_TYPES = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "sampler": SamplerSpec,
    "outcome": OutcomeSpec,
    "early_stop": EarlyStopSpec,
    "limits": LimitsSpec,
}


def did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", tuple: "a list of integers"}[t]


def _check_type(file: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is tuple:
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value):
            raise SweepError(file, key, f"must be a list of integers between 1 and 4096, got {value!r}")
        return tuple(value)
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
    allowed = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for key, value in table.items():
        if key not in allowed:
            raise SweepError(file, f"{name}.{key}", f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
        kwargs[key] = _check_type(file, f"{name}.{key}", value, type(getattr(defaults, key)))
    return cls(**kwargs), set(table)


def _positive(file: str, key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise SweepError(file, key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _between(file: str, key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SweepError(file, key, f"must be between {low:g} and {high:g}, got {value!r}")


def _fraction(file: str, key: str, value: float) -> None:
    if not 0 < value < 1:
        raise SweepError(file, key, f"must be between 0 and 1, got {value!r}")


def check_plugins(file: str, key: str | None, plugins: tuple[str, ...], registry: Registry | None = None) -> Registry:
    """The registry with these plugin files; a plugin file that is missing or
    cannot load is a :class:`SweepError` naming ``file`` and ``key``."""
    for p in plugins:
        if not Path(p).is_file():
            raise SweepError(file, key, f"plugin file {p} not found")
    if registry is None or plugins:
        registry = discover(plugin_files=plugins)
    for err in registry.errors:
        if err.source.startswith("file ") and any(err.source == f"file {p}" for p in plugins):
            raise SweepError(file, key, str(err))
    return registry


def load_sweep(path: str | Path, registry: Registry | None = None, extra_plugins: tuple[str, ...] = ()) -> tuple[Sweep, Registry]:
    """Read and validate a sweep file. Raises :class:`SweepError`; writes nothing."""
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise SweepError(file, None, "file not found")
    problem = not_a_file(path)  # a FIFO or a device (/dev/zero) would block or never end
    if problem:
        raise SweepError(file, None, "is a folder, not a sweep file" if "folder" in problem else f"{problem}; a sweep file is a regular file")
    try:
        data = read_limited(path, MAX_SWEEP_BYTES)
    except (OSError, ValueError) as exc:
        raise SweepError(file, None, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_SWEEP_BYTES:
        raise SweepError(file, None, "is over 16 MiB; a sweep file is at most 16 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(file, None, f"is not UTF-8 text (byte {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(file, None, f"TOML syntax error: {exc}") from None
    except RecursionError:
        raise SweepError(file, None, "TOML nested too deeply") from None
    return parse_sweep(raw, file, registry=registry, extra_plugins=extra_plugins, base_dir=path.parent)


def _resolve(base_dir: Path, value: str) -> str:
    return str(value if Path(value).is_absolute() else (base_dir / value).resolve())


def _callable_spec(file: str, key: str, value: str, base_dir: Path) -> str:
    """``file.py:function`` (path made absolute) or ``package.module:function``."""
    m = CALLABLE_PATTERN.match(value)
    if not m:
        raise SweepError(file, key, f"expected FILE.py:FUNCTION or package.module:FUNCTION, got {value!r}")
    target = m.group("target")
    if target.endswith(".py"):
        resolved = _resolve(base_dir, target)
        if not Path(resolved).is_file():
            raise SweepError(file, key, f"file {resolved} not found")
        return f"{resolved}:{m.group('func')}"
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", target):
        raise SweepError(file, key, f"{target!r} is neither a .py file nor a module name")
    return value


def _one_source(file: str, section: str, spec: Any, keys: tuple[str, str, str], default: str) -> Any:
    """A model or data section names exactly one source; none is the built-in default."""
    given = [k for k in keys if getattr(spec, k)]
    if len(given) > 1:
        raise SweepError(file, section, f"give one of {keys[0]}, {keys[1]} or {keys[2]}, not {' and '.join(given)}")
    return spec if given else replace(spec, **{keys[0]: default})


def _parse_model(file: str, raw: Mapping[str, Any], base_dir: Path) -> ModelSpec:
    model, given = _section(file, raw, "model")
    model = _one_source(file, "model", model, ("kind", "builder", "path"), "mlp")
    if model.kind and model.kind not in MODELS:
        raise SweepError(file, "model.kind", f"unknown model {model.kind!r}{did_you_mean(model.kind, MODELS)}; allowed: {', '.join(MODELS)} (or builder = \"FILE.py:FUNCTION\", path = \"model.keras\")")
    if not model.kind:
        builtin_only = sorted(given & {"depth", "width", "activation", "embedding_dim"})
        if builtin_only:
            raise SweepError(file, f"model.{builtin_only[0]}", "only applies to the built-in models (kind = \"mlp\" or \"embedding\"); your model is built as it is, and knobs change it")
    if model.builder:
        model = replace(model, builder=_callable_spec(file, "model.builder", model.builder, base_dir))
    if model.path:
        resolved = _resolve(base_dir, model.path)
        if not resolved.endswith((".keras", ".h5")):
            raise SweepError(file, "model.path", f"a saved model is a .keras (or .h5) file, got {model.path!r}")
        if not Path(resolved).is_file():
            raise SweepError(file, "model.path", f"file {resolved} not found")
        model = replace(model, path=resolved)
    _between(file, "model.depth", model.depth, 1, 32)
    _between(file, "model.width", model.width, 1, 8192)
    _between(file, "model.embedding_dim", model.embedding_dim, 1, 4096)
    return model


def _parse_data(file: str, raw: Mapping[str, Any], base_dir: Path, model: ModelSpec) -> DataSpec:
    data, _ = _section(file, raw, "data")
    data = _one_source(file, "data", data, ("dataset", "path", "loader"), "digits")
    if data.dataset and data.dataset not in DATASETS:
        raise SweepError(file, "data.dataset", f"unknown dataset {data.dataset!r}{did_you_mean(data.dataset, DATASETS)}; allowed: {', '.join(DATASETS)} (or path = \"data.npz\", loader = \"FILE.py:FUNCTION\")")
    if data.loader:
        data = replace(data, loader=_callable_spec(file, "data.loader", data.loader, base_dir))
    if data.path:
        resolved = Path(_resolve(base_dir, data.path))
        if not resolved.exists():
            raise SweepError(file, "data.path", f"{resolved} not found")
        if resolved.is_file() and resolved.suffix not in (".npz", ".csv"):
            raise SweepError(file, "data.path", f"a data file is .npz or .csv (or a folder of class subfolders of images), got {resolved.name!r}")
        data = replace(data, path=str(resolved))
    _fraction(file, "data.validation_fraction", data.validation_fraction)
    _between(file, "data.n_classes", data.n_classes, 2, 1000)
    _between(file, "data.n_features", data.n_features, 1, 1_000_000)
    _between(file, "data.n_samples", data.n_samples, 2, 100_000_000)
    _between(file, "data.samples_per_class", data.samples_per_class, 1, 1_000_000)
    _positive(file, "data.cluster_std", data.cluster_std)
    if data.dataset == "blobs":
        if data.n_samples * data.validation_fraction < data.n_classes:
            raise SweepError(file, "data.n_samples", f"too few samples ({data.n_samples}) for {data.n_classes} classes with a validation split")
        _check_memory(file, "data.n_features" if data.n_features > data.n_samples else "data.n_samples",
                      data.n_samples * data.n_features * 4, f"{data.n_samples} samples x {data.n_features} features")
    if data.dataset == "easy_words":
        _check_memory(file, "data.samples_per_class", data.samples_per_class * data.n_classes * 12, f"{data.n_classes} x {data.samples_per_class} samples")
    if model.kind:
        if (model.kind == "embedding") != (data.dataset == "easy_words"):
            raise SweepError(file, "model.kind", "the 'embedding' model takes dataset 'easy_words' and only it; 'mlp' takes the other data sets")
    return data


def _check_memory(file: str, key: str, nbytes: int, what: str) -> None:
    from remedysweep.files import available_memory

    budget = available_memory() // 4  # data, its copies in the pipeline, and the model
    if nbytes > budget:
        raise SweepError(file, key, f"{what} need {nbytes / 2**30:.1f} GiB; this machine has room for about {budget / 2**30:.1f} GiB of data")


def parse_sweep(
    raw: Mapping[str, Any],
    file: str,
    *,
    registry: Registry | None = None,
    extra_plugins: tuple[str, ...] = (),
    base_dir: Path | None = None,
) -> tuple[Sweep, Registry]:
    """Validate the parsed TOML of a sweep file (see :func:`load_sweep`)."""
    if not isinstance(raw, Mapping):
        raise SweepError(file, None, "must be a TOML table of settings")
    for key in raw:
        if key not in _TOP_KEYS:
            raise SweepError(file, key, f"unknown key{did_you_mean(key, _TOP_KEYS)}; allowed: {', '.join(sorted(_TOP_KEYS))}")

    name = raw.get("name", Path(file).stem)
    _check_type(file, "name", name, str)
    if not NAME_PATTERN.match(name):
        raise SweepError(file, "name", f"must be 1-64 letters, digits, '_', '-' or '.', got {name!r}")
    description = _check_type(file, "description", raw.get("description", ""), str)
    base_dir = base_dir or Path(file).parent

    # Plugins first: knobs may name them. A listed plugin that cannot load is an error.
    plugins_raw = raw.get("plugins", [])
    if not isinstance(plugins_raw, list) or not all(isinstance(p, str) for p in plugins_raw):
        raise SweepError(file, "plugins", "must be a list of paths to Python files")
    plugins = tuple(_resolve(base_dir, p) for p in plugins_raw) + tuple(str(Path(p).resolve()) for p in extra_plugins)
    registry = check_plugins(file, "plugins", plugins, registry)

    model = _parse_model(file, raw, base_dir)
    data = _parse_data(file, raw, base_dir, model)

    training, _ = _section(file, raw, "training")
    _between(file, "training.epochs", training.epochs, 1, 10000)
    _between(file, "training.batch_size", training.batch_size, 1, 65536)
    _between(file, "training.early_probes", training.early_probes, 0, 64)
    _between(file, "training.early_probe_epochs", training.early_probe_epochs, 0, training.epochs)
    _between(file, "training.probe_size", training.probe_size, 1, 100_000)
    _between(file, "training.steps_per_execution", training.steps_per_execution, 1, 10_000)
    _between(file, "training.max_pack", training.max_pack, 1, 4096)

    outcome, _ = _section(file, raw, "outcome")
    for key in ("rise_margin", "chance_margin", "degrade_drop"):
        _fraction(file, f"outcome.{key}", getattr(outcome, key))
    if outcome.chance_margin >= outcome.rise_margin:
        raise SweepError(file, "outcome.chance_margin", f"must be below outcome.rise_margin ({outcome.rise_margin}), got {outcome.chance_margin}")
    if outcome.window == 0:
        outcome = replace(outcome, window=min(3, training.epochs))
    elif not 1 <= outcome.window <= training.epochs:
        raise SweepError(file, "outcome.window", f"must be between 1 and training.epochs ({training.epochs}), got {outcome.window}")

    early_stop, _ = _section(file, raw, "early_stop")
    if early_stop.patience == 0:
        early_stop = replace(early_stop, patience=max(3, outcome.window))
    elif early_stop.patience < outcome.window:
        raise SweepError(file, "early_stop.patience", f"must be at least outcome.window ({outcome.window}) so a stopped run is classified on its final window, got {early_stop.patience}")

    sampler, _ = _section(file, raw, "sampler")
    if sampler.kind not in SAMPLERS:
        raise SweepError(file, "sampler.kind", f"unknown sampler {sampler.kind!r}{did_you_mean(sampler.kind, SAMPLERS)}; allowed: {', '.join(SAMPLERS)}")
    if sampler.objective not in OBJECTIVES:
        raise SweepError(file, "sampler.objective", f"unknown objective {sampler.objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if sampler.kind == "grid" and sampler.n_configs:
        raise SweepError(file, "sampler.n_configs", "only applies to the random and tpe samplers (grid runs every combination)")
    if sampler.kind != "grid" and not 1 <= sampler.n_configs <= 1_000_000:
        raise SweepError(file, "sampler.n_configs", f"the {sampler.kind} sampler needs a run budget: n_configs between 1 and 1000000, got {sampler.n_configs}")

    limits, _ = _section(file, raw, "limits")
    _between(file, "limits.max_runs", limits.max_runs, 1, 100_000_000)

    seeds = raw.get("seeds")
    if seeds is None:
        raise SweepError(file, "seeds", "missing: list the seeds every configuration runs with, e.g. seeds = [0, 1, 2]")
    if not isinstance(seeds, list) or not seeds:
        raise SweepError(file, "seeds", "must be a non-empty list of integers")
    if len(seeds) > limits.max_runs:
        raise SweepError(file, "seeds", f"{len(seeds)} seeds is more than limits.max_runs ({limits.max_runs}) runs")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31:
            raise SweepError(file, "seeds", f"seeds must be integers in [0, 2^31), got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise SweepError(file, "seeds", "seeds must not repeat")

    knobs = _parse_knobs(file, raw, registry, sampler)
    n_configs = math.prod(len(k.values) for k in knobs) if sampler.kind == "grid" else sampler.n_configs
    n_runs = n_configs * len(seeds)
    if n_runs > limits.max_runs:
        raise SweepError(file, "knobs", f"the sweep has {n_runs} runs ({n_configs} configurations x {len(seeds)} seeds), "
                                        f"more than limits.max_runs ({limits.max_runs}); sweep fewer values, or raise [limits] max_runs")
    baseline = _parse_baseline(file, raw, registry, knobs)
    identity = {**{f"plugin {k}": v for k, v in registry.identity(k.name for k in knobs).items()}, **_source_identity(model, data)}
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
        limits=limits,
        plugins=plugins,
        identity=tuple(sorted(identity.items())),
    )
    check_conflicts(sweep, registry)
    return sweep, registry


def _source_identity(model: ModelSpec, data: DataSpec) -> dict[str, str]:
    """Hashes of the user's model and data files: an edit makes a different sweep."""
    out = {}
    for label, spec in (("model builder", model.builder), ("data loader", data.loader)):
        target = spec.rsplit(":", 1)[0] if spec else ""
        if target.endswith(".py"):
            out[label] = f"{Path(target).name} {file_digest(Path(target))}"
    for label, path in (("model file", model.path), ("data file", data.path)):
        if path:
            out[label] = f"{Path(path).name} {file_digest(Path(path))}"
    return out


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
            raise SweepError(file, key, f"unknown knob{did_you_mean(name, registry.names())}; installed: {', '.join(sorted(registry.names()))}")
        remedy = registry[name]
        if isinstance(spec, dict):
            knobs.append(_parse_range(file, key, spec, remedy, sampler))
            continue
        if not isinstance(spec, list):
            spec = [spec]
        if not spec:
            raise SweepError(file, key, f"empty list of values; allowed: {remedy.space.describe()}")
        if len(spec) > MAX_VALUES_PER_KNOB:
            raise SweepError(file, key, f"{len(spec)} values; at most {MAX_VALUES_PER_KNOB}")
        values: list[Any] = []
        for v in spec:
            if isinstance(remedy.space, FloatRange) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            problem = None if v == AS_BUILT else remedy.check_value(v)
            if problem:
                hint = did_you_mean(v, remedy.space.choices) if isinstance(v, str) and isinstance(remedy.space, Categorical) else ""
                raise SweepError(file, key, f"value {v!r} not allowed{hint}; {problem} (or {AS_BUILT!r}: leave the model as built)")
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
            raise SweepError(file, f"{key}.{k}", f"unknown key{did_you_mean(k, ('low', 'high', 'log'))}; allowed: low, high, log")
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
    """The configuration the user starts from: [baseline] entries, else
    ``as_built`` if listed, else the remedy's own baseline if swept, else the
    knob's first value."""
    table = raw.get("baseline", {})
    if not isinstance(table, dict):
        raise SweepError(file, "baseline", "must be a table of knob = value")
    names = [k.name for k in knobs]
    for name in table:
        if name not in names:
            raise SweepError(file, f"baseline.{name}", f"not a swept knob{did_you_mean(name, names)}; swept: {', '.join(names)}")
    baseline: dict[str, Any] = {}
    for knob in knobs:
        remedy = registry[knob.name]
        if knob.name in table:
            value = table[knob.name]
            if knob.is_range:
                if remedy.check_value(value) or not (knob.low <= value <= knob.high):
                    raise SweepError(file, f"baseline.{knob.name}", f"must lie in [{knob.low}, {knob.high}], got {value!r}")
            elif not any(same_value(value, v) for v in knob.values):
                raise SweepError(file, f"baseline.{knob.name}", f"must be one of the swept values {list(knob.values)}, got {value!r}")
            baseline[knob.name] = float(value) if isinstance(remedy.space, FloatRange) and value != AS_BUILT else value
        elif knob.is_range:
            baseline[knob.name] = remedy.baseline if knob.low <= remedy.baseline <= knob.high else knob.low
        elif AS_BUILT in knob.values:
            baseline[knob.name] = AS_BUILT
        else:
            baseline[knob.name] = remedy.baseline if any(same_value(remedy.baseline, v) for v in knob.values) else knob.values[0]
    return baseline


def check_conflicts(sweep: Sweep, registry: Registry, limit: int = 20_000) -> None:
    """Apply every grid configuration (up to ``limit``) to a plan, so that two
    knobs setting the same plan field, or a remedy hook that fails, are refused
    before training; for ranges, refuse knobs that may set the same field."""
    if sweep.sampler.kind != "grid" or sweep.n_configs() > limit:
        ranged = [registry[k.name] for k in sweep.knobs]
        for a, b in itertools.combinations(ranged, 2):
            shared = sorted((set(a.touches) & set(b.touches)) - {"model.transform"})
            if shared:
                raise SweepError(sweep.source, f"knobs.{b.name}", f"conflicts with knob '{a.name}': both may set {', '.join(shared)}; sweep one of them")
        return
    from remedysweep.files import quiet_stderr

    with quiet_stderr():  # a plugin's hook may import TensorFlow: its start-up notices are not for the user
        for config in sweep.grid():
            try:
                build_plan(config, registry)
            except RemedyConflict as exc:
                raise SweepError(sweep.source, f"knobs.{exc.remedies[1]}", f"conflicts with knob '{exc.remedies[0]}' at {config}: {exc}; "
                                 "sweep one of them, or fix the other to a value that sets nothing") from None
            except Exception as exc:  # a plugin hook is user code
                raise SweepError(sweep.source, "knobs", f"a remedy hook failed for {config}: {one_line(exc, 2000)}") from None


def make_sweep(name: str, *, model: ModelSpec, data: DataSpec, knobs: Mapping[str, tuple[Any, ...]] = {},
               seeds: tuple[int, ...] = (0,), epochs: int = 10, **training: Any) -> Sweep:
    """A sweep built in Python rather than read from a file (doctor, bench, tests):
    the same defaults and the same derived settings as a file."""
    spec = TrainingSpec(epochs=epochs, **training)
    window = min(3, epochs)
    return Sweep(
        name=name, source=f"<{name}>", data=data, model=model, training=spec,
        knobs=tuple(KnobSpec(k, tuple(v)) for k, v in knobs.items()), seeds=tuple(seeds),
        baseline=tuple((k, v[0]) for k, v in knobs.items()),
        outcome=OutcomeSpec(window=window), early_stop=EarlyStopSpec(patience=max(3, window)),
    )


__all__ = [
    "DataSpec", "EarlyStopSpec", "KnobSpec", "LimitsSpec", "ModelSpec", "OutcomeSpec", "SamplerSpec", "Sweep",
    "TrainingSpec", "build_plan", "config_id", "did_you_mean", "load_sweep", "make_sweep", "parse_sweep", "run_key",
    "sweep_difference",
]
