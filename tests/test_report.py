"""Reports: pure analysis on constructed results, escaping, a real headless
Chromium, partial/empty runs, and ``compare``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import built_once, cli, copy_of, write_sweep
from pages import assert_readable, read_page
from remedysweep.reports import analysis as an

HERE = Path(__file__).parent

# ----------------------------------------------------------------------------
# Pure analysis
# ----------------------------------------------------------------------------


def test_wilson_interval_known_values():
    """SciPy's Wilson interval."""
    lo, hi = an.wilson(0, 9)
    assert lo == 0.0 and hi == pytest.approx(0.2991, abs=1e-3)
    lo, hi = an.wilson(9, 9)
    assert lo == pytest.approx(0.7009, abs=1e-3) and hi == 1.0
    lo, hi = an.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert an.fmt_rate(3, 3) == "3/3 (44%–100%)"


def fake_run(tmp_path: Path) -> an.RunData:
    rows = []
    n = 0
    for loss in ("unfused", "fused_logits"):
        for lr in (0.001, 0.05):
            for seed in (0, 1, 2):
                bad = loss == "unfused" and lr == 0.05
                outcome = ("collapsed" if seed < 2 else "never_learned") if bad else "healthy"
                rows.append({"trial_number": n, "config_id": f"{loss}-{lr}", "loss": loss, "learning_rate": lr, "seed": seed, "chance": 0.1,
                             "outcome": outcome, "final_val_accuracy": 0.1 if bad else 0.9 + seed / 100,
                             "peak_val_accuracy": 0.9, "collapse_epoch": 3 if outcome == "collapsed" else None,
                             "epochs_run": 5, "train_seconds": 1.0, "keras_fuses": None, "message": None,
                             "first_nonfinite_epoch": None})
                n += 1
    trials = pd.DataFrame(rows)
    curves = pd.DataFrame([
        {"trial_number": r["trial_number"], "epoch": e, "val_accuracy": (0.9 if e < 3 else 0.1) if r["outcome"] == "collapsed" else 0.9,
         "logit_abs_mean": 50.0 if r["outcome"] == "collapsed" else 5.0, "dead_fraction": 0.5, "grad_norm": 1.0,
         "weight_norm": 10.0, "logit_spread": 1.0}
        for r in rows for e in range(1, 6)
    ])
    sweep = {"name": "fake", "seeds": [0, 1, 2], "knobs": [{"name": "loss", "values": ["unfused", "fused_logits"]}, {"name": "learning_rate", "values": [0.001, 0.05]}],
             "baseline": {"loss": "unfused", "learning_rate": 0.05}, "sampler": {"kind": "grid"}, "data": {"dataset": "digits"}}
    return an.RunData(tmp_path, sweep, trials, curves, pd.DataFrame(), ["loss", "learning_rate"])


def test_rates_per_value_and_pair(tmp_path: Path):
    run = fake_run(tmp_path)
    r = an.rates_by_value(run.trials, "loss").set_index("value")
    assert r.loc["unfused", "runs"] == 6 and r.loc["unfused", "collapsed"] == 2 and r.loc["unfused", "at_chance"] == 3
    assert r.loc["fused_logits", "at_chance"] == 0
    p = an.rates_by_pair(run.trials, "loss", "learning_rate")
    cell = p[(p["loss"] == "unfused") & (p["learning_rate"] == 0.05)].iloc[0]
    assert cell["at_chance_rate"] == 1.0 and not cell["too_few"]


def test_ranking_smallest_fix_and_headline(tmp_path: Path):
    run = fake_run(tmp_path)
    configs = an.config_table(run)
    assert configs.iloc[-1]["config_id"] == "unfused-0.05"
    fix = an.smallest_fix(run)
    assert fix["baseline"]["at_chance"] == 3
    assert len(fix["changes"]) == 1
    from remedysweep.reports.findings import compute

    found = compute(run)
    (region,) = found["regions"]
    assert region["description"] == "loss = unfused and learning_rate = 0.05" and region["inside"]["at_chance"] == 3
    assert {(m["knob"], m["to"]) for m in region["removals"]} == {("loss", "fused_logits"), ("learning_rate", 0.001)}


def test_aligned_curves_and_diagnostics(tmp_path: Path):
    run = fake_run(tmp_path)
    a = an.aligned_curves(run)
    col = a[(a["outcome"] == "collapsed") & (a["offset"] == 0)]
    assert (col["val_accuracy"] == 0.1).all() and len(col) == 2
    d = an.diagnostics_at_collapse(run).set_index("diagnostic")
    assert d.loc["mean |logit|", "collapsed_median"] == 50.0 and d.loc["mean |logit|", "healthy_median"] == 5.0


def test_importance_ranks_the_knob_that_matters(tmp_path: Path):
    imp = an.importance(fake_run(tmp_path))
    assert set(imp["knob"]) == {"loss", "learning_rate"}
    assert (imp["rate_spread"] == 0.5).all()


# ----------------------------------------------------------------------------
# Rendered reports
# ----------------------------------------------------------------------------


def _run_the_evil_sweep(folder: Path) -> None:
    sweep = write_sweep(folder, name="evil_sweep", epochs=4, extra='evil = ["plain", "<b>bold</b>"]\nlearning_rate = [0.01]\n')
    sweep.write_text(f'plugins = ["{HERE / "plugins" / "evil.py"}"]\n' + sweep.read_text())
    r = cli("run", str(sweep), "--out", str(folder / "run"))
    assert r.returncode == 0, r.stderr


@pytest.fixture
def evil_run(tmp_path_factory, tmp_path) -> Path:
    """A real sweep with a plugin whose description, value and error message are
    HTML: built once per session, copied per test."""
    return copy_of(built_once(tmp_path_factory, "evil-run", _run_the_evil_sweep), tmp_path / "evil") / "run"


def test_plugin_text_is_escaped(evil_run: Path):
    html = (evil_run / "report.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt; in a message" in html


def test_report_in_headless_chromium(evil_run: Path, tmp_path: Path):
    facts = read_page(evil_run / "report.html", screenshot=tmp_path / "report.png")
    assert_readable(facts)
    assert "<script>" in facts["visible_text"]  # the plugin's HTML is shown as text, never run


def test_report_on_empty_and_partial_runs(tmp_path: Path, evil_run: Path):
    partial = tmp_path / "partial"
    shutil.copytree(evil_run, partial)
    t = pd.read_csv(partial / "trials.csv")
    total = len(t)
    t.iloc[:1].to_csv(partial / "trials.csv", index=False)
    r = cli("report", str(partial))
    assert r.returncode == 0, r.stderr
    html = (partial / "report.html").read_text()
    assert f"Partial results: 1 of {total} runs" in html
    for name in ("trials.csv", "curves.csv", "early_probes.csv"):
        (partial / name).unlink()
    r = cli("report", str(partial))
    assert r.returncode == 0, r.stderr
    assert f"No run has finished yet (0 of {total})" in (partial / "report.html").read_text()
    r = cli("report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "not a run folder" in r.stderr


def test_a_foreign_sweep_json_or_odd_rows_are_one_line(tmp_path: Path, evil_run: Path):
    from conftest import run_main

    odd = copy_of(evil_run, tmp_path / "odd")
    before = {p.name: p.stat().st_mtime_ns for p in odd.iterdir()}
    for text, needle in (('{"name": 5}', "not a sweep.json remedysweep wrote"), ('{"sweep": {"knobs": [3]}}', "not a sweep.json remedysweep wrote"),
                         ("[1,2", "unreadable (Expecting")):
        (odd / "sweep.json").write_text(text)
        r = run_main("report", str(odd))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    shutil.copy(evil_run / "sweep.json", odd / "sweep.json")
    rows = (odd / "trials.csv").read_text().splitlines()
    (odd / "trials.csv").write_text("\n".join([*rows[:2], "garbage,row", *rows[2:]]) + "\n")
    r = run_main("report", str(odd))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "trials.csv: line 3" in r.stderr, r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in odd.iterdir() if p.name not in ("sweep.json", "trials.csv")} == \
        {k: v for k, v in before.items() if k not in ("sweep.json", "trials.csv")}  # nothing written


def test_compare_two_run_folders(tmp_path: Path, evil_run: Path):
    other = tmp_path / "other"
    shutil.copytree(evil_run, other)
    t = pd.read_csv(other / "trials.csv")
    t["outcome"] = "collapsed"
    t.to_csv(other / "trials.csv", index=False)
    out = tmp_path / "cmp.html"
    r = cli("compare", str(evil_run), str(other), "--out", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "evil_sweep (run) vs evil_sweep (other)" in html and "<svg" in html
    # compare never overwrites what it did not write, and writes into run A by default
    r = cli("compare", str(evil_run), str(other), "--out", str(other / "trials.csv"))
    assert r.returncode == 2 and "not a report remedysweep wrote" in r.stderr and (other / "trials.csv").read_text().startswith("trial_number")
    r = cli("compare", str(evil_run), str(other), cwd=tmp_path)
    assert r.returncode == 0 and (evil_run / "compare-other.html").exists() and not (tmp_path / "compare.html").exists()
    unmarked = tmp_path / "unmarked"  # the same results copied into a folder remedysweep did not make: nothing written into it
    shutil.copytree(evil_run, unmarked, ignore=shutil.ignore_patterns(".remedysweep", "compare-*"))
    r = cli("compare", str(unmarked), str(other))
    assert r.returncode == 2 and "not a folder remedysweep made" in r.stderr and not list(unmarked.glob("compare-*"))
    n = len(t) // 2  # runs per loss value
    assert an.fmt_rate(n, n) in html  # every run of the second folder at chance


def test_plots_of_many_runs_draw_a_capped_sample_and_say_so():
    """At 100,000 runs a dot or a line per run would make a report of tens of
    megabytes: past the caps a fixed sample is drawn, the medians stay over
    every run, and the titles say how many were drawn."""
    import numpy as np

    from remedysweep.reports import plots

    n = 2 * plots.MAX_DOTS + 10
    rng = np.random.default_rng(0)
    trials = pd.DataFrame({"trial_number": range(n), "lr": [0.1, 0.01] * (n // 2),
                           "final_val_accuracy": rng.uniform(0, 1, n), "outcome": ["healthy", "collapsed"] * (n // 2)})
    fig = plots.accuracy_strip(trials, "lr")
    ax = fig.axes[0]
    from matplotlib.collections import PathCollection

    dots = lambda ax: sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))  # noqa: E731
    assert dots(ax) == 2 * plots.MAX_DOTS
    assert f"{plots.MAX_DOTS} runs per value drawn" in ax.get_title()
    iso = pd.DataFrame({"value": [0.1], "per_seed": [list(rng.uniform(0, 1, n))], "median": [0.5]})
    ax = plots.isolation_plot(iso, "lr").axes[0]
    assert dots(ax) == plots.MAX_DOTS and "seeds drawn" in ax.get_title()
    curves = pd.DataFrame({"trial_number": np.repeat(np.arange(n), 2), "epoch": np.tile([1, 2], n), "val_accuracy": 0.5})
    fig = plots.learning_curves(curves, trials, pd.DataFrame(), 0.1)
    for ax in fig.axes:
        assert len(ax.lines) == plots.MAX_LINES + 1 and f"{plots.MAX_LINES} drawn" in ax.get_title()  # + the chance line
    small = trials.iloc[:20]
    assert "every run" in plots.accuracy_strip(small, "lr").axes[0].get_title()


def test_many_knobs_fit_the_page_with_each_configuration_in_one_column(tmp_path: Path):
    """A folder that sweeps every remedy (doctor's search) has more knobs than a
    table has room for: each configuration's settings go in one column, only the
    knobs it sets, and the page fits its width."""
    from remedysweep.reports.render import WIDE_TABLE_KNOBS, render_report

    knobs = ["loss", "learning_rate", "activation", "batch_size", "grad_clip", "initializer", "input_scaling"]
    assert len(knobs) > WIDE_TABLE_KNOBS
    changes = [{}, {"learning_rate": 0.01}, {"input_scaling": "standardize", "initializer": "he_normal"}, {"batch_size": 8},
               {"loss": "fused_logits"}, {"activation": "tanh"}, {"grad_clip": "global_norm_1"}]
    rows = []
    for c, change in enumerate(changes):
        for seed in (0, 1):
            good = bool(change)
            rows.append({"trial_number": len(rows), "config_id": f"c{c}", **{k: change.get(k, "as_built") for k in knobs}, "seed": seed,
                         "chance": 0.1, "outcome": "healthy" if good else "collapsed", "final_val_accuracy": 0.9 if good else 0.1,
                         "peak_val_accuracy": 0.9, "collapse_epoch": None if good else 3, "epochs_run": 5, "train_seconds": 1.0,
                         "keras_fuses": None, "message": None, "first_nonfinite_epoch": None})
    trials = pd.DataFrame(rows)
    curves = pd.DataFrame([{"trial_number": r["trial_number"], "epoch": e, "val_accuracy": r["final_val_accuracy"]} for r in rows for e in range(1, 6)])
    from remedysweep.engine.config import DataSpec, ModelSpec, make_sweep

    sweep = make_sweep("wide", model=ModelSpec(kind="mlp"), data=DataSpec(dataset="digits"), knobs={k: tuple(sorted({r[k] for r in rows}, key=str)) for k in knobs},
                       seeds=(0, 1), epochs=5).to_dict()
    page = tmp_path / "report.html"
    page.write_text(render_report(an.RunData(tmp_path, sweep, trials, curves, pd.DataFrame(), knobs)))
    html = page.read_text()
    assert "<th>settings</th>" in html and "<th>grad_clip</th>" not in html
    assert "<td>initializer=he_normal, input_scaling=standardize</td>" in html and "<td>as built</td>" in html
    assert_readable(read_page(page))
