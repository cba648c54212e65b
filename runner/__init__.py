"""remedysweep: reproduce classifier training collapse and find, over seeds and
with honest intervals, which remedies avoid it.

The Python API a notebook needs (each imports its heavy parts on first use)::

    import remedysweep as rs

    sweep = rs.load_sweep("sweeps/quick.toml")          # validated, typed
    summary = rs.run_sweep("sweeps/quick.toml", out="runs/quick")
    results = rs.load_results("runs/quick")             # .trials, .curves, .probes DataFrames
    rs.write_report("runs/quick")                        # report.html and findings.json
    verdict = rs.diagnose("my_models.py:build", "my_data.py:load", epochs=10, seeds=3)

Layers, each importing only from the ones before it: ``remedysweep.errors`` and
``remedysweep.files`` (shared helpers), ``remedysweep.remedies`` (the remedy API
and the built-in knobs), ``remedysweep.engine`` (sweep files, models, data,
trainers, the run queue), the applications ``remedysweep.sweep``,
``remedysweep.reports``, ``remedysweep.doctor``, ``remedysweep.bench`` and
``remedysweep.testing``, and ``remedysweep.cli``.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["__version__", "diagnose", "diagnose_model", "load_results", "load_sweep", "run_sweep", "write_report"]


def load_sweep(path: Any, *, plugins: tuple[str, ...] = ()) -> Any:
    """Read and validate a sweep file (raises :class:`remedysweep.errors.SweepError`)."""
    from .engine.config import load_sweep as _load

    return _load(path, extra_plugins=plugins)[0]


def run_sweep(path: Any, **options: Any) -> Any:
    """Run (or resume) a sweep; see :func:`remedysweep.sweep.run_sweep`."""
    from .sweep import run_sweep as _run

    return _run(path, **options)


def load_results(run_dir: Any) -> Any:
    """A run folder's results as DataFrames (``.trials``, ``.curves``, ``.probes``)."""
    from .reports.analysis import load_run

    return load_run(run_dir)


def write_report(run_dir: Any) -> Any:
    """Write ``report.html`` and ``findings.json`` of a run folder; returns the report's path."""
    from .reports import write_report as _write

    return _write(run_dir)


def diagnose(model: str, data: str, **options: Any) -> Any:
    """Run ``doctor`` on a model and data given as ``FILE.py:FUNCTION`` (or a
    ``.keras`` file and an ``.npz``); see :func:`remedysweep.doctor.diagnose`."""
    from .doctor import diagnose_sources

    return diagnose_sources(model, data, **options)


def diagnose_model(model: Any, x: Any, y: Any = None, **options: Any) -> Any:
    """Run ``doctor`` on a live, compiled ``keras.Model`` and arrays, as in a
    notebook; see :func:`remedysweep.doctor.diagnose_model`."""
    from .doctor import diagnose_model as _diagnose

    return _diagnose(model, x, y, **options)
