"""Turn A/B statistics into candidate metrics: estimate, intervals and margin on one scale.

Why: each statistic lives on its own scale (a probability, a microsecond shift, a ratio of
percentiles, a difference of proportions). Before Holm and TOST can treat them alike, each
becomes a `Candidate` whose estimate, intervals and margin share a scale — relative to A
when the margin is relative, absolute otherwise — plus what the report should display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.equivalence import Decision, Verdict
from harness.analysis.ab.histdata import ArmWindows
from harness.analysis.ab.latency_ab import LatencyStats, PercentileDiff
from harness.analysis.ab.proportions import ProportionDiff, compare_proportions, dispersion_index

__all__ = [
    "Candidate",
    "MetricResult",
    "accuracy_candidate",
    "distribution_decision",
    "error_rate_candidate",
    "latency_candidates",
]


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric of a comparison. Latencies in ms; rates and relative changes as fractions."""

    metric: str
    label: str
    gating: bool
    method: str
    verdict: str
    a: float | None = None
    b: float | None = None
    difference: float | None = None
    relative: float | None = None
    ci: tuple[float, float] | None = None
    relative_ci: tuple[float, float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    statistic: float | None = None
    margin: str | None = None
    requests_needed: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Candidate:
    metric: str
    label: str
    gating: bool
    method: str
    n: int
    estimate: float = math.nan
    test_ci: tuple[float, float] = (-math.inf, math.inf)
    equivalence_ci: tuple[float, float] = (-math.inf, math.inf)
    margin_value: float | None = None
    higher_is_worse: bool = True
    p_value: float | None = None
    display: dict = field(default_factory=dict)
    fixed: Decision | None = None
    note: str = ""
    shape: tuple[float, ...] = ()
    upper_tail: float = 0.0

    def result(self, decision: Decision, p_adjusted: float | None) -> MetricResult:
        note = "; ".join(x for x in (decision.reason, self.note) if x)
        return MetricResult(
            metric=self.metric,
            label=self.label,
            gating=self.gating,
            method=self.method,
            verdict=str(decision.verdict),
            p_value=self.p_value,
            p_adjusted=p_adjusted,
            requests_needed=decision.requests_needed,
            note=note,
            **self.display,
        )


_LABELS = {"shift": "typical latency (shift)", "distribution": "latency distribution"}


def _ms(x: float) -> float:
    return x / 1e3


def _scaled(ci: tuple[float, float], scale: float) -> tuple[float, float]:
    return ci[0] / scale, ci[1] / scale


def _shift(stats: LatencyStats, config: CompareConfig, n: int, gating: bool) -> Candidate:
    hl, hl_eq, med = stats.shift, stats.shift_equivalence, stats.median_a
    rel = not config.margin.is_absolute
    scale = med if rel else 1.0
    return Candidate(
        metric="shift",
        label=_LABELS["shift"],
        gating=gating,
        method="Mann-Whitney U / Hodges-Lehmann, autocorrelation-robust variance",
        n=n,
        estimate=hl.shift / scale,
        test_ci=_scaled((hl.lo, hl.hi), scale),
        equivalence_ci=_scaled((hl_eq.lo, hl_eq.hi), scale),
        margin_value=config.margin.value,
        p_value=stats.p_shift,
        display={
            "a": _ms(med),
            "b": _ms(med + hl.shift),
            "difference": _ms(hl.shift),
            "relative": hl.shift / med if med > 0 else None,
            "ci": (_ms(hl.lo), _ms(hl.hi)),
            "relative_ci": _scaled((hl.lo, hl.hi), med) if med > 0 else None,
            "statistic": stats.mw.cliffs_delta,
            "margin": config.margin.describe(),
        },
        note=f"Cliff's delta {stats.mw.cliffs_delta:+.3f}, P(B>A) {stats.mw.cles:.3f}",
    )


def _percentile(pd: PercentileDiff, config: CompareConfig, n: int, gating: bool) -> Candidate:
    rel = not config.margin.is_absolute
    name = f"p{pd.pct:g}"
    return Candidate(
        metric=name,
        label=f"latency {name}",
        gating=gating,
        method="moving-block bootstrap over seconds",
        n=n,
        estimate=pd.relative if rel else pd.difference,
        test_ci=pd.relative_ci if rel else pd.ci,
        equivalence_ci=pd.relative_ci_equivalence if rel else pd.ci_equivalence,
        margin_value=config.margin.value,
        p_value=pd.p_value,
        display={
            "a": _ms(pd.a),
            "b": _ms(pd.b),
            "difference": _ms(pd.difference),
            "relative": pd.relative,
            "ci": (_ms(pd.ci[0]), _ms(pd.ci[1])),
            "relative_ci": pd.relative_ci,
            "margin": config.margin.describe(),
        },
    )


def _distribution(stats: LatencyStats, config: CompareConfig, n: int, gating: bool) -> Candidate:
    rel = not config.margin.is_absolute
    return Candidate(
        metric="distribution",
        label=_LABELS["distribution"],
        gating=gating,
        method="Anderson-Darling (midrank), block-bootstrap p-value",
        n=n,
        p_value=stats.ad_p,
        display={"statistic": stats.ad.statistic, "margin": config.margin.describe()},
        shape=stats.shape_relative if rel else stats.shape_absolute,
        upper_tail=stats.ad_upper_tail,
    )


def _observed(a: ArmWindows, b: ArmWindows, metric: str) -> dict:
    """The arms' own percentiles (ms) for a metric too short to test: shown, never judged."""
    pct = {"shift": 50.0}.get(metric) or (float(metric[1:]) if metric[0] == "p" else None)
    if pct is None or a.n_success == 0 or b.n_success == 0:
        return {}
    return {"a": _ms(a.merged.percentile(pct)), "b": _ms(b.merged.percentile(pct))}


def latency_candidates(
    a: ArmWindows,
    b: ArmWindows,
    stats: LatencyStats | None,
    config: CompareConfig,
    short: str | None,
) -> list[Candidate]:
    """Shift, distribution and percentile candidates (or inconclusive placeholders)."""
    names = ["shift", "distribution"] + [f"p{p:g}" for p in config.all_percentiles]
    if stats is None:
        need = 2 * max(config.min_requests, a.n_success, b.n_success, 1)
        fixed = Decision(Verdict.INCONCLUSIVE, False, False, need, short or "not enough data")
        return [
            Candidate(
                m,
                _LABELS.get(m, f"latency {m}"),
                m in config.gating,
                "not computed",
                0,
                fixed=fixed,
                display=_observed(a, b, m),
            )
            for m in names
        ]
    n = a.n_success + b.n_success
    out = [
        _shift(stats, config, n, "shift" in config.gating),
        _distribution(stats, config, n, "distribution" in config.gating),
    ]
    for pd in stats.percentiles:
        out.append(_percentile(pd, config, n, f"p{pd.pct:g}" in config.gating))
    return out


def distribution_decision(c: Candidate, p: float | None, config: CompareConfig) -> Decision:
    """Significant shape change -> worse/better by the upper tail, unless it is tiny.

    'Tiny': no quantile from p5 to p99.9 moved by more than the margin; the shape differs
    detectably but not by an amount the margin cares about, so it counts as equivalent.
    """
    if p is None or p >= config.alpha:
        return Decision(Verdict.NO_DIFFERENCE, False, False, None, "shapes agree")
    margin = config.margin.value
    largest = max((abs(x) for x in c.shape if math.isfinite(x)), default=0.0)
    if margin is not None and largest < margin:
        why = f"shape differs, but no quantile p5..p99.9 moves beyond {config.margin.describe()}"
        return Decision(Verdict.EQUIVALENT, True, True, None, why)
    verdict = Verdict.WORSE if c.upper_tail > 0 else Verdict.BETTER
    side = "more" if c.upper_tail > 0 else "less"
    return Decision(verdict, True, False, None, f"B has {side} mass in the upper tail")


def error_rate_candidate(a: ArmWindows, b: ArmWindows, config: CompareConfig) -> Candidate:
    """Failures / requests; an arm without failure rows has zero failures."""
    pdiff = compare_proportions(
        a.n_failures, a.n_requests, b.n_failures, b.n_requests, config.alpha
    )
    notes = []
    for arm in (a, b):
        disp = dispersion_index(arm.failures, arm.requests)
        if math.isfinite(disp) and disp > 2:
            notes.append(
                f"failures of {arm.name!r} are bursty (dispersion {disp:.1f}); "
                "the exact test assumes independence, so its p-value is optimistic"
            )
    return _proportion_candidate(
        "error_rate",
        "error rate",
        pdiff,
        config.error_margin,
        True,
        "error_rate" in config.gating,
        "; ".join(notes),
    )


def accuracy_candidate(a: ArmWindows, b: ArmWindows, config: CompareConfig) -> Candidate | None:
    """Correct / checked answers, only when both arms checked some answers."""
    if a.checked <= 0 or b.checked <= 0:
        return None
    pdiff = compare_proportions(a.correct, a.checked, b.correct, b.checked, config.alpha)
    return _proportion_candidate(
        "accuracy",
        "accuracy",
        pdiff,
        config.accuracy_margin,
        False,
        "accuracy" in config.gating,
        "",
    )


def _proportion_candidate(
    metric: str,
    label: str,
    pdiff: ProportionDiff,
    margin: float,
    higher_is_worse: bool,
    gating: bool,
    note: str,
) -> Candidate:
    estimate = pdiff.difference if math.isfinite(pdiff.difference) else 0.0
    return Candidate(
        metric=metric,
        label=label,
        gating=gating,
        method="Fisher exact test, Newcombe score interval",
        n=pdiff.trials_a + pdiff.trials_b,
        estimate=estimate,
        test_ci=pdiff.ci,
        equivalence_ci=pdiff.ci_equivalence,
        margin_value=margin,
        higher_is_worse=higher_is_worse,
        p_value=pdiff.p_value,
        display={
            "a": pdiff.rate_a,
            "b": pdiff.rate_b,
            "difference": pdiff.difference,
            "ci": pdiff.ci,
            "statistic": None,
            "margin": f"±{margin * 100:g} pp",
        },
        note=note,
    )
