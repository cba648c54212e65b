"""Turn a run folder's analysis into ``report.html``: structure, then templates.

Templates only render: every number is computed in :mod:`.analysis` and formatted
here or by filters. Autoescaping is on, so names, descriptions and messages from
plugins and sweep files always show as text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import analysis as an
from . import plots
from remedysweep.runner.orchestrate import atomic_write

TEMPLATES = Path(__file__).parent / "templates"

TRIALS_COLUMNS_DOC = {
    "trial_number": "Optuna trial number of the run",
    "config_id": "stable id of the knob configuration (seed excluded)",
    "<knob>": "one column per swept knob, its value in the run",
    "seed": "the run's seed (initial weights and shuffling)",
    "outcome": "healthy, degraded, collapsed, never_learned, diverged or failed",
    "peak_val_accuracy": "best validation accuracy, counting the in-epoch probes",
    "final_val_accuracy": "validation accuracy after the last epoch run",
    "epochs_run": "epochs actually trained (fewer if stopped early)",
    "train_seconds": "wall time of training",
    "peak_epoch": "when the peak was reached (fractional for an in-epoch probe)",
    "collapse_epoch": "first epoch of the final stretch at chance (collapsed runs)",
    "first_nonfinite_epoch": "first epoch whose loss or weights were NaN/Inf",
    "early_stopped": "stopped before the last epoch by the collapse-aware early stop",
    "n_params": "trainable and non-trainable parameters of the model",
    "keras_fuses": "keras_default runs: whether Keras computed the fused form in that process",
    "packed_seeds": "seeds of the configuration trained together in one graph (0: trained alone)",
    "message": "the exception of a failed run",
}
CURVES_COLUMNS_DOC = {
    "trial_number, config_id, seed, epoch": "which run and epoch (1-based)",
    "loss, accuracy, val_loss, val_accuracy": "Keras's training and validation metrics",
    "logit_abs_mean, logit_max": "mean and max |pre-softmax logit| on the probe batch",
    "logit_spread": "std of the logits across classes, averaged over probe samples",
    "dead_fraction, dead_fraction_layerN": "share of hidden units whose pre-activation is <= 0 for every probe sample",
    "grad_norm": "global norm of the loss gradient on the probe batch",
    "weight_norm": "global L2 norm of the trainable weights",
    "probe_keras_ce, probe_fused_ce, probe_unfused_ce": "the three cross-entropy forms on the probe batch's logits",
    "nonfinite": "1 if the loss or weights were NaN/Inf at that epoch",
}


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"
    env.filters["num"] = _num
    env.filters["rate"] = lambda row, k, n: an.fmt_rate(int(row[k]), int(row[n]))
    return env


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if abs(v) >= 1000:
            return f"{v:.3g}"
        return f"{v:.{digits}g}"
    return str(v)


def _svg(fig: Any) -> Any:
    import markupsafe

    # Our own matplotlib output; labels in it were escaped by matplotlib's SVG writer.
    return markupsafe.Markup(plots.to_svg(fig))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if df is None or df.empty else df.to_dict("records")


def _remedy_info(run: an.RunData) -> list[dict[str, str]]:
    try:
        from remedysweep.remedies import discover

        plugins = [p for p in run.sweep.get("plugins", []) if Path(p).is_file()]
        registry = discover(plugin_files=plugins)
    except Exception:
        return [{"name": k, "description": "(not installed here)", "source": ""} for k in run.knobs]
    out = []
    for k in run.knobs:
        if k in registry:
            out.append({"name": k, "description": registry[k].description, "source": registry.sources[k]})
        else:
            out.append({"name": k, "description": "(not installed here)", "source": ""})
    return out


def build_context(run: an.RunData) -> dict[str, Any]:
    """Everything the template shows, already computed."""
    t = run.trials
    chance = 1.0 / run.n_classes
    counts = an.outcome_counts(t)
    expected = run.expected_runs or 0
    ctx: dict[str, Any] = {
        "name": run.name,
        "description": run.sweep.get("description", ""),
        "sweep": run.sweep,
        "n_runs": len(t),
        "expected": expected,
        "missing": max(0, expected - len(t)),
        "chance": chance,
        "counts": _records(counts),
        "outcome_bar": _svg(plots.outcome_bar(counts)) if len(t) else None,
        "headline": an.headline(run),
        "remedies": _remedy_info(run),
        "knobs": [],
        "pairs": [],
        "trials_doc": TRIALS_COLUMNS_DOC,
        "curves_doc": CURVES_COLUMNS_DOC,
        "min_runs": an.MIN_RUNS,
        "fixed": {k: run.trials[k].iloc[0] for k in run.knobs if k in run.trials and len(t) and run.trials[k].nunique() == 1},
    }
    swept = an.swept_knobs(run)
    ctx["contrast"] = _loss_contrast(run)
    tb = an.binned(run)  # range knobs in quantile bins
    for knob in swept:
        rates = an.rates_by_value(tb, knob)
        iso = an.isolation(run, knob)
        ctx["knobs"].append(
            {
                "name": knob,
                "rates": _records(rates),
                "bars": _svg(plots.rate_bars(rates, knob)),
                "strip": _svg(plots.accuracy_strip(tb, knob)),
                "isolation": _svg(plots.isolation_plot(iso, knob)) if not iso.empty else None,
            }
        )
    for a, b in an.interesting_pairs(run):
        pr = an.rates_by_pair(tb, a, b)
        ctx["pairs"].append({"a": a, "b": b, "heatmap": _svg(plots.pair_heatmap(pr, a, b))})
    configs = an.config_table(run)
    ctx["configs"] = _records(configs.head(15))
    ctx["configs_total"] = len(configs)
    ctx["config_knobs"] = [k for k in run.knobs if k in swept]
    ctx["fix"] = an.smallest_fix(run)
    ctx["curves_fig"] = _svg(plots.learning_curves(run.curves, t, run.probes, chance)) if len(t) and not run.curves.empty else None
    aligned = an.aligned_curves(run)
    ctx["aligned"] = []
    if not aligned.empty and (aligned["outcome"] == "collapsed").any():
        for col, label in (("val_accuracy", "validation accuracy"), *an.DIAGNOSTICS.items()):
            if col in aligned:
                ctx["aligned"].append(_svg(plots.aligned_curves_plot(aligned, col, label, chance if col == "val_accuracy" else None)))
    ctx["diag_table"] = _records(an.diagnostics_at_collapse(run))
    ctx["fusion"] = an.fusion_evidence(run)
    ctx["importance"] = _records(an.importance(run))
    ctx["failures"] = _records(an.failures(run))
    ctx["seed_spread"] = _seed_spread(run)
    front = an.pareto(run)
    ctx["pareto"] = _records(front)
    ctx["pareto_second"] = front["second_name"].iloc[0] if not front.empty else ""
    return ctx


def _loss_contrast(run: an.RunData) -> list[dict[str, Any]] | None:
    """Rates per loss formulation at the highest learning rate, if both are swept."""
    t = run.trials
    if "loss" not in t or t.empty or t["loss"].nunique() < 2:
        return None
    where = {}
    if "learning_rate" in t and t["learning_rate"].nunique() > 1:
        where["learning_rate"] = float(pd.to_numeric(t["learning_rate"]).max())
    rates = an.contrast_at(run, "loss", where)
    return [{"where": where, **r} for r in _records(rates)]


def _seed_spread(run: an.RunData) -> dict[str, Any] | None:
    """How many configurations disagree across seeds (some at chance, some not)."""
    t = run.trials
    if t.empty:
        return None
    g = t.groupby("config_id")["outcome"].agg(lambda s: s.isin(an.BAD_OUTCOMES).mean())
    return {"configs": int(len(g)), "mixed": int(((g > 0) & (g < 1)).sum())}


def render_report(run: an.RunData) -> str:
    return _env().get_template("report.html.j2").render(**build_context(run))


def write_report(run_dir: str | Path) -> Path:
    """Analyse a run folder and write its ``report.html`` (all or nothing)."""
    from remedysweep.runner.orchestrate import RunError

    run_dir = Path(run_dir)
    try:
        run = an.load_run(run_dir)
    except an.ReportError as exc:
        raise RunError(str(exc)) from None
    text = render_report(run)
    out = run_dir / "report.html"
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise RunError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return out


def write_comparison(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Side-by-side report of two run folders."""
    from remedysweep.runner.orchestrate import RunError

    try:
        a, b = an.load_run(run_a), an.load_run(run_b)
    except an.ReportError as exc:
        raise RunError(str(exc)) from None
    label_a, label_b = _labels(a, b)
    knobs = [k for k in an.swept_knobs(a) if k in an.swept_knobs(b)]
    sections = []
    for knob in knobs:
        ra, rb = an.rates_by_value(a.trials, knob), an.rates_by_value(b.trials, knob)
        rows = []
        for v in dict.fromkeys([*ra["value"].tolist(), *rb["value"].tolist()]):
            row_a = ra[ra["value"].astype(str) == str(v)]
            row_b = rb[rb["value"].astype(str) == str(v)]
            rows.append({"value": v, "a": row_a.iloc[0].to_dict() if len(row_a) else None, "b": row_b.iloc[0].to_dict() if len(row_b) else None})
        sections.append({"knob": knob, "rows": rows, "fig": _svg(plots.comparison_bars(ra, rb, knob, label_a, label_b))})
    ctx = {
        "a": {"label": label_a, "path": str(a.path), "n": len(a.trials), "counts": _records(an.outcome_counts(a.trials)), "headline": an.headline(a), "dataset": a.sweep.get("data", {}).get("dataset")},
        "b": {"label": label_b, "path": str(b.path), "n": len(b.trials), "counts": _records(an.outcome_counts(b.trials)), "headline": an.headline(b), "dataset": b.sweep.get("data", {}).get("dataset")},
        "sections": sections,
        "only_a": [k for k in an.swept_knobs(a) if k not in knobs],
        "only_b": [k for k in an.swept_knobs(b) if k not in knobs],
    }
    text = _env().get_template("compare.html.j2").render(**ctx)
    out = Path(out)
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise RunError(f"{out}: cannot write the comparison ({exc.strerror or exc})") from None
    return out


def _labels(a: an.RunData, b: an.RunData) -> tuple[str, str]:
    if a.name != b.name:
        return a.name, b.name
    return f"{a.name} ({a.path.name})", f"{b.name} ({b.path.name})"


def render_doctor(verdict: dict[str, Any]) -> str:
    """The ``doctor`` report, in the sweep report's style."""
    figs = []
    if verdict.get("baseline_curves"):
        series = {"your model": verdict["baseline_curves"]}
        for t in verdict.get("tried", []):
            if t.get("applicable") and t.get("curves"):
                series[t["fix"]] = t["curves"]
        figs.append(_svg(plots.curve_groups(series, 1.0 / verdict["n_classes"])))
    return _env().get_template("doctor.html.j2").render(v=verdict, figs=figs)
