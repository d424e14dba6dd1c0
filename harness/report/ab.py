"""The A/B sections of a report: distributions side by side, intervals and verdicts.

Why the comparison is handed in: the verdict is `harness.compare.compare_runs`'s (the same as
`harness compare` prints), and that module sits beside this package on the same floor; the
caller (the CLI, a notebook) computes it and the report shows it. The CDFs are drawn from the
arms' measured windows (after warm-up), through `harness.report.data`.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.analysis.ab.compare import Comparison
from harness.report import data, figures
from harness.report.model import FigureItem, Section, Table, fmt_num, fmt_pct
from harness.results.store import Run

__all__ = ["ab_section", "comparison_headline"]

RELATIVE = {"error_rate", "accuracy"}  # metrics whose values are fractions
CDF_CAPTION = (
    "Left: each arm's share of requests at or below a latency (the whole distribution, "
    "measured seconds only). Right: the same as 1/(1−CDF), so the tail is readable: where a "
    "curve crosses 100 is its p99, 1000 its p99.9. A curve to the right is slower."
)


def comparison_headline(comparison: Comparison) -> str:
    return f"A/B {comparison.arm_a} vs {comparison.arm_b}: {comparison.verdict}"


def ab_section(
    comparison: Comparison,
    arms: Sequence[tuple[Run, str]],
    *,
    key: str = "ab",
    title: str = "A/B comparison",
    prefix: str = "",
) -> Section:
    """`arms`: (run, endpoint) of A then B, as `harness.compare.pick_arms` chose them."""
    cdfs = {}
    for label, (run, endpoint) in zip(("A", "B"), arms, strict=True):
        hist = data.endpoint_hist(run, endpoint, run.measured_from_s)
        if hist.total:
            cdfs[
                f"{label}: {endpoint}" + ("" if arms[0][0] is arms[1][0] else f" ({run.run_id})")
            ] = data.cdf_frame(hist)
    figs = ()
    if cdfs:
        figs = (
            FigureItem(
                f"{prefix}{key}_cdf",
                "Latency distributions",
                CDF_CAPTION,
                figures.png_bytes(figures.ab_cdf(cdfs)),
            ),
        )
    facts = (
        f"verdict: {comparison.verdict.upper()}"
        + (" (a regression)" if comparison.regression else ""),
        comparison.summary,
        f"design: {comparison.design} (A = {comparison.arm_a}, B = {comparison.arm_b})",
    )
    return Section(
        key,
        title,
        facts=facts,
        tables=(_metric_table(comparison),),
        figures=figs,
        notes=tuple(comparison.warnings),
    )


def _value(metric: str, value: float | None) -> str:
    return fmt_pct(value) if metric in RELATIVE else fmt_num(value)


def _metric_table(comparison: Comparison) -> Table:
    rows = []
    for m in comparison.metrics:
        ci = "-" if m.ci is None else f"[{_value(m.metric, m.ci[0])}, {_value(m.metric, m.ci[1])}]"
        rows.append(
            (
                m.label + ("" if m.gating else " (info)"),
                _value(m.metric, m.a),
                _value(m.metric, m.b),
                _value(m.metric, m.difference),
                ci,
                fmt_pct(m.relative),
                fmt_num(m.p_adjusted if m.p_adjusted is not None else m.p_value),
                m.verdict,
                m.method,
            )
        )
    header = (
        "metric",
        "A",
        "B",
        "B − A",
        "95 % CI of B − A",
        "relative",
        "p (Holm)",
        "verdict",
        "method",
    )
    return Table("Metrics (latency in ms)", header, tuple(rows))
