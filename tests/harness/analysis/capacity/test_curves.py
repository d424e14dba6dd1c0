"""USL and latency fits recover known parameters; knee and max-under-SLO by hand."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import stats

from harness.analysis.capacity.curves import (
    Knee,
    LatencyModel,
    USLModel,
    find_knee,
    max_throughput_under_slo,
    usl_throughput,
)
from harness.errors import InsufficientData
from tests.harness.analysis.capacity.usl_truth import usl_peak, usl_x

N = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128], dtype=float)
LAM, SIGMA, KAPPA = 1000.0, 0.05, 0.0005


@pytest.mark.parametrize("usl", [usl_throughput, usl_x], ids=["module", "tests' own"])
def test_usl_formula_by_hand(usl) -> None:
    """X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), worked out by hand.

    lambda 100, sigma 0.1, kappa 0.01:
      X(1)  = 100 / (1 + 0 + 0)                                 = 100 (no overhead at N = 1)
      X(2)  = 200 / (1 + 0.1 * 1 + 0.01 * 2 * 1)  = 200 / 1.12  = 1250 / 7  = 178.5714...
      X(16) = 1600 / (1 + 0.1 * 15 + 0.01 * 16 * 15) = 1600 / 4.9 = 16000 / 49 = 326.5306...
    (kappa N^2 would give 200 / 1.14 and 1600 / 5.06; sigma N would give X(1) = 100 / 1.1)
    lambda 1000, sigma 0.05, kappa 0.0005:
      X(2)  = 2000 / (1 + 0.05 + 0.001)           = 2000 / 1.051   = 1902.9496...
      X(16) = 16000 / (1 + 0.75 + 0.0005 * 240)   = 16000 / 1.87   = 8556.1497...
    """
    got = usl(np.array([1.0, 2.0, 16.0]), 100.0, 0.1, 0.01)
    np.testing.assert_allclose(got, [100.0, 1250 / 7, 16000 / 49], rtol=1e-12)
    got = usl(np.array([1.0, 2.0, 16.0]), LAM, SIGMA, KAPPA)
    np.testing.assert_allclose(got, [1000.0, 2000 / 1.051, 16000 / 1.87], rtol=1e-12)


def test_usl_fit_of_exact_data_recovers_parameters_and_peak_by_hand() -> None:
    """Noise-free data from the tests' own formula (lambda 100, sigma 0.1, kappa 0.01).

    N* = sqrt((1 - sigma) / kappa) = sqrt(0.9 / 0.01) = sqrt(90) = 9.48683...
    X(N*) = lambda N* / (2 (1 - sigma) + (sigma - kappa) N*)   (kappa N*^2 = 1 - sigma)
          = 100 sqrt(90) / (1.8 + 0.09 sqrt(90)) = 948.683 / 2.653815 = 357.479...
    """
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32], dtype=float)
    fit = USLModel().fit(n, usl_x(n, 100.0, 0.1, 0.01)).result_
    assert fit.lambda_.value == pytest.approx(100.0, rel=1e-5)
    assert fit.sigma.value == pytest.approx(0.1, rel=1e-4)
    assert fit.kappa.value == pytest.approx(0.01, rel=1e-4)
    assert fit.n_star == pytest.approx(math.sqrt(90), rel=1e-4)
    assert fit.n_star == pytest.approx(9.486833, rel=1e-4)
    assert fit.x_max == pytest.approx(357.479067, rel=1e-5)
    assert usl_peak(100.0, 0.1, 0.01) == pytest.approx((9.486833, 357.479067), rel=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_usl_recovers_parameters_from_noisy_data(seed: int) -> None:
    """2 % multiplicative noise: lambda within 10 %, sigma within 0.015, kappa within 15 %."""
    rng = np.random.default_rng(seed)
    x = usl_x(N, LAM, SIGMA, KAPPA) * (1 + rng.normal(0, 0.02, N.size))
    fit = USLModel().fit(N, x).result_
    assert fit.lambda_.value == pytest.approx(LAM, rel=0.10)
    assert fit.sigma.value == pytest.approx(SIGMA, abs=0.015)
    assert fit.kappa.value == pytest.approx(KAPPA, rel=0.15)
    assert fit.r2 > 0.99
    true_nstar = math.sqrt((1 - SIGMA) / KAPPA)  # 43.59
    assert fit.n_star == pytest.approx(true_nstar, rel=0.10)
    assert fit.x_max == pytest.approx(usl_peak(LAM, SIGMA, KAPPA)[1], rel=0.05)
    assert fit.lambda_.lo < fit.lambda_.value < fit.lambda_.hi


def test_usl_confidence_intervals_cover_truth_near_nominal() -> None:
    """95 % intervals over 400 seeded fits: neither too narrow nor too wide.

    Coverage, both parameters: binomial band around 0.95, 366..394 of 400 (3.2 standard
    deviations of Bin(400, .95) each way). With absolute residuals kappa's interval ran short
    under this multiplicative noise (355/400 = 0.89: the high-N steps, noisier in absolute
    terms, counted as precise as the low ones); the fit weighs residuals relative to the
    measured rate, and then covers sigma 374, kappa 378 of these 400. Width, both parameters:
    the half-width / t(0.975, 8 dof) over the spread of the estimates across fits lies in
    0.7..1.3 (sampling error of a 400-fit spread is ~4 %); an interval twice too wide, or
    half as wide, fails it whatever its coverage.
    """
    trials = 400
    t = stats.t.ppf(0.975, N.size - 3)
    est = {"sigma": [], "kappa": []}
    half = {"sigma": [], "kappa": []}
    covered = {"sigma": 0, "kappa": 0}
    for seed in range(trials):
        rng = np.random.default_rng(100 + seed)
        x = usl_x(N, LAM, SIGMA, KAPPA) * (1 + rng.normal(0, 0.02, N.size))
        f = USLModel(ci_level=0.95).fit(N, x).result_
        for name, truth, p in (("sigma", SIGMA, f.sigma), ("kappa", KAPPA, f.kappa)):
            covered[name] += p.lo <= truth <= p.hi
            est[name].append(p.value)
            half[name].append((p.hi - p.lo) / 2)
    assert 366 <= covered["sigma"] <= 394, covered
    assert 366 <= covered["kappa"] <= 394, covered
    for name in est:
        ratio = np.mean(half[name]) / t / np.std(est[name], ddof=1)
        assert 0.7 <= ratio <= 1.3, (name, ratio)


def test_usl_robust_to_one_outlier() -> None:
    x = usl_x(N, LAM, SIGMA, KAPPA)
    x[5] *= 0.5  # one broken step
    fit = USLModel().fit(N, x).result_
    assert fit.kappa.value == pytest.approx(KAPPA, rel=0.10)
    plain = USLModel(loss="linear").fit(N, x).result_
    assert abs(plain.kappa.value - KAPPA) > abs(fit.kappa.value - KAPPA)


def test_usl_linear_system_has_infinite_peak_and_littles_law() -> None:
    m = USLModel().fit(N, 50.0 * N)
    assert m.kappa_ == pytest.approx(0.0, abs=1e-6)
    assert m.n_star_ > 1000
    np.testing.assert_allclose(m.mean_latency_s(np.array([10.0])), [0.02], rtol=1e-4)


def test_too_few_points_is_insufficient_data() -> None:
    with pytest.raises(InsufficientData) as info:
        USLModel().fit([1, 2, 2, 4], [10, 19, 19, 30])
    assert info.value.needed == 1
    with pytest.raises(InsufficientData):
        LatencyModel().fit([1, 2], [3, 4])


def test_latency_model_recovers_queueing_curve() -> None:
    rng = np.random.default_rng(7)
    x = np.linspace(100, 900, 9)
    y = (5 + 2 * (x / 1000) / (1 - x / 1000)) * (1 + rng.normal(0, 0.01, x.size))
    m = LatencyModel().fit(x, y)
    assert m.a_ms_ == pytest.approx(5, rel=0.05)
    assert m.b_ms_ == pytest.approx(2, rel=0.15)
    assert m.saturation_ == pytest.approx(1000, rel=0.02)
    # inverse by hand: 5 + 2u/(1-u) = 20 -> u = 15/17
    assert m.throughput_at(20.0) == pytest.approx(1000 * 15 / 17, rel=0.02)


def test_knee_matches_hand_computation() -> None:
    # normalised x: 0 .25 .5 .75 1; y: 0 .025 .075 .25 1; chord - y peaks (0.5) at x=4
    k = find_knee([1, 2, 3, 4, 5], [1, 1.1, 1.3, 2, 5])
    assert (k.x, k.y, k.index) == (4.0, 2.0, 3)
    assert k.distance == pytest.approx(0.5)
    # concave: throughput flattening; y_n = 0 .8 .9 .95 1 -> y - chord peaks at x=2 (0.55)
    k2 = find_knee([1, 2, 3, 4, 5], [0, 80, 90, 95, 100], curve="concave")
    assert k2.x == 2.0 and k2.distance == pytest.approx(0.55)


def test_max_under_slo_hand_example() -> None:
    load = np.array([100, 200, 300, 400, 500, 600, 700], dtype=float)
    thr = load.copy()
    p99 = 5 + 2 * (thr / 1000) / (1 - thr / 1000)  # 5.22 5.5 5.86 6.33 7 8 9.67
    p99_noisy = p99.copy()
    p99_noisy[6] = 8.5  # measured passes at 700 ...
    model = LatencyModel().fit(thr, p99)
    r = max_throughput_under_slo(load, thr, p99_noisy, slo_ms=9.0, model=model)
    # ... but the fitted p99 at 700 (9.67) misses 9 ms: the answer is 600, not 700
    assert r.throughput == 600.0 and r.first_failing_load == 700.0
    # fitted crossing by hand: 5 + 2u/(1-u) = 9 -> u = 2/3
    assert r.fitted_crossing == pytest.approx(1000 * 2 / 3, rel=0.01)
    # an error-rate failure at 400 stops the walk there
    err = np.array([0, 0, 0, 0.05, 0, 0, 0])
    r2 = max_throughput_under_slo(load, thr, p99, 9.0, model=model, error_rate=err)
    assert r2.throughput == 300.0


def test_mean_latency_is_littles_law_minus_think_time() -> None:
    """lambda 100, sigma 0.1, kappa 0.01: X(10) = 1000 / (1 + 0.9 + 0.9) = 357.14/s, so
    R(10) = 10 / X(10) = 28 ms; less 5 ms of think time, 23 ms."""
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32], dtype=float)
    m = USLModel().fit(n, usl_x(n, 100.0, 0.1, 0.01))
    assert m.mean_latency_s(np.array([10.0]))[0] == pytest.approx(0.028, rel=1e-5)
    assert m.mean_latency_s(np.array([10.0]), think_time_s=0.005)[0] == pytest.approx(
        0.023, rel=1e-5
    )


def test_latency_curve_diverges_at_saturation_without_warnings() -> None:
    """u = X / c: at u = 1 and beyond the latency is infinite (also with b = 0, where
    b u / (1 - u) would be 0 / 0); below, a + b u / (1 - u): u = 1/2 -> 5 + 2 = 7."""
    from harness.analysis.capacity.curves import latency_curve

    got = latency_curve(np.array([500.0, 1000.0, 1500.0]), 5.0, 2.0, 1000.0)
    np.testing.assert_array_equal(got, [7.0, np.inf, np.inf])
    np.testing.assert_array_equal(
        latency_curve(np.array([500.0, 1000.0]), 5.0, 0.0, 1000.0), [5.0, np.inf]
    )


def test_latency_fit_is_unit_free_and_robust() -> None:
    """The same points in seconds give the same curve x 1/1000, outlier and all (the robust
    loss is scaled to the data), and a zero-load latency below 1 (ms or s) is allowed."""
    rng = np.random.default_rng(7)
    x = np.linspace(100, 900, 9)
    y = (5 + 2 * (x / 1000) / (1 - x / 1000)) * (1 + rng.normal(0, 0.01, x.size))
    y[4] *= 1.5  # one broken step
    ms = LatencyModel().fit(x, y)
    s = LatencyModel().fit(x, y / 1000)
    assert (s.a_ms_ * 1000, s.b_ms_ * 1000, s.saturation_) == pytest.approx(
        (ms.a_ms_, ms.b_ms_, ms.saturation_), rel=1e-6
    )
    assert ms.a_ms_ == pytest.approx(5, rel=0.05)  # the outlier does not drag the fit
    sub = LatencyModel().fit(x, 0.5 + 2 * (x / 1000) / (1 - x / 1000))
    assert (sub.a_ms_, sub.b_ms_, sub.saturation_) == pytest.approx((0.5, 2, 1000), rel=1e-6)


def test_latency_fit_edges() -> None:
    x = np.linspace(100, 900, 9)
    # no curvature: the saturation stops at its bound, 50 x the largest throughput
    flat = LatencyModel().fit(x, 5 + 0.001 * x)
    assert flat.saturation_ == pytest.approx(50 * 900, rel=1e-9)
    # four distinct loads are enough; the intervals are 95 % ones and bracket the value
    four = LatencyModel().fit(x[:4], 5 + 2 * (x[:4] / 1000) / (1 - x[:4] / 1000))
    r = four.result_
    assert r.ci_level == 0.95 and r.n_points == 4 and r.r2 == four.r2_
    assert (r.a_ms.value, r.b_ms.value, r.saturation.value) == (
        four.a_ms_, four.b_ms_, four.saturation_
    )
    for p in (r.a_ms, r.b_ms, r.saturation):
        assert p.lo <= p.value <= p.hi and np.isfinite([p.lo, p.hi]).all()
    with pytest.raises(InsufficientData) as info:
        LatencyModel().fit([1, 2, 2], [3, 4, 5])
    assert str(info.value) == "latency fit needs at least 4 distinct load levels, got 2"


def test_throughput_at_inverts_the_curve() -> None:
    """a 5, b 0.5, saturation 1000: 5 + 0.5 u / (1 - u) = 6 -> u = 1 / 1.5 -> 666.67/s.
    At or below the zero-load latency no throughput is fast enough: 0."""
    x = np.linspace(100, 900, 9)
    m = LatencyModel().fit(x, 5 + 0.5 * (x / 1000) / (1 - x / 1000))
    assert m.b_ms_ == pytest.approx(0.5, rel=1e-6)
    assert m.throughput_at(6.0) == pytest.approx(1000 / 1.5, rel=1e-6)
    assert m.throughput_at(4.0) == 0.0


def test_knee_edges_by_hand() -> None:
    # exactly three points are enough: normalised y 0 .1 1, chord - y peaks (0.4) at x = 2
    k = find_knee([1, 2, 3], [1, 1.1, 2])
    assert (k.x, k.index) == (2.0, 1) and k.distance == pytest.approx(0.4)
    # a flat curve has no knee: the first point, distance 0
    assert find_knee([1, 2, 3], [4, 4, 4]) == Knee(1.0, 4.0, 0, 0.0)
    # a small span (seconds, not ms) is still a span: same knee as the ms example, scaled
    k = find_knee([1, 2, 3, 4, 5], [0.01, 0.011, 0.013, 0.02, 0.05])
    assert (k.x, k.index) == (4.0, 3) and k.distance == pytest.approx(0.5)
    # a first point above the minimum: y_n = .05 0 .075 .25 1, chord .05 + .95 x_n;
    # chord - y = 0 .2875 .45 .5125 0 -> x = 4, distance 0.5125
    k = find_knee([1, 2, 3, 4, 5], [1.2, 1, 1.3, 2, 5])
    assert k.x == 4.0 and k.distance == pytest.approx(0.5125)
    with pytest.raises(ValueError) as info:
        find_knee([1, 2, 3], [1, 2, 3], curve="concave-up")
    assert str(info.value) == "curve must be 'convex' or 'concave'"
    with pytest.raises(InsufficientData) as info:
        find_knee([1, 2], [1, 2])
    assert str(info.value) == "knee needs at least 3 distinct load levels, got 2"


def _exact_model() -> LatencyModel:
    """p99 = 5 + 2 u / (1 - u), u = X / 1000, exactly (its fitted values set by hand)."""
    m = LatencyModel()
    m.a_ms_, m.b_ms_, m.saturation_ = 5.0, 2.0, 1000.0
    return m


def test_max_under_slo_boundaries_and_record() -> None:
    """At 500/s the curve gives 5 + 2 x 1 = 7 ms exactly: an SLO of 7 ms is met, measured and
    fitted; 1 % errors are allowed, 2 % are not. A load that failed once is not trusted even
    where a repeat of it passed."""
    from harness.analysis.capacity.curves import MaxUnderSLO

    load = np.array([100.0, 300.0, 500.0, 700.0])
    p99 = 5 + 2 * (load / 1000) / (1 - load / 1000)  # 5.22 5.857 7 9.667
    m = _exact_model()
    r = max_throughput_under_slo(load, load, p99, 7.0, model=m)
    assert r == MaxUnderSLO(7.0, 500.0, 500.0, 7.0, 7.0, 500.0, 700.0)
    err = np.array([0, 0, 0.01, 0])
    assert max_throughput_under_slo(load, load, p99, 7.0, m, err).throughput == 500.0
    err[2] = 0.02
    assert max_throughput_under_slo(load, load, p99, 7.0, m, err).throughput == 300.0
    # nothing passes: the crossing (u = 1/3 for 6 ms) and the first failing load still told
    none = max_throughput_under_slo(load, load, p99, 5.1, model=m)
    assert none.first_failing_load == 100.0 and none.throughput is None
    assert none == MaxUnderSLO(5.1, None, None, None, None, none.fitted_crossing, 100.0)
    assert none.fitted_crossing == pytest.approx(1000 * 0.1 / 2.1, rel=1e-12)
    # the same load twice, once failing: neither copy counts
    twice = np.array([100.0, 300.0, 300.0, 500.0])
    p99_twice = np.array([5.2, 20.0, 5.9, 7.0])
    assert max_throughput_under_slo(twice, twice, p99_twice, 7.0, model=m).throughput == 100.0


def test_max_under_slo_fits_its_own_model_when_none_is_given() -> None:
    load = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0])
    p99 = 5 + 2 * (load / 1000) / (1 - load / 1000)
    r = max_throughput_under_slo(load, load, p99, 9.0)
    assert r.throughput == 600.0 and r.p99_fitted_ms == pytest.approx(8.0, rel=1e-6)
    assert r.fitted_crossing == pytest.approx(1000 * 2 / 3, rel=1e-6)


def test_usl_fit_domain() -> None:
    """Zero concurrency or negative throughput is refused; a step that completed nothing
    (X = 0), a slow system (X < 1 request/s) and an average concurrency below 1 (the server's
    in-flight requests at light load) are fine."""
    from harness.errors import AnalysisError

    n = np.array([1, 2, 4, 8, 16], dtype=float)
    for bad_n, bad_x in ((np.array([0.0, 2, 4, 8, 16]), usl_x(n, 100, 0.1, 0.01)),
                         (n, np.array([100.0, 190.0, -1.0, 500.0, 600.0]))):
        with pytest.raises(AnalysisError) as info:
            USLModel().fit(bad_n, bad_x)
        assert str(info.value) == "USL fit needs concurrency > 0 and throughput >= 0"
    light = np.array([0.1, 0.25, 0.5, 1, 2, 4, 8, 16])
    fit = USLModel().fit(light, usl_x(light, 100, 0.1, 0.01))
    assert fit.lambda_ == pytest.approx(100, rel=1e-4) and fit.kappa_ == pytest.approx(0.01, 1e-3)
    slow = USLModel().fit(n, usl_x(n, 0.1, 0.1, 0.01))  # requests/s per unit of N: 0.1
    assert slow.lambda_ == pytest.approx(0.1, rel=1e-4)
    assert slow.kappa_ == pytest.approx(0.01, rel=1e-3)
    USLModel().fit(n, np.array([0.0, 190.0, 330.0, 500.0, 600.0]))
    with pytest.raises(InsufficientData) as info:
        USLModel().fit([1, 2, 3], [1, 2, 3])
    assert str(info.value) == "USL fit needs at least 4 distinct load levels, got 3"


def test_usl_contention_is_at_most_one() -> None:
    """Throughput falling from N = 1 on (100, 90, 80, 70, 60) would need sigma > 1; sigma is
    a share of serialised work, so the fit stops at 1 and puts the rest into kappa."""
    fit = USLModel().fit(np.array([1, 2, 4, 8, 16.0]), np.array([100, 90, 80, 70, 60.0])).result_
    assert fit.sigma.value == pytest.approx(1.0, abs=1e-9) and fit.sigma.hi <= 1.0
    assert fit.kappa.value > 0


def test_usl_peak_without_coherency_penalty() -> None:
    """kappa = 0: X(N) rises for ever toward lambda / sigma, so N* is infinite and X(N*) is
    that asymptote: 100 / 0.25 = 400; with no contention either, infinite too."""
    m = USLModel()
    m.lambda_, m.sigma_, m.kappa_ = 100.0, 0.25, 0.0
    m.n_star_ = m._n_star()
    assert m.n_star_ == math.inf and m._x_max() == 400.0
    m.sigma_ = 0.0
    assert m._x_max() == math.inf
    m.lambda_, m.sigma_, m.kappa_ = 100.0, 0.1, 0.01  # N* = sqrt(90), X(N*) = 357.479
    m.n_star_ = m._n_star()
    assert (m.n_star_, m._x_max()) == pytest.approx(usl_peak(100.0, 0.1, 0.01), rel=1e-12)


def test_usl_intervals_on_four_points_by_hand(caplog: pytest.LogCaptureFixture) -> None:
    """4 points, 3 parameters: 1 degree of freedom, so a 90 % interval is value +- t(0.95, 1)
    x stderr = 6.3138 stderr (SciPy's t), in req/s for lambda, clipped at 0 for the others."""
    n = np.array([1, 2, 4, 8], dtype=float)
    x = usl_x(n, 100.0, 0.1, 0.01) * (1 + np.array([0.01, -0.02, 0.015, -0.01]))
    with caplog.at_level(logging.DEBUG, logger="harness.analysis.capacity.curves"):
        fit = USLModel(ci_level=0.9).fit(n, x).result_
    t = stats.t.ppf(0.95, 1)
    lam = fit.lambda_
    assert lam.value == pytest.approx(100.0, rel=0.03) and lam.stderr > 1  # the truth: 100
    assert (lam.lo, lam.hi) == pytest.approx(
        (lam.value - t * lam.stderr, lam.value + t * lam.stderr), rel=1e-9
    )
    for p in (fit.sigma, fit.kappa):
        assert p.lo == max(p.value - t * p.stderr, 0.0)
        assert p.hi == pytest.approx(p.value + t * p.stderr, rel=1e-9)
    assert (fit.n_points, fit.ci_level) == (4, 0.9)
    assert [r.getMessage() for r in caplog.records] == [f"USL fit {fit}"]


def test_r2_by_hand() -> None:
    """y 0.1 0.2 0.3 (mean 0.2, ss_tot 0.02), fitted 0.1 0.2 0.35 (ss_res 0.0025):
    R^2 = 1 - 0.0025 / 0.02 = 0.875. Constant y has no variance to explain: nan."""
    from harness.analysis.capacity.curves import _r2

    assert _r2(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.35])) == pytest.approx(0.875)
    assert math.isnan(_r2(np.array([3.0, 3.0, 3.0]), np.array([3.0, 3.0, 3.0])))


def test_a_latency_fit_that_cannot_converge_says_so() -> None:
    """A last step 100,000x slower than the rest: SciPy gives up from every starting point."""
    from harness.errors import AnalysisError

    x = np.linspace(100, 900, 9)
    y = 5 + 2 * (x / 1000) / (1 - x / 1000)
    y[-1] = 1e6
    with pytest.raises(AnalysisError) as info:
        LatencyModel().fit(x, y)
    assert str(info.value) == "latency fit did not converge from any starting point"


def test_points_that_are_not_finite_are_dropped_before_fitting() -> None:
    """A step whose throughput could not be measured (nan) or whose p99 overflowed (inf) is left
    out; the fit is the one without it. Lengths that differ are refused, naming both."""
    from harness.errors import AnalysisError

    n = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32], dtype=float)
    x = usl_x(n, 100.0, 0.1, 0.01)
    holed = x.copy()
    holed[3] = np.nan
    with_hole = USLModel().fit(n, holed).result_
    without = USLModel().fit(np.delete(n, 3), np.delete(x, 3)).result_
    assert with_hole == without and with_hole.n_points == 9
    lat = np.linspace(100, 900, 9)
    p99 = 5 + 2 * (lat / 1000) / (1 - lat / 1000)
    p99[2] = np.inf
    assert LatencyModel().fit(lat, p99).result_.n_points == 8
    with pytest.raises(AnalysisError) as info:
        USLModel().fit([1, 2, 4, 8], [1, 2, 3])
    assert str(info.value) == "USL fit: x and y differ in length (4 vs 3)"
