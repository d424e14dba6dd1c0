"""Latency statistics of one A/B pair: rank shift, percentile differences, distribution test.

Why: this is the numerical core behind `compare.compare_arms`, kept apart from verdicts and
wording. It aligns the two arms on one grid (and, for a split run, on the same seconds),
computes the exact rank statistics from the merged HDR histograms, the autocorrelation-
robust standard error from per-second placement sums (`ranktests`), and runs a single
moving-block bootstrap pass (`bootstrap`) that feeds both the percentile intervals and the
Anderson-Darling p-value (`disttest`). Pure: arrays in, a frozen record out.

Small-sample correction of the bootstrap: a block bootstrap with b-second blocks only sees
autocorrelation up to lag b (its variance is the Bartlett sum of bandwidth b), so with a
few hundred seconds of strongly correlated load it is too narrow. The rank-test influence
series measures by how much: `inflation` = robust long-run variance / the variance the
bootstrap sees for that same series (>= 1, capped at 4), times (t_df / z)^2 for the
Student-t reference. Percentile replicates are spread around the estimate by sqrt of it,
and the centred AD statistics (quadratic) by it. With long runs it tends to 1.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.analysis.ab import bootstrap as boot
from harness.analysis.ab.disttest import ADResult, TwoSampleAD, anderson_ksamp_hist
from harness.analysis.ab.histdata import ArmWindows, bin_values
from harness.analysis.ab.ranktests import (
    MannWhitney,
    ShiftEstimate,
    effective_size,
    hodges_lehmann,
    lag1_autocorrelation,
    long_run_variance,
    mann_whitney,
    placement_deviations,
    short_run_variance,
)

__all__ = [
    "LatencyStats",
    "PercentileDiff",
    "RobustRankTest",
    "align_arms",
    "latency_stats",
    "robust_rank_test",
]

log = logging.getLogger(__name__)

#: quantiles (percent) scanned to size a distribution change against the margin
SHAPE_PERCENTILES = (5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class PercentileDiff:
    """Percentile of each arm (us) and bootstrap intervals for B - A and B / A - 1."""

    pct: float
    a: float
    b: float
    ci: tuple[float, float]
    ci_equivalence: tuple[float, float]
    relative_ci: tuple[float, float]
    relative_ci_equivalence: tuple[float, float]
    p_value: float

    @property
    def difference(self) -> float:
        return self.b - self.a

    @property
    def relative(self) -> float:
        return self.b / self.a - 1 if self.a > 0 else math.nan


@dataclass(frozen=True, slots=True)
class LatencyStats:
    mw: MannWhitney  # exact U / CLES, textbook variance
    se_cles: float  # autocorrelation-robust standard error of CLES
    p_shift: float  # robust two-sided p-value of CLES = 1/2
    design_effect: float  # robust / textbook variance of CLES
    shift: ShiftEstimate  # Hodges-Lehmann, (1 - alpha) interval
    shift_equivalence: ShiftEstimate  # (1 - 2 alpha) interval, for TOST
    median_a: float
    percentiles: tuple[PercentileDiff, ...]
    ad: ADResult
    ad_p: float  # block-bootstrap p-value
    ad_upper_tail: float  # > 0: B holds more mass above the pooled median
    shape_relative: tuple[float, ...]  # B / A - 1 at SHAPE_PERCENTILES
    shape_absolute: tuple[float, ...]  # B - A (us) at SHAPE_PERCENTILES
    block: int
    rho: float
    n_boot: int
    inflation: float  # bootstrap variance widened by this factor (>= 1)
    df: float  # degrees of freedom of the robust variance (Student-t reference)


def align_arms(
    a: ArmWindows, b: ArmWindows, paired: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both arms' window matrices on one grid; with `paired`, rows are the same seconds."""
    if a.resolution != b.resolution:
        raise ValueError("arms were binned with different grid resolutions")
    ids = np.union1d(a.bin_ids, b.bin_ids)
    seconds = np.union1d(a.seconds, b.seconds) if paired else None

    def place(arm: ArmWindows) -> np.ndarray:
        cols = np.searchsorted(ids, arm.bin_ids)
        if seconds is None:
            out = np.zeros((arm.n_windows, ids.size), dtype=np.float32)
            out[:, cols] = arm.counts
        else:
            out = np.zeros((seconds.size, ids.size), dtype=np.float32)
            out[np.ix_(np.searchsorted(seconds, arm.seconds), cols)] = arm.counts
        return out

    return place(a), place(b), bin_values(ids, a.resolution)


def _influence(ca: np.ndarray, cb: np.ndarray, paired: bool) -> tuple[list[np.ndarray], float]:
    """Per-second rank-test influence series and the robust variance of CLES."""
    d_a, d_b, _ = placement_deviations(ca, cb)
    series = [d_a + d_b] if paired else [d_a, d_b]
    return series, sum(long_run_variance(x) for x in series)


def _inflation(series: list[np.ndarray], var: float, block: int) -> float:
    """How much wider the block bootstrap must be to match the robust variance (1 .. 4)."""
    seen = sum(short_run_variance(x, block) for x in series)
    return float(min(max(var / seen, 1.0), 4.0)) if seen > 0 else 1.0


def _percentile_diffs(
    a: ArmWindows,
    b: ArmWindows,
    q_a: np.ndarray,
    q_b: np.ndarray,
    coarse: tuple[np.ndarray, np.ndarray],
    pcts: tuple[float, ...],
    alpha: float,
    inflation: float,
) -> tuple[PercentileDiff, ...]:
    out = []
    widen = math.sqrt(inflation)
    for j, pct in enumerate(pcts):
        pa, pb = a.merged.percentile(pct), b.merged.percentile(pct)
        # grid replicates re-centred on the exact HDR estimate, widened to the robust variance
        dev = q_b[:, j] - q_a[:, j] - (coarse[1][j] - coarse[0][j])
        diff = (pb - pa) + widen * dev
        dev_r = (q_b[:, j] / q_a[:, j]) / (coarse[1][j] / coarse[0][j]) - 1
        ratio = (pb / pa - 1) + widen * dev_r * (pb / pa)
        out.append(
            PercentileDiff(
                pct=pct,
                a=pa,
                b=pb,
                ci=boot.percentile_interval(diff, 1 - alpha),
                ci_equivalence=boot.percentile_interval(diff, 1 - 2 * alpha),
                relative_ci=boot.percentile_interval(ratio, 1 - alpha),
                relative_ci_equivalence=boot.percentile_interval(ratio, 1 - 2 * alpha),
                p_value=boot.bootstrap_p_value(diff),
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RobustRankTest:
    """Mann-Whitney with the autocorrelation-robust variance of CLES (see `ranktests`)."""

    mw: MannWhitney
    se_cles: float
    df: float  # Student-t degrees of freedom: effective number of independent seconds - 1
    p_value: float
    design_effect: float  # robust / textbook variance
    rho: float  # largest lag-1 autocorrelation of the per-arm influence series
    inflation: float  # robust variance / what a block bootstrap of this block length sees
    block: int


def robust_rank_test(
    a: ArmWindows, b: ArmWindows, *, paired: bool, block: int | None = None
) -> RobustRankTest:
    """Rank test of B vs A whose p-value survives autocorrelated seconds."""
    ca, cb, _ = align_arms(a, b, paired)
    return _rank_test(a, b, ca, cb, paired, block)


def _rank_test(
    a: ArmWindows, b: ArmWindows, ca: np.ndarray, cb: np.ndarray, paired: bool, block: int | None
) -> RobustRankTest:
    mw = mann_whitney(a.merged, b.merged)
    series, var = _influence(ca, cb, paired)
    se = math.sqrt(max(var, 0.0))
    rho = max(lag1_autocorrelation(x) for x in placement_deviations(ca, cb)[:2])
    se_iid = math.sqrt(mw.var_u) / (mw.n_a * mw.n_b)
    df = max(min(effective_size(x) for x in series) - 1, 4.0)  # Student-t reference
    z = (mw.cles - 0.5) / se if se > 0 else 0.0
    block = block or boot.block_length(min(ca.shape[0], cb.shape[0]), rho)
    return RobustRankTest(
        mw=mw,
        se_cles=se,
        df=df,
        p_value=float(min(1.0, 2 * stats.t.sf(abs(z), df))),
        design_effect=(se / se_iid) ** 2 if se_iid > 0 else math.nan,
        rho=rho,
        inflation=_inflation(series, var, block),
        block=block,
    )


def _bootstrap(
    ca: np.ndarray,
    cb: np.ndarray,
    values: np.ndarray,
    pcts: np.ndarray,
    ad_ref: TwoSampleAD,
    *,
    paired: bool,
    n_boot: int,
    block: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One bootstrap pass: replicate percentiles of each arm and centred AD statistics."""
    qa, qb, ad = [], [], []
    for ha, hb in boot.replicate_chunks(ca, cb, paired=paired, n_boot=n_boot, block=block, rng=rng):
        qa.append(boot.quantile_rows(ha, values, pcts))
        qb.append(boot.quantile_rows(hb, values, pcts))
        ad.append(ad_ref.centred(ha, hb))
    return np.concatenate(qa), np.concatenate(qb), np.concatenate(ad)


def latency_stats(
    a: ArmWindows,
    b: ArmWindows,
    *,
    paired: bool,
    alpha: float,
    pcts: tuple[float, ...],
    n_boot: int,
    rng: np.random.Generator,
    block: int | None = None,
) -> LatencyStats:
    """All latency statistics for B against A (successful requests only)."""
    ca, cb, values = align_arms(a, b, paired)
    rt = _rank_test(a, b, ca, cb, paired, block)
    # widen the bootstrap to the robust variance and to Student-t quantiles
    t_ratio = float(stats.t.ppf(1 - alpha / 2, rt.df) / stats.norm.ppf(1 - alpha / 2))
    inflation = rt.inflation * t_ratio**2
    tot_a, tot_b = ca.sum(axis=0, dtype=np.float64), cb.sum(axis=0, dtype=np.float64)
    ad_ref = TwoSampleAD.from_totals(tot_a, tot_b)
    pct_arr = np.asarray(pcts, dtype=np.float64)
    q_a, q_b, ad_star = _bootstrap(
        ca, cb, values, pct_arr, ad_ref, paired=paired, n_boot=n_boot, block=rt.block, rng=rng
    )
    coarse = (
        boot.quantile_rows(tot_a[None, :], values, pct_arr)[0],
        boot.quantile_rows(tot_b[None, :], values, pct_arr)[0],
    )
    shape_a, shape_b = (
        np.array([h.percentile(p) for p in SHAPE_PERCENTILES]) for h in (a.merged, b.merged)
    )
    return LatencyStats(
        mw=rt.mw,
        se_cles=rt.se_cles,
        p_shift=rt.p_value,
        design_effect=rt.design_effect,
        shift=hodges_lehmann(a.merged, b.merged, rt.se_cles, 1 - alpha, rt.df),
        shift_equivalence=hodges_lehmann(a.merged, b.merged, rt.se_cles, 1 - 2 * alpha, rt.df),
        median_a=a.merged.percentile(50.0),
        percentiles=_percentile_diffs(a, b, q_a, q_b, coarse, pcts, alpha, inflation),
        ad=anderson_ksamp_hist([a.merged, b.merged]),
        ad_p=float(
            (1 + np.count_nonzero(ad_star * inflation >= ad_ref.statistic())) / (ad_star.size + 1)
        ),
        ad_upper_tail=ad_ref.upper_tail_shift(),
        shape_relative=tuple(shape_b / shape_a - 1),
        shape_absolute=tuple(shape_b - shape_a),
        block=rt.block,
        rho=rt.rho,
        n_boot=n_boot,
        inflation=inflation,
        df=rt.df,
    )
