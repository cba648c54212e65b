"""Remedy knobs and the API to write more.

A remedy is a :class:`Remedy` subclass: a name, a description, a value space, a
baseline value and hooks that edit the run's plan. See :mod:`.base` for the call
order and :mod:`.registry` for discovery. This package is the bottom layer of
remedysweep: it imports nothing from the engine.
"""

from .base import (
    AS_BUILT,
    TRANSFORM,
    Categorical,
    CompilePlan,
    FitPlan,
    FloatRange,
    IntRange,
    LossFormulation,
    ModelPlan,
    ProbeMetric,
    Remedy,
    RemedyConflict,
    ReportSection,
    Space,
    TrialPlan,
    same_value,
)
from .registry import ENTRY_POINT_GROUP, PluginError, Registry, check_remedy, discover

__all__ = [
    "AS_BUILT",
    "Categorical",
    "CompilePlan",
    "ENTRY_POINT_GROUP",
    "FitPlan",
    "FloatRange",
    "IntRange",
    "LossFormulation",
    "ModelPlan",
    "PluginError",
    "ProbeMetric",
    "Registry",
    "Remedy",
    "RemedyConflict",
    "ReportSection",
    "Space",
    "TRANSFORM",
    "TrialPlan",
    "check_remedy",
    "discover",
    "same_value",
]
