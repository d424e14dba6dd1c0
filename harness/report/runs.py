"""The run section of a report: latency over time, throughput, errors, server-side breakdown,
generator health, SLO checks, validity and confidence intervals.

Every number in the tables is the summary's (summary.json, the verdict the run already gave);
the figures are drawn from the windows (`harness.report.data`), so a reader can check the one
against the other.
"""

from __future__ import annotations

from typing import Any

from harness.report import data, figures, trend
from harness.report.model import FigureItem, Section, Table, fmt_ms, fmt_num, fmt_pct
from harness.results.schema import Summary
from harness.results.store import Run

__all__ = ["headline", "run_section", "slo_p99_ms"]

LATENCY_ROWS = (
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("max", "max"),
    ("mean", "mean"),
)


def slo_p99_ms(summary: Summary | None) -> float | None:
    """The p99 threshold among the run's SLO checks, if it has one."""
    for check in (summary or {}).get("slo", {}).get("checks", []):
        if check["name"] == "p99_ms":
            return float(check["threshold"])
    return None


def headline(summary: Summary) -> str:
    """What the run says in one sentence: validity; p99 against the SLO at the achieved rate;
    errors. E.g. 'valid run; p99 4.2 ms meets the 250 ms SLO at 98 req/s; 0.1 % errors'."""
    parts = ["valid run" if summary["valid"] else _invalid(summary)]
    if summary["status"] != "complete":
        parts[0] += f" (status {summary['status']})"
    p99, slo = summary["latency_ms"]["p99"], slo_p99_ms(summary)
    rate = f" at {fmt_num(summary['throughput_rps'])} req/s"
    if p99 is None:
        parts.append("no successful request measured")
    elif slo is None:
        parts.append(f"p99 {fmt_ms(p99)} (no p99 SLO){rate}")
    else:
        verb = "meets" if p99 <= slo else "misses"
        parts.append(f"p99 {fmt_ms(p99)} {verb} the {fmt_ms(slo)} SLO{rate}")
    parts.append(f"{fmt_pct(summary['error_rate'])} errors")
    if not summary["slo"]["passed"]:
        failed = [c["name"] for c in summary["slo"]["checks"] if not c["passed"]]
        parts.append("SLO failed: " + ", ".join(failed))
    return "; ".join(parts)


def _invalid(summary: Summary) -> str:
    reasons = summary["validity"]["reasons"]
    return "INVALID run" + (f" ({reasons[0]})" if reasons else "")


def run_section(run: Run, prefix: str = "") -> Section:
    """The whole run section; `prefix` keeps figure names apart when a report has several."""
    summary = run.summary
    if summary is None:
        return Section("run", "Run", notes=(f"{run.run_dir}: no summary.json (not summarised)",))
    frame = data.latency_frame(run)
    figs = _figures(run, frame, summary, prefix) + trend.trend_figures(run, prefix)
    return Section(
        "run",
        f"Run {run.run_id}",
        facts=_facts(run, summary),
        tables=tuple(
            t
            for t in (
                _latency_table(summary),
                _slo_table(summary),
                _endpoint_table(summary),
                _loadgen_table(summary),
            )
            if t
        ),
        figures=figs,
        notes=tuple(summary["validity"]["reasons"]),
    )


def _facts(run: Run, summary: Summary) -> tuple[str, ...]:
    v = summary["validity"]
    warmup = "none detected" if not v["warmup_detected"] else f"{fmt_num(v['warmup_s'])} s"
    return (
        f"scenario {summary['scenario']}, status {summary['status']}, "
        f"{fmt_num(summary['duration_s'])} s ({summary['started_at']} → {summary['ended_at']})",
        f"{summary['requests']} requests, {summary['failures']} failed "
        f"({fmt_pct(summary['error_rate'])}), {summary['rejected']} rejected by the histogram",
        f"throughput {fmt_num(summary['throughput_rps'])} req/s achieved, "
        f"{fmt_num(summary['offered_rps'])} req/s offered",
        f"validity: {'valid' if summary['valid'] else 'INVALID'}; warm-up {warmup}; "
        f"{v['measured_s']} s measured from second {v['analysed_from_s']}; "
        f"{v['excluded_windows']} windows excluded",
        f"SLO {'passed' if summary['slo']['passed'] else 'FAILED'}",
        f"run directory {run.run_dir}",
    )


def _latency_table(summary: Summary) -> Table:
    ci = summary["latency_ci_ms"]
    level = f"{fmt_num(100 * summary['confidence'])} % CI"
    rows = []
    for key, label in LATENCY_ROWS:
        lo, hi = (ci.get(key) or [None, None])[:2]
        interval = "-" if lo is None and hi is None else f"[{fmt_num(lo)}, {fmt_num(hi)}]"
        rows.append(
            (
                label,
                fmt_num(summary["latency_ms"][key]),
                fmt_num(summary["latency_uncorrected_ms"][key]),
                interval,
            )
        )
    header = ("percentile", "latency (ms)", "from actual send (ms)", f"{level} (ms)")
    return Table("Latency, from the intended send time (measured seconds)", header, tuple(rows))


def _slo_table(summary: Summary) -> Table | None:
    checks = summary["slo"]["checks"]
    if not checks:
        return None
    rows = tuple(
        (
            c["name"],
            fmt_num(c["threshold"]),
            fmt_num(c["observed"]),
            "pass" if c["passed"] else "FAIL",
            {True: "yes", False: "no", None: "-"}[c["conclusive"]],
        )
        for c in checks
    )
    return Table("SLO checks", ("check", "threshold", "observed", "verdict", "conclusive"), rows)


def _endpoint_table(summary: Summary) -> Table | None:
    endpoints = summary["endpoints"]
    if len(endpoints) < 2:
        return None
    rows = tuple(
        (
            name,
            str(e["requests"]),
            fmt_pct(e["failures"] / e["requests"] if e["requests"] else None),
            fmt_num(e["throughput_rps"]),
            fmt_num(e["latency_ms"]["p50"]),
            fmt_num(e["latency_ms"]["p99"]),
            fmt_pct(e["accuracy"]),
        )
        for name, e in endpoints.items()
    )
    header = ("endpoint", "requests", "errors", "req/s", "p50 (ms)", "p99 (ms)", "accuracy")
    return Table("Per endpoint", header, rows)


def _loadgen_table(summary: Summary) -> Table | None:
    g = summary.get("loadgen")
    if g is None:
        return None
    lag = g["schedule_lag_ms"]
    unhealthy = g["unhealthy_seconds"]
    rows: list[tuple[str, str]] = [
        ("mode", g["mode"]),
        ("workers finished / expected", f"{g['workers_finished']} / {g['workers_expected']}"),
        ("sent / dropped / abandoned", f"{g['sent']} / {g['dropped']} / {g['abandoned']}"),
        (
            "schedule lag p50 / p99 / max (ms)",
            " / ".join(fmt_num(lag.get(k)) for k in ("p50", "p99", "max")),
        ),
        ("max CPU of a worker", fmt_num(g["max_cpu_percent"]) + " %"),
        (
            "unhealthy seconds",
            f"{len(unhealthy)}" + (f": {_seconds(unhealthy)}" if unhealthy else ""),
        ),
        ("why unhealthy", "; ".join(g["unhealthy_reasons"]) or "-"),
    ]
    if "planned_rps" in g:
        rows.insert(1, ("planned rate", f"{fmt_num(g['planned_rps'])} req/s"))
    return Table("Load generator health", ("", "value"), tuple(rows))


def _seconds(seconds: list[int], most: int = 12) -> str:
    shown = ", ".join(str(s) for s in seconds[:most])
    return shown + (f" … (+{len(seconds) - most})" if len(seconds) > most else "")


def _figures(run: Run, frame: Any, summary: Summary, prefix: str) -> tuple[FigureItem, ...]:
    if frame.empty:
        return ()
    planned = (summary.get("loadgen") or {}).get("planned_rps")
    items = [
        FigureItem(
            f"{prefix}latency_over_time",
            "Latency percentiles per second",
            "p50, p90, p99 and p99.9 of the requests intended in each second, read from that "
            "second's HDR histogram (not averages); log scale. Grey bands: seconds in which the "
            "load generator was unhealthy (excluded from the verdict). Dashed red: the p99 SLO.",
            figures.png_bytes(figures.latency_over_time(frame, slo_p99_ms(summary))),
        ),
        FigureItem(
            f"{prefix}throughput",
            "Offered vs achieved throughput",
            "Offered: requests intended per second (every outcome). Achieved: successful "
            "responses among them. A gap means failures or a generator falling behind.",
            figures.png_bytes(figures.throughput_over_time(frame, planned)),
        ),
        FigureItem(
            f"{prefix}errors",
            "Errors per second",
            "Failed requests per second (bars) and the error rate (dotted, right axis).",
            figures.png_bytes(figures.errors_over_time(frame)),
        ),
    ]
    breakdown = data.server_breakdown_frame(run)
    if breakdown is not None and not breakdown.empty:
        items.append(
            FigureItem(
                f"{prefix}server_breakdown",
                "Server-side queue vs compute",
                "Mean time per request the server spent queued (waiting for a batch or an "
                "instance) and computing, from its Triton counters (sums / count per scrape "
                "interval, all replicas). Client latency above queue + compute is network and "
                "HTTP handling.",
                figures.png_bytes(figures.server_breakdown(breakdown)),
            )
        )
    return tuple(items)
