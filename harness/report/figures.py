"""The report's figures, drawn with matplotlib in one style (and the notebooks draw the same).

Why `Figure` objects and not pyplot: no global figure state, no display backend (the Agg
canvas renders PNG/SVG on a headless machine), and a figure can be both embedded in the HTML
and written to figures/*.png. Every figure has a title, labelled axes with units, a legend
when it has several series, and line styles that stay apart in grey print. Inputs are the
DataFrames of `harness.report.data`; nothing here reads files.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = [
    "STYLE",
    "ab_cdf",
    "errors_over_time",
    "gameday_timeline",
    "hpa_simulation",
    "latency_over_time",
    "png_bytes",
    "server_breakdown",
    "sweep_curve",
    "throughput_over_time",
    "usl_curve",
]

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 110,
    "svg.fonttype": "none",
}
SIZE = (7.5, 3.4)
PERCENTILE_LINES = (  # (column, label, line style): distinguishable without colour
    ("p50_ms", "p50", "-"),
    ("p90_ms", "p90", "--"),
    ("p99_ms", "p99", "-."),
    ("p999_ms", "p99.9", ":"),
)


@contextmanager
def _styled() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=SIZE, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def _log_axis(ax: Any, which: str = "y") -> None:
    """Log scale with plain tick labels (5, 10, 50 rather than 10^1)."""
    getattr(ax, f"set_{which}scale")("log")
    getattr(ax, f"{which}axis").set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG (Agg), in the report style."""
    buf = io.BytesIO()
    with _styled():
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _slo_line(ax: Any, slo_ms: float | None, label: str = "SLO") -> None:
    if slo_ms is not None:
        ax.axhline(
            slo_ms,
            color="tab:red",
            linewidth=1.2,
            linestyle=(0, (6, 2)),
            label=f"{label} {slo_ms:g} ms",
        )


def _unhealthy(ax: Any, df: pd.DataFrame) -> None:
    """Shade seconds where the load generator was unhealthy (their latency is suspect)."""
    bad = df.loc[~df["healthy"].astype(bool), "second"]
    for i, second in enumerate(bad):
        ax.axvspan(
            second,
            second + 1,
            color="0.8",
            alpha=0.6,
            linewidth=0,
            label="generator unhealthy" if i == 0 else None,
        )


def latency_over_time(
    df: pd.DataFrame, slo_ms: float | None = None, title: str = "Latency percentiles per second"
) -> Figure:
    """p50/p90/p99/p99.9 of each second's requests (from its HDR histogram), log scale."""
    with _styled():
        fig, ax = _figure(title, "time since start (s)", "latency (ms, log scale)")
        _unhealthy(ax, df)
        for column, label, style in PERCENTILE_LINES:
            ax.plot(df["second"], df[column], linestyle=style, label=label, linewidth=1.3)
        _slo_line(ax, slo_ms, "p99 SLO")
        if df[[c for c, _, _ in PERCENTILE_LINES]].notna().any().any():
            _log_axis(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def throughput_over_time(df: pd.DataFrame, planned_rps: float | None = None) -> Figure:
    with _styled():
        fig, ax = _figure(
            "Offered vs achieved throughput", "time since start (s)", "requests per second"
        )
        ax.plot(df["second"], df["requests"], "--", label="offered (requests intended)")
        ax.plot(df["second"], df["successes"], "-", label="achieved (successful responses)")
        if planned_rps is not None:
            ax.axhline(planned_rps, color="0.3", linestyle=":", label=f"planned {planned_rps:g}/s")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right")
    return fig


def errors_over_time(df: pd.DataFrame) -> Figure:
    with _styled():
        fig, ax = _figure("Errors per second", "time since start (s)", "failed requests per second")
        ax.bar(
            df["second"],
            df["failures"],
            width=1.0,
            align="edge",
            color="tab:red",
            label="failed requests",
        )
        ax.set_ylim(bottom=0, top=max(1.0, float(df["failures"].max() or 0) * 1.15))
        share = ax.twinx()
        share.plot(
            df["second"] + 0.5, 100 * df["error_rate"], "k:", linewidth=1, label="error rate"
        )
        share.set_ylabel("error rate (%)")
        share.set_ylim(
            bottom=0,
            top=max(
                1.0,
                float(
                    100 * df["error_rate"].max(skipna=True) if df["error_rate"].notna().any() else 0
                ),
            ),
        )
        share.grid(False)
        ax.legend(loc="upper left")
    return fig


def server_breakdown(df: pd.DataFrame) -> Figure:
    """Stacked mean queue and compute time per request, as the server's counters tell it."""
    with _styled():
        fig, ax = _figure(
            "Server-side time per request: queue vs compute",
            "time since start (s)",
            "mean time per request (ms)",
        )
        queue = df["queue_ms"].fillna(0).to_numpy()
        compute = df["compute_ms"].fillna(0).to_numpy()
        ax.stackplot(
            df["second"],
            queue,
            compute,
            labels=["queue", "compute"],
            colors=["0.75", "tab:blue"],
            alpha=0.9,
        )
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
    return fig


def sweep_curve(
    steps: pd.DataFrame, meta: Mapping[str, Any], fitted: pd.DataFrame | None, slo_ms: float | None
) -> Figure:
    """p99 against achieved throughput: the steps (passed / failed), the fitted queueing
    curve, the SLO, the knee and the highest throughput under the SLO."""
    with _styled():
        fig, ax = _figure(
            "Throughput vs p99 latency (sweep)", "achieved throughput (req/s)", "p99 latency (ms)"
        )
        ok = steps["passed"].astype(bool)
        ax.plot(steps.loc[ok, "throughput_rps"], steps.loc[ok, "p99_ms"], "o", label="step: passed")
        ax.plot(
            steps.loc[~ok, "throughput_rps"],
            steps.loc[~ok, "p99_ms"],
            "x",
            color="tab:red",
            label="step: failed",
        )
        if fitted is not None:
            ax.plot(
                fitted["throughput_rps"],
                fitted["p99_ms"],
                "-",
                color="0.3",
                label="fitted p99 = a + b·u/(1−u)",
            )
        _slo_line(ax, slo_ms, "p99 SLO")
        latency = meta.get("latency") or {}
        knee = latency.get("knee")
        if knee:
            ax.plot(
                [knee["throughput"]],
                [knee["p99_ms"]],
                "D",
                color="tab:orange",
                label=f"knee {knee['throughput']:.0f} req/s",
            )
        best = (latency.get("max_under_slo") or {}).get("throughput")
        if best is not None:
            ax.axvline(
                best, color="tab:green", linestyle="--", label=f"max under SLO {best:.0f} req/s"
            )
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
    return fig


def usl_curve(steps: pd.DataFrame, fitted: pd.DataFrame, band: pd.DataFrame | None) -> Figure:
    """Throughput against concurrency with the Universal Scalability Law fit."""
    with _styled():
        fig, ax = _figure(
            "Universal Scalability Law fit",
            "concurrency N (requests in flight)",
            "throughput X(N) (req/s)",
        )
        ax.plot(steps["load"], steps["throughput_rps"], "o", label="measured steps")
        ax.plot(fitted["n"], fitted["x"], "-", color="0.3", label="USL fit")
        if band is not None:
            ax.fill_between(
                band["n"], band["lo"], band["hi"], color="0.85", label="parameters at their CI ends"
            )
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right")
    return fig


def ab_cdf(cdfs: Mapping[str, pd.DataFrame], title: str = "Latency distributions (A/B)") -> Figure:
    """Each arm's CDF on a log latency axis, the tail magnified by a 1/(1-F) scale."""
    with _styled():
        fig = Figure(figsize=(SIZE[0], SIZE[1] * 1.1), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        fig.suptitle(title, fontweight="bold", fontsize=10)
        for (name, df), style in zip(cdfs.items(), ("-", "--", "-.", ":"), strict=False):
            left.step(df["latency_ms"], df["fraction"], style, where="post", label=name)
            below = df[df["fraction"] < 1.0]  # the slowest request has no "1 in N" above it
            tail = 1.0 / (1.0 - below["fraction"].to_numpy())
            right.step(below["latency_ms"], tail, style, where="post", label=name)
        left.set_title("CDF")
        left.set_xlabel("latency (ms, log scale)")
        left.set_ylabel("share of requests ≤ latency")
        right.set_title("tail: 1/(1 − CDF)")
        right.set_xlabel("latency (ms, log scale)")
        right.set_ylabel("1 in N requests slower")
        for ax in (left, right):
            _log_axis(ax, "x")
            ax.legend(loc="lower right")
        _log_axis(right)
        for q, label in ((100, "p99"), (1000, "p99.9")):
            right.axhline(q, color="0.5", linewidth=0.8, linestyle=":")
            right.annotate(
                label,
                (1.0, q),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
            )
    return fig


def gameday_timeline(
    df: pd.DataFrame, timeline: Mapping[str, Any], impact: Mapping[str, Any], slo_ms: float | None
) -> Figure:
    """p99 and errors per second, the fault window shaded, detection and recovery marked."""
    with _styled():
        fig, ax = _figure(
            "Game day timeline", "time since load start (s)", "p99 latency (ms, log scale)"
        )
        start, end = timeline.get("fault_start"), timeline.get("fault_end")
        if start is not None:
            ax.axvspan(
                start,
                end if end is not None else start,
                color="tab:red",
                alpha=0.12,
                label="fault injected",
            )
        ax.plot(df["second"] + 0.5, df["p99_ms"], "-", label="p99 per second")
        _slo_line(ax, slo_ms, "p99 SLO")
        if df["p99_ms"].notna().any():
            _log_axis(ax)
        detect, recover = impact.get("time_to_detect_s"), impact.get("time_to_recover_s")
        if start is not None and detect is not None:
            ax.axvline(
                start + detect,
                color="tab:orange",
                linestyle="--",
                label=f"detected (+{detect:g} s)",
            )
        if impact.get("recovered_at_s") is not None:
            ax.axvline(
                impact["recovered_at_s"],
                color="tab:green",
                linestyle="--",
                label=f"recovered ({recover:g} s after the fault ended)"
                if recover is not None
                else "recovered",
            )
        errors = ax.twinx()
        errors.bar(
            df["second"],
            df["failures"],
            width=1.0,
            align="edge",
            color="0.4",
            alpha=0.5,
            label="failed requests",
        )
        errors.set_ylabel("failed requests per second")
        errors.set_ylim(bottom=0, top=max(1.0, float(df["failures"].max() or 0) * 3))
        errors.grid(False)
        handles, labels = ax.get_legend_handles_labels()
        more, more_labels = errors.get_legend_handles_labels()
        ax.legend(handles + more, labels + more_labels, loc="upper left", ncol=2)
    return fig


def hpa_simulation(df: pd.DataFrame, slo_ms: float | None) -> Figure:
    """Replicas and predicted p99 over the trace, one line per HPA setting."""
    with _styled():
        fig = Figure(figsize=(SIZE[0], SIZE[1] * 1.5), layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True)
        fig.suptitle("HPA simulation over the traffic trace", fontweight="bold", fontsize=10)
        hours = df["t_s"] / 3600.0
        traffic = top.twinx()
        first = df["setting"].iloc[0] if len(df) else None
        one = df[df["setting"] == first]
        traffic.plot(one["t_s"] / 3600.0, one["traffic_rps"], color="0.7", linewidth=0.8)
        traffic.set_ylabel("traffic (req/s, grey)")
        traffic.grid(False)
        for (name, part), style in zip(
            df.groupby("setting", sort=False), ("-", "--", "-.", ":"), strict=False
        ):
            t = hours[part.index]
            top.plot(t, part["replicas"], style, label=str(name))
            bottom.plot(t, part["p99_ms"].replace(np.inf, np.nan), style, label=str(name))
        top.set_ylabel("replicas")
        top.legend(loc="upper left")
        bottom.set_ylabel("predicted p99 (ms)")
        bottom.set_xlabel("time (h)")
        _slo_line(bottom, slo_ms, "p99 SLO")
        bottom.legend(loc="upper left")
    return fig
