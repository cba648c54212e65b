"""The outcome rules and the run record (pure, no TensorFlow)."""

import math

from remedysweep.engine.config import OutcomeSpec
from remedysweep.engine.result import (
    CURVE_COLUMNS, TRIAL_COLUMNS, RunOutcome, RunResult, Thresholds, classify, oscillations, should_stop,
)

SPEC = OutcomeSpec(window=3)  # rise at 0.28, at-chance <= 0.19 for 10 classes
TEN = Thresholds.of(0.1, SPEC)


def test_rise_then_collapse_is_collapsed():
    c = classify([0.5, 0.9, 0.95, 0.4, 0.1, 0.1, 0.1], TEN, SPEC)
    assert c.outcome is RunOutcome.COLLAPSED and c.outcome.at_chance
    assert c.peak == 0.95 and c.collapse_epoch == 5


def test_never_rising_is_never_learned_not_collapsed():
    assert classify([0.1, 0.11, 0.1, 0.1, 0.1], TEN, SPEC).outcome is RunOutcome.NEVER_LEARNED


def test_rise_inside_the_first_epoch_counts():
    curve = [0.1, 0.1, 0.1, 0.1]
    assert classify(curve, TEN, SPEC).outcome is RunOutcome.NEVER_LEARNED
    c = classify(curve, TEN, SPEC, early_probes=[(0.05, 0.2), (0.2, 0.6), (0.5, 0.1)])
    assert c.outcome is RunOutcome.COLLAPSED and c.peak_epoch == 0.2 and c.collapse_epoch == 1


def test_healthy_degraded_diverged_failed():
    assert classify([0.5, 0.8, 0.9, 0.92], TEN, SPEC).outcome is RunOutcome.HEALTHY
    assert classify([0.5, 0.9, 0.6, 0.5], TEN, SPEC).outcome is RunOutcome.DEGRADED
    assert classify([0.5, 0.9, 0.1], TEN, SPEC, nonfinite_epoch=3).outcome is RunOutcome.DIVERGED
    assert classify([0.5], TEN, SPEC, error="ValueError: boom").outcome is RunOutcome.FAILED
    assert classify([], TEN, SPEC).outcome is RunOutcome.FAILED
    assert [o.value for o in RunOutcome if o.at_chance] == ["collapsed", "never_learned", "diverged"]


def test_a_nan_final_accuracy_is_diverged_never_healthy():
    """A mixed-precision model whose outputs turned NaN while its loss stayed
    finite: the NaN accuracy is divergence, not a healthy run."""
    nan = float("nan")
    c = classify([0.5, 0.9, nan, nan], TEN, SPEC)
    assert c.outcome is RunOutcome.DIVERGED and c.outcome.at_chance and c.peak == 0.9
    assert classify([nan, nan], TEN, SPEC).outcome is RunOutcome.NEVER_LEARNED  # no accuracy recorded at all


def test_doctor_statistics_take_all_nan_seeds():
    from remedysweep.doctor.diagnosis import _tried
    from remedysweep.doctor.evidence import Candidate, select

    nan = float("nan")
    diverged = [RunResult(RunOutcome.DIVERGED, nan, nan, 3, 0.1, 0.1) for _ in range(2)]
    healthy = [RunResult(RunOutcome.HEALTHY, 0.9, 0.88 + i / 100, 3, 0.1, 0.1) for i in range(2)]
    fused, lr = Candidate((("loss", "fused_logits"),), "targeted", diverged), Candidate((("learning_rate", 0.001),), "targeted", healthy)
    row = _tried(fused)
    assert row["spread"] == 0.0 and row["at_chance"] == 2 and row["outcomes"] == {"diverged": 2}
    assert select([fused, lr])[1] is lr and fused.bad == 2


def test_chance_is_the_majority_rate_for_any_head():
    """A binary problem with 80% negatives: chance is 0.8, so sitting at 0.8 is at chance."""
    th = Thresholds.of(0.8, SPEC)
    assert math.isclose(th.rise, 0.84) and math.isclose(th.at_chance, 0.82)
    assert classify([0.95, 0.8, 0.8, 0.8], th, SPEC).outcome is RunOutcome.COLLAPSED
    assert classify([0.8, 0.81, 0.8], th, SPEC).outcome is RunOutcome.NEVER_LEARNED


def test_early_stop_rule():
    assert should_stop([0.9, 0.1, 0.1, 0.1], True, TEN, 3)
    assert not should_stop([0.9, 0.1, 0.1], True, TEN, 4)
    assert not should_stop([0.1, 0.1, 0.1], False, TEN, 3)


def test_oscillation_count():
    assert oscillations([0.72, 0.78, 0.63, 0.71, 0.79, 0.69, 0.75, 0.66], 0.04) >= 4
    assert oscillations([0.5, 0.7, 0.8, 0.85, 0.87, 0.88], 0.04) == 0
    assert oscillations([0.9, 0.91, 0.89, 0.9, 0.92, 0.9], 0.04) == 0  # noise is not a swing


def test_record_round_trips_through_strict_json():
    import json

    r = RunResult(RunOutcome.DIVERGED, float("nan"), 0.1, 3, 1.5, 0.1, first_nonfinite_epoch=2,
                  curves={"loss": [1.0, float("inf")]}, early_probes=[(0.5, 0.3)], facts={"keras_fuses": True})
    text = json.dumps(r.to_record(), allow_nan=False)
    back = RunResult.from_record(json.loads(text))
    assert back.outcome is RunOutcome.DIVERGED and back.first_nonfinite_epoch == 2 and back.early_probes == [(0.5, 0.3)]
    assert math.isnan(back.peak_val_accuracy) and back.curves["loss"] == [1.0, None] and back.facts == {"keras_fuses": True}


def test_schema_is_documented_in_the_readme():
    """The CSV schema is declared once (engine.result) and the README documents every column."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for col in (*TRIAL_COLUMNS, *CURVE_COLUMNS):
        assert f"`{col.name}`" in readme, col.name


def test_one_validation_sample_is_not_a_rise():
    """With 4 validation points one sample is 0.25 of accuracy: a blip of one
    above chance is neither a rise nor, with the plateau after it, a collapse."""
    binary = Thresholds.of(0.5, SPEC, n_val=4)
    assert binary.rise == 0.875 and Thresholds.of(0.5, SPEC).rise == 0.6
    blip = [0.5, 0.75, 0.5, 0.5, 0.5]
    assert classify(blip, Thresholds.of(0.5, SPEC), SPEC).outcome is RunOutcome.COLLAPSED  # what the rules said without n_val
    assert classify(blip, binary, SPEC).outcome is RunOutcome.NEVER_LEARNED
    assert not should_stop(blip, max(blip) >= binary.rise, binary, 3)
    assert classify([0.5, 1.0, 1.0, 1.0], binary, SPEC).outcome is RunOutcome.HEALTHY
    assert Thresholds.of(0.1, SPEC, n_val=450).rise == TEN.rise  # a real validation set: the margin rules
