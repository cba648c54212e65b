"""Findings, not marginals: where collapse lives, what removes it, what made no
difference; on real results of the shipped remedies sweep, on a real quick-style
sweep and on a real TPE sweep."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages.journal import JournalFileBackend

from conftest import HERE, cli, write_sweep
from remedysweep.reports.analysis import load_run
from remedysweep.reports.findings import compute

REMEDIES_RUN = HERE / "data" / "remedies_run"  # trials.csv and sweep.json of a real run of sweeps/remedies.toml


def test_the_remedies_sweep_leads_with_its_corner_and_what_removes_it():
    found = compute(load_run(REMEDIES_RUN))
    region = found["regions"][0]
    assert dict(map(tuple, region["conditions"])) == {"loss": "unfused", "activation": "leaky_relu", "width": 512,
                                                       "optimizer": "adam", "normalization": "none"}
    assert region["inside"]["runs"] == 9 and region["outside"]["at_chance"] == 0 and region["significant"]
    removing = {(m["knob"], m["to"]) for m in region["removals"] if m["at_chance"] == 0}
    assert {("loss", "fused_logits"), ("activation", "relu"), ("activation", "tanh"), ("width", 64), ("optimizer", "sgd"),
            ("normalization", "batchnorm")} <= removing
    (reg,) = [r for r in found["no_effect"] if r["knob"] == "regularizer"]
    assert not reg["detectable_effect_on_chance"] and {v["value"] for v in reg["values"]} == {"none", "maxnorm", "l2"}
    first = found["lines"][0]
    assert first.startswith("Runs end at chance where loss = unfused and activation = leaky_relu") and "Fisher" in first
    assert any("regularizer: no detectable effect" in line for line in found["lines"])
    assert found["tests"] >= 8  # the region, its removals, and each other knob twice, adjusted together


def test_findings_json_and_the_report_lead_with_them(tmp_path: Path):
    import shutil

    folder = tmp_path / "remedies"
    shutil.copytree(REMEDIES_RUN, folder)
    r = cli("report", str(folder))
    assert r.returncode == 0, r.stderr
    found = json.loads((folder / "findings.json").read_text())
    html = (folder / "report.html").read_text()
    summary = html.split('id="summary"')[1]
    assert summary.index("Runs end at chance where loss = unfused") < summary.index("outcome") and "What made no detectable difference" in html
    # the answer first: the baseline's damage counted in full, then the smallest change that avoids it
    assert found["answer"].startswith("The baseline (loss = unfused") and "3/3 broken: 3 at chance" in found["answer"]
    assert "Smallest change that avoided ending at chance on every seed: activation: leaky_relu → relu" in found["answer"]
    assert "9/432 broken: 8 at chance, 1 degraded (final 0.20)" in found["answer"]  # one run: one figure, not a range
    assert summary.index(found["answer"].split(":")[0]) < summary.index("Runs end at chance where loss = unfused")


def test_a_quick_style_sweep_reads_sensibly(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="qs", epochs=5, losses='["unfused", "fused_logits"]', extra="learning_rate = [0.01, 1.0]\n")
    out = tmp_path / "run"
    assert cli("run", str(sweep), "--out", str(out), "--no-report").returncode == 0
    found = compute(load_run(out))
    assert found["lines"] and found["runs"] == 8
    for region in found["regions"]:
        assert all(k in ("loss", "learning_rate") for k, _ in region["conditions"])
    knobs_stated = {r["knob"] for r in found["no_effect"] + found["effects"]} | {k for r in found["regions"] for k, _ in r["conditions"]}
    assert knobs_stated == {"loss", "learning_rate"}  # every knob ends up in a finding


TPE = """name = "tpe"
seeds = [0, 1]
[data]
dataset = "blobs"
n_classes = 4
n_features = 8
n_samples = 240
[model]
kind = "mlp"
depth = 1
width = 16
[training]
epochs = 2
[knobs]
loss = ["unfused", "fused_logits"]
learning_rate = { low = 0.0001, high = 0.1, log = true }
width = { low = 4, high = 64, log = true }
[sampler]
kind = "tpe"
n_configs = 5
objective = "accuracy_vs_time"
"""


def test_tpe_with_two_workers_over_ranges_and_its_findings(tmp_path: Path):
    path = tmp_path / "tpe.toml"
    path.write_text(TPE)
    out = tmp_path / "run"
    r = cli("run", str(path), "--out", str(out), "--workers", "2")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv")
    assert len(t) == 10 and t["config_id"].nunique() == 5 and not t.duplicated(["config_id", "seed"]).any()
    assert all(sorted(g["seed"]) == [0, 1] for _, g in t.groupby("config_id"))
    assert ((t["learning_rate"] >= 1e-4) & (t["learning_rate"] <= 0.1)).all() and (t["width"] == t["width"].round()).all()
    study = optuna.load_study(study_name="tpe", storage=optuna.storages.JournalStorage(JournalFileBackend(str(out / "study.journal"))))
    assert len(study.directions) == 2 and study.best_trials
    assert "Pareto front" in (out / "report.html").read_text()
    found = json.loads((out / "findings.json").read_text())
    assert found["lines"] and found["runs"] == 10


def test_log_scale_tick_labels_are_plain_numbers():
    """The diagnostics' symlog axes label their ticks as numbers, never as the
    TeX source of matplotlib's log formatters."""
    import re

    from remedysweep.reports.plots import aligned_curves_plot, to_svg

    rows = [{"trial_number": n, "outcome": o, "offset": k, "grad_norm": v * 10.0 ** k}
            for n, (o, v) in enumerate((("healthy", 0.5), ("collapsed", 3.0)) * 2) for k in range(-3, 4)]
    svg = to_svg(aligned_curves_plot(pd.DataFrame(rows), "grad_norm", "gradient norm"))
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert labels and not any("$" in t or "mathdefault" in t for t in labels), labels
    numbers = [t for t in labels if re.fullmatch(r"-?[0-9.e+\-]+", t.strip())]
    assert "0" in [t.strip() for t in numbers] and any(float(t) >= 100 for t in numbers), labels
