"""Rank statistics from histograms agree with SciPy / brute force on expanded samples."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from scipy import stats

from harness.analysis.disttest import anderson_ksamp_hist
from harness.analysis.histdata import HdrLayout, Histogram
from harness.analysis.ranktests import (
    hodges_lehmann,
    long_run_variance,
    mann_whitney,
    placement_deviations,
)


def _hist(x: np.ndarray) -> Histogram:
    return Histogram.from_pairs(x, np.ones(x.size, dtype=np.int64))


def _samples(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # integer values -> many ties, like HDR buckets
    a = rng.integers(1, 40, rng.integers(5, 300)).astype(float)
    b = rng.integers(3, 45, rng.integers(5, 300)).astype(float)
    return a, b


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("continuity", [True, False])
def test_mann_whitney_equals_scipy_on_expanded_samples(seed: int, continuity: bool) -> None:
    a, b = _samples(seed)
    mw = mann_whitney(_hist(a), _hist(b), continuity=continuity)
    ref = stats.mannwhitneyu(b, a, method="asymptotic", use_continuity=continuity)
    assert mw.u_b == pytest.approx(ref.statistic, abs=1e-9)
    assert mw.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    greater = (b[:, None] > a[None, :]).mean()
    less = (b[:, None] < a[None, :]).mean()
    assert mw.cliffs_delta == pytest.approx(greater - less)
    assert mw.cles == pytest.approx(greater + (1 - greater - less) / 2)


@pytest.mark.parametrize("seed", range(6))
def test_hodges_lehmann_is_the_median_pairwise_difference(seed: int) -> None:
    a, b = _samples(seed)
    hl = hodges_lehmann(_hist(a), _hist(b))
    diffs = (b[:, None] - a[None, :]).ravel()
    assert hl.shift == pytest.approx(np.quantile(diffs, 0.5, method="inverted_cdf"), abs=1e-2)
    assert hl.lo <= hl.shift <= hl.hi


def test_hodges_lehmann_interval_covers_a_known_shift() -> None:
    rng = np.random.default_rng(11)
    a = np.rint(rng.lognormal(np.log(5000), 0.4, 4000))
    b = np.rint(rng.lognormal(np.log(5000), 0.4, 4000)) + 300
    hl = hodges_lehmann(_hist(a), _hist(b))
    assert hl.lo < 300 < hl.hi
    assert hl.lo > 0  # and the shift is resolved


@pytest.mark.parametrize("seed", range(5))
def test_anderson_darling_equals_scipy_midrank(seed: int) -> None:
    a, b = _samples(seed)
    ours = anderson_ksamp_hist([_hist(a), _hist(b)])
    ref = stats.anderson_ksamp([a, b], variant="midrank", method=stats.PermutationMethod(1))
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)


def test_hdr_layout_matches_hdrhistogram() -> None:
    h = HdrHistogram(1, 60_000_000, 3)
    layout = HdrLayout()
    rng = np.random.default_rng(2)
    values = np.unique(np.concatenate([np.arange(1, 4200), rng.integers(1, 60_000_000, 3000)]))
    idx = layout.index_of(values)
    assert list(idx) == [h._counts_index_for(int(v)) for v in values]
    expect = [h.get_highest_equivalent_value(h.get_value_from_index(int(i))) for i in idx]
    assert list(layout.value_of(idx)) == expect


def test_percentile_matches_hdrhistogram() -> None:
    rng = np.random.default_rng(3)
    lat = np.rint(rng.lognormal(np.log(5000), 0.7, 5000)).astype(int)
    h = HdrHistogram(1, 60_000_000, 3)
    for v in lat:
        h.record_value(int(v))
    layout = HdrLayout()
    ours = Histogram.from_pairs(layout.value_of(layout.index_of(lat)), np.ones(lat.size, int))
    for pct in (50, 90, 99, 99.9):
        assert ours.percentile(pct) == h.get_value_at_percentile(pct)


def test_placement_deviations_sum_to_zero_and_reproduce_cles() -> None:
    rng = np.random.default_rng(4)
    ca = rng.poisson(3.0, (50, 30)).astype(np.float32)
    cb = rng.poisson(3.0, (50, 30)).astype(np.float32)
    d_a, d_b, theta = placement_deviations(ca, cb)
    assert abs(d_a.sum()) < 1e-4 and abs(d_b.sum()) < 1e-4
    grid = np.arange(30.0)
    mw = mann_whitney(
        Histogram.from_pairs(grid, ca.sum(0).astype(int)),
        Histogram.from_pairs(grid, cb.sum(0).astype(int)),
    )
    assert theta == pytest.approx(mw.cles)


def test_long_run_variance_of_ar1_matches_theory() -> None:
    """Var(sum x) = n * sigma^2 / (1 - phi)^2 for an AR(1) with innovation sd sigma."""
    rng = np.random.default_rng(5)
    phi, n, reps = 0.6, 2000, 30
    est = []
    for _ in range(reps):
        e = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = e[0] / np.sqrt(1 - phi**2)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + e[t]
        est.append(long_run_variance(x))
    theory = n / (1 - phi) ** 2
    assert np.mean(est) == pytest.approx(theory, rel=0.1)
