"""``remedysweep doctor`` on three small user models: it must reach the right
verdict for each (real training, several seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli
from remedysweep.runner.doctor import DoctorError, diagnose, load_problem, write_doctor_report

MODELS = Path(__file__).parent / "doctor" / "user_models.py"


def problem(name: str):
    return load_problem(f"{MODELS}:{name}", f"{MODELS}:digits_data")


def test_collapsing_model_gets_the_fused_loss(tmp_path: Path):
    v = diagnose(problem("collapsing"), epochs=15, seeds=2)
    assert v["sanity_check"]["passed"]
    assert v["baseline_outcome"] == "collapsed" and v["baseline"]["at_chance"] == 2
    assert any("hand-written loss on softmax" in s for s in v["symptoms"])
    rec = v["recommendation"]
    assert rec["changes"] == ["fused_loss"] and rec["evidence"]["at_chance"] == 0
    assert "from_logits=True" in rec["code"] and "Sparse" not in rec["code"]  # one-hot labels
    html = write_doctor_report(v, tmp_path).read_text()
    assert "fused_loss" in html and "<svg" in html


def test_nan_model_is_diverged_with_epoch_and_layer():
    v = diagnose(problem("nan_producing"), epochs=4, seeds=2)
    assert v["baseline_outcome"] == "diverged"
    nan = [s for s in v["symptoms"] if s.startswith("first NaN/Inf at epoch")]
    assert nan and "layer" in nan[0]
    assert v["recommendation"]["changes"] == ["fused_loss"]


def test_healthy_model_needs_no_change_and_the_cli_prints_json(tmp_path: Path):
    r = cli("doctor", "--model", f"{MODELS}:healthy", "--data", f"{MODELS}:digits_data",
            "--epochs", "4", "--seeds", "2", "--out", str(tmp_path / "doc"), "--json")
    assert r.returncode == 0, r.stderr
    verdict = json.loads(r.stdout)
    assert verdict["baseline_outcome"] == "healthy"
    assert verdict["symptoms"] == [] and verdict["recommendation"] is None
    assert (tmp_path / "doc" / "doctor.html").exists()


def test_bad_doctor_input_is_one_line(tmp_path: Path):
    with pytest.raises(DoctorError, match="has no function 'nope'"):
        load_problem(f"{MODELS}:nope", f"{MODELS}:digits_data")
    r = cli("doctor", "--model", "no_such_module:f", "--data", "x:y")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
