"""Operating points by hand, from closed- and open-loop sweeps with known curves.

The closed-loop sweep below is the USL (lambda 100, sigma 0.05, kappa 0.0005; N* = 43.59,
usl_truth) with p99 exactly 5 + 20 u / (1 - u), u = X / 1200, on the rising side, and 500 /
900 ms past N*. Its measured p99 by level (hand arithmetic on those formulas):

    N     1      2      4      8      16     24     32      40      48   64
    X     100    190.3  346.0  580.6  855.6  989.28 1050.6  1072.4  ...
    p99   6.818  8.769  13.10  23.74  54.69  98.897 145.60  173.07  500  900

SLO 100 ms: the p99 interpolated between 24 and 32 passes 100 at 24 + 8 x 1.103 / 46.70 =
24.19, so c_op = 24, X_op = X(24) = 2400 / 2.426 = 989.28, L = 24 / X_op = 24.26 ms.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.capacity.operating_point import (
    OperatingPoint,
    _fit_warnings,
    _largest_passing_n,
    _server_inflight,
    operating_point_closed_loop,
    operating_point_manual,
    operating_point_open_loop,
    with_concurrency,
)
from harness.errors import AnalysisError, InsufficientData
from tests.harness.analysis.capacity.usl_truth import usl_peak, usl_x

N = np.array([1, 2, 4, 8, 16, 24, 32, 40, 48, 64], dtype=float)
X = usl_x(N, 100.0, 0.05, 0.0005)
P99 = np.where(N < 44, 5 + 20 * (X / 1200) / (1 - X / 1200), 0.0)
P99[N > 44] = [500.0, 900.0]


def test_manual_point_and_its_validation() -> None:
    op = operating_point_manual(0.5, 2, p99_ms=1.5)  # half a millisecond is a latency
    assert op == OperatingPoint("manual", 2.0, 4000.0, 0.0005, 1.5)
    for latency, c in ((0, 1), (10, 0), (-1, -1)):
        with pytest.raises(AnalysisError) as info:
            operating_point_manual(latency, c)
        assert str(info.value) == "latency and concurrency must be > 0"


def test_closed_loop_point_by_hand() -> None:
    op = operating_point_closed_loop(N, X, P99, slo_p99_ms=100)
    assert op.source == "sweep-closed" and op.concurrency == 24.0
    assert op.throughput == pytest.approx(2400 / 2.426, rel=1e-6)
    assert op.mean_latency_s == pytest.approx(0.02426, rel=1e-6)
    assert op.p99_ms == pytest.approx(P99[5], rel=1e-12)  # a measured level: no interpolation
    n_star, x_max = usl_peak(100.0, 0.05, 0.0005)
    assert op.n_star == pytest.approx(n_star, rel=1e-6)
    assert op.x_max == pytest.approx(x_max, rel=1e-6)
    assert op.usl is not None and op.usl["kappa"] == pytest.approx(0.0005, rel=1e-5)
    # the latency fit sees only the rising side (N <= N*), so it recovers the curve exactly
    lat = op.latency_model
    assert lat is not None
    assert (lat["a_ms"], lat["b_ms"], lat["saturation"]) == pytest.approx((5, 20, 1200), rel=1e-6)
    assert lat["r2"] == pytest.approx(1.0) and op.notes == () and op.server_inflight is None
    assert op.usl["r2"] == pytest.approx(1.0)
    # a noisy p99 on the rising side is flagged (R^2 of the latency fit below 0.9)
    noisy = P99 * np.array([1.0, 8.0, 0.3, 3.5, 0.4, 1.0, 1.0, 1.0, 1.0, 1.0])
    flagged = operating_point_closed_loop(N, X, noisy, slo_p99_ms=100)
    assert flagged.latency_model is not None and flagged.latency_model["r2"] < 0.9
    assert flagged.notes == (
        f"p99-vs-throughput fit is poor (R^2 = {flagged.latency_model['r2']:.2f})",
    )


def test_closed_loop_errors_and_boundaries() -> None:
    """A level that fails on errors is not an operating point even when its p99 passes:
    2 % errors at N = 24 -> c_op = 23 (p99 at 23: 54.69 + 7/8 x 44.21 = 93.37 ms).
    Exactly 1 % passes (default max_error_rate 0.01), and so does a p99 exactly at the SLO."""
    err = np.zeros_like(N)
    err[5] = 0.02
    assert operating_point_closed_loop(N, X, P99, 100, error_rate=err).concurrency == 23.0
    err[5] = 0.01
    assert operating_point_closed_loop(N, X, P99, 100, error_rate=err).concurrency == 24.0
    assert operating_point_closed_loop(N, X, P99, P99[5]).concurrency == 24.0
    assert operating_point_closed_loop(N, X, P99, P99[5] - 1e-9).concurrency == 23.0
    # the lowest level decides, even when the next one passes again
    noisy = P99.copy()
    noisy[0] = 120.0
    with pytest.raises(AnalysisError) as info:
        operating_point_closed_loop(N, X, noisy, 100)
    assert str(info.value) == (
        "the lowest concurrency measured (1) already misses the SLO (p99 120.0 ms > 100 ms): "
        "no operating point"
    )


def test_largest_passing_n_by_hand() -> None:
    ns = np.array([1.0, 2.0, 4.0, 8.0])
    all_pass = np.ones(4, dtype=bool)
    # p99 10 20 40 80: at 5 the line from 4 to 8 gives 50 (meets 50 exactly), at 6 it is 60
    p99 = np.array([10.0, 20.0, 40.0, 80.0])
    assert _largest_passing_n(ns, p99, all_pass, 100.0, 50.0) == 5.0
    assert _largest_passing_n(ns, p99, all_pass, 100.0, 1000.0) == 8.0  # the last level caps
    assert _largest_passing_n(ns, p99, all_pass, 6.5, 1000.0) == 6.0  # N* caps: floor(6.5)
    # only N = 1 passes (2 is at 100 ms)
    assert _largest_passing_n(ns, np.array([10.0, 100, 200, 400]), all_pass, 100, 50) == 1.0
    # a failing level at 4 stops the walk even if 8 passes again (3 interpolates to 110)
    lucky = np.array([10.0, 20.0, 200.0, 30.0])
    assert _largest_passing_n(ns, lucky, lucky <= 50, 100.0, 50.0) == 2.0
    with pytest.raises(InsufficientData) as info:
        _largest_passing_n(ns, p99, all_pass, 0.8, 50.0)  # N* below one user
    assert str(info.value) == "no integer concurrency meets the SLO; sweep lower loads"
    assert info.value.needed == 1


def test_server_inflight_by_hand() -> None:
    """c_op 10, X_op 64/s. Mean 100 ms at c_op: 6.4 at the server; each cycle is 10 / 64 s =
    156.25 ms, 56.25 ms of it in the load generator. Mean 140.625 ms: 64 x 0.140625 = 9.0 =
    0.9 c_op exactly, still counted as the server's own; a mean longer than the cycle is capped
    at c_op."""
    ns = np.array([5.0, 10.0, 20.0])
    server, notes = _server_inflight(10.0, 64.0, ns, np.array([50.0, 100.0, 200.0]))
    assert server == pytest.approx(6.4, rel=1e-12)
    assert notes == (
        "at c_op each user spends 56.25 ms per request in the load generator (N/X - mean "
        "latency): 6.40 requests are in flight at the server, not 10; the HPA's in-flight "
        "target uses the server-side count",
    )
    assert _server_inflight(10.0, 64.0, ns, np.array([1.0, 140.625, 300.0])) == (9.0, ())
    assert _server_inflight(10.0, 64.0, ns, np.array([1.0, 500.0, 900.0])) == (10.0, ())
    assert _server_inflight(10.0, 64.0, ns, np.array([1.0, np.nan, 900.0])) == (None, ())
    assert _server_inflight(10.0, 64.0, ns, None) == (None, ())


def test_fit_warnings_threshold_and_text() -> None:
    assert _fit_warnings(0.9, {"r2": 0.9}) == ()  # R^2 = 0.9 is good enough
    assert _fit_warnings(0.95, None) == ()
    assert _fit_warnings(0.5, {"r2": 0.25}) == (
        "USL fit is poor (R^2 = 0.50 < 0.9): the sweep's throughput is noisy (a busy load "
        "generator or host, or steps too short); treat X_op and N* as rough and re-run the "
        "sweep with longer steps on a quiet machine",
        "p99-vs-throughput fit is poor (R^2 = 0.25)",
    )
    assert _fit_warnings(float("nan"), None)[0].startswith("USL fit is poor (R^2 = nan")


def test_with_concurrency_by_hand() -> None:
    """USL lambda 100, sigma 0.1, kappa 0.01: X(2) = 200 / 1.12 = 1250 / 7 (test_curves);
    latency curve a 5, b 2, saturation 300: u = (1250/7) / 300 = 25/42, p99 = 5 + 2 x 25/17
    = 7.941176; L = 2 / X = 0.0112 s; 30 of 40 in flight at the server -> 1.5 of 2.
    At N = 16, X = 16000 / 49 = 326.5 > 300: the curve is infinite, so no p99."""
    op = OperatingPoint(
        "sweep-closed", 40.0, 300.0, 0.13, p99_ms=90.0,
        usl={"lambda": 100.0, "sigma": 0.1, "kappa": 0.01, "r2": 1.0},
        latency_model={"a_ms": 5.0, "b_ms": 2.0, "saturation": 300.0, "r2": 1.0},
        notes=("earlier",), server_inflight=30.0,
    )
    two = with_concurrency(op, 2)
    assert two.concurrency == 2.0 and two.throughput == pytest.approx(1250 / 7, rel=1e-12)
    assert two.mean_latency_s == pytest.approx(0.0112, rel=1e-12)
    assert two.p99_ms == pytest.approx(5 + 50 / 17, rel=1e-12)
    assert two.server_inflight == pytest.approx(1.5, rel=1e-12)
    assert two.notes == ("earlier", "c_op = 2 given by hand (sweep suggested 40)")
    assert with_concurrency(op, 16).p99_ms is None
    no_curve = OperatingPoint("sweep-closed", 40.0, 300.0, 0.13, usl=op.usl)
    assert with_concurrency(no_curve, 2).p99_ms is None
    assert with_concurrency(no_curve, 2).server_inflight == 2.0
    with pytest.raises(AnalysisError) as info:
        with_concurrency(operating_point_manual(10, 1), 2)
    assert str(info.value) == "overriding the concurrency needs a USL fit (a closed-loop sweep)"


RATE = np.array([100, 200, 300, 400, 500, 600], dtype=float)
OPEN_P99 = 5 + 20 * (RATE / 800) / (1 - RATE / 800)  # 7.857 10.0 17.0 25.0 38.33 65.0
MEAN = np.array([8, 8.5, 9, 10, 20, 80], dtype=float)


def test_open_loop_point_by_hand() -> None:
    """SLO 30 ms: 400 req/s (p99 25) is the highest passing rate; c_op = 400 x 0.010 = 4.
    Its four points at or below 400 lie on p99 = 5 + 20 u / (1 - u), u = X / 800, exactly."""
    op = operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, slo_p99_ms=30)
    assert (op.source, op.throughput, op.mean_latency_s, op.p99_ms) == (
        "sweep-open", 400.0, 0.01, 25.0
    )
    assert op.concurrency == pytest.approx(4.0, rel=1e-12)
    lat = op.latency_model
    assert lat is not None
    assert (lat["a_ms"], lat["b_ms"], lat["saturation"]) == pytest.approx((5, 20, 800), rel=1e-6)
    # three points up to 300 req/s are too few for a curve
    assert operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 20).latency_model is None


def test_open_loop_errors_and_boundaries() -> None:
    # a p99 exactly at the SLO passes; 1 % errors pass, 2 % do not (400 fails, answer 300)
    assert operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 25.0).throughput == 400.0
    err = np.array([0, 0, 0, 0.01, 0, 0])
    assert operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 30, err).throughput == 400.0
    err[3] = 0.02
    assert operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 30, err).throughput == 300.0
    # a lucky rate past a failing one is not trusted
    lucky = OPEN_P99.copy()
    lucky[1] = 50.0
    assert operating_point_open_loop(RATE, RATE, lucky, MEAN, 30).throughput == 100.0
    # every rate passes: the highest, 600
    assert operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 100.0).throughput == 600.0
    # the same rate twice, once failing: neither copy counts
    twice = np.array([100.0, 200.0, 200.0, 300.0])
    p99_twice = np.array([8.0, 50.0, 10.0, 17.0])
    mean_twice = np.array([8.0, 9.0, 9.0, 10.0])
    assert operating_point_open_loop(twice, twice, p99_twice, mean_twice, 30).throughput == 100.0
    with pytest.raises(AnalysisError) as info:
        operating_point_open_loop(RATE, RATE, OPEN_P99, MEAN, 5.0)
    assert str(info.value) == "no swept rate meets the SLO: no operating point"
