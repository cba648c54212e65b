"""``watch.html``: one watched ``fit``, rendered with the report's environment,
styles and figures: the outcome, the curves, the diagnostics, the symptoms when
they appeared, and the remedies doctor would try first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remedysweep.engine.symptoms import SYMPTOMS

from . import plots
from .render import GENERATOR, env, svg

DIAGNOSTICS = [("logit_abs_mean", "mean |logit|"), ("dead_fraction", "dead units"), ("grad_norm", "gradient norm"),
               ("zero_grad_fraction", "zero gradients"), ("weight_norm", "weight norm"), ("penalty", "penalty")]


def render_watch(result: Any, seen: dict[str, int], chance: float, folder: Path, saved: dict[str, Any],
                 suggestions: list[dict[str, str]]) -> str:
    curves = result.curves
    figs = [svg(plots.curve_groups({"your fit": [curves.get("val_accuracy", [])]}, chance if chance == chance else 0.0)),
            svg(plots.run_diagnostics(curves, DIAGNOSTICS))]
    symptoms = [{"name": s, "epoch": seen.get(s), "meaning": SYMPTOMS.get(s, "")} for s in result.symptoms]
    return env().get_template("watch.html.j2").render(r=result, figs=figs, symptoms=symptoms, chance=chance, folder=str(folder),
                                                      saved=saved, suggestions=suggestions, generator=GENERATOR)
