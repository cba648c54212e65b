"""Analysis of a run folder: pandas in, DataFrames and plain values out.

No plotting and no HTML here. Every rate comes with its counts and its 95%
Wilson interval (from SciPy), so a small cell is visibly small.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from remedysweep.engine.folder import CURVES_CSV, FORMULA_START, PROBES_CSV, SWEEP_FILE, TRIALS_CSV, neutralize_formulas  # noqa: F401
from remedysweep.engine.result import AT_CHANCE, OUTCOMES
from remedysweep.errors import RunError, one_line
from remedysweep.files import read_json

OUTCOME_ORDER = OUTCOMES
BAD_OUTCOMES = AT_CHANCE
MIN_RUNS = 3  # fewer runs than this in a cell: too few to say anything


class ReportError(RunError):
    """A run folder the report cannot read (one line, exit 2)."""


@dataclass
class RunData:
    """Everything the report reads from a run folder."""

    path: Path
    sweep: dict[str, Any]
    trials: pd.DataFrame
    curves: pd.DataFrame
    probes: pd.DataFrame
    knobs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.sweep.get("name", self.path.name))

    @property
    def seeds(self) -> list[int]:
        return list(self.sweep.get("seeds", []))

    @property
    def expected_runs(self) -> int:
        s = self.sweep
        if s.get("sampler", {}).get("kind", "grid") == "grid":
            return int(math.prod(len(k.get("values", [])) for k in s.get("knobs", []))) * len(self.seeds)
        return int(s.get("sampler", {}).get("n_configs", 0)) * len(self.seeds)

    @property
    def baseline(self) -> dict[str, Any]:
        return dict(self.sweep.get("baseline", {}))

    @property
    def chance(self) -> float:
        """The runs' chance level (majority-class rate of the validation labels)."""
        if "chance" in self.trials:
            c = pd.to_numeric(self.trials["chance"], errors="coerce").dropna()
            if len(c):
                return float(c.median())
        d = self.sweep.get("data", {})
        return 1.0 / (10 if d.get("dataset") == "digits" else int(d.get("n_classes", 10) or 10))


#: Cells a spreadsheet would run as a formula start with one of these; remedysweep
#: writes such text cells with a leading apostrophe and reads them back without it.


def _restore_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: v[1:] if isinstance(v, str) and v.startswith("'") and v[1:2] and v[1:].startswith(FORMULA_START) else v)
    return frame


def _read_csv(path: Path, required: bool = False) -> pd.DataFrame:
    """Empty cells are missing; a knob value such as "nan" or "None" stays a string.
    An unreadable file is one line naming it (and, for bad bytes, the line and
    byte where they are)."""
    import io

    from remedysweep.files import not_a_file, read_whole

    if not path.exists():
        return pd.DataFrame()
    problem = not_a_file(path)
    if problem:
        raise ReportError(f"{path}: {problem}")
    try:
        data = read_whole(path)
    except OSError as exc:
        raise ReportError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ReportError(f"{path}: not a CSV text file (byte {exc.start} on line {line} is not UTF-8)") from None
    try:
        return _restore_formulas(pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""]))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError) as exc:
        raise ReportError(f"{path}: cannot be read as CSV ({one_line(exc, 200, with_type=False)})") from None


def load_run(path: str | Path) -> RunData:
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: not a run folder")
    sweep_file = path / SWEEP_FILE
    if not sweep_file.exists():
        raise ReportError(f"{path}: no sweep.json, so not a remedysweep run folder")
    try:
        data = read_json(sweep_file)
    except (OSError, ValueError, RecursionError) as exc:
        raise ReportError(f"{sweep_file}: unreadable ({one_line(exc, 200, with_type=False)})") from None
    sweep = data.get("sweep") if isinstance(data, dict) else None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("knobs", []), list) \
            or not all(isinstance(k, dict) and "name" in k for k in sweep.get("knobs", [])):
        raise ReportError(f"{sweep_file}: not a sweep.json remedysweep wrote (it needs a \"sweep\" object whose \"knobs\" "
                          "each have a \"name\"); run the sweep again, or report a folder remedysweep made")
    knobs = [str(k["name"]) for k in sweep.get("knobs", [])]
    trials = _read_csv(path / TRIALS_CSV)
    if trials.empty:
        trials = pd.DataFrame(columns=["trial_number", "config_id", *knobs, "seed", "outcome", "peak_val_accuracy", "final_val_accuracy", "epochs_run", "train_seconds"])
    missing = [c for c in ("outcome", "config_id", "seed", "final_val_accuracy") if c not in trials]
    if missing:
        raise ReportError(f"{path / TRIALS_CSV}: lacks column(s) {', '.join(missing)}; not a remedysweep trials.csv")
    bad = trials[~trials["outcome"].isin(OUTCOMES)]
    if len(bad):
        line = int(bad.index[0]) + 2
        raise ReportError(f"{path / TRIALS_CSV}: line {line}: unknown outcome {str(bad['outcome'].iloc[0])[:40]!r}; allowed: {', '.join(OUTCOMES)}")
    for col in ("final_val_accuracy", "peak_val_accuracy"):
        if col in trials:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    trials.attrs["knobs"] = knobs
    return RunData(path, sweep, trials, _read_csv(path / CURVES_CSV), _read_csv(path / PROBES_CSV), knobs)


# ----------------------------------------------------------------------------
# Intervals and tests
# ----------------------------------------------------------------------------


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials (SciPy's)."""
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    p = k / n
    return (min(float(ci.low), p), max(float(ci.high), p))


def fmt_rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} ({lo:.0%}–{hi:.0%})"


def fisher(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value of k1/n1 against k2/n2."""
    from scipy.stats import fisher_exact

    if n1 <= 0 or n2 <= 0:
        return 1.0
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def fmt_p(p: float) -> str:
    if p != p:
        return "–"
    if p < 1e-4:
        return f"p = {p:.1e}"
    return f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------


def outcome_counts(trials: pd.DataFrame) -> pd.DataFrame:
    counts = trials["outcome"].value_counts() if not trials.empty else pd.Series(dtype=int)
    rows = [{"outcome": o, "runs": int(counts.get(o, 0))} for o in OUTCOME_ORDER]
    df = pd.DataFrame(rows)
    total = max(1, int(df["runs"].sum()))
    df["share"] = df["runs"] / total
    return df


def rate_row(group: pd.DataFrame) -> dict[str, Any]:
    n = len(group)
    collapsed = int((group["outcome"] == "collapsed").sum())
    bad = int(group["outcome"].isin(BAD_OUTCOMES).sum())
    lo, hi = wilson(collapsed, n)
    blo, bhi = wilson(bad, n)
    acc = pd.to_numeric(group["final_val_accuracy"], errors="coerce")
    return {
        "runs": n,
        "collapsed": collapsed,
        "collapse_rate": collapsed / n if n else float("nan"),
        "collapse_lo": lo,
        "collapse_hi": hi,
        "at_chance": bad,
        "at_chance_rate": bad / n if n else float("nan"),
        "at_chance_lo": blo,
        "at_chance_hi": bhi,
        "final_acc_median": float(acc.median()) if acc.notna().any() else float("nan"),
        "final_acc_min": float(acc.min()) if acc.notna().any() else float("nan"),
        "final_acc_max": float(acc.max()) if acc.notna().any() else float("nan"),
        "too_few": n < MIN_RUNS,
    }


def rates_by_value(trials: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Collapse rate (and 'ended at chance' rate: collapsed, never learned or
    diverged) per value of one knob, with Wilson intervals."""
    rows = [{"knob": knob, "value": value, **rate_row(group)} for value, group in trials.groupby(knob, sort=False, dropna=False)]
    return pd.DataFrame(rows)


def rates_by_pair(trials: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    rows = [{a: va, b: vb, **rate_row(group)} for (va, vb), group in trials.groupby([a, b], sort=False, dropna=False)]
    return pd.DataFrame(rows)


def swept_knobs(run: RunData) -> list[str]:
    """Knobs with more than one value in the results."""
    return [k for k in run.knobs if k in run.trials and run.trials[k].nunique(dropna=False) > 1]


def interesting_pairs(run: RunData, limit: int = 6) -> list[tuple[str, str]]:
    knobs = swept_knobs(run)
    pairs = list(itertools.combinations(knobs, 2))
    first = [p for p in pairs if set(p) == {"loss", "learning_rate"}]
    return (first + [p for p in pairs if p not in first])[:limit]


def config_table(run: RunData) -> pd.DataFrame:
    """One row per configuration: rates over seeds, accuracy spread; ranked by
    robustness (fewest runs ending at chance, then collapse, then median accuracy)."""
    t = run.trials
    if t.empty:
        return pd.DataFrame()
    rows = []
    for cid, group in t.groupby("config_id", sort=False):
        knobs = {k: group[k].iloc[0] for k in run.knobs if k in group}
        rows.append({"config_id": cid, **knobs, **rate_row(group), "outcomes": group["outcome"].value_counts().to_dict()})
    df = pd.DataFrame(rows)
    df = df.sort_values(["at_chance_rate", "collapse_rate", "final_acc_median"], ascending=[True, True, False], kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    return df.reset_index(drop=True)


def same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def smallest_fix(run: RunData) -> dict[str, Any] | None:
    """The configuration closest to the sweep's baseline (fewest knobs changed)
    whose every seed ran healthy or degraded, never at chance; ties broken by
    median accuracy. ``None`` without results."""
    configs = config_table(run)
    if configs.empty:
        return None
    base = run.baseline
    knobs = [k for k in run.knobs if k in configs]

    def changes(row: pd.Series) -> list[tuple[str, Any, Any]]:
        return [(k, base.get(k), row[k]) for k in knobs if k in base and not same(row[k], base[k])]

    configs = configs.assign(_changes=configs.apply(changes, axis=1))
    configs["_n"] = configs["_changes"].apply(len)
    base_rows = configs[configs["_n"] == 0]
    baseline_info = base_rows.iloc[0].to_dict() if not base_rows.empty else None
    ok = configs[(configs["at_chance"] == 0) & (configs["runs"] >= 1) & (configs["_n"] > 0)]
    if ok.empty:
        return {"baseline": baseline_info, "fix": None}
    ok = ok.sort_values(["_n", "final_acc_median"], ascending=[True, False], kind="stable")
    best = ok.iloc[0].to_dict()
    same_size = ok[ok["_n"] == best["_n"]].iloc[1:]
    alternatives = [{"changes": r["_changes"], "runs": int(r["runs"]), "final_acc_median": r["final_acc_median"]} for _, r in same_size.iterrows()]
    return {"baseline": baseline_info, "fix": best, "changes": best["_changes"], "alternatives": alternatives}


def contrast_at(run: RunData, knob: str, where: dict[str, Any]) -> pd.DataFrame:
    """Rates per value of ``knob`` within the runs matching ``where``."""
    t = run.trials
    for k, v in where.items():
        t = t[t[k].apply(lambda x, v=v: same(x, v))]
    return rates_by_value(t, knob) if not t.empty else pd.DataFrame()


def isolation(run: RunData, knob: str) -> pd.DataFrame:
    """Isolation plot data: for each value of ``knob``, the best configuration
    over the other knobs (by median final accuracy over seeds), with its seeds."""
    t = run.trials
    rows = []
    for value, group in t.groupby(knob, sort=False):
        by_config = group.groupby("config_id")["final_val_accuracy"].median()
        if by_config.dropna().empty:
            continue
        cid = by_config.idxmax()
        seeds = group[group["config_id"] == cid]["final_val_accuracy"].tolist()
        rows.append({"value": value, "config_id": cid, "median": float(by_config[cid]), "per_seed": seeds})
    return pd.DataFrame(rows)


def aligned_curves(run: RunData, window: int = 5) -> pd.DataFrame:
    """Per-epoch curves of collapsed runs aligned at their collapse epoch
    (offset 0), and of healthy runs aligned at the median collapse epoch."""
    t, c = run.trials, run.curves
    if t.empty or c.empty or "collapse_epoch" not in t or "trial_number" not in c:
        return pd.DataFrame()
    collapsed = t[t["outcome"] == "collapsed"]
    epochs = pd.to_numeric(collapsed["collapse_epoch"], errors="coerce").dropna()
    median_epoch = int(epochs.median()) if not epochs.empty else 1
    runs = t[t["outcome"].isin(["collapsed", "healthy"])][["trial_number", "outcome", "collapse_epoch"]].copy()
    if runs.empty:
        return pd.DataFrame()
    # one merge, not one filter per run: a report of 100,000 runs stays fast
    anchor = pd.to_numeric(runs["collapse_epoch"], errors="coerce")
    runs["_anchor"] = anchor.where((runs["outcome"] == "collapsed") & anchor.notna(), median_epoch).astype(int)
    merged = c.merge(runs[["trial_number", "outcome", "_anchor"]], on="trial_number", how="inner")
    merged["offset"] = merged["epoch"] - merged["_anchor"]
    merged = merged[(merged["offset"] >= -window) & (merged["offset"] <= window)].drop(columns="_anchor")
    return merged.reset_index(drop=True)


DIAGNOSTICS = {
    "logit_abs_mean": "mean |logit|",
    "logit_spread": "logit spread across classes (std)",
    "dead_fraction": "dead-unit fraction",
    "grad_norm": "gradient norm",
    "zero_grad_fraction": "share of exactly-zero kernel gradients",
    "weight_norm": "weight norm",
}


def diagnostics_at_collapse(run: RunData) -> pd.DataFrame:
    """Median of each diagnostic at the collapse epoch (collapsed runs) vs at the
    same epoch of healthy runs, with the interquartile range."""
    a = aligned_curves(run, window=0)
    if a.empty:
        return pd.DataFrame()
    rows = []
    for col, label in DIAGNOSTICS.items():
        if col not in a:
            continue
        row: dict[str, Any] = {"diagnostic": label}
        for outcome in ("collapsed", "healthy"):
            v = pd.to_numeric(a[a["outcome"] == outcome][col], errors="coerce").dropna()
            row[f"{outcome}_median"] = float(v.median()) if len(v) else float("nan")
            row[f"{outcome}_q1"] = float(v.quantile(0.25)) if len(v) else float("nan")
            row[f"{outcome}_q3"] = float(v.quantile(0.75)) if len(v) else float("nan")
            row[f"{outcome}_n"] = len(v)
        rows.append(row)
    return pd.DataFrame(rows)


def symptom_counts(run: RunData) -> pd.DataFrame:
    """How many runs showed each named symptom, per outcome (a symptom that
    healthy runs show as often as broken ones tells nothing about the breakage):
    one row per symptom, a column of counts per outcome present, and ``runs``."""
    t = run.trials
    if t.empty or "symptoms" not in t:
        return pd.DataFrame()
    from remedysweep.engine.symptoms import OUTCOME_SYMPTOMS, SYMPTOMS

    outcomes = [o for o in OUTCOMES if (t["outcome"] == o).any()]
    counts: dict[str, dict[str, int]] = {}
    for outcome, cell in zip(t["outcome"], t["symptoms"].fillna("").astype(str)):
        for s in filter(None, cell.split(";")):
            if s not in OUTCOME_SYMPTOMS:
                row = counts.setdefault(s, dict.fromkeys(outcomes, 0))
                row[outcome] = row.get(outcome, 0) + 1
    rows = [{"symptom": s, "runs": sum(by.values()), **by, "meaning": SYMPTOMS.get(s, "")} for s, by in counts.items()]
    return pd.DataFrame(rows).sort_values("runs", ascending=False) if rows else pd.DataFrame()


def paths(run: RunData) -> pd.DataFrame:
    """How the runs were trained: packed or on the Keras path, and why."""
    t = run.trials
    if t.empty or "path" not in t:
        return pd.DataFrame()
    notes = t["path_note"].fillna("") if "path_note" in t else pd.Series([""] * len(t), index=t.index)
    df = pd.DataFrame({"path": t["path"].fillna("?"), "why": notes})
    return df.groupby(["path", "why"]).size().reset_index(name="runs")


def failures(run: RunData) -> pd.DataFrame:
    t = run.trials
    if t.empty:
        return pd.DataFrame()
    f = t[t["outcome"].isin(["failed", "diverged"])]
    cols = ["trial_number", *run.knobs, "seed", "outcome", "first_nonfinite_epoch", "epochs_run", "message"]
    return f[[c for c in cols if c in f]].reset_index(drop=True)


def importance(run: RunData) -> pd.DataFrame:
    """How much each knob explains whether a run ends at chance: the spread
    (max - min) of the 'ended at chance' rate across its values, and Optuna's
    fANOVA on a 0/1 target when it can be computed."""
    t = binned(run)
    knobs = swept_knobs(run)
    rows = []
    for k in knobs:
        r = rates_by_value(t, k)
        rows.append({"knob": k, "rate_spread": float(r["at_chance_rate"].max() - r["at_chance_rate"].min()), "n_values": len(r)})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # fANOVA says nothing the spread does not with two knobs or fewer (the report leaves it out);
    # past FANOVA_ROWS runs it is computed on a fixed random sample of them
    df["fanova"] = _fanova(t.sample(FANOVA_ROWS, random_state=0) if len(t) > FANOVA_ROWS else t, knobs) if len(knobs) > 2 \
        else [float("nan")] * len(knobs)
    return df.sort_values("rate_spread", ascending=False).reset_index(drop=True)


#: fANOVA importance is computed on at most this many runs (a fixed random sample beyond).
FANOVA_ROWS = 5000


def _fanova(t: pd.DataFrame, knobs: list[str]) -> list[float]:
    if len(t) < 8 or not knobs:
        return [float("nan")] * len(knobs)
    try:
        import optuna
        from optuna.distributions import CategoricalDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = {k: CategoricalDistribution(sorted({_py(v) for v in t[k].dropna()}, key=str)) for k in knobs}
        trials = [optuna.trial.create_trial(params={k: _py(row[k]) for k in knobs}, distributions=dists,
                                            value=float(row["outcome"] in BAD_OUTCOMES)) for _, row in t.iterrows()]
        study = optuna.create_study()
        study.add_trials(trials)
        imp = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True)
        return [float(imp.get(k, float("nan"))) for k in knobs]
    except Exception:
        return [float("nan")] * len(knobs)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def binned(run: RunData, bins: int = 4) -> pd.DataFrame:
    """The trials with each range knob (random/TPE) cut into quantile bins, so
    per-value tables compare groups of runs rather than single draws."""
    t = run.trials.copy()
    ranged = {k["name"] for k in run.sweep.get("knobs", []) if k.get("low") is not None}
    for k in ranged:
        if k in t and t[k].nunique() > bins:
            values = pd.to_numeric(t[k], errors="coerce")
            cut = pd.qcut(values, q=bins, duplicates="drop")
            t[k] = cut.apply(lambda iv: f"[{iv.left:.3g}, {iv.right:.3g}]").astype(str)
    t.attrs = dict(run.trials.attrs)
    return t


def pareto(run: RunData) -> pd.DataFrame:
    """Multi-objective sweeps: configurations on the Pareto front of median
    collapse-aware accuracy (higher is better) against the second objective."""
    objective = run.sweep.get("sampler", {}).get("objective", "accuracy")
    t = run.trials
    if objective == "accuracy" or t.empty:
        return pd.DataFrame()
    score = pd.to_numeric(t["final_val_accuracy"], errors="coerce").where(~t["outcome"].isin(BAD_OUTCOMES), run.chance)
    second = (pd.to_numeric(t["train_seconds"], errors="coerce") if objective == "accuracy_vs_time"
              else t["outcome"].isin(["collapsed", "diverged"]).astype(float))
    df = pd.DataFrame({"config_id": t["config_id"], "score": score, "second": second})
    agg = df.groupby("config_id").agg(score=("score", "median"), second=("second", "median" if objective == "accuracy_vs_time" else "mean"), runs=("score", "size"))
    front = [cid for cid, row in agg.iterrows()
             if not ((agg["score"] >= row["score"]) & (agg["second"] <= row["second"]) & ((agg["score"] > row["score"]) | (agg["second"] < row["second"]))).any()]
    out = agg.loc[front].reset_index().sort_values("score", ascending=False)
    knobs = t.drop_duplicates("config_id").set_index("config_id")[[k for k in run.knobs if k in t]]
    out = out.join(knobs, on="config_id")
    out["second_name"] = "median train seconds" if objective == "accuracy_vs_time" else "share collapsed or diverged"
    return out.reset_index(drop=True)


def seed_spread(run: RunData) -> dict[str, int] | None:
    """How many configurations disagree across seeds (some at chance, some not)."""
    t = run.trials
    if t.empty:
        return None
    g = t.groupby("config_id")["outcome"].agg(lambda s: s.isin(BAD_OUTCOMES).mean())
    return {"configs": int(len(g)), "mixed": int(((g > 0) & (g < 1)).sum())}
