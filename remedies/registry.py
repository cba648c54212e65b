"""Finding remedies: the entry-point group, and local plugin files.

Built-in remedies register through the same entry-point group as third-party
packages (``remedysweep.remedies``), so both are discovered, checked and listed the
same way. Load order: entry points sorted by distribution then name, then local
files in the order given. A remedy that fails to import or is malformed is left out
with a one-line error naming it and its package; a name registered twice is an
error too, never a silent replacement.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from remedysweep.errors import one_line
from remedysweep.files import file_digest, quiet_stderr

from .base import AS_BUILT, PLAN_FIELDS, TRANSFORM, Categorical, FloatRange, IntRange, Remedy

ENTRY_POINT_GROUP = "remedysweep.remedies"
BUILTIN_DISTRIBUTION = "remedysweep"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Names a knob may not take: they are columns of trials.csv or of its keys.
RESERVED_NAMES = frozenset(
    {
        "seed", "outcome", "trial", "trial_number", "config_id", "epoch", "message", "key",
        "peak_val_accuracy", "final_val_accuracy", "epochs_run", "train_seconds", "path", "pack_size",
    }
)
_HOOKS = ("configure_model", "configure_compile", "configure_fit", "transform_model")


@dataclass(frozen=True)
class PluginError:
    """A remedy that could not be registered."""

    plugin: str
    source: str
    message: str

    def __str__(self) -> str:
        return f"remedy plugin {self.plugin!r} from {self.source}: {self.message}"


@dataclass
class Registry:
    """The remedies available to a sweep, and the plugins that failed."""

    remedies: dict[str, Remedy] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    #: name -> what identifies the remedy's code: a package and its version, or
    #: the hash of a local file's content (part of a sweep's identity)
    identities: dict[str, str] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.remedies

    def __getitem__(self, name: str) -> Remedy:
        return self.remedies[name]

    def names(self) -> list[str]:
        return list(self.remedies)

    def broken_names(self) -> dict[str, PluginError]:
        return {e.plugin: e for e in self.errors}

    def is_builtin(self, name: str) -> bool:
        return self.sources.get(name, "").startswith(BUILTIN_DISTRIBUTION + " ")

    def identity(self, names: Iterable[str]) -> dict[str, str]:
        """What identifies the code of each named remedy (plugins only)."""
        return {n: self.identities[n] for n in names if n in self.identities and not self.is_builtin(n)}

    def add(self, obj: Any, plugin: str, source: str, identity: str = "") -> None:
        """Check ``obj`` (a Remedy subclass or instance) and register it."""
        try:
            remedy = obj() if inspect.isclass(obj) else obj
        except Exception as exc:  # a plugin's constructor is user code
            self.errors.append(PluginError(plugin, source, f"could not be instantiated: {one_line(exc, 2000)}"))
            return
        problem = check_remedy(remedy)
        if problem:
            self.errors.append(PluginError(plugin, source, problem))
            return
        name = remedy.name
        if name in self.remedies:
            self.errors.append(
                PluginError(name, source, f"name {name!r} is already registered by {self.sources[name]}")
            )
            if not self.is_builtin(name):
                # Two third-party remedies claim one name: neither is trusted.
                del self.remedies[name]
                self.errors.append(PluginError(name, self.sources.pop(name), f"name {name!r} is registered twice"))
            return
        if any(e.plugin == name for e in self.errors):
            self.errors.append(PluginError(name, source, f"name {name!r} is registered twice"))
            return
        self.remedies[name] = remedy
        self.sources[name] = source
        self.identities[name] = identity or source

    def load_file(self, path: str | Path) -> None:
        """Register every Remedy subclass defined in a local Python file."""
        path = Path(path)
        source = f"file {path}"
        if not path.is_file():
            self.errors.append(PluginError(path.stem, source, "file not found"))
            return
        try:
            digest = "sha256:" + file_digest(path)
        except OSError as exc:
            self.errors.append(PluginError(path.stem, source, f"cannot be read: {exc.strerror or exc}"))
            return
        module_name = f"remedysweep_local_plugin_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest[7:15]}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            with quiet_stderr():
                spec.loader.exec_module(module)
        except BaseException as exc:  # SystemExit included: a plugin must not end the host
            sys.modules.pop(module_name, None)
            self.errors.append(PluginError(path.stem, source, f"failed to import: {one_line(exc, 2000)}"))
            return
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Remedy) and obj is not Remedy and obj.__module__ == module_name
        ]
        if not found:
            self.errors.append(PluginError(path.stem, source, "defines no Remedy subclass"))
        for cls in found:
            self.add(cls, getattr(cls, "name", "") or cls.__name__, source, identity=f"{path.name} {digest}")


def check_remedy(remedy: Any) -> str | None:
    """Return what is wrong with a remedy's declaration, or ``None``."""
    if not isinstance(remedy, Remedy):
        return f"is a {type(remedy).__name__}, not a remedysweep.remedies.Remedy"
    name = getattr(remedy, "name", "")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"name {name!r} must match {NAME_PATTERN.pattern}"
    if name in RESERVED_NAMES:
        return f"name {name!r} is reserved for a trials.csv column"
    desc = getattr(remedy, "description", "")
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc.strip():
        return "description must be one non-empty line"
    space = getattr(remedy, "space", None)
    if not isinstance(space, (Categorical, FloatRange, IntRange)):
        return "space must be Categorical, FloatRange or IntRange"
    if isinstance(space, Categorical):
        if not space.choices:
            return "space has no values"
        for c in space.choices:
            if not isinstance(c, (str, int, float, bool)):
                return f"value {c!r} is not a str, int, float or bool"
    elif space.low > space.high:
        return f"range low {space.low} is above high {space.high}"
    if not space.contains(remedy.baseline):
        return f"baseline {remedy.baseline!r} is not one of its values ({space.describe()})"
    if isinstance(space, Categorical) and any(c == AS_BUILT for c in space.choices):
        return f"value {AS_BUILT!r} is reserved: every knob accepts it and it leaves the model as built"
    touches = getattr(remedy, "touches", ())
    if not isinstance(touches, (tuple, list)) or not touches:
        return "touches must name the plan fields it sets, e.g. ('compile.optimizer',)"
    for t in touches:
        if t not in PLAN_FIELDS and t != TRANSFORM:
            return f"touches names {t!r}, which is not a plan field (nor {TRANSFORM!r})"
    if not any(getattr(type(remedy), h) is not getattr(Remedy, h) for h in _HOOKS):
        return "overrides no hook (configure_model, configure_compile, configure_fit, transform_model)"
    if remedy.transforms() and TRANSFORM not in touches:
        return f"overrides transform_model but its touches do not declare {TRANSFORM!r}"
    if not isinstance(getattr(remedy, "invasiveness", 1), int):
        return "invasiveness must be an integer (0 training setting, 1 loss/optimizer, 2 architecture)"
    return None


def discover(plugin_files: Iterable[str | Path] = (), entry_points: bool = True) -> Registry:
    """Build the registry from installed entry points and local files."""
    registry = Registry()
    if entry_points:
        eps = sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (ep.dist.name != BUILTIN_DISTRIBUTION if ep.dist else True, ep.dist.name if ep.dist else "", ep.name),
        )
        seen: set[tuple[str, str]] = set()
        for ep in eps:
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown package"
            if (dist, ep.name) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((dist, ep.name))
            source = f"{dist}" if not ep.dist or ep.dist.name != BUILTIN_DISTRIBUTION else f"{dist} (built-in)"
            try:
                with quiet_stderr():
                    obj = ep.load()
            except BaseException as exc:
                registry.errors.append(PluginError(ep.name, f"package {dist}", f"failed to import {ep.value}: {one_line(exc, 2000)}"))
                continue
            registry.add(obj, ep.name, f"package {source}" if "built-in" not in source else source, identity=f"package {dist}")
    for path in plugin_files:
        registry.load_file(path)
    return registry


