"""Findings: where collapse lives, what removes it, and what made no difference.

From a sweep's runs this module computes (pure pandas/SciPy, no plotting):

* **Regions**: the smallest conjunctions of knob values (``loss = unfused and
  width = 512 ...``) that hold the runs that ended at chance, found by a beam
  search over conjunctions scored by the one-sided Fisher (hypergeometric)
  p-value of "more at chance inside than outside". The search looks at many
  descriptions, so a region's p-value is multiplied by how many it evaluated
  (Bonferroni) before it is called a finding.
* **Removals**: from each region, every single change of one of its knob values,
  with the at-chance rate over the runs of the changed configuration and a
  two-sided Fisher test against the region.
* **No detectable effect**: every other swept knob whose values do not change
  the at-chance rate (Fisher's exact test on the knob's table), with the final
  accuracy compared too (Kruskal-Wallis).

All tests of a report form one family: their p-values are adjusted together
(Holm) before anything is called a difference. Everything goes to
``findings.json`` beside the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .analysis import BAD_OUTCOMES, RunData, binned, fmt_p, fmt_rate, rate_row, same, swept_knobs, wilson

ALPHA = 0.05
MAX_CONDITIONS = 6
BEAM = 24
MAX_REGIONS = 3


@dataclass
class Region:
    conditions: list[tuple[str, Any]]
    inside: int
    inside_runs: int
    outside: int
    outside_runs: int
    p: float
    searched: int
    p_search: float = 1.0
    p_adjusted: float = 1.0
    removals: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        return " and ".join(f"{k} = {v}" for k, v in self.conditions)


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    m = len(pvalues)
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _masks(t: pd.DataFrame, knobs: list[str]) -> dict[tuple[str, Any], np.ndarray]:
    out = {}
    for k in knobs:
        col = t[k]
        for v in pd.unique(col):
            out[(k, v)] = col.apply(lambda x, v=v: same(x, v)).to_numpy(bool)
    return out


def _enrichment(inside_pos: int, inside: int, positives: int, total: int) -> float:
    from scipy.stats import hypergeom

    return float(hypergeom.sf(inside_pos - 1, total, positives, inside))


def search_region(t: pd.DataFrame, knobs: list[str], positive: np.ndarray, eligible: np.ndarray) -> Region | None:
    """The conjunction of knob values that best separates the ``positive`` runs
    among the ``eligible`` ones (beam search, see the module text)."""
    masks = _masks(t, knobs)
    total = int(eligible.sum())
    positives = int((positive & eligible).sum())
    if positives == 0 or total == positives:
        return None
    searched = 0
    beam: list[tuple[tuple[tuple[str, Any], ...], np.ndarray]] = [((), eligible)]
    best: tuple[float, tuple[tuple[str, Any], ...], np.ndarray] | None = None
    for _ in range(min(MAX_CONDITIONS, len(knobs))):
        candidates: dict[tuple[tuple[str, Any], ...], tuple[float, np.ndarray]] = {}
        for rule, base in beam:
            used = {k for k, _ in rule}
            for item, m in masks.items():
                if item[0] in used:
                    continue
                new = tuple(sorted((*rule, item), key=lambda kv: knobs.index(kv[0])))
                if new in candidates:
                    continue
                mask = base & m
                a, n_in = int((mask & positive).sum()), int(mask.sum())
                if a == 0:
                    continue
                searched += 1
                candidates[new] = (_enrichment(a, n_in, positives, total), mask)
        if not candidates:
            break
        ranked = sorted(candidates.items(), key=lambda kv: (kv[1][0], len(kv[0])))
        beam = [(rule, mask) for rule, (_, mask) in ranked[:BEAM]]
        top_rule, (top_p, top_mask) = ranked[0]
        if best is None or top_p < best[0]:
            best = (top_p, top_rule, top_mask)
    if best is None:
        return None
    p, rule, mask = best
    # Smallest description: drop any condition whose removal does not worsen the test.
    changed = True
    while changed and len(rule) > 1:
        changed = False
        for cond in rule:
            rest = tuple(c for c in rule if c != cond)
            m = eligible.copy()
            for c in rest:
                m &= masks[c]
            q = _enrichment(int((m & positive).sum()), int(m.sum()), positives, total)
            if q <= p:
                rule, mask, p, changed = rest, m, q, True
                break
    inside_pos, inside = int((mask & positive).sum()), int(mask.sum())
    return Region(list(rule), inside_pos, inside, positives - inside_pos, total - inside, p, searched, min(1.0, p * searched))


def _removals(t: pd.DataFrame, region: Region, positive: np.ndarray, acc: pd.Series) -> list[dict[str, Any]]:
    """Each single change of one of the region's values, with its at-chance rate."""
    out = []
    for k, v in region.conditions:
        rest = [(kk, vv) for kk, vv in region.conditions if kk != k]
        base = np.ones(len(t), bool)
        for kk, vv in rest:
            base &= t[kk].apply(lambda x, vv=vv: same(x, vv)).to_numpy(bool)
        for other in pd.unique(t[k]):
            if same(other, v):
                continue
            m = base & t[k].apply(lambda x, o=other: same(x, o)).to_numpy(bool)
            n = int(m.sum())
            if not n:
                continue
            bad = int((m & positive).sum())
            from .analysis import fisher

            lo, hi = wilson(bad, n)
            out.append({
                "knob": k, "from": v, "to": other, "at_chance": bad, "runs": n, "interval": [lo, hi],
                "median_final_accuracy": float(acc[m].median()) if acc[m].notna().any() else None,
                "p": fisher(bad, n, region.inside, region.inside_runs),
            })
    out.sort(key=lambda r: (r["at_chance"] / r["runs"], -(r["median_final_accuracy"] or 0)))
    return out


def _knob_test(t: pd.DataFrame, k: str, positive: np.ndarray, acc: pd.Series) -> dict[str, Any]:
    from scipy.stats import fisher_exact, kruskal

    rows, table, groups = [], [], []
    for v in pd.unique(t[k]):
        m = t[k].apply(lambda x, v=v: same(x, v)).to_numpy(bool)
        n, bad = int(m.sum()), int((m & positive).sum())
        lo, hi = wilson(bad, n)
        a = acc[m].dropna()
        rows.append({"value": v, "at_chance": bad, "runs": n, "interval": [lo, hi], "median_final_accuracy": float(a.median()) if len(a) else None})
        table.append([bad, n - bad])
        groups.append(a.to_numpy())
    if sum(r[0] for r in table) == 0 or sum(r[1] for r in table) == 0:
        p_chance = 1.0
    else:
        try:
            p_chance = float(fisher_exact(np.array(table)).pvalue)
        except Exception:
            from scipy.stats import chi2_contingency

            p_chance = float(chi2_contingency(np.array(table))[1])
    usable = [g for g in groups if len(g) >= 2]
    try:
        p_acc = float(kruskal(*usable).pvalue) if len(usable) >= 2 and len({x for g in usable for x in g}) > 1 else 1.0
    except ValueError:
        p_acc = 1.0
    return {"knob": k, "values": rows, "p_at_chance": p_chance, "p_accuracy": p_acc}


def compute(run: RunData) -> dict[str, Any]:
    """Every finding of a sweep, JSON-ready (see the module text)."""
    t = binned(run).reset_index(drop=True)
    knobs = swept_knobs(run)
    out: dict[str, Any] = {"runs": int(len(t)), "correction": "Holm over every test below; a region's test is first multiplied by the descriptions searched",
                           "alpha": ALPHA, "regions": [], "no_effect": [], "effects": [], "lines": []}
    if t.empty:
        out["lines"] = ["No runs have finished yet."]
        return out
    positive = t["outcome"].isin(BAD_OUTCOMES).to_numpy(bool)
    acc = pd.to_numeric(t["final_val_accuracy"], errors="coerce").reset_index(drop=True)
    out["at_chance"] = int(positive.sum())
    out["chance"] = run.chance

    regions: list[Region] = []
    eligible = np.ones(len(t), bool)
    if knobs and positive.any():
        for _ in range(MAX_REGIONS):
            region = search_region(t, knobs, positive, eligible)
            if region is None or (regions and region.p_search >= ALPHA):
                break
            regions.append(region)
            covered = np.ones(len(t), bool)
            for k, v in region.conditions:
                covered &= t[k].apply(lambda x, v=v: same(x, v)).to_numpy(bool)
            eligible &= ~(covered & positive)
            if int((positive & eligible).sum()) < 3:
                break
        for r in regions:
            r.removals = _removals(t, r, positive, acc)
    in_regions = {k for r in regions for k, _ in r.conditions}
    knob_tests = [_knob_test(t, k, positive, acc) for k in knobs if k not in in_regions]

    # One family of tests, adjusted together.
    family: list[tuple[str, int, int, float]] = []
    for i, r in enumerate(regions):
        family.append(("region", i, -1, r.p_search))
        for j, rm in enumerate(r.removals):
            family.append(("removal", i, j, rm["p"]))
    for i, kt in enumerate(knob_tests):
        family.append(("chance", i, -1, kt["p_at_chance"]))
        family.append(("accuracy", i, -1, kt["p_accuracy"]))
    adjusted = _holm([f[3] for f in family]) if family else []
    for (kind, i, j, _), q in zip(family, adjusted):
        if kind == "region":
            regions[i].p_adjusted = q
        elif kind == "removal":
            regions[i].removals[j]["p_adjusted"] = q
        elif kind == "chance":
            knob_tests[i]["p_at_chance_adjusted"] = q
        else:
            knob_tests[i]["p_accuracy_adjusted"] = q
    out["tests"] = len(family)

    lines: list[str] = []
    total_bad = int(positive.sum())
    if total_bad == 0:
        lines.append(f"No run ended at chance: {fmt_rate(0, len(t))}.")
    for r in regions:
        significant = r.p_adjusted < ALPHA
        record = {
            "conditions": [[k, _json(v)] for k, v in r.conditions], "description": r.describe(),
            "inside": {"at_chance": r.inside, "runs": r.inside_runs, "interval": list(wilson(r.inside, r.inside_runs))},
            "outside": {"at_chance": r.outside, "runs": r.outside_runs, "interval": list(wilson(r.outside, r.outside_runs))},
            "p": r.p, "descriptions_searched": r.searched, "p_search": r.p_search, "p_adjusted": r.p_adjusted, "significant": significant,
            "removals": [{**rm, "from": _json(rm["from"]), "to": _json(rm["to"])} for rm in r.removals],
        }
        out["regions"].append(record)
        share = f"{r.inside} of the {total_bad} runs that ended at chance" if len(regions) > 1 or r.outside else f"all {total_bad} runs that ended at chance"
        where = (f"Runs end at chance where {r.describe()}: {fmt_rate(r.inside, r.inside_runs)} of the runs there, against "
                 f"{fmt_rate(r.outside, r.outside_runs)} elsewhere ({share}); Fisher {fmt_p(r.p)}, "
                 f"{'and ' if significant else 'but '}{fmt_p(r.p_adjusted)} after correcting for the {r.searched} descriptions searched"
                 f" and the report's {len(family)} tests{'' if significant else ': not a reliable finding'}.")
        lines.append(where)
        removing = [rm for rm in r.removals if rm["at_chance"] == 0 or rm.get("p_adjusted", 1) < ALPHA and rm["at_chance"] / rm["runs"] < r.inside / r.inside_runs]
        if removing and significant:
            parts = [f"{rm['knob']} → {rm['to']}: {fmt_rate(rm['at_chance'], rm['runs'])}" + (f", median {rm['median_final_accuracy']:.3g}" if rm["median_final_accuracy"] is not None else "")
                     for rm in removing]
            lines.append(("Each single change out of it that removes the collapse" if len(removing) > 1 else "The single change out of it that removes the collapse")
                         + " (runs ending at chance after the change): " + "; ".join(parts) + ".")
            kept = [rm for rm in r.removals if rm not in removing]
            if kept:
                lines.append("Changes that did not remove it: " + "; ".join(f"{rm['knob']} → {rm['to']}: {fmt_rate(rm['at_chance'], rm['runs'])}" for rm in kept) + ".")
    for kt in knob_tests:
        q = kt.get("p_at_chance_adjusted", 1.0)
        qa = kt.get("p_accuracy_adjusted", 1.0)
        record = {**kt, "values": [{**v, "value": _json(v["value"])} for v in kt["values"]],
                  "detectable_effect_on_chance": q < ALPHA, "detectable_effect_on_accuracy": qa < ALPHA}
        n = sum(v["runs"] for v in kt["values"])
        counts = ", ".join(f"{v['value']} {v['at_chance']}/{v['runs']}" for v in kt["values"])
        accs = ", ".join(f"{v['value']} {v['median_final_accuracy']:.3g}" for v in kt["values"] if v["median_final_accuracy"] is not None)
        if q >= ALPHA and total_bad:
            record["text"] = (f"{kt['knob']}: no detectable effect on ending at chance ({counts}; n = {n}; Fisher {fmt_p(kt['p_at_chance'])}, "
                              f"{fmt_p(q)} adjusted)" + (f"; median final accuracy {accs} ({'a detectable' if qa < ALPHA else 'no detectable'} difference, {fmt_p(qa)} adjusted)" if accs else "") + ".")
            out["no_effect"].append(record)
        elif q >= ALPHA and qa >= ALPHA:
            record["text"] = f"{kt['knob']}: no detectable effect on final accuracy (median {accs}; n = {n}; Kruskal-Wallis {fmt_p(kt['p_accuracy'])}, {fmt_p(qa)} adjusted)."
            out["no_effect"].append(record)
        else:
            what = "ending at chance" if q < ALPHA else "final accuracy"
            record["text"] = f"{kt['knob']}: changes {what} ({counts}; median final accuracy {accs}; {fmt_p(min(q, qa))} adjusted)."
            out["effects"].append(record)
    if out["no_effect"]:
        lines.append("No detectable difference: " + " ".join(r["text"] for r in out["no_effect"]))
    if total_bad and not regions and knobs:
        lines.append(f"{total_bad} of {len(t)} runs ended at chance, with no knob value or combination holding them.")
    if not knobs:
        lines.append(f"{len(t)} runs; no knob was swept with more than one value.")
    out["lines"] = lines
    out["answer"] = answer(run)
    return out


BROKEN = ("collapsed", "never_learned", "diverged", "degraded", "failed")


def broken_breakdown(rows: pd.DataFrame) -> str:
    """"12/12 broken: 7 at chance, 5 degraded (final 0.13–0.27)": every run that
    ended at chance, degraded, never learned, diverged or failed, counted."""
    n = len(rows)
    outcomes = rows["outcome"].value_counts().to_dict() if n else {}
    bad = sum(outcomes.get(o, 0) for o in BROKEN)
    parts = []
    at_chance = sum(outcomes.get(o, 0) for o in BAD_OUTCOMES)
    if at_chance:
        parts.append(f"{at_chance} at chance")
    degraded = rows[rows["outcome"] == "degraded"]
    if len(degraded):
        finals = pd.to_numeric(degraded["final_val_accuracy"], errors="coerce").dropna()
        lo, hi = (f"{finals.min():.2f}", f"{finals.max():.2f}") if len(finals) else ("", "")
        span = "" if not lo else f" (final {lo})" if lo == hi else f" (final {lo}–{hi})"
        parts.append(f"{len(degraded)} degraded{span}")
    if outcomes.get("failed"):
        parts.append(f"{outcomes['failed']} failed")
    return f"{bad}/{n} broken" + (f": {', '.join(parts)}" if parts else "")


def answer(run: RunData) -> str:
    """The report's first sentence: which settings avoid ending at chance, and
    the smallest change from the sweep's baseline that does it."""
    from .analysis import smallest_fix

    t = run.trials
    if t.empty:
        return "No runs have finished yet."
    everywhere = broken_breakdown(t)
    if not t["outcome"].isin(BROKEN).any():
        return f"Every run trained healthy ({len(t)}/{len(t)}): nothing here needs a remedy."
    fix = smallest_fix(run)
    base = fix.get("baseline") if fix else None
    base_text = ""
    if base is not None:
        rows = t[t["config_id"] == base["config_id"]]
        base_text = f"The baseline ({', '.join(f'{k} = {v}' for k, v in run.baseline.items() if k in t)}): {broken_breakdown(rows)}. "
    if fix and fix.get("fix") is not None:
        f = fix["fix"]
        change = "; ".join(f"{k}: {old} → {new}" for k, old, new in fix["changes"])
        median = f", median final accuracy {f['final_acc_median']:.3g}" if f.get("final_acc_median") == f.get("final_acc_median") else ""
        return (f"{base_text}Smallest change that avoided ending at chance on every seed: {change} "
                f"(none of its {int(f['runs'])} runs ended at chance{median}). Over the whole sweep: {everywhere}.")
    return f"{base_text}No configuration changed from the baseline avoided ending at chance on every seed. Over the whole sweep: {everywhere}."


def _json(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def contrast(run: RunData, knob: str = "loss", at: str = "learning_rate") -> list[dict[str, Any]]:
    """Rates per value of ``knob`` at the highest value of ``at`` (when swept),
    each value tested against the worst one (two-sided Fisher)."""
    from .analysis import contrast_at, fisher

    t = run.trials
    if knob not in t or t.empty or t[knob].nunique() < 2:
        return []
    where = {}
    if at in t and t[at].nunique() > 1:
        where[at] = float(pd.to_numeric(t[at], errors="coerce").max())
    rates = contrast_at(run, knob, where)
    if rates.empty:
        return []
    worst = rates.loc[rates["at_chance_rate"].idxmax()]
    rows = []
    for _, r in rates.iterrows():
        p = None if r["value"] == worst["value"] else fisher(int(r["at_chance"]), int(r["runs"]), int(worst["at_chance"]), int(worst["runs"]))
        pc = None if r["value"] == worst["value"] else fisher(int(r["collapsed"]), int(r["runs"]), int(worst["collapsed"]), int(worst["runs"]))
        rows.append({"where": where, **r.to_dict(), "p_vs_worst": p, "p_collapsed_vs_worst": pc, "worst": worst["value"]})
    return rows


__all__ = ["compute", "contrast", "rate_row"]
