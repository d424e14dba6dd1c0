"""Anderson-Darling distribution test from histograms, calibrated by block bootstrap.

Why: a rank test only sees a shift. A B that is wider, or bimodal (10 % of requests on a slow
path), can have the same median and pass Mann-Whitney while its p99 is much worse. The
Anderson-Darling k-sample statistic weights the whole CDF difference by 1/(H (1 - H)), so
it is sensitive in the tails where latency regressions live.

Ties and binning: every value in one HDR bucket (or one log-grid bin) is a tie. We use the
Scholz & Stephens (1987) midrank version for tied data (A2akN), computed from counts only.
`anderson_ksamp_hist` equals `scipy.stats.anderson_ksamp(midrank=True)` on expanded samples.

Calibration: the textbook null distribution assumes independent requests. Adjacent seconds
are not independent, so the p-value used for decisions comes from the moving-block
bootstrap instead: the two-sample statistic is (N - 1) n_a n_b sum_j w_j (F_a - F_b)_j^2
with w_j = (l_j / N) / (B_j (N - B_j) - N l_j / 4); for each replicate we evaluate the same
weighted sum on the *centred* process (F*_a - F*_b) - (F_a - F_b), whose law approximates
the null law of the statistic under the same dependence (the usual bootstrap for
Cramer-von Mises-type statistics of dependent data). p = (1 + #{T* >= T}) / (R + 1).

Direction: the test itself has none. For a verdict we read the sign of the CDF difference
over the upper half of the pooled distribution: B holding more mass above the pooled
median is slower where it matters (worse); less is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.latency.sparse import SparseHist

__all__ = ["ADResult", "TwoSampleAD", "anderson_ksamp_hist"]


@dataclass(frozen=True, slots=True)
class ADResult:
    """k-sample Anderson-Darling statistic (midrank, ties), textbook standardisation."""

    a2akn: float
    statistic: float  # (A2akN - (k - 1)) / sigma, as scipy reports it
    sigma: float


def _h_and_g(n: int) -> tuple[float, float]:
    """h = sum_{i<N} 1/i and g of Scholz & Stephens; asymptotic beyond 2e5 (error < 1e-4)."""
    if n > 200_000:
        return float(np.log(n - 1) + np.euler_gamma + 1 / (2 * (n - 1))), math.pi**2 / 6
    hs_cs = np.cumsum(1.0 / np.arange(n - 1, 1, -1))
    h = float(hs_cs[-1] + 1)
    g = float(np.sum(hs_cs / np.arange(2, n)))
    return h, g


def _sigma(n_i: np.ndarray, n: int) -> float:
    k = n_i.size
    big_h = float(np.sum(1.0 / n_i))
    h, g = _h_and_g(n)
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * big_h
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * big_h - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * big_h + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    nf = float(n)
    var = (a * nf**3 + b * nf**2 + c * nf + d) / ((nf - 1) * (nf - 2) * (nf - 3))
    return math.sqrt(var)


def anderson_ksamp_hist(samples: list[SparseHist]) -> ADResult:
    """A2akN (Scholz & Stephens eq. 7, midranks) for k histograms, without expanding them."""
    grid = np.unique(np.concatenate([h.values for h in samples]))
    counts = np.zeros((len(samples), grid.size))
    for i, h in enumerate(samples):
        counts[i, np.searchsorted(grid, h.values)] = h.counts
    n_i = counts.sum(axis=1)
    n = float(n_i.sum())
    if n < 4 or np.any(n_i == 0):  # the variance formula divides by (N-1)(N-2)(N-3) and n_i
        return ADResult(a2akn=math.nan, statistic=math.nan, sigma=math.nan)
    lj = counts.sum(axis=0)
    bj = np.cumsum(lj) - lj / 2
    m_ij = np.cumsum(counts, axis=1) - counts / 2
    denom = bj * (n - bj) - n * lj / 4
    ok = denom > 0
    inner = (lj / n)[ok] * (n * m_ij[:, ok] - bj[ok] * n_i[:, None]) ** 2 / denom[ok]
    a2 = float(np.sum(inner.sum(axis=1) / n_i) * (n - 1) / n)
    sigma = _sigma(n_i, int(n))
    return ADResult(a2akn=a2, statistic=(a2 - (len(samples) - 1)) / sigma, sigma=sigma)


@dataclass(frozen=True, slots=True)
class TwoSampleAD:
    """Two-sample AD on a shared grid with fixed weights, for the bootstrap.

    Build it from the observed per-bin totals, then `statistic()` for the observation and
    `centred(hist_a, hist_b)` for replicate rows.
    """

    weights: np.ndarray
    diff: np.ndarray  # midrank F_a - F_b of the observation
    scale: float  # (N - 1) n_a n_b
    upper: np.ndarray  # bins in the upper half of the pooled distribution
    mass: np.ndarray  # pooled share of each bin

    @classmethod
    def from_totals(cls, tot_a: np.ndarray, tot_b: np.ndarray) -> TwoSampleAD:
        n_a, n_b = float(tot_a.sum()), float(tot_b.sum())
        n = n_a + n_b
        lj = tot_a + tot_b
        bj = np.cumsum(lj) - lj / 2
        denom = bj * (n - bj) - n * lj / 4
        weights = np.where(denom > 0, (lj / n) / np.where(denom > 0, denom, 1.0), 0.0)
        diff = _midrank_cdf(tot_a[None, :])[0] - _midrank_cdf(tot_b[None, :])[0]
        return cls(weights, diff, (n - 1) * n_a * n_b, bj / n >= 0.5, lj / n)

    def statistic(self) -> float:
        return float(self.scale * (self.weights @ self.diff**2))

    def centred(self, hist_a: np.ndarray, hist_b: np.ndarray) -> np.ndarray:
        dev = _midrank_cdf(hist_a) - _midrank_cdf(hist_b) - self.diff
        return self.scale * (dev**2 @ self.weights)

    def upper_tail_shift(self) -> float:
        """Mean of F_a - F_b over the upper half, weighted by pooled mass (>0: B slower)."""
        sel = self.upper & (self.mass > 0)
        return float(np.average(self.diff[sel], weights=self.mass[sel])) if sel.any() else 0.0


def _midrank_cdf(hists: np.ndarray) -> np.ndarray:
    h = hists.astype(np.float64)
    total = h.sum(axis=1, keepdims=True)
    return (np.cumsum(h, axis=1) - h / 2) / np.where(total > 0, total, 1.0)
