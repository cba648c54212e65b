"""Remedy knobs and the API to write more.

A remedy is a :class:`Remedy` subclass: a name, a description, a value space, a
baseline value and hooks that edit the trial plan. See :mod:`.base` for the call
order and :mod:`.registry` for discovery.
"""

from .base import (
    Categorical,
    CompilePlan,
    FitPlan,
    FloatRange,
    IntRange,
    ModelPlan,
    Remedy,
    RemedyConflict,
    Space,
    TrialPlan,
)
from .registry import ENTRY_POINT_GROUP, PluginError, Registry, check_remedy, discover

__all__ = [
    "Categorical",
    "CompilePlan",
    "ENTRY_POINT_GROUP",
    "FitPlan",
    "FloatRange",
    "IntRange",
    "ModelPlan",
    "PluginError",
    "Registry",
    "Remedy",
    "RemedyConflict",
    "Space",
    "TrialPlan",
    "check_remedy",
    "discover",
]
