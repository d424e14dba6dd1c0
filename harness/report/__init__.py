"""Reports: a run directory as one self-contained report.html, a summary.md and figures/*.png.

    from harness import compare_runs
    from harness.report import write_reports
    files = write_reports(["results/<run>"], "reports", compare=compare_runs)

Measuring and reporting are split: a report is rebuilt from the run directory at any time,
through the one reader (`harness.load_run`, `harness.results.sweeps.read_sweep`) and the
records other commands wrote (plan.json, hpa_sim.json, gameday.json). The modules:

    data        the run's files as pandas DataFrames (per-second percentiles from the HDR
                windows, server queue/compute, sweep steps, HPA simulation); notebooks use it
    figures     matplotlib (Agg) figures in one print-readable style
    model       the report as records (sections, tables, figures) and number formatting
    runs        the run section and the one-sentence headline
    trend       the history trend of the run's scenario (history.duckdb), in the run section
    capacity    the sweep and plan sections
    ab          A/B sections (a split run, or two runs of one scenario)
    gameday     the game-day section (gameday.json)
    render      Jinja2 templates (templates/) to report.html and summary.md, written atomically
    build       which sections a directory gets; `write_reports`
"""

from harness.report.build import CompareFn, ReportFiles, build_report, write_reports
from harness.report.model import FigureItem, Report, Section, Table
from harness.report.render import render_html, render_markdown, write_report

__all__ = [
    "CompareFn",
    "FigureItem",
    "Report",
    "ReportFiles",
    "Section",
    "Table",
    "build_report",
    "render_html",
    "render_markdown",
    "write_report",
    "write_reports",
]
