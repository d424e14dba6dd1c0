"""The history trend of a run's scenario: p50, p99 and throughput of its runs over time.

Read from `<results>/history.duckdb` next to the run directory (`harness.results.history`),
with the gate's verdicts (`harness run --baseline`) marked; only when the scenario has at
least two recorded runs (a trend needs two points). The run the report is about is circled.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from harness.errors import StoreError
from harness.report import figures
from harness.report.model import FigureItem
from harness.results.history import gate_verdicts, list_runs
from harness.results.store import Run

__all__ = ["trend_figure", "trend_figures", "trend_frame"]


def trend_frame(run: Run, limit: int = 50) -> pd.DataFrame | None:
    """The scenario's last `limit` runs oldest first (started_at, run_id, p50_ms, p99_ms,
    throughput_rps, gate); None without a history or with fewer than two runs."""
    scenario = run.meta.get("scenario")
    out = run.run_dir.parent
    try:
        rows = list_runs(out, limit=limit, scenario=scenario) if scenario else []
        gates = gate_verdicts(out, scenario) if len(rows) >= 2 else {}
    except StoreError:
        return None
    if len(rows) < 2:
        return None
    frame = pd.DataFrame(
        {
            "started_at": [r.started_at for r in rows],
            "run_id": [r.run_id for r in rows],
            "p50_ms": [r.p50_ms for r in rows],
            "p99_ms": [r.p99_ms for r in rows],
            "throughput_rps": [r.throughput_rps for r in rows],
            "gate": [gates.get(r.run_id) for r in rows],
        }
    )
    return frame.iloc[::-1].reset_index(drop=True)


def trend_figure(df: pd.DataFrame, current: str) -> Figure:
    """p50 and p99 per run (log scale), throughput on the right axis; gate regressions as red
    crosses, the current run circled."""
    with figures._styled():
        fig, ax = figures._figure("Trend across runs", "run (oldest to newest)", "latency (ms)")
        x = list(range(len(df)))
        ax.plot(x, df["p50_ms"], "o-", label="p50", linewidth=1.3)
        ax.plot(x, df["p99_ms"], "s--", label="p99", linewidth=1.3)
        bad = [i for i, gate in enumerate(df["gate"]) if gate == "regression"]
        if bad:
            ax.plot(bad, df["p99_ms"].iloc[bad], "x", color="tab:red", markersize=10,
                    label="gate: regression")  # fmt: skip
        here = [i for i, run_id in enumerate(df["run_id"]) if run_id == current]
        if here:
            ax.plot(here, df["p99_ms"].iloc[here], "o", markersize=14, fillstyle="none",
                    color="0.2", label="this run")  # fmt: skip
        if df[["p50_ms", "p99_ms"]].notna().any().any():
            figures._log_axis(ax)
        right = ax.twinx()
        right.plot(x, df["throughput_rps"], ":", color="0.4", label="throughput")
        right.set_ylabel("throughput (req/s)")
        right.set_ylim(bottom=0)
        labels = [str(t)[:16] if t is not None else "-" for t in df["started_at"]]
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left",
                  bbox_to_anchor=(1.12, 1.0))  # fmt: skip
    return fig


def trend_figures(run: Run, prefix: str = "") -> tuple[FigureItem, ...]:
    """The trend figure item for the run section, or nothing without a history."""
    df = trend_frame(run)
    if df is None:
        return ()
    return (
        FigureItem(
            f"{prefix}history_trend",
            "Trend across runs of this scenario",
            f"p50 and p99 (left, log scale) and throughput (right) of the last {len(df)} "
            "recorded runs of this scenario (history.duckdb), oldest first; red crosses: runs "
            "the gate (harness run --baseline) called a regression; circled: this run.",
            figures.png_bytes(trend_figure(df, run.run_id)),
        ),
    )
