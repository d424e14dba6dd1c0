"""Holm correction, TOST decisions and the overall verdict."""

from __future__ import annotations

import pytest

from harness.analysis.ab.abconfig import CompareConfig, Margin
from harness.analysis.ab.equivalence import Decision, Verdict, decide, holm, overall_verdict


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


# --- boundaries and arithmetic of `decide`, by hand ----------------------------------------


def test_equivalence_needs_the_interval_strictly_inside_the_margin() -> None:
    # TOST at level alpha: equivalent iff -margin < lo and hi < margin; touching is not inside
    inside = _decide(0.0, (-0.06, 0.06), (-0.049, 0.049), 0.9)
    assert inside.verdict is Verdict.EQUIVALENT and inside.equivalent
    assert not inside.significant and inside.requests_needed is None
    assert inside.reason == "within the margin"
    for ci_eq in ((-0.05, 0.01), (-0.01, 0.05)):
        d = _decide(0.0, (-0.06, 0.06), ci_eq, 0.9)
        assert d.verdict is Verdict.INCONCLUSIVE and not d.equivalent, ci_eq


def test_significance_needs_p_strictly_below_alpha() -> None:
    at_alpha = _decide(0.1, (0.0, 0.2), (0.02, 0.18), 0.05)
    assert at_alpha.verdict is Verdict.INCONCLUSIVE
    assert at_alpha.significant is False and at_alpha.equivalent is False
    below = _decide(0.1, (0.001, 0.2), (0.02, 0.18), 0.0499)
    assert below.verdict is Verdict.WORSE
    assert below.significant is True and below.equivalent is False
    assert below.requests_needed is None
    assert below.reason == "significant after Holm correction"


def test_direction_when_lower_is_worse() -> None:
    # accuracy drops by 0.1: higher_is_worse=False, so a negative estimate is worse
    d = _decide(-0.1, (-0.14, -0.06), (-0.13, -0.07), 0.001, higher_is_worse=False)
    assert d.verdict is Verdict.WORSE


def test_equivalent_and_significant_says_so() -> None:
    d = _decide(0.01, (0.004, 0.016), (0.005, 0.015), 0.001)
    assert d.reason == "within the margin (a small difference is detectable)"
    assert d.requests_needed is None


def test_no_margin_reason_and_no_estimate_of_more_data() -> None:
    d = _decide(0.03, (-0.01, 0.07), (-0.005, 0.065), 0.2, margin=None)
    assert d.verdict is Verdict.NO_DIFFERENCE
    assert (d.significant, d.equivalent, d.requests_needed) == (False, False, None)
    assert d.reason == "no margin to test against"


def _needed(est, ci, ci_eq, margin=0.25, n=1000):
    d = decide(
        estimate=est, ci=ci, ci_equivalence=ci_eq, p_adjusted=0.5, alpha=0.05, margin=margin,
        higher_is_worse=True, n=n,
    )
    assert d.verdict is Verdict.INCONCLUSIVE
    assert d.reason == "interval wider than the margin"
    return d.requests_needed


def test_requests_needed_by_hand() -> None:
    # dyadic numbers, so the products below are exact and ceil() has nothing to round
    # both equivalence sides beyond +-0.25 around 0.125: the upper needs
    # ((0.375 - 0.125) / (0.25 - 0.125))^2 = 4, the lower ((0.125 + 0.375) / 0.375)^2 = 1.78;
    # the interval must fit on both sides -> 4; "exclude 0" needs ((0.125 + 0.5) / 0.125)^2
    # = 25; the nearer goal wins: 4 x 1000
    assert _needed(0.125, (-0.5, 0.75), (-0.375, 0.375)) == 4000
    # mirrored: estimate -0.125, only the lower side is beyond -0.25:
    # ((-0.125 + 0.375) / (0.25 - 0.125))^2 = 4; excluding 0 from above:
    # ((0.5 + 0.125) / 0.125)^2 = 25 -> 4000
    assert _needed(-0.125, (-0.75, 0.5), (-0.375, 0.125)) == 4000
    # beyond the margin, only "exclude 0" is possible: estimate 0.5 > 0.25, lower end -0.25:
    # ((0.5 + 0.25) / 0.5)^2 = 2.25; and for -0.5 with upper end 0.25 the same
    assert _needed(0.5, (-0.25, 1.25), (-0.125, 1.125)) == 2250
    assert _needed(-0.5, (-1.25, 0.25), (-1.125, 0.125)) == 2250
    # an estimate exactly on the margin cannot be brought inside it: exclude 0 only,
    # ((0.25 + 0.5) / 0.25)^2 = 9
    assert _needed(0.25, (-0.5, 1.0), (-0.375, 0.875)) == 9000
    assert _needed(-0.25, (-1.0, 0.5), (-0.875, 0.375)) == 9000
    # an estimate of exactly 0 never excludes 0; the equivalence side alone:
    # ((0.5 - 0) / (0.25 - 0))^2 = 4
    assert _needed(0.0, (-0.75, 0.75), (-0.5, 0.5)) == 4000
    # an equivalence side exactly on the margin needs a factor of 1 (estimate -0.125, upper
    # ((0.25 + 0.125) / (0.25 + 0.125))^2 = 1); the lower ((-0.125 + 0.375) / 0.125)^2 = 4
    assert _needed(-0.125, (-0.75, 0.5), (-0.375, 0.25)) == 4000
    # 1.5x: ceil(1000 x 1.5625) (1.25^2) = 1563 -- rounded up, never down
    assert _needed(0.0, (-0.5, 0.5), (-0.3125, 0.3125)) == 1563
    # rounding up also when the factor is barely above 1: (0.25 + 2^-10) / 0.25 = 1 + 2^-8,
    # squared 1 + 2^-7 + 2^-16 -> 1000 x that = 1007.83 -> 1008
    assert _needed(0.0, (-0.5, 0.5), (-0.25 - 2**-10, 0.1)) == 1008


def test_requests_needed_is_none_without_a_goal_or_without_data() -> None:
    # significant-looking interval that excludes 0 but p not small and estimate beyond the
    # margin: neither goal applies
    assert _needed(0.5, (0.25, 0.75), (0.3, 0.7)) is None
    # no requests yet: nothing to scale
    assert _needed(0.0, (-0.75, 0.75), (-0.5, 0.5), n=0) is None
    # one request is something: 1 x 4
    assert _needed(0.0, (-0.75, 0.75), (-0.5, 0.5), n=1) == 4


def test_holm_order_and_monotonicity_by_hand() -> None:
    # sorted: 0.001 x 5 = 0.005; 0.01 x 4 = 0.04; 0.011 x 3 = 0.033 -> held at 0.04;
    # 0.02 x 2 = 0.04; 0.3 x 1 = 0.3 -- reported in the order given
    assert holm([0.3, 0.011, 0.001, 0.02, 0.01]) == pytest.approx(
        [0.3, 0.04, 0.005, 0.04, 0.04]
    )
    assert holm([0.2]) == [0.2]
    assert holm([]) == []
    # ties keep the order given and each gets its step: 0.01 x 3, 0.01 x 2 -> max 0.03
    assert holm([0.01, 0.01, 0.4]) == pytest.approx([0.03, 0.03, 0.4])
    assert holm([0.6, 0.5, 0.45]) == [1.0, 1.0, 1.0]  # 0.45 x 3 = 1.35, capped at 1


def test_overall_verdict_edges() -> None:
    assert overall_verdict([]) is Verdict.INCONCLUSIVE  # no gating metric: nothing shown
    assert overall_verdict([_d(Verdict.EQUIVALENT)]) is Verdict.EQUIVALENT
    assert overall_verdict([_d(Verdict.NO_DIFFERENCE), _d(Verdict.WORSE)]) is Verdict.WORSE
    assert overall_verdict([_d(Verdict.NO_DIFFERENCE), _d(Verdict.BETTER)]) is Verdict.BETTER
    both = [_d(Verdict.BETTER), _d(Verdict.WORSE)]
    assert overall_verdict(both) is Verdict.WORSE  # a regression anywhere is a regression
    assert overall_verdict([_d(Verdict.INCONCLUSIVE), _d(Verdict.NO_DIFFERENCE)]) is (
        Verdict.INCONCLUSIVE
    )
