"""The gate's judge: did run B regress against baseline run A? Pure (arms in, records out).

asv's rule, applied per metric: a metric *regressed* only when BOTH
  - its ratio to the baseline is beyond the margin (p50, p99 and error rate: B / A > 1 +
    margin; throughput: B / A < 1 - margin), and
  - the difference is significant: the compare module's tests for two separate runs
    (`harness.analysis.ab`: moving-block bootstrap over seconds for p50 and p99, Fisher's
    exact test for the error rate) and, for throughput, a z-test on the per-second
    successes with an autocorrelation-robust (long-run) variance; Holm's correction across
    these four p-values at `alpha`.
Throughput of an open-loop run is judged differently: there the request rate is the
scenario's input (a Poisson schedule), so two runs' req/s differ by the schedule's own noise
(+-3 % per run at 100 req/s for 10 s) and say nothing about the server. What the server
controls is how much of the offered load it served, so an open-loop throughput is the share of
offered requests (answered, failed, dropped at the generator's cap or never answered) that
succeeded, compared by Fisher's exact test: 1.0 -> 1.0 for a server that keeps up, falling
when it cannot.
A significant change inside the margin is noise the gate tolerates (asv's "ratio factor");
a large ratio on too little data is not significant and does not fail the gate either. A
metric without a test (an arm too short for the comparison) is "inconclusive", never a
regression. The measured false-positive rate on A/A pairs is `aa_false_positive_rate`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from harness.analysis.ab.abconfig import CompareConfig, Margin
from harness.analysis.ab.compare import Comparison, compare_arms
from harness.analysis.ab.equivalence import holm
from harness.analysis.ab.histdata import ArmWindows
from harness.analysis.ab.ranktests import long_run_variance
from harness.analysis.ab.synthetic import ArmSpec, simulate_pair

__all__ = [
    "GATE_METRICS",
    "GateConfig",
    "GateMetric",
    "aa_false_positive_rate",
    "judge_arms",
    "served_share_test",
    "throughput_test",
]

GATE_METRICS = ("p50", "p99", "error_rate", "throughput")
_HIGHER_IS_WORSE = {"p50": True, "p99": True, "error_rate": True, "throughput": False}
_UNITS = {"p50": "ms", "p99": "ms", "error_rate": "fraction", "throughput": "req/s"}
SERVED_SHARE_UNIT = "share of offered"


@dataclass(frozen=True, slots=True)
class GateConfig:
    """`margin`: the ratio a metric must move by to count (0.05: 5 %); `alpha`: the family's
    significance level (Holm across the four metrics); `min_windows`: seconds per run below
    which the comparison calls latency inconclusive."""

    margin: float = 0.05
    alpha: float = 0.05
    min_windows: int = 20
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.margin < 1:
            raise ValueError(f"margin {self.margin}: must lie between 0 and 1 (0.05 is 5 %)")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha {self.alpha}: must lie between 0 and 0.5")

    def compare_config(self) -> CompareConfig:
        return CompareConfig(
            alpha=self.alpha,
            margin=Margin(relative=self.margin),
            percentiles=(50.0, 99.0),
            gating=("p50", "p99", "error_rate"),
            n_boot=self.n_boot,
            seed=self.seed,
            min_windows=self.min_windows,
        )


@dataclass(frozen=True, slots=True)
class GateMetric:
    """One metric of the gate. `verdict`: regressed, improved, ok or inconclusive."""

    metric: str
    unit: str
    baseline: float | None
    value: float | None
    ratio: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    beyond_margin: bool
    verdict: str
    method: str

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        for key in ("baseline", "value", "ratio", "p_value", "p_adjusted"):
            if isinstance(out[key], float) and not math.isfinite(out[key]):
                out[key] = None if math.isnan(out[key]) else "inf"
        return out

    def describe(self) -> str:
        """One line: 'p99: 12.3 -> 14.1 ms (x1.146, p_holm 0.002): regressed'."""
        ratio = "-" if self.ratio is None else f"x{self.ratio:.3f}"
        p = "-" if self.p_adjusted is None else f"{self.p_adjusted:.3g}"
        return (
            f"{self.metric}: {_num(self.baseline)} -> {_num(self.value)} {self.unit} "
            f"({ratio}, p_holm {p}): {self.verdict}"
        )


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


@dataclass(frozen=True, slots=True)
class ThroughputTest:
    a: float
    b: float
    p_value: float | None
    method: str = "z-test, long-run variance"
    unit: str = "req/s"


def throughput_test(a: ArmWindows, b: ArmWindows) -> ThroughputTest:
    """Successful responses per second of A and B, and the two-sided p-value of their
    difference: z = (mean_b - mean_a) / sqrt(LRV_a / n_a^2 + LRV_b / n_b^2), where LRV is
    the long-run variance of each run's per-second series (its seconds are correlated)."""
    xa, xb = (np.asarray(arm.counts.sum(axis=1), dtype=np.float64) for arm in (a, b))
    mean_a = float(xa.mean()) if xa.size else math.nan
    mean_b = float(xb.mean()) if xb.size else math.nan
    if xa.size < 4 or xb.size < 4:
        return ThroughputTest(mean_a, mean_b, None)
    var = long_run_variance(xa - mean_a) / xa.size**2 + long_run_variance(xb - mean_b) / xb.size**2
    if var <= 0:
        return ThroughputTest(mean_a, mean_b, 1.0 if mean_a == mean_b else 0.0)
    z = (mean_b - mean_a) / math.sqrt(var)
    return ThroughputTest(mean_a, mean_b, float(2 * stats.norm.sf(abs(z))))


def served_share_test(a: ArmWindows, b: ArmWindows, unserved: tuple[int, int]) -> ThroughputTest:
    """Open loop: the share of offered requests each run served successfully, and Fisher's
    exact p-value of the difference. Offered = every request of the measured seconds with an
    outcome (windows are keyed by intended send time) + `unserved` (requests the generator
    dropped at its outstanding cap or abandoned unanswered at the end of the run)."""
    shares, table = [], []
    for arm, lost in zip((a, b), unserved, strict=True):
        served = int(arm.counts.sum())
        offered = int(arm.requests.sum()) + max(int(lost), 0)
        shares.append(served / offered if offered else math.nan)
        table.append([served, offered - served])
    method = "open loop: share of offered requests served, Fisher's exact test"
    unit = SERVED_SHARE_UNIT
    if not all(sum(row) for row in table):
        return ThroughputTest(shares[0], shares[1], None, method, unit)
    if table[0][1] == table[1][1] == 0:  # both served everything: no difference to test
        return ThroughputTest(shares[0], shares[1], 1.0, method, unit)
    p = float(stats.fisher_exact(table).pvalue)
    return ThroughputTest(shares[0], shares[1], p, method, unit)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if a == 0:
        return 1.0 if b == 0 else math.inf
    return b / a


def _raw(comparison: Comparison, tput: ThroughputTest) -> dict[str, tuple]:
    """metric -> (A, B, p-value, method, unit)."""
    out: dict[str, tuple] = {}
    for name in ("p50", "p99", "error_rate"):
        m = comparison.metric(name)
        out[name] = (m.a, m.b, m.p_value, m.method, _UNITS[name])
    out["throughput"] = (tput.a, tput.b, tput.p_value, tput.method, tput.unit)
    return out


def judge_arms(
    a: ArmWindows,
    b: ArmWindows,
    config: GateConfig | None = None,
    *,
    open_loop_unserved: tuple[int, int] | None = None,
) -> tuple[tuple[GateMetric, ...], Comparison]:
    """Judge run B against baseline run A (two separate runs) on `GATE_METRICS`.
    `open_loop_unserved`: both runs are open loop; (A, B) requests offered but never answered
    (dropped + abandoned): throughput is then judged as the share of offered load served."""
    config = config or GateConfig()
    comparison = compare_arms(a, b, config.compare_config(), design="two-runs")
    if open_loop_unserved is None:
        tput = throughput_test(a, b)
    else:
        tput = served_share_test(a, b, open_loop_unserved)
    raw = _raw(comparison, tput)
    tested = [name for name in GATE_METRICS if raw[name][2] is not None]
    adjusted = dict(zip(tested, holm([raw[name][2] for name in tested]), strict=True))
    metrics = []
    for name in GATE_METRICS:
        base, value, p, method, unit = raw[name]
        ratio = _ratio(base, value)
        p_adj = adjusted.get(name)
        significant = p_adj is not None and p_adj < config.alpha
        worse = ratio is not None and (ratio > 1 if _HIGHER_IS_WORSE[name] else ratio < 1)
        beyond = ratio is not None and abs(ratio - 1) > config.margin
        if p_adj is None:
            verdict = "inconclusive"
        elif significant and beyond:
            verdict = "regressed" if worse else "improved"
        else:
            verdict = "ok"
        metrics.append(
            GateMetric(
                metric=name,
                unit=unit,
                baseline=base,
                value=value,
                ratio=ratio,
                p_value=p,
                p_adjusted=p_adj,
                significant=significant,
                beyond_margin=beyond,
                verdict=verdict,
                method=method,
            )
        )
    return tuple(metrics), comparison


def aa_false_positive_rate(
    pairs: int,
    *,
    seconds: int = 60,
    rate: float = 100.0,
    config: GateConfig | None = None,
    seed: int = 0,
    spec: ArmSpec | None = None,
) -> tuple[int, int]:
    """(regressions called, pairs) over `pairs` A/A pairs of two separate synthetic runs of
    the same build (`harness.analysis.ab.synthetic`: lognormal latency, per-second AR(1)
    load drawn independently per run, Poisson arrivals): the gate's false-positive count."""
    config = config or GateConfig()
    rng = np.random.default_rng(seed)
    arm = spec or ArmSpec(rate=rate, error_rate=0.002)
    fired = 0
    for _ in range(pairs):
        a, b = simulate_pair(arm, arm, seconds, rng, design="two-runs")
        metrics, _ = judge_arms(a, b, config)
        fired += any(m.verdict == "regressed" for m in metrics)
    return fired, pairs
