"""Impact analysis against synthetic windows whose answer is known by hand.

The reference game day (`_day`): 100 requests/s for 50 s. Seconds 0-19 every request takes
5 ms (the baseline); the fault is on from 20.0 to 30.0 s; seconds 20-33 every request takes
100 ms (the system needs 4 s after the rollback); seconds 20, 21, 22 each have 5 failures;
from second 34 on, 5 ms again. SLO: p99 50 ms, error rate 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from harness.analysis.impact import (
    FaultTimeline,
    RecoveryTolerance,
    Slo,
    analyse_impact,
    slow_count,
)
from harness.latency.sparse import SparseHist

SLO = Slo(p99_ms=50, error_rate=0.01)
HIST_REL = 1e-3  # 3 significant digits: a slot's midpoint is within 0.05 % of its values


@dataclass(frozen=True)
class Sec:
    second: int
    requests: int
    failures: int
    hist: SparseHist
    healthy: bool = True


def sec(second: int, ms: float, n: int = 100, failures: int = 0, healthy: bool = True) -> Sec:
    values = np.full(n - failures, int(ms * 1000), dtype=np.int64)
    return Sec(second, n, failures, SparseHist.from_values(values), healthy)


def _day(slow_until: int = 33, end: int = 50, errors: tuple[int, ...] = (20, 21, 22)) -> list:
    return [
        sec(s, 100.0 if 20 <= s <= slow_until else 5.0, failures=5 if s in errors else 0)
        for s in range(end)
    ]


def test_the_reference_day_by_hand() -> None:
    impact = analyse_impact(_day(), FaultTimeline(20.0, 30.0), SLO, RecoveryTolerance(k=3))
    assert impact.time_to_detect_s == 1.0  # window 20 closes at 21.0, fault at 20.0
    assert impact.recovered_at_s == 34  # 34, 35, 36 back at 5 ms
    assert impact.time_to_recover_s == 4.0  # 34 - 30.0
    assert impact.impact_seconds == (20, 33)
    assert impact.failed_requests == 15  # 3 seconds x 5
    assert impact.slowed_requests == 14 * 100 - 15  # every success in 20..33
    # (14 x 100 - 15) successes x (100 ms - 5 ms) = 1385 x 0.095 s
    assert impact.excess_latency_s == pytest.approx(1385 * 0.095, rel=HIST_REL)
    assert impact.before.requests == 2000 and impact.before.failures == 0
    assert impact.before.p99_ms == pytest.approx(5.0, rel=HIST_REL)
    assert impact.during.seconds == 10 and impact.during.failures == 15
    assert impact.during.error_rate == pytest.approx(15 / 1000)
    assert impact.during.p99_ms == pytest.approx(100.0, rel=HIST_REL)
    # after = seconds 30..49: 400 requests at 100 ms among 2000, so its p99 is 100 ms
    assert impact.after.seconds == 20 and impact.after.error_rate == 0.0
    assert impact.after.p99_ms == pytest.approx(100.0, rel=HIST_REL)
    # budget: 1 % of 5000 requests = 50 failures (or slow requests) allowed
    assert impact.error_budget == {
        "allowed": pytest.approx(50.0),
        "spent": 15,
        "burned": pytest.approx(0.3),
    }
    assert impact.latency_budget["spent"] == 1385
    assert impact.latency_budget["burned"] == pytest.approx(1385 / 50)
    assert impact.notes == ()


def test_detection_is_from_the_fault_start_to_the_window_close() -> None:
    impact = analyse_impact(_day(), FaultTimeline(20.3, 30.0), SLO)
    assert impact.time_to_detect_s == pytest.approx(0.7)
    late = [sec(s, 100.0 if 23 <= s <= 33 else 5.0) for s in range(50)]  # effect at 23
    assert analyse_impact(late, FaultTimeline(20.0, 30.0), SLO).time_to_detect_s == 4.0


def test_errors_alone_are_detected() -> None:
    windows = [sec(s, 5.0, failures=2 if s == 25 else 0) for s in range(40)]  # 2 % > 1 %
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO)
    assert impact.time_to_detect_s == 6.0
    assert impact.failed_requests == 2 and impact.slowed_requests == 0


def test_never_detected() -> None:
    windows = [sec(s, 20.0 if 20 <= s < 30 else 5.0) for s in range(50)]  # 20 ms < SLO
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO)
    assert impact.time_to_detect_s is None
    assert impact.recovered_at_s == 30 and impact.time_to_recover_s == 0.0
    assert impact.excess_latency_s == pytest.approx(10 * 100 * 0.015, rel=HIST_REL)


def test_never_recovered() -> None:
    impact = analyse_impact(_day(slow_until=49), FaultTimeline(20.0, 30.0), SLO)
    assert impact.time_to_recover_s is None and impact.recovered_at_s is None
    assert impact.impact_seconds == (20, 49)  # to the last window
    assert impact.slowed_requests == 30 * 100 - 15
    assert impact.notes == ("never back within tolerance for 3 consecutive windows",)


def test_fault_shorter_than_a_window() -> None:
    windows = [sec(s, 100.0 if s == 20 else 5.0) for s in range(40)]
    impact = analyse_impact(windows, FaultTimeline(20.2, 20.5), SLO)
    assert impact.during.seconds == 1 and impact.during.requests == 100
    assert impact.time_to_detect_s == pytest.approx(0.8)  # 21.0 - 20.2
    assert impact.recovered_at_s == 21 and impact.time_to_recover_s == pytest.approx(0.5)
    assert impact.impact_seconds == (20, 20) and impact.slowed_requests == 100


def test_a_fault_of_no_length_is_the_window_holding_it() -> None:
    impact = analyse_impact(_day(), FaultTimeline(20.0, 20.0), SLO)
    assert impact.during.seconds == 1 and impact.during.requests == 100


def test_no_baseline() -> None:
    impact = analyse_impact(_day(), FaultTimeline(0.0, 30.0), SLO)
    assert impact.before.requests == 0 and impact.before.p99_ms is None
    assert impact.time_to_recover_s is None and impact.excess_latency_s is None
    assert impact.notes == (
        "no baseline window before the fault: recovery and excess latency unknown",
    )
    assert impact.failed_requests == 15  # still counted, to the last window


def test_baseline_starts_where_asked() -> None:
    windows = [sec(s, 50.0 if s < 10 else 5.0) for s in range(20)] + _day()[20:]
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0, baseline_from_s=10), SLO)
    assert impact.before.seconds == 10
    assert impact.before.p99_ms == pytest.approx(5.0, rel=HIST_REL)


def test_recovery_needs_k_consecutive_windows_without_gaps() -> None:
    windows = [w for w in _day() if w.second != 36]  # second 36 missing
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO, RecoveryTolerance(k=3))
    assert impact.recovered_at_s == 37
    noisy = [sec(s, 100.0, n=100) if s == 35 else w for s, w in enumerate(_day())]
    assert analyse_impact(noisy, FaultTimeline(20.0, 30.0), SLO).recovered_at_s == 36
    assert (
        analyse_impact(
            _day(), FaultTimeline(20.0, 30.0), SLO, RecoveryTolerance(k=1)
        ).recovered_at_s
        == 34
    )


def test_tolerance_edges() -> None:
    # baseline p99 5.003 ms (slot high of 5000 us) -> bound 5.003 x 2 + 5 = 15.006 ms
    edge = [sec(s, 15.0 if s >= 30 else 5.0) for s in range(40)]  # 15.0 slot high 15.007
    impact = analyse_impact(
        edge, FaultTimeline(20.0, 30.0), SLO, RecoveryTolerance(p99_factor=2.0, p99_slack_ms=5.1)
    )
    assert impact.recovered_at_s == 30
    strict = RecoveryTolerance(p99_factor=2.0, p99_slack_ms=4.9)
    assert analyse_impact(edge, FaultTimeline(20.0, 30.0), SLO, strict).recovered_at_s is None
    errors = [sec(s, 5.0, failures=2 if s >= 30 else 0) for s in range(40)]  # 2 % each
    loose = RecoveryTolerance(error_rate_slack=0.02)
    assert analyse_impact(errors, FaultTimeline(20.0, 30.0), SLO, loose).recovered_at_s == 30
    tight = RecoveryTolerance(error_rate_slack=0.019)
    assert analyse_impact(errors, FaultTimeline(20.0, 30.0), SLO, tight).recovered_at_s is None


def test_an_empty_window_is_neither_over_the_slo_nor_recovered() -> None:
    windows = [sec(s, 5.0, n=0) if s in (20, 30) else sec(s, 5.0) for s in range(40)]
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO, RecoveryTolerance(k=2))
    assert impact.time_to_detect_s is None
    assert impact.recovered_at_s == 31


def test_slow_count_uses_the_slot_value() -> None:
    hist = SparseHist.from_values(np.array([49_000, 50_000, 50_100, 90_000]))
    # slots are 32 us wide here: 50 000 -> [49 984, 50 015], 50 100 -> [50 080, 50 111]
    assert slow_count(hist, 50.0) == 3  # 50 015 > 50 000: the slot's value is over
    assert slow_count(hist, 50.1) == 2 and slow_count(hist, 50.2) == 1
    assert slow_count(hist, 90.1) == 0


def test_timeline_and_slo_are_checked() -> None:
    with pytest.raises(ValueError, match="the fault must end at or after its start"):
        FaultTimeline(30.0, 20.0)
    with pytest.raises(ValueError, match=r"^Slo: "):
        Slo(p99_ms=0, error_rate=0.01)


def test_unhealthy_seconds_are_no_evidence_either_way() -> None:
    # second 21 is the only one over the SLO, but the generator was unhealthy then
    windows = [sec(s, 100.0 if s == 21 else 5.0, healthy=s != 21) for s in range(40)]
    assert analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO).time_to_detect_s is None
    # recovery: 30 ok, 31 unhealthy (and slow), 32 ok, 33 ok -> a run of 3 opened at 30
    after = [sec(s, 100.0 if 20 <= s < 30 or s == 31 else 5.0, healthy=s != 31) for s in range(40)]
    assert analyse_impact(after, FaultTimeline(20.0, 30.0), SLO).recovered_at_s == 30
    healthy_slow = [sec(s, 100.0 if 20 <= s < 30 or s == 31 else 5.0) for s in range(40)]
    assert analyse_impact(healthy_slow, FaultTimeline(20.0, 30.0), SLO).recovered_at_s == 32


def test_excess_latency_is_signed_so_noise_cancels() -> None:
    # during the fault: 5 s at 15 ms and 5 s at 2 ms (faster than the 5 ms baseline)
    windows = [sec(s, 15.0 if 20 <= s < 25 else 2.0 if 25 <= s < 30 else 5.0) for s in range(40)]
    impact = analyse_impact(windows, FaultTimeline(20.0, 30.0), SLO)
    # 500 x (15 - 5) ms + 500 x (2 - 5) ms = 5 s - 1.5 s
    assert impact.excess_latency_s == pytest.approx(3.5, rel=HIST_REL)
