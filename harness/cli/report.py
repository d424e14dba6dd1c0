"""`harness report RUN [RUN ...] [--out DIR]`: report.html, summary.md and figures per run.

    harness report results/<run-id>                      # -> reports/<run-id>/report.html
    harness report results/<baseline> results/<new>      # the second compared with the first

A RUN is a run directory (`harness run`, `harness gameday`), a sweep run directory or a plan
directory (`harness plan --out`); each gets the sections for what it holds
(`harness.report.build`). A/B verdicts come from `harness.compare.compare_runs`, the same
judge as `harness compare`. Prints each report's path and its one-sentence headline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="self-contained HTML report, Markdown summary, figures")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run/sweep/plan directory")
    p.add_argument(
        "--out", type=Path, default=Path("reports"), help="output directory (default reports)"
    )


def run(args: argparse.Namespace) -> int:
    from harness.compare import compare_runs
    from harness.report import write_reports

    console = Console(soft_wrap=True, highlight=False)
    for files in write_reports(args.runs, args.out, compare=compare_runs):
        console.print(f"{escape(files.report.headline)}")
        console.print(f"  wrote {escape(str(files.html))} and {escape(str(files.markdown))}")
    return 0
