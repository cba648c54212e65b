"""What a set of runs shows, and when a change is a fix: summaries over seeds,
ranking, the confirmation test, the no-signal reference.

A change is claimed as a fix only when, over the seeds it was found on and as
many fresh ones, it leaves no seed at chance or failed and beats the model as
built by a material margin (fewer seeds at chance, or a median final accuracy
at least :data:`MIN_GAIN` of the gap to perfect higher), and a one-sided
Mann-Whitney test over the seeds says the difference is not seed noise. A
borderline first look adds as many fresh seeds again for a second look, with
the error controlled over both (:data:`LOOK_ALPHA`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from remedysweep.engine.result import RunResult

#: A fix must raise the median final accuracy by at least this share of the gap
#: between chance and perfect accuracy (0.05 for ten balanced classes), unless
#: it removes seeds at chance.
MIN_GAIN = 0.055
#: Overall significance of the confirmation: a one-sided Mann-Whitney test over
#: seeds, at up to two looks (group-sequential).
ALPHA = 0.05
#: The confirmation looks first at the search seeds and as many fresh ones; when
#: that look is borderline (:data:`BORDERLINE_P`), it trains as many fresh seeds
#: again and looks a second time. Each look tests at Pocock's nominal level for
#: two looks, which keeps the overall one-sided error at :data:`ALPHA`
#: (z = 1.875). Stopping after a first look that is not borderline only lowers it.
LOOK_ALPHA = 0.0304
#: A first look that meets the rest of the rule and whose p is at most this
#: earns the second look.
BORDERLINE_P = 0.25


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    from remedysweep.reports.analysis import wilson

    n = len(results)
    bad = sum(r.outcome.at_chance for r in results)
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome.value] = outcomes.get(r.outcome.value, 0) + 1
    finals = [r.final_val_accuracy for r in results]
    finite = [f for f in finals if f == f]
    train = [r.curves.get("accuracy", [float("nan")])[-1] if r.curves.get("accuracy") else float("nan") for r in results]
    return {
        "runs": n,
        "at_chance": bad,
        "at_chance_interval": list(wilson(bad, n)),
        "failed": outcomes.get("failed", 0),
        "degraded": outcomes.get("degraded", 0),
        "oscillating": sum(r.oscillations >= 3 for r in results),
        "outcomes": outcomes,
        "final_accuracy": finals,
        "train_accuracy": train,
        "median_final_accuracy": float(statistics.median(finite)) if finite else None,
        "symptoms": sorted({s for r in results for s in r.symptoms}),
        "messages": sorted({r.message for r in results if r.message})[:3],
    }


def median(s: dict[str, Any]) -> float:
    m = s.get("median_final_accuracy")
    return float(m) if m is not None else 0.0


def spread(s: dict[str, Any]) -> float:
    """Half the range of the final accuracies over seeds: the seed noise."""
    finals = [f for f in s.get("final_accuracy", []) if f == f]
    return (max(finals) - min(finals)) / 2 if len(finals) >= 2 else 0.0


@dataclass
class Candidate:
    """One configuration tried (knob changes from the model as built) and its runs."""

    changes: tuple[tuple[str, Any], ...]
    source: str  # baseline, targeted, pair, explore, confirmation
    results: list[RunResult] = field(default_factory=list)
    invasiveness: int = 0

    @property
    def knobs(self) -> dict[str, Any]:
        return dict(self.changes)

    @property
    def label(self) -> str:
        return " + ".join(f"{k}={v}" for k, v in self.changes) or "your model"

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self.results)

    @property
    def bad(self) -> int:
        s = self.summary
        return s["at_chance"] + s["failed"]

    @property
    def cut(self) -> bool:
        """Stopped by the search's halving before the full length: what it
        reached is a partial read, so it is never chosen or reused as a fix."""
        return any(r.facts.get("stopped_halving") for r in self.results)


def training_fit(s: dict[str, Any], chance: float) -> float | None:
    """How far from chance to 1 the median final training accuracy over the
    seeds got (None where the runs recorded none)."""
    train = [a for a in s.get("train_accuracy", []) if a is not None and a == a]
    return None if not train else (statistics.median(train) - chance) / max(1e-6, 1 - chance)


def trains_well(s: dict[str, Any], chance: float) -> bool:
    """What doctor asks of a healthy model: no seed at chance, failed or
    degraded, and the training data fitted (:data:`~remedysweep.engine.symptoms.FITS_TRAINING`)."""
    from remedysweep.engine.symptoms import FITS_TRAINING

    fit = training_fit(s, chance)
    return bool(s["runs"]) and not (s["at_chance"] or s["failed"] or s["degraded"]) and fit is not None and fit >= FITS_TRAINING


def rank_key(c: Candidate) -> tuple[float, float]:
    """Seeds at chance or failed first, then the median final accuracy."""
    return (c.bad / max(1, len(c.results)), -median(c.summary))


def seed_noise(candidates: Sequence[Candidate]) -> float:
    """The seed-to-seed spread pooled over every configuration tried (the median
    of their half-ranges): with two or three seeds a configuration's own spread
    says little."""
    spreads = sorted(spread(c.summary) for c in candidates if len(c.results) >= 2)
    return spreads[len(spreads) // 2] if spreads else 0.0


def contenders(candidates: Sequence[Candidate], baseline: Candidate) -> list[Candidate]:
    """The changes that did better than the model as built: only they compete.
    Otherwise a less invasive change that did worse than the model, though
    within the seed noise of the best, would be chosen, found no better than
    the model, and hide the best change."""
    return [c for c in candidates if not c.cut and rank_key(c) < rank_key(baseline)]


def tolerance(candidates: Sequence[Candidate], best: Candidate) -> float:
    """How far below ``best``'s median another configuration may be and still
    count as doing as well: twice the pooled seed noise, ``best``'s own spread,
    at least 0.02."""
    return max(0.02, 2 * seed_noise(candidates), spread(best.summary))


def within_noise(c: Candidate, best: Candidate, tol: float) -> bool:
    """``c`` does as well as ``best``: no more seeds at chance or failed, and a
    median within ``tol``."""
    return rank_key(c)[0] <= rank_key(best)[0] and median(c.summary) >= median(best.summary) - tol


def select(candidates: Sequence[Candidate]) -> tuple[Candidate | None, Candidate | None]:
    """(chosen, best seen): the best by :func:`rank_key`, and among those within
    the seed noise of it (as many seeds at chance, a median within twice the
    pooled seed noise, at least 0.02) the least invasive, then the fewest changes."""
    tried = [c for c in candidates if c.results and c.summary["failed"] < len(c.results)]
    if not tried:
        return None, None
    best = min(tried, key=rank_key)
    tol = tolerance(tried, best)
    near = [c for c in tried if rank_key(c)[0] == rank_key(best)[0] and median(c.summary) >= median(best.summary) - tol]
    chosen = min(near, key=lambda c: (c.invasiveness, len(c.changes), rank_key(c)))
    return chosen, best


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that ``a`` tends to be larger than ``b`` (exact where SciPy can)."""
    from scipy.stats import mannwhitneyu

    a = [x if x == x else 0.0 for x in a]
    b = [x if x == x else 0.0 for x in b]
    if not a or not b:
        return 1.0
    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="greater", method="auto").pvalue)


def needed_gain(chance: float) -> float:
    """The rise in median final accuracy that counts as material:
    :data:`MIN_GAIN` of the gap between chance and perfect, scaled to ten classes."""
    return MIN_GAIN * (1 - chance) / 0.9


def confirmed(candidate: Sequence[RunResult], baseline: Sequence[RunResult], chance: float, look: int = 1) -> tuple[bool, dict[str, Any]]:
    """Whether ``candidate``'s runs beat ``baseline``'s (both over the same seeds,
    search and fresh ones) materially and beyond seed noise, at look ``look`` of
    two; with the figures (``borderline``: a first look that earns a second)."""
    c, b = summarize(candidate), summarize(baseline)
    gain = median(c) - median(b)
    needed = needed_gain(chance)
    p = mann_whitney_greater(c["final_accuracy"], b["final_accuracy"])
    fewer_at_chance = c["at_chance"] < b["at_chance"]
    clean = c["at_chance"] == 0 and c["failed"] == 0
    material = clean and (fewer_at_chance or gain >= needed)
    ok = material and p <= LOOK_ALPHA
    return ok, {"gain": gain, "needed_gain": needed, "p_value": p, "candidate": c, "baseline": b, "fewer_at_chance": fewer_at_chance,
                "clean": clean, "look": look, "alpha": LOOK_ALPHA, "borderline": look == 1 and not ok and material and p <= BORDERLINE_P}


def reference_accuracy(data: Any) -> float | None:
    """Validation accuracy of a plain logistic regression on the raw numeric
    inputs (flattened, standardized), or ``None`` for inputs it cannot read
    (text). Tells "the labels do not follow from the inputs" apart from "the
    model cannot learn them"."""
    import numpy as np

    from remedysweep.engine.data import input_arrays

    arrays_tr, arrays_va = input_arrays(data.x_train), input_arrays(data.x_val)
    if any(a.dtype.kind not in "biuf" for a in arrays_tr):
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat = lambda arrays: np.concatenate([a.reshape(len(a), -1).astype("float64") for a in arrays], axis=1)
    x_tr, x_va = flat(arrays_tr), flat(arrays_va)
    if x_tr.shape[1] > 20000:
        return None
    try:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        model.fit(x_tr, data.y_train)
        return float((model.predict(x_va) == data.y_val).mean())
    except Exception:
        return None
