"""``doctor.html``: the doctor's verdict, rendered with the report's environment,
styles and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remedysweep.engine.folder import CURVES_CSV

from . import plots
from .render import GENERATOR, env, svg


def render_doctor(verdict: dict[str, Any], folder: Path | None = None) -> str:
    figs = []
    if verdict.get("baseline_curves"):
        series = {"your model": verdict["baseline_curves"]}
        if folder is not None and (folder / CURVES_CSV).exists():
            series = _curves_from_folder(folder, verdict) or series
        figs.append(svg(plots.curve_groups({k: v for k, v in series.items() if v}, verdict.get("chance", 0.1))))
    files = [p.name for p in sorted(folder.iterdir())] if folder is not None and folder.exists() else []
    return env().get_template("doctor.html.j2").render(v=verdict, figs=figs, generator=GENERATOR, files=files)


def _curves_from_folder(folder: Path, verdict: dict[str, Any]) -> dict[str, list[list[float]]]:
    """Validation curves per configuration tried, read back from the search's run folder."""
    import pandas as pd

    from .analysis import load_run

    try:
        run = load_run(folder)
    except Exception:
        return {}
    t, c = run.trials, run.curves
    if t.empty or c.empty:
        return {}
    out: dict[str, list[list[float]]] = {}
    for cid, group in t.groupby("config_id", sort=False):
        row = group.iloc[0]
        changed = [f"{k}={row[k]}" for k in run.knobs if str(row[k]) != "as_built"]
        label = " + ".join(changed) if changed else "your model"
        curves = []
        for n in group["trial_number"]:
            curves.append(pd.to_numeric(c[c["trial_number"] == n]["val_accuracy"], errors="coerce").tolist())
        out[label] = curves
    keep = ["your model"]
    rec = verdict.get("recommendation") or verdict.get("best_partial")
    if rec:
        keep.append(" + ".join(rec["changes"]))
    keep += [k for k in out if k not in keep][: max(0, 6 - len(keep))]
    return {k: out[k] for k in keep if k in out}
