"""``watch.html``: one watched ``fit``, rendered with the report's environment
and styles, its charts plain SVG (written at the end of the user's ``fit``, where
matplotlib would cost more than the watching): the outcome, the curves, the diagnostics, the symptoms when
they appeared, and the remedies doctor would try first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remedysweep.engine.symptoms import SYMPTOMS

from . import plots
from .render import GENERATOR, env

DIAGNOSTICS = [("logit_abs_mean", "mean |logit|"), ("dead_fraction", "dead units"), ("grad_norm", "gradient norm"),
               ("zero_grad_fraction", "zero gradients"), ("weight_norm", "weight norm"), ("penalty", "penalty")]


def render_watch(result: Any, seen: dict[str, int], chance: float, folder: Path, saved: dict[str, Any],
                 suggestions: list[dict[str, str]]) -> str:
    curves = result.curves
    import markupsafe

    def recorded(k: str) -> bool:
        return any(v == v for v in curves.get(k, []))

    accuracy = [(label, [curves[k]], chance if chance == chance else None, (0.0, 1.0))
                for k, label in (("val_accuracy", "validation accuracy"), ("accuracy", "training accuracy")) if recorded(k)]
    # a penalty that is 0 throughout (no regularizer) says nothing: no panel
    shown = [(label, [curves[k]], None, None) for k, label in DIAGNOSTICS
             if recorded(k) and (k != "penalty" or any(v for v in curves[k] if v == v))]
    figs = [markupsafe.Markup(plots.panels_svg(accuracy)), markupsafe.Markup(plots.panels_svg(shown))]
    # every symptom the console printed, also one that had passed by the end
    names = list(result.symptoms) + [s for s in sorted(seen, key=lambda k: seen[k]) if s not in result.symptoms]
    symptoms = [{"name": s, "epoch": seen.get(s), "meaning": SYMPTOMS.get(s, ""), "at_end": s in result.symptoms} for s in names]
    return env().get_template("watch.html.j2").render(r=result, figs=figs, symptoms=symptoms, chance=chance, folder=str(folder),
                                                      saved=saved, suggestions=suggestions, generator=GENERATOR,
                                                      no_train_accuracy=not recorded("accuracy"))
