"""Plugins: the example package through its entry point, local files, broken
plugins, and the listing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import cli, pip_install, write_sweep

HERE = Path(__file__).parent


def test_example_plugin_is_listed_with_its_package():
    r = cli("remedies")
    assert r.returncode == 0 and not r.stderr.strip()
    line = next(l for l in r.stdout.splitlines() if l.startswith("focal_loss "))
    assert "remedysweep-focal 0.2.0" in line and "'off'" in line and "Focal loss" in line


def test_example_plugin_sweeps_and_shows_in_results_and_report(tmp_path: Path):
    sweep = write_sweep(tmp_path, name="focal", losses='["as_built"]', extra='focal_loss = ["off", "gamma_2"]\n')
    out = tmp_path / "run"
    r = cli("run", str(sweep), "--out", str(out))
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out / "trials.csv")
    assert set(t["focal_loss"]) == {"off", "gamma_2"} and len(t) == 4
    assert (t["outcome"] != "failed").all(), t["message"].tolist()
    html = (out / "report.html").read_text()
    assert "focal_loss" in html and "Focal loss on the logits" in html and "remedysweep-focal 0.2.0" in html


def test_local_plugin_file_from_the_command_line(tmp_path: Path):
    r = cli("remedies", "--plugin", str(HERE / "plugins" / "second_optimizer.py"))
    assert r.returncode == 0
    assert any(l.startswith("my_optimizer ") and "second_optimizer.py" in l for l in r.stdout.splitlines())


@pytest.fixture(scope="module")
def broken_env(tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("broken_site")
    pip_install("--target", str(target), str(HERE / "plugin_broken"))
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_broken_plugins_are_named_and_the_rest_still_list(broken_env):
    r = cli("remedies", env=broken_env)
    assert r.returncode == 0
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 3, r.stderr
    assert any("'broken_import'" in e and "remedysweep-broken 0.0.1" in e and "failed to import" in e for e in errors)
    assert any("'not_a_remedy'" in e and "not a remedysweep.remedies.Remedy" in e for e in errors)
    assert any("'loss'" in e and "already registered" in e for e in errors)
    names = [l.split()[0] for l in r.stdout.splitlines()[1:]]
    assert "loss" in names and "focal_loss" in names and "width" in names
    assert "Softmax/sigmoid + cross-entropy" in r.stdout  # the built-in loss kept its place


def test_a_sweep_needing_a_broken_plugin_refuses_to_start(broken_env, tmp_path: Path):
    sweep = write_sweep(tmp_path, name="needs_broken", extra='broken_import = ["x"]\n')
    r = cli("run", str(sweep), "--out", str(tmp_path / "run"), env=broken_env)
    assert r.returncode == 2 and "knobs.broken_import" in r.stderr and "remedysweep-broken" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    ok = write_sweep(tmp_path, name="builtins_only")
    r = cli("run", str(ok), "--dry-run", env=broken_env)
    assert r.returncode == 0, r.stderr


def test_malformed_local_plugin_is_reported(tmp_path: Path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("from remedysweep.remedies import Remedy, Categorical\n"
                   "class Half(Remedy):\n    name = 'half'\n    description = ''\n    space = Categorical(['a'])\n    baseline = 'a'\n")
    crash = tmp_path / "crash_plugin.py"
    crash.write_text("raise SystemExit('plugin import crashed')\n")
    r = cli("remedies", "--plugin", str(bad), "--plugin", str(crash))
    assert r.returncode == 0
    assert "'half'" in r.stderr and "description" in r.stderr
    assert "crash_plugin" in r.stderr and "plugin import crashed" in r.stderr
    assert any(l.startswith("loss ") for l in r.stdout.splitlines())


def test_conflicting_plugins_are_refused_before_training(tmp_path: Path):
    r = cli("run", str(HERE / "bad_sweeps" / "conflicting_knobs.toml"), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "both set compile.optimizer" in r.stderr and "knobs.my_optimizer" in r.stderr
