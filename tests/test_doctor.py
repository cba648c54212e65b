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


def test_saved_keras_model_and_npz_data(tmp_path: Path):
    import numpy as np

    from remedysweep.runner.trial import configure_tensorflow

    configure_tensorflow()
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_models_for_save", MODELS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.healthy().save(tmp_path / "model.keras")
    (x_tr, y_tr), (x_va, y_va) = mod.digits_data()
    np.savez(tmp_path / "data.npz", x_train=x_tr, y_train=y_tr.argmax(1), x_val=x_va, y_val=y_va.argmax(1))
    # Integer labels with categorical_crossentropy: doctor names the mismatch and stops.
    v = diagnose(load_problem(str(tmp_path / "model.keras"), str(tmp_path / "data.npz")), epochs=3, seeds=1)
    assert not v["sanity_check"]["passed"] and v["stopped_at"] == "sanity_check"
    assert any("labels/loss mismatch: integer labels with categorical_crossentropy" in s for s in v["symptoms"])
    # One-hot labels: the saved model trains and is healthy.
    np.savez(tmp_path / "onehot.npz", x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va)
    v = diagnose(load_problem(str(tmp_path / "model.keras"), str(tmp_path / "onehot.npz")), epochs=3, seeds=1)
    assert v["sanity_check"]["passed"] and v["baseline_outcome"] == "healthy" and v["recommendation"] is None
