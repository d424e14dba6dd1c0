"""Holm correction, TOST decisions and the overall verdict."""

from __future__ import annotations

import pytest

from harness.analysis.abconfig import CompareConfig, Margin
from harness.analysis.equivalence import Decision, Verdict, decide, holm, overall_verdict


def test_holm_matches_hand_computation() -> None:
    # sorted p: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.5*1=0.5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1


def _decide(est, ci, ci_eq, p, margin=0.05, higher_is_worse=True):
    return decide(
        estimate=est,
        ci=ci,
        ci_equivalence=ci_eq,
        p_adjusted=p,
        alpha=0.05,
        margin=margin,
        higher_is_worse=higher_is_worse,
        n=10_000,
    )


def test_equivalent_when_interval_inside_margin_even_if_significant() -> None:
    d = _decide(0.01, (0.004, 0.016), (0.005, 0.015), 0.001)
    assert d.verdict is Verdict.EQUIVALENT and d.significant


def test_worse_and_better_follow_direction() -> None:
    assert _decide(0.1, (0.06, 0.14), (0.07, 0.13), 0.001).verdict is Verdict.WORSE
    assert _decide(-0.1, (-0.14, -0.06), (-0.13, -0.07), 0.001).verdict is Verdict.BETTER
    # accuracy: higher is better
    d = _decide(0.02, (0.01, 0.03), (0.012, 0.028), 0.001, margin=0.01, higher_is_worse=False)
    assert d.verdict is Verdict.BETTER


def test_inconclusive_says_how_much_more_data() -> None:
    d = _decide(0.0, (-0.1, 0.1), (-0.084, 0.084), 0.9)
    assert d.verdict is Verdict.INCONCLUSIVE
    # half-width 0.084 must shrink to 0.05: factor (0.084/0.05)^2 = 2.82
    assert d.requests_needed == pytest.approx(10_000 * (0.084 / 0.05) ** 2, rel=1e-3)
    # asymmetric interval: "exclude 0" needs ((0.02+0.01)/0.02)^2 = 2.25 x the data, "inside
    # the margin" ((0.055-0.02)/(0.05-0.02))^2 = 1.36 x; the nearer wins, and always > n
    d = _decide(0.02, (-0.01, 0.06), (-0.005, 0.055), 0.5)
    assert d.verdict is Verdict.INCONCLUSIVE
    assert d.requests_needed == pytest.approx(10_000 * (0.035 / 0.03) ** 2, rel=1e-3)


def test_no_margin_means_no_significant_difference() -> None:
    d = _decide(0.0, (-0.1, 0.1), (-0.08, 0.08), 0.9, margin=None)
    assert d.verdict is Verdict.NO_DIFFERENCE


def _d(v: Verdict) -> Decision:
    return Decision(v, False, False, None, "")


def test_overall_precedence() -> None:
    eq, worse, better = Verdict.EQUIVALENT, Verdict.WORSE, Verdict.BETTER
    unsure, nsd = Verdict.INCONCLUSIVE, Verdict.NO_DIFFERENCE
    assert overall_verdict([_d(eq), _d(worse), _d(better)]) is worse
    assert overall_verdict([_d(eq), _d(unsure), _d(better)]) is better
    assert overall_verdict([_d(eq), _d(unsure)]) is unsure
    assert overall_verdict([_d(eq), _d(nsd)]) is eq
    assert overall_verdict([_d(nsd)]) is nsd


def test_margin_parsing_and_config_validation() -> None:
    assert Margin.parse("5%").relative == pytest.approx(0.05)
    assert Margin.parse("2ms").absolute_us == 2000
    assert Margin.parse("500us").absolute_us == 500
    assert Margin.parse("none").value is None
    with pytest.raises(ValueError):
        Margin.parse("five percent")
    with pytest.raises(ValueError):
        CompareConfig(gating=("p99", "latency"))
    with pytest.raises(ValueError):
        CompareConfig(surprise=1)
    assert CompareConfig(gating=("p90",)).all_percentiles == (50.0, 90.0, 95.0, 99.0, 99.9)
