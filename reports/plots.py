"""Figures for the report. Each function takes analysis output and returns a
matplotlib Figure (never shows it); :func:`to_svg` embeds it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

OUTCOME_COLORS = {
    "healthy": "#2b8a3e",
    "degraded": "#e8a317",
    "collapsed": "#c92a2a",
    "never_learned": "#862e9c",
    "diverged": "#1864ab",
    "failed": "#495057",
}


#: At most this many runs are drawn as lines per panel (figures stay small and
#: fast at 100,000 runs); the title says when fewer than all are drawn.
MAX_LINES = 300
#: At most this many runs are drawn as dots per value in the strip plots (the
#: median bar is over every run); the title says when fewer than all are drawn.
MAX_DOTS = 1000


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Text is never parsed as math: knob values and folder names are shown as written.
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
                         "text.parse_math": False, "text.usetex": False})
    return plt


def _plain_number(value: float, _pos: Any = None) -> str:
    """A tick label as plain text (0, 0.01, 1, 100, 1e+04): with math parsing
    off, matplotlib's log formatters would print their TeX source instead."""
    if value == 0:
        return "0"
    return f"{value:g}"


def plain_ticks(axis: Any) -> None:
    """Plain-text labels on a log or symlog axis; minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(_plain_number))
    axis.set_minor_formatter(NullFormatter())


#: Panels per row in the small-multiple figures: wider rows would be scaled
#: down to the page's width and their text with them.
MAX_COLS = 3


def _panels(plt: Any, n: int, panel: tuple[float, float], **kwargs: Any) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, at most MAX_COLS to a row; panels left over in
    the last row are hidden."""
    n = max(1, n)
    cols = min(n, MAX_COLS)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False, **kwargs)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def to_svg(fig: Any) -> str:
    """The figure as inline SVG text (self-contained, no external references)."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def rate_bars(rates: pd.DataFrame, knob: str) -> Any:
    """Per value: 'ended at chance' and collapse rates with 95% Wilson intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * len(rates) + 1.6), 2.6))
    x = np.arange(len(rates))
    w = 0.38
    for off, col, lo, hi, label, color in (
        (-w / 2, "at_chance_rate", "at_chance_lo", "at_chance_hi", "ended at chance", "#868e96"),
        (w / 2, "collapse_rate", "collapse_lo", "collapse_hi", "collapsed (rose, then fell)", OUTCOME_COLORS["collapsed"]),
    ):
        vals = rates[col].to_numpy(dtype=float)
        err = np.clip(np.vstack([vals - rates[lo].to_numpy(dtype=float), rates[hi].to_numpy(dtype=float) - vals]), 0, None)
        ax.bar(x + off, vals, w, yerr=err, capsize=3, label=label, color=color, alpha=0.85)
    ax.set_xticks(x, [f"{v}\n(n={n})" for v, n in zip(rates["value"], rates["runs"])])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of runs")
    ax.set_title(knob)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return fig


def accuracy_strip(trials: pd.DataFrame, knob: str) -> Any:
    """Final validation accuracy of every run per value, coloured by outcome."""
    plt = _plt()
    values = list(dict.fromkeys(trials[knob].tolist()))
    fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * len(values) + 1.6), 2.4))
    rng = np.random.default_rng(0)
    capped = False
    for i, v in enumerate(values):
        g = trials[trials[knob] == v]
        acc = pd.to_numeric(g["final_val_accuracy"], errors="coerce")
        if acc.notna().any():
            ax.hlines(acc.median(), i - 0.3, i + 0.3, color="#212529", lw=1.2, zorder=3)
        if len(g) > MAX_DOTS:
            g, capped = g.sample(MAX_DOTS, random_state=0), True
            acc = pd.to_numeric(g["final_val_accuracy"], errors="coerce")
        xs = i + rng.uniform(-0.18, 0.18, len(g))
        ax.scatter(xs, acc, s=16, c=[OUTCOME_COLORS.get(o, "#000") for o in g["outcome"]], alpha=0.85, linewidths=0)
    ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("final val. accuracy")
    ax.set_title(f"{knob}: " + (f"{MAX_DOTS} runs per value drawn (bar = median of all)" if capped else "every run (bar = median)"))
    return fig


def isolation_plot(iso: pd.DataFrame, knob: str) -> Any:
    """Best configuration over the other knobs at each value, with its seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.2, 0.9 * len(iso) + 1.6), 2.4))
    capped = False
    for i, row in enumerate(iso.itertuples()):
        ys = [y for y in row.per_seed if y == y]
        if len(ys) > MAX_DOTS:  # the median is over every seed
            ys, capped = list(np.random.default_rng(0).choice(ys, MAX_DOTS, replace=False)), True
        ax.scatter([i] * len(ys), ys, s=18, color="#1864ab", alpha=0.8, linewidths=0)
        ax.hlines(row.median, i - 0.25, i + 0.25, color="#1864ab", lw=1.5)
    ax.set_xticks(range(len(iso)), [str(v) for v in iso["value"]])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("final val. accuracy")
    ax.set_title(f"isolation: best config per {knob}" + (f" ({MAX_DOTS} seeds drawn)" if capped else ""))
    return fig


def pair_heatmap(rates: pd.DataFrame, a: str, b: str) -> Any:
    """'Ended at chance' rate for each pair of values; hatched cells have too few runs."""
    plt = _plt()
    va = list(dict.fromkeys(rates[a].tolist()))
    vb = list(dict.fromkeys(rates[b].tolist()))
    grid = np.full((len(va), len(vb)), np.nan)
    text = [["" for _ in vb] for _ in va]
    few = np.zeros_like(grid, dtype=bool)
    for row in rates.itertuples(index=False):
        d = row._asdict()
        i, j = va.index(d[a]), vb.index(d[b])
        grid[i, j] = d["at_chance_rate"]
        text[i][j] = f"{d['at_chance']}/{d['runs']}\n({d['collapsed']} coll.)"
        few[i, j] = d["too_few"]
    fig, ax = plt.subplots(figsize=(1.5 * len(vb) + 2.2, 0.9 * len(va) + 1.4))  # room for cell text at a readable size
    im = ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for i in range(len(va)):
        for j in range(len(vb)):
            if few[i, j] or np.isnan(grid[i, j]):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#adb5bd", lw=0))
            ax.text(j, i, text[i][j] or "no runs", ha="center", va="center", fontsize=10, fontweight="bold",
                    color="white" if (grid[i, j] == grid[i, j] and grid[i, j] > 0.35) else "#212529")
    ax.set_xticks(range(len(vb)), [str(v) for v in vb])
    ax.set_yticks(range(len(va)), [str(v) for v in va])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="ended at chance")
    return fig


def aligned_curves_plot(aligned: pd.DataFrame, column: str, label: str, chance: float | None = None) -> Any:
    """Collapsed vs healthy runs around the collapse epoch: each run thin, median thick."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.4, 2.4))
    for outcome in ("healthy", "collapsed"):
        g = aligned[aligned["outcome"] == outcome]
        if g.empty or column not in g:
            continue
        color = OUTCOME_COLORS[outcome]
        for i, (_, run) in enumerate(g.groupby("trial_number")):
            if i >= MAX_LINES:  # the median below is over every run; only the thin lines are capped
                break
            ax.plot(run["offset"], run[column], color=color, alpha=0.25, lw=0.8)
        med = g.groupby("offset")[column].median()
        ax.plot(med.index, med.values, color=color, lw=2, label=f"{outcome} (n={g['trial_number'].nunique()})")
    if chance is not None:
        ax.axhline(chance, color="#868e96", ls=":", lw=1)
    ax.axvline(0, color="#868e96", ls="--", lw=0.8)
    if column in ("logit_abs_mean", "logit_spread", "grad_norm", "weight_norm") and (aligned[column] > 0).any():
        ax.set_yscale("symlog", linthresh=1e-2)  # zeros (a dead gradient) stay visible
        ax.set_ylim(bottom=0)
        plain_ticks(ax.yaxis)
    ax.set_xlabel("epochs from collapse")
    ax.set_title(label)
    ax.legend(fontsize=8, frameon=False)
    return fig


def learning_curves(curves: pd.DataFrame, trials: pd.DataFrame, probes: pd.DataFrame, chance: float) -> Any:
    """Validation accuracy of every run, by outcome, with the in-epoch probes."""
    plt = _plt()
    outcomes = [o for o in OUTCOME_COLORS if (trials["outcome"] == o).any()]
    fig, axes = _panels(plt, len(outcomes), (2.6, 2.4), sharey=True)
    chosen = {}
    for outcome in outcomes:
        numbers = trials[trials["outcome"] == outcome]["trial_number"]
        chosen[outcome] = (numbers, numbers if len(numbers) <= MAX_LINES else numbers.sample(MAX_LINES, random_state=0))
    wanted = set().union(*(set(d) for _, d in chosen.values())) if chosen else set()
    # grouped once, and only the runs drawn: at 100,000 runs a group per run costs more than the drawing
    by_run = dict(tuple(curves[curves["trial_number"].isin(wanted)].groupby("trial_number"))) if not curves.empty else {}
    probes_by_run = dict(tuple(probes[probes["trial_number"].isin(wanted)].groupby("trial_number"))) if not probes.empty else {}
    for ax, outcome in zip(axes, outcomes):
        numbers, drawn = chosen[outcome]
        for n in drawn:
            c = by_run.get(n, curves.iloc[:0])
            p = probes_by_run.get(n)
            xs = list(p["epoch"]) + list(c["epoch"]) if p is not None else list(c["epoch"])
            ys = list(p["probe_accuracy"]) + list(c["val_accuracy"]) if p is not None else list(c["val_accuracy"])
            order = np.argsort(xs)
            ax.plot(np.asarray(xs)[order], np.asarray(ys)[order], color=OUTCOME_COLORS[outcome], alpha=0.45, lw=0.9)
        ax.axhline(chance, color="#868e96", ls=":", lw=1)
        ax.set_title(f"{outcome} ({len(numbers)}" + (f", {MAX_LINES} drawn)" if len(numbers) > MAX_LINES else ")"))
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
    for ax in axes[::MAX_COLS]:
        ax.set_ylabel("val. accuracy")
    return fig


def outcome_bar(counts: pd.DataFrame) -> Any:
    """The runs' outcomes as one stacked bar; the labels go in a legend below, so
    a narrow segment's label is never cut."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 1.1))
    left = 0
    total = max(1, counts["runs"].sum())
    for row in counts.itertuples():
        if row.runs:
            ax.barh(0, row.runs, left=left, color=OUTCOME_COLORS.get(row.outcome, "#000"), label=f"{row.outcome} {row.runs}")
            left += row.runs
    ax.set_xlim(0, total)
    ax.axis("off")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=6, frameon=False, fontsize=8, handlelength=1.0)
    return fig


def comparison_bars(a: pd.DataFrame, b: pd.DataFrame, knob: str, name_a: str, name_b: str) -> Any:
    """'Ended at chance' rate per value in two sweeps, with intervals."""
    plt = _plt()
    values = list(dict.fromkeys([*a["value"].tolist(), *b["value"].tolist()]))
    fig, ax = plt.subplots(figsize=(max(3.4, 1.1 * len(values) + 1.6), 2.6))
    x = np.arange(len(values))
    w = 0.38
    for off, df, name, color in ((-w / 2, a, name_a, "#1864ab"), (w / 2, b, name_b, "#e8590c")):
        vals, lo, hi = [], [], []
        for v in values:
            r = df[df["value"].astype(str) == str(v)]
            if r.empty:
                vals.append(np.nan); lo.append(0); hi.append(0)
            else:
                r = r.iloc[0]
                vals.append(r["at_chance_rate"]); lo.append(r["at_chance_rate"] - r["at_chance_lo"]); hi.append(r["at_chance_hi"] - r["at_chance_rate"])
        ax.bar(x + off, vals, w, yerr=np.clip([lo, hi], 0, None), capsize=3, color=color, alpha=0.85, label=name)
    ax.set_xticks(x, [str(v) for v in values])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("ended at chance")
    ax.set_title(knob)
    ax.legend(fontsize=8, frameon=False)
    return fig


def curve_groups(series: dict[str, list[list[float]]], chance: float) -> Any:
    """Validation accuracy per seed for each variant, one panel each."""
    plt = _plt()
    n = len(series)
    # one change per title line: "a + b + c" is wider than its panel
    titles = ["\n".join(name.split(" + ")) for name in series]
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    fig, axes = _panels(plt, n, (2.6, 2.3 + 0.15 * (lines - 1)), sharey=True)
    for ax, title, (name, curves) in zip(axes, titles, series.items()):
        for c in curves:
            ax.plot(range(1, len(c) + 1), c, color="#c92a2a" if name == "your model" else "#1864ab", alpha=0.7, lw=1)
        ax.axhline(chance, color="#868e96", ls=":", lw=1)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
    for ax in axes[::MAX_COLS]:
        ax.set_ylabel("val. accuracy")
    return fig


def run_diagnostics(curves: dict[str, list[float]], keys: list[tuple[str, str]]) -> Any:
    """One run's diagnostics per epoch, a small panel each."""
    plt = _plt()
    shown = [(k, label) for k, label in keys if any(v == v for v in curves.get(k, []))]
    n = max(1, len(shown))
    fig, axes = _panels(plt, n, (2.6, 2.2))
    for ax, (key, label) in zip(axes, shown):
        values = curves.get(key, [])
        ax.plot(range(1, len(values) + 1), values, color="#1864ab", lw=1.2)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("epoch")
    return fig


def _short(value: float) -> str:
    """An axis value in at most about six characters (2.31k, 0.0654, 1.2e-05)."""
    a = abs(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.1e}" if 0 < a < 1e-3 else f"{value:.3g}"


def panels_svg(panels: list[tuple[str, list[list[float]], float | None, tuple[float, float] | None]]) -> str:
    """Small line charts side by side as plain SVG, without matplotlib: one
    ``(title, lines, reference, y_range)`` per panel, ``lines`` per epoch
    (NaN breaks a line), ``reference`` a dotted horizontal line (chance).
    For pages written at the end of the user's own ``fit``, where importing and
    running matplotlib would cost more than the watching itself."""
    from markupsafe import escape

    w, h, left, top, bottom = 214, 150, 50, 22, 26
    pw, ph = w - left - 10, h - top - bottom
    parts = []
    per_row = 4  # 856 px: the page never scales the row, or its text, down
    for i, (title, lines, reference, y_range) in enumerate(panels):
        x0 = 0
        parts.append(f'<g transform="translate({(i % per_row) * w},{(i // per_row) * h})">')
        values = [v for line in lines for v in line if v == v and abs(v) != float("inf")]
        if y_range is not None:
            lo, hi = y_range
        elif values:
            lo, hi = min(values), max(values)
        else:
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        n = max((len(line) for line in lines), default=1)

        def xy(j: int, v: float) -> str:
            x = x0 + left + (pw * j / max(1, n - 1) if n > 1 else pw / 2)
            y = top + ph * (1 - (min(max(v, lo), hi) - lo) / (hi - lo))
            return f"{x:.1f},{y:.1f}"

        parts.append(f'<rect x="{x0 + left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ced4da"/>')
        parts.append(f'<text x="{x0 + left + pw / 2}" y="14" text-anchor="middle" font-size="11">{escape(title)}</text>')
        for value, y in ((hi, top), ((lo + hi) / 2, top + ph / 2), (lo, top + ph)):  # three values on each axis
            parts.append(f'<text x="{x0 + left - 5}" y="{y + 3.5:.1f}" text-anchor="end" font-size="10" fill="#495057">{_short(value)}</text>')
            parts.append(f'<line x1="{x0 + left - 3}" x2="{x0 + left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#868e96"/>')
        ticks = [(1, "start", 0.0)] + ([((n + 1) // 2, "middle", ((n + 1) // 2 - 1) / (n - 1))] if n >= 5 else []) \
            + ([(n, "end", 1.0)] if n > 1 else [])
        for epoch, anchor, frac in ticks:
            parts.append(f'<text x="{x0 + left + pw * frac:.1f}" y="{top + ph + 12}" text-anchor="{anchor}" font-size="10" '
                         f'fill="#495057">{epoch}</text>')
        parts.append(f'<text x="{x0 + left + pw / 2}" y="{top + ph + 23}" text-anchor="middle" font-size="10" fill="#495057">epoch</text>')
        if reference is not None and lo <= reference <= hi:
            y = top + ph * (1 - (reference - lo) / (hi - lo))
            parts.append(f'<line x1="{x0 + left}" x2="{x0 + left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#868e96" stroke-dasharray="2,3"/>')
        for line in lines:
            segment: list[str] = []
            for j, v in enumerate(list(line) + [float("nan")]):
                if v == v and abs(v) != float("inf"):
                    segment.append(xy(j, v))
                elif segment:
                    if len(segment) == 1:
                        cx, cy = segment[0].split(",")
                        parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="#1864ab"/>')
                    else:
                        parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="#1864ab" stroke-width="1.3"/>')
                    segment = []
        parts.append("</g>")
    total = min(max(1, len(panels)), per_row) * w
    height = -(-max(1, len(panels)) // per_row) * h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" viewBox="0 0 {total} {height}" '
            f'font-family="sans-serif" role="img">{"".join(parts)}</svg>')
