"""Assemble reports: which sections a directory gets, the one-sentence headline, comparisons.

    paths = write_reports(["results/<run>", "results/<other-run>"], Path("reports"),
                          compare=harness.compare_runs)

A directory gets a section for each thing it holds: run.json + summary.json (the run),
sweep.json (the sweep), plan.json (+ hpa_sim.json: the plan; + recommendation.json: a capacity
report, its recommendation first), gameday.json (the game day), two
endpoints and a `compare` function (the split A/B). With several directories, each run after
the first of the same scenario also gets a comparison with that first one (the baseline).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.analysis.ab.compare import Comparison
from harness.errors import ConfigError, HarnessError
from harness.report import ab, capacity, gameday, recommendation, runs
from harness.report.data import read_optional_json
from harness.report.model import Report, Section
from harness.report.render import write_report
from harness.results.store import Run, load_run
from harness.results.sweeps import read_sweep

__all__ = ["CompareFn", "ReportFiles", "build_report", "write_reports"]

log = logging.getLogger(__name__)

CompareFn = Callable[..., Comparison]
"""`harness.compare.compare_runs`: (run_a, run_b=None) -> Comparison."""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    report: Report
    html: Path
    markdown: Path
    figures: tuple[Path, ...]


def _run_of(path: Path) -> Run | None:
    return load_run(path) if (path / "run.json").is_file() else None


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    compare: CompareFn | None = None,
    baseline: str | os.PathLike[str] | None = None,
) -> Report:
    """The report of one directory (and its comparison with `baseline`, given `compare`)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory")
    run = _run_of(path)
    plan = read_optional_json(path / "plan.json")
    has_sweep = (path / "sweep.json").is_file()
    if run is None and plan is None and not has_sweep:
        raise ConfigError(
            f"{path}: not a run, sweep or plan directory (no run.json, sweep.json or plan.json)"
        )
    sections: list[Section] = []
    lines: list[str] = []
    doc = read_optional_json(path / "gameday.json") if run is not None else None
    if run is not None and doc is not None:
        sections.append(gameday.gameday_section(run, doc))
        lines.append(gameday.gameday_headline(doc))
    rec = read_optional_json(path / recommendation.FILE) if plan is not None else None
    if rec is not None:  # a capacity report: the answer first, then the evidence
        sections.append(recommendation.recommendation_section(rec))
        lines.append(recommendation.recommendation_headline(rec))
    if plan is not None:
        sections.append(capacity.plan_section(path, plan))
        lines.append(capacity.plan_headline(plan))
    if has_sweep:
        sections.append(capacity.sweep_section(path))
        lines.append(capacity.sweep_headline(read_sweep(path)))
    if run is not None and run.summary is not None:
        sections.append(runs.run_section(run))
        lines.append(runs.headline(run.summary))
        if compare is not None and len(run.summary["endpoints"]) == 2:
            sections.append(_split_ab(run, compare))
            lines.append(_ab_line(sections[-1]))
    if run is not None and baseline is not None and compare is not None:
        sections.append(_two_runs(load_run(baseline), run, compare))
        lines.append(_ab_line(sections[-1]))
    report_id = run.run_id if run is not None else path.name
    return Report(
        report_id=report_id,
        title=f"Serving Harness report: {report_id}",
        headline=lines[0] if lines else "nothing measured",
        source=str(path),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        sections=tuple(sections),
    )


def _ab_line(section: Section) -> str:
    return section.facts[0] if section.facts else section.title


def _split_ab(run: Run, compare: CompareFn) -> Section:
    try:
        result = compare(run)
    except HarnessError as exc:
        return Section("ab", "A/B comparison (split run)", notes=(f"no comparison: {exc}",))
    arms = ((run, result.arm_a), (run, result.arm_b))
    return ab.ab_section(result, arms, title="A/B comparison (split run)")


def _two_runs(base: Run, run: Run, compare: CompareFn) -> Section:
    title = f"Comparison with {base.run_id} (A = that run, B = this one)"
    try:
        result = compare(base, run)
    except HarnessError as exc:
        return Section("comparison", title, notes=(f"no comparison: {exc}",))
    return ab.ab_section(
        result, ((base, result.arm_a), (run, result.arm_b)), key="comparison", title=title
    )


def baselines(run_dirs: Sequence[Path]) -> dict[Path, Path]:
    """For each run after the first of its scenario, that first run (its baseline)."""
    first: dict[Any, Path] = {}
    out = {}
    for path in run_dirs:
        run = _run_of(path)
        if run is None or run.summary is None:
            continue
        scenario = run.meta.get("scenario")
        if scenario in first:
            out[path] = first[scenario]
        else:
            first[scenario] = path
    return out


def write_reports(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    compare: CompareFn | None = None,
) -> list[ReportFiles]:
    """One report per directory under `out_dir/<report-id>/` (report.html, summary.md,
    figures/*.png)."""
    paths = [Path(p) for p in run_dirs]
    base = baselines(paths) if compare is not None else {}
    written = []
    for path in paths:
        report = build_report(path, compare=compare, baseline=base.get(path))
        target = Path(out_dir) / report.report_id
        html, markdown, figs = write_report(report, target)
        log.info("wrote %s", html)
        written.append(ReportFiles(report, html, markdown, figs))
    return written


def with_sections(report: Report, *sections: Section) -> Report:
    """The report with `sections` appended (e.g. a capacity command's own)."""
    return replace(report, sections=(*report.sections, *sections))
