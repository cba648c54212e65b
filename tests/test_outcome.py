"""Outcome classification on constructed curves (pure, no TensorFlow)."""

from remedysweep.runner.config import OutcomeSpec
from remedysweep.runner.outcome import RunOutcome, classify, should_stop

SPEC = OutcomeSpec()  # rise at 0.28, at-chance <= 0.19 for 10 classes


def test_rise_then_collapse_is_collapsed():
    c = classify([0.5, 0.9, 0.95, 0.4, 0.1, 0.1, 0.1], 10, SPEC)
    assert c.outcome is RunOutcome.COLLAPSED
    assert c.peak == 0.95 and c.collapse_epoch == 5


def test_never_rising_is_never_learned_not_collapsed():
    c = classify([0.1, 0.11, 0.1, 0.1, 0.1], 10, SPEC)
    assert c.outcome is RunOutcome.NEVER_LEARNED


def test_rise_inside_the_first_epoch_counts():
    curve = [0.1, 0.1, 0.1, 0.1]
    assert classify(curve, 10, SPEC).outcome is RunOutcome.NEVER_LEARNED
    c = classify(curve, 10, SPEC, early_probes=[(0.05, 0.2), (0.2, 0.6), (0.5, 0.1)])
    assert c.outcome is RunOutcome.COLLAPSED
    assert c.peak_epoch == 0.2 and c.collapse_epoch == 1


def test_healthy_degraded_diverged_failed():
    assert classify([0.5, 0.8, 0.9, 0.92], 10, SPEC).outcome is RunOutcome.HEALTHY
    assert classify([0.5, 0.9, 0.6, 0.5], 10, SPEC).outcome is RunOutcome.DEGRADED
    assert classify([0.5, 0.9, 0.1], 10, SPEC, nonfinite_epoch=3).outcome is RunOutcome.DIVERGED
    assert classify([0.5], 10, SPEC, error="ValueError: boom").outcome is RunOutcome.FAILED
    assert classify([], 10, SPEC).outcome is RunOutcome.FAILED


def test_window_must_be_all_at_chance():
    # One epoch above chance inside the final window: not collapsed, but degraded.
    assert classify([0.9, 0.1, 0.3, 0.1], 10, SPEC).outcome is RunOutcome.DEGRADED


def test_thresholds_follow_class_count_and_settings():
    two_class = [0.9, 0.5, 0.5, 0.5]
    assert classify(two_class, 2, SPEC).outcome is RunOutcome.COLLAPSED
    loose = OutcomeSpec(rise_margin=0.5, chance_margin=0.3, window=2)
    assert classify([0.3, 0.3, 0.2], 10, loose).outcome is RunOutcome.NEVER_LEARNED


def test_early_stop_rule():
    assert should_stop([0.9, 0.1, 0.1, 0.1], True, 10, SPEC, 3)
    assert not should_stop([0.9, 0.1, 0.1], True, 10, SPEC, 4)
    assert not should_stop([0.1, 0.1, 0.1], False, 10, SPEC, 3)
    assert not should_stop([0.9, 0.5, 0.1, 0.1], True, 10, SPEC, 3)
