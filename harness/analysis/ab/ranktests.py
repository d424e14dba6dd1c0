"""Mann-Whitney U, Hodges-Lehmann shift and effect sizes computed from histograms.

Why: Kayenta-style judges rank every request (or every time bucket) as if it were
independent. Latency is not: all requests of a busy second are slow together, so the
textbook variance of U is far too small and an A/A comparison of two runs "finds" a
regression most of the time. Here:

* U, the common-language effect size (CLES = P(B > A) + P(B = A)/2) and Cliff's delta
  (2 CLES - 1) are computed exactly from the merged histograms. Every sample in one HDR
  bucket is a tie; ties get mid-ranks and the tie-corrected variance
  n_a n_b / 12 * ((N + 1) - sum(t^3 - t) / (N (N - 1))). `mann_whitney` equals
  `scipy.stats.mannwhitneyu` on the expanded samples, without expanding them.
* The *variance* used for the p-value and the intervals is autocorrelation-robust: by the
  Hoeffding (DeLong) decomposition, CLES - theta is a sum of per-request placement
  deviations. Summing them per second gives a short time series; its long-run variance is
  the larger of an AR(1)-prewhitened Newey-West (Bartlett) estimate with Andrews' plug-in
  bandwidth (Andrews & Monahan 1992) and an ARMA(1,1) correlogram fit (AR(1) load plus
  per-second noise), and p-values use Student-t with the effective number of independent
  seconds minus one degrees of freedom. In a split run the two arms share each second,
  so their deviations are added per second before the variance is taken: a slow second
  moves both arms and cancels, which is why concurrent arms are the better design. For two
  separate runs the two series' variances add. `design_effect` = robust / textbook variance.
* The Hodges-Lehmann shift (median of all pairwise differences B - A) and its interval are
  found by bisection on the pairwise-difference CDF, evaluated with one `searchsorted` per
  step (O(K log K) in the number of distinct values, never O(n_a n_b)); the interval
  inverts the rank test with the robust standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.latency.sparse import SparseHist

__all__ = [
    "MannWhitney",
    "ShiftEstimate",
    "effective_size",
    "hodges_lehmann",
    "lag1_autocorrelation",
    "long_run_variance",
    "mann_whitney",
    "placement_deviations",
    "short_run_variance",
]


@dataclass(frozen=True, slots=True)
class MannWhitney:
    """Rank-sum comparison of B against A (textbook i.i.d. variance, ties corrected)."""

    u_b: float  # pairs with B > A, ties counted one half
    n_a: int
    n_b: int
    cles: float  # P(B > A) + P(B = A) / 2
    cliffs_delta: float  # P(B > A) - P(B < A)
    var_u: float
    z: float
    p_value: float


@dataclass(frozen=True, slots=True)
class ShiftEstimate:
    """Hodges-Lehmann shift of B relative to A (us) with its confidence interval."""

    shift: float
    lo: float
    hi: float
    level: float


def _aligned(a: SparseHist, b: SparseHist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.union1d(a.values, b.values)
    ca = np.zeros(grid.size)
    cb = np.zeros(grid.size)
    ca[np.searchsorted(grid, a.values)] = a.counts
    cb[np.searchsorted(grid, b.values)] = b.counts
    return grid, ca, cb


def mann_whitney(a: SparseHist, b: SparseHist, continuity: bool = True) -> MannWhitney:
    """Mann-Whitney U of B vs A from two histograms, as `mannwhitneyu(B, A)` would give."""
    _, ca, cb = _aligned(a, b)
    n_a, n_b = float(ca.sum()), float(cb.sum())
    if n_a == 0 or n_b == 0:
        return MannWhitney(math.nan, int(n_a), int(n_b), math.nan, math.nan, math.nan, 0.0, 1.0)
    t = ca + cb
    n = n_a + n_b
    midrank = np.cumsum(t) - t + (t + 1) / 2
    u_b = float(cb @ midrank - n_b * (n_b + 1) / 2)
    tie_term = float(np.sum(t**3 - t)) / (n * (n - 1)) if n > 1 else 0.0
    var_u = n_a * n_b / 12 * ((n + 1) - tie_term)
    mu = n_a * n_b / 2
    u_max = max(u_b, n_a * n_b - u_b)
    if var_u > 0:
        z = (u_max - mu - (0.5 if continuity else 0.0)) / math.sqrt(var_u)
        p = min(1.0, 2 * float(stats.norm.sf(z)))
    else:
        z, p = 0.0, 1.0
    cles = u_b / (n_a * n_b)
    return MannWhitney(u_b, int(n_a), int(n_b), cles, 2 * cles - 1, var_u, z, p)


def placement_deviations(
    counts_a: np.ndarray, counts_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-window sums of placement deviations (the U statistic's influence), both arms.

    `counts_*` are ``(windows x bins)`` matrices on one shared, sorted grid. Returns
    (d_a, d_b, theta): theta is CLES on that grid; sum(d_a) == sum(d_b) == 0 and, to first
    order, CLES - E[CLES] = sum(d_a) + sum(d_b) over the *true* placements.
    """
    tot_a = counts_a.sum(axis=0, dtype=np.float64)
    tot_b = counts_b.sum(axis=0, dtype=np.float64)
    n_a, n_b = tot_a.sum(), tot_b.sum()
    place_b = (np.cumsum(tot_a) - tot_a / 2) / n_a  # P(A < b) + P(A = b)/2 for b in bin
    place_a = (n_b - np.cumsum(tot_b) + tot_b / 2) / n_b  # P(B > a) + P(B = a)/2
    theta = float(tot_b @ place_b / n_b)
    d_b = counts_b @ ((place_b - theta) / n_b).astype(counts_b.dtype)
    d_a = counts_a @ ((place_a - theta) / n_a).astype(counts_a.dtype)
    return d_a.astype(np.float64), d_b.astype(np.float64), theta


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of a series (0 for constant or very short series)."""
    x = x - x.mean()
    denom = float(x @ x)
    return float(x[1:] @ x[:-1]) / denom if denom > 0 and x.size > 2 else 0.0


def effective_size(x: np.ndarray) -> float:
    """Independent-equivalent length of a series: n * sum(x^2) / long_run_variance(x)."""
    x = np.asarray(x, dtype=np.float64)
    lrv = long_run_variance(x)
    return x.size * float(x @ x) / lrv if lrv > 0 else float(x.size)


def _autocorrelation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    denom = float(x @ x)
    return float(x[lag:] @ x[:-lag]) / denom if denom > 0 and x.size > lag + 1 else 0.0


def _newey_west_prewhitened(x: np.ndarray) -> float:
    """AR(1) prewhitening, Bartlett kernel, Andrews' plug-in bandwidth (Andrews-Monahan)."""
    n = x.size
    r1 = lag1_autocorrelation(x)
    rho = min(max(r1 + (1 + 3 * r1) / n, -0.9), 0.95)  # Kendall's small-sample bias correction
    e = x[1:] - rho * x[:-1]
    e = e - e.mean()
    rho_e = min(max(lag1_autocorrelation(e), -0.9), 0.9)
    alpha1 = 4 * rho_e**2 / ((1 - rho_e) ** 2 * (1 + rho_e) ** 2)
    bandwidth = min(int(1.1447 * (alpha1 * e.size) ** (1 / 3)), e.size - 1)
    lrv = float(e @ e) / e.size
    for lag in range(1, bandwidth + 1):
        lrv += 2 * (1 - lag / (bandwidth + 1)) * float(e[lag:] @ e[:-lag]) / e.size
    return max(lrv, 0.0) * n / (1 - rho) ** 2


def _arma11(x: np.ndarray) -> float:
    """Long-run variance of an AR(1) signal plus white noise (an ARMA(1,1) correlogram).

    rho(k) = c * phi^k for k >= 1, so phi = rho(2) / rho(1) and the long-run variance is
    gamma0 * (1 + 2 rho(1) / (1 - phi)). phi is only read off rho(2) / rho(1) when rho(1)
    is clearly non-zero (> 2 / sqrt(n)); otherwise the series is treated as AR(1).
    """
    n = x.size
    r1 = _autocorrelation(x, 1)
    r1k = r1 + (1 + 3 * r1) / n
    phi = min(max(r1k, 0.0), 0.95)
    if r1 > 2 / np.sqrt(n):
        phi = min(max(_autocorrelation(x, 2) / r1, phi), 0.95)
    return float(x @ x) * max(1 + 2 * r1k / (1 - phi), 0.05)


def long_run_variance(x: np.ndarray) -> float:
    """Variance of sum(x) for an autocorrelated series (x has mean zero by construction).

    The larger of two estimates: prewhitened Newey-West, and the ARMA(1,1) (AR(1) load plus
    per-second noise) correlogram fit. Each alone underestimates in the other's blind spot;
    at 120-300 one-second windows with lag-1 load correlation 0.7, Newey-West alone gave
    9-11 % false positives in A/A tests of two runs, the maximum 5-7 %.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 4:
        return float(x @ x)
    return max(_newey_west_prewhitened(x), _arma11(x))


def _pair_cdf(
    va: np.ndarray, cum_a: np.ndarray, vb: np.ndarray, cb: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """P(B - A <= d) over all pairs, for each shift in `d` (values `va`/`vb`, counts)."""
    pos = np.searchsorted(va, vb[None, :] - d[:, None], side="left")
    a_below = np.where(pos > 0, cum_a[np.maximum(pos - 1, 0)], 0.0)  # A < b - d
    return ((cum_a[-1] - a_below) @ cb) / (cum_a[-1] * cb.sum())


def _pair_quantiles(a: SparseHist, b: SparseHist, ps: np.ndarray) -> np.ndarray:
    """Smallest d with P(B - A <= d) >= p, for each p: one vectorised bisection.

    HDR values are whole microseconds, so pairwise differences are integers and the
    bisection stops at a gap of 1.
    """
    va, vb = a.values, b.values
    cum_a = np.cumsum(a.counts).astype(np.float64)
    cb = b.counts.astype(np.float64)
    lo = np.full(ps.size, float(vb[0] - va[-1]) - 1.0)
    hi = np.full(ps.size, float(vb[-1] - va[0]))
    for _ in range(200):
        if np.all(hi - lo <= 1.0):
            break
        mid = np.floor((lo + hi) / 2)
        above = _pair_cdf(va, cum_a, vb, cb, mid) >= ps
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.where(ps <= 0, lo + 1.0, hi)


def hodges_lehmann(
    a: SparseHist,
    b: SparseHist,
    se_cles: float | None = None,
    level: float = 0.95,
    df: float | None = None,
) -> ShiftEstimate:
    """Median of pairwise differences B - A; interval by inverting the rank test.

    `se_cles` is the standard error of CLES (probability scale); by default the textbook
    i.i.d. one from `mann_whitney`. Pass the autocorrelation-robust one for run data, and
    its degrees of freedom `df` for a Student-t instead of a normal quantile.
    """
    if se_cles is None:
        mw = mann_whitney(a, b)
        se_cles = math.sqrt(mw.var_u) / (mw.n_a * mw.n_b)
    dist = stats.norm if df is None else stats.t(df)
    half = float(dist.ppf(0.5 + level / 2)) * se_cles
    ps = np.clip(np.array([0.5, 0.5 - half, 0.5 + half]), 0.0, 1.0)
    shift, lo, hi = (float(x) for x in _pair_quantiles(a, b, ps))
    return ShiftEstimate(shift=shift, lo=lo, hi=hi, level=level)


def short_run_variance(x: np.ndarray, block: int) -> float:
    """Variance of sum(x) as a circular block bootstrap with this block length sees it.

    That is the Bartlett-weighted autocovariance sum with bandwidth `block`; compared with
    `long_run_variance` it tells how much a block bootstrap underestimates the spread.
    """
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    n = x.size
    total = float(x @ x) / n
    for lag in range(1, min(block, n)):
        total += 2 * (1 - lag / block) * float(x[lag:] @ x[:-lag]) / n
    return max(total, 0.0) * n
