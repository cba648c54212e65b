"""Turn a run folder's analysis into ``report.html`` and ``findings.json``:
structure, then templates.

Templates only render: every number is computed in :mod:`.analysis` and
:mod:`.findings` and formatted here or by filters. Autoescaping is on, so names,
descriptions and messages from plugins and sweep files always show as text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from remedysweep.engine.result import CURVE_COLUMNS, OUTCOME_TEXT, OUTCOMES, TRIAL_COLUMNS, clean_json
from remedysweep.errors import RunError, one_line
from remedysweep.engine.folder import FINDINGS_JSON, REPORT_HTML
from remedysweep.files import atomic_write, file_head, not_a_file, read_json
from remedysweep.remedies.base import AS_BUILT

from . import analysis as an
from . import findings as fd
from . import plots

TEMPLATES = Path(__file__).parent / "templates"
GENERATOR = "remedysweep"
#: More swept knobs than this, and the configuration table gives each configuration's settings in one column.
WIDE_TABLE_KNOBS = 5
ALIGNED_CAPTIONS = {
    "val_accuracy": "Validation accuracy falls to chance (dotted) at 0.",
    "logit_abs_mean": "Mean |logit|: grows before a collapse when the softmax saturates.",
    "logit_spread": "Logit spread across classes: how far apart the classes' logits are.",
    "dead_fraction": "Share of hidden units that never activate on the probe batch.",
    "grad_norm": "Gradient norm on the probe batch: zero once learning has stopped.",
    "zero_grad_fraction": "Share of kernel gradient entries exactly zero: 1 when the clipped loss kills every gradient.",
    "weight_norm": "Weight norm: large weights come before saturated logits.",
}


def _code(text: Any) -> Any:
    """Text whose `backticked` parts are code: escaped, then set in <code>."""
    import markupsafe

    parts = str(markupsafe.escape(text)).split("`")
    return markupsafe.Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def env() -> Any:
    import jinja2

    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    e.filters["pct"] = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"
    e.filters["num"] = _num
    e.filters["code"] = _code
    e.filters["rate"] = lambda row, k, n: an.fmt_rate(int(row[k]), int(row[n]))
    e.filters["p"] = lambda v: "–" if v is None else an.fmt_p(float(v))
    # a setting as the user wrote it: 0.1, not 0.10000000149011612
    e.filters["setting"] = lambda v: "–" if v is None else f"{float(f'{float(v):.6g}'):g}"
    return e


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


def svg(fig: Any) -> Any:
    import markupsafe

    # Our own matplotlib output; text in it was escaped by matplotlib's SVG writer.
    return markupsafe.Markup(plots.to_svg(fig))


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    return [] if df is None or df.empty else df.to_dict("records")


def _registry(run: an.RunData) -> Any:
    try:
        from remedysweep.remedies import discover

        return discover(plugin_files=[p for p in run.sweep.get("plugins", []) if Path(p).is_file()])
    except Exception:
        return None


def _remedy_info(run: an.RunData, registry: Any) -> list[dict[str, str]]:
    out = []
    for k in run.knobs:
        if registry is not None and k in registry:
            out.append({"name": k, "description": registry[k].description, "source": registry.sources[k]})
        else:
            out.append({"name": k, "description": "(not installed here)", "source": ""})
    return out


def _remedy_sections(run: an.RunData, registry: Any) -> list[Any]:
    sections = []
    for k in an.swept_knobs(run):
        if registry is None or k not in registry:
            continue
        try:
            section = registry[k].report_section(run.trials, run.curves)
        except Exception as exc:  # a plugin's section is its own code: it must not cost the report
            section = None
            sections.append({"title": f"{k}: its report section failed", "paragraphs": [one_line(exc, 2000)], "table": []})
        if section is not None:
            sections.append({"title": section.title, "paragraphs": list(section.paragraphs), "table": [list(r) for r in section.table]})
    return sections


def build_context(run: an.RunData, found: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows, already computed."""
    t = run.trials
    chance = run.chance
    counts = an.outcome_counts(t)
    expected = run.expected_runs or 0
    registry = _registry(run)
    ctx: dict[str, Any] = {
        "generator": GENERATOR,
        "name": run.name,
        "description": run.sweep.get("description", ""),
        "sweep": run.sweep,
        "model": _describe_source(run.sweep.get("model", {}), ("kind", "builder", "path")),
        "data": _describe_source(run.sweep.get("data", {}), ("dataset", "path", "loader")),
        "n_runs": len(t),
        "expected": expected,
        "missing": max(0, expected - len(t)),
        "chance": chance,
        "counts": _records(counts),
        "outcome_text": {o.value: text for o, text in OUTCOME_TEXT.items()},
        "outcome_bar": svg(plots.outcome_bar(counts)) if len(t) else None,
        "findings": found,
        "remedies": _remedy_info(run, registry),
        "knobs": [],
        "pairs": [],
        "trials_doc": {c.name: c.doc for c in TRIAL_COLUMNS},
        "curves_doc": {c.name: c.doc for c in CURVE_COLUMNS},
        "min_runs": an.MIN_RUNS,
        "fanova_rows": an.FANOVA_ROWS,
        "fixed": {k: t[k].iloc[0] for k in run.knobs if k in t and len(t) and t[k].nunique() == 1},
    }
    swept = an.swept_knobs(run)
    ctx["contrast"] = fd.contrast(run)
    tb = an.binned(run)
    for knob in swept:
        rates = an.rates_by_value(tb, knob)
        iso = an.isolation(run, knob)
        ctx["knobs"].append({
            "name": knob,
            "rates": _records(rates),
            "bars": svg(plots.rate_bars(rates, knob)),
            "strip": svg(plots.accuracy_strip(tb, knob)),
            "isolation": svg(plots.isolation_plot(iso, knob)) if not iso.empty else None,
        })
    for a, b in an.interesting_pairs(run):
        ctx["pairs"].append({"a": a, "b": b, "heatmap": svg(plots.pair_heatmap(an.rates_by_pair(tb, a, b), a, b))})
    configs = an.config_table(run)
    ctx["configs"] = _records(configs.head(15))
    ctx["configs_total"] = len(configs)
    ctx["config_knobs"] = [k for k in run.knobs if k in swept]
    # many knobs (a doctor folder sweeps every remedy): one column of what each configuration sets, so
    # that the table fits the page; a knob left as the model was built is not listed
    ctx["config_column"] = len(ctx["config_knobs"]) > WIDE_TABLE_KNOBS
    for c in ctx["configs"]:
        c["_setting"] = ", ".join(f"{k}={c[k]}" for k in ctx["config_knobs"] if str(c[k]) != AS_BUILT) or "as built"
    ctx["fix"] = an.smallest_fix(run)
    ctx["curves_fig"] = svg(plots.learning_curves(run.curves, t, run.probes, chance)) if len(t) and not run.curves.empty and "trial_number" in run.curves else None
    aligned = an.aligned_curves(run)
    ctx["aligned"] = []
    if not aligned.empty and (aligned["outcome"] == "collapsed").any():
        for col, label in (("val_accuracy", "validation accuracy"), *an.DIAGNOSTICS.items()):
            if col in aligned and pd.to_numeric(aligned[col], errors="coerce").notna().any():
                ctx["aligned"].append({"fig": svg(plots.aligned_curves_plot(aligned, col, label, chance if col == "val_accuracy" else None)),
                                       "caption": ALIGNED_CAPTIONS.get(col, label)})
    ctx["diag_table"] = _records(an.diagnostics_at_collapse(run))
    ctx["symptoms"] = _records(an.symptom_counts(run))
    ctx["symptom_outcomes"] = [o for o in OUTCOMES if any(o in s for s in ctx["symptoms"])]
    ctx["paths"] = _records(an.paths(run))
    ctx["sections"] = _remedy_sections(run, registry)
    ctx["importance"] = _records(an.importance(run))
    ctx["failures"] = _records(an.failures(run))
    ctx["seed_spread"] = an.seed_spread(run)
    front = an.pareto(run)
    ctx["pareto"] = _records(front)
    ctx["pareto_second"] = front["second_name"].iloc[0] if not front.empty else ""
    return ctx


def _describe_source(d: dict[str, Any], keys: tuple[str, ...]) -> str:
    """``digits``, ``mlp``, ``my_models.py:build`` or ``data.npz``: where a sweep's model or data came from."""
    for k in keys:
        v = d.get(k)
        if not v:
            continue
        if k in ("kind", "dataset"):
            return str(v)
        target, _, func = str(v).rpartition(":") if k in ("builder", "loader") else (str(v), "", "")
        return Path(target).name + (f":{func}" if func else "")
    return "?"


def render_report(run: an.RunData, found: dict[str, Any] | None = None) -> str:
    return env().get_template("report.html.j2").render(**build_context(run, found if found is not None else fd.compute(run)))


def write_report(run_dir: str | Path) -> Path:
    """Analyse a run folder and write its ``report.html`` and ``findings.json``
    (each all or nothing)."""
    run_dir = Path(run_dir)
    run = an.load_run(run_dir)
    for name, ours in ((REPORT_HTML, _written_by_us), (FINDINGS_JSON, _findings_by_us)):  # never the user's own files
        path = run_dir / name
        if path.is_symlink() or (path.exists() and not ours(path)):
            raise RunError(f"{path}: not a file remedysweep wrote{' (a symlink)' if path.is_symlink() else ''}; "
                           "it is left as it is: copy the run folder's CSVs and sweep.json elsewhere to report on them")
    found = fd.compute(run)
    text = render_report(run, found)
    out = run_dir / REPORT_HTML
    try:
        atomic_write(run_dir / FINDINGS_JSON, json.dumps(clean_json(found), indent=2))
        atomic_write(out, text)
    except OSError as exc:
        raise RunError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return out


def _written_by_us(path: Path) -> bool:
    try:
        head = file_head(path, 2048)  # a FIFO or a device is nobody's report: never opened (b"")
    except OSError:
        return False
    return b'<meta name="generator" content="remedysweep' in head


def _findings_by_us(path: Path) -> bool:
    if not_a_file(path):
        return False
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"runs", "regions", "lines"} <= set(data)


def write_comparison(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Side-by-side report of two run folders. Refuses to overwrite any file that
    is not a report remedysweep wrote."""
    out = Path(out)
    if out.exists() and (out.is_dir() or not _written_by_us(out)):
        raise RunError(f"{out}: exists and is not a report remedysweep wrote; choose another --out")
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"{out}: the comparison is an HTML file; give --out a name ending in .html")
    a, b = an.load_run(run_a), an.load_run(run_b)
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
        sections.append({"knob": knob, "rows": rows, "fig": svg(plots.comparison_bars(ra, rb, knob, label_a, label_b))})
    fa, fb = fd.compute(a), fd.compute(b)

    def side(r: an.RunData, label: str, f: dict[str, Any]) -> dict[str, Any]:
        return {"label": label, "path": str(r.path), "n": len(r.trials), "counts": _records(an.outcome_counts(r.trials)),
                "lines": f["lines"][:2], "data": _describe_source(r.sweep.get("data", {}), ("dataset", "path", "loader"))}

    ctx = {"generator": GENERATOR, "a": side(a, label_a, fa), "b": side(b, label_b, fb), "sections": sections,
           "only_a": [k for k in an.swept_knobs(a) if k not in knobs], "only_b": [k for k in an.swept_knobs(b) if k not in knobs]}
    text = env().get_template("compare.html.j2").render(**ctx)
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise RunError(f"{out}: cannot write the comparison ({exc.strerror or exc})") from None
    return out


def _labels(a: an.RunData, b: an.RunData) -> tuple[str, str]:
    if a.name != b.name:
        return a.name, b.name
    return f"{a.name} ({a.path.name})", f"{b.name} ({b.path.name})"
