"""The game-day section of a report, from gameday.json (written by `harness gameday`).

Why it tolerates what is missing: gameday.json is another part's record (schema_version 1:
hypothesis, impact, capacity_check, rollback, verdict, timeline); a run without it has no
game-day section, and a section whose part is null says so instead of failing.
"""

from __future__ import annotations

from typing import Any

from harness.report import data, figures
from harness.report.model import FigureItem, Section, Table, fmt_ms, fmt_num, fmt_pct
from harness.results.store import Run

__all__ = ["gameday_headline", "gameday_section"]

MET = {True: "met", False: "NOT met", None: "not checked"}


def gameday_headline(doc: dict[str, Any]) -> str:
    verdict = (doc.get("verdict") or {}).get("result", "unknown")
    impact = doc.get("impact") or {}
    title = (doc.get("experiment") or {}).get("title") or "game day"
    return (
        f"game day {verdict.upper()} ({title}): detected in "
        f"{_s(impact.get('time_to_detect_s'))}, recovered in "
        f"{_s(impact.get('time_to_recover_s'))}, {impact.get('failed_requests', '-')} failed "
        f"requests"
    )


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{fmt_num(seconds)} s"


def gameday_section(run: Run, doc: dict[str, Any], prefix: str = "") -> Section:
    impact = doc.get("impact") or {}
    timeline = doc.get("timeline") or {}
    slo = doc.get("slo") or {}
    verdict = doc.get("verdict") or {}
    facts = [
        f"verdict: {str(verdict.get('result', 'unknown')).upper()} "
        f"(exit {verdict.get('exit_code')})",
        f"experiment: {(doc.get('experiment') or {}).get('title')}; status {doc.get('status')}",
        f"fault from {_s(timeline.get('fault_start'))} to {_s(timeline.get('fault_end'))} of the "
        f"load; SLO p99 ≤ {fmt_ms(slo.get('p99_ms'))}, errors ≤ {fmt_pct(slo.get('error_rate'))}",
    ]
    tables = [_hypothesis_table(doc.get("hypothesis") or {})]
    if impact:
        tables += [_impact_table(impact), _phase_table(impact)]
    else:
        facts.append("no impact analysis (no windows measured, or no fault injected)")
    tables.append(_capacity_table(doc.get("capacity_check") or {}))
    tables.append(_rollback_table(doc.get("rollback") or {}))
    figs = ()
    frame = data.latency_frame(run) if run.windows else None
    if frame is not None and not frame.empty:
        figs = (
            FigureItem(
                f"{prefix}gameday_timeline",
                "Game day timeline",
                "p99 per second of the load (log scale) with the fault window shaded; orange: when "
                "the impact was detected, green: when the load was back within tolerance of its "
                "baseline for the required number of seconds. Bars: failed requests per second.",
                figures.png_bytes(
                    figures.gameday_timeline(frame, timeline, impact, slo.get("p99_ms"))
                ),
            ),
        )
    return Section(
        "gameday",
        "Game day",
        facts=tuple(facts),
        tables=tuple(tables),
        figures=figs,
        notes=tuple(verdict.get("reasons") or ()),
    )


def _hypothesis_table(h: dict[str, Any]) -> Table:
    rows = (
        *((phase, MET[(h.get(phase) or {}).get("met")]) for phase in ("before", "during", "after")),
        ("method ran", "yes" if h.get("method_ran") else "no"),
        ("journal status", str(h.get("journal_status", "-"))),
    )
    return Table("Steady-state hypothesis", ("phase", "steady state"), rows)


def _impact_table(impact: dict[str, Any]) -> Table:
    rows = (
        ("time to detect", _s(impact.get("time_to_detect_s"))),
        ("time to recover (after the fault ended)", _s(impact.get("time_to_recover_s"))),
        ("failed requests", fmt_num(impact.get("failed_requests"))),
        ("slowed requests (over the SLO p99)", fmt_num(impact.get("slowed_requests"))),
        ("excess latency (request-seconds)", fmt_num(impact.get("excess_latency_s"))),
        ("impact seconds", " – ".join(str(s) for s in impact.get("impact_seconds") or [])),
        ("error budget used", _budget(impact.get("error_budget"))),
        ("latency budget used", _budget(impact.get("latency_budget"))),
    )
    return Table("Impact", ("", "value"), rows)


def _budget(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "-"
    return ", ".join(f"{k} {fmt_num(v)}" for k, v in budget.items())


def _phase_table(impact: dict[str, Any]) -> Table:
    rows = []
    for phase in ("before", "during", "after"):
        p = impact.get(phase) or {}
        rows.append(
            (
                phase,
                fmt_num(p.get("seconds")),
                fmt_num(p.get("requests")),
                fmt_pct(p.get("error_rate")),
                fmt_num(p.get("p99_ms")),
                fmt_num(p.get("mean_ms")),
            )
        )
    header = ("phase", "seconds", "requests", "error rate", "p99 (ms)", "mean (ms)")
    return Table("Before / during / after the fault", header, tuple(rows))


def _capacity_table(check: dict[str, Any]) -> Table:
    predicted = check.get("predicted") or {}
    observed = check.get("observed") or {}
    rows = (
        ("predicted: the remaining replicas carry the load", _yes(predicted.get("carries"))),
        ("why", str(predicted.get("reason", "-"))),
        ("observed during the fault", _yes(observed.get("carried"))),
        (
            "p99 / error rate during",
            f"{fmt_ms(observed.get('during_p99_ms'))} / "
            f"{fmt_pct(observed.get('during_error_rate'))}",
        ),
        ("prediction and observation agree", _yes(check.get("agreed"))),
    )
    return Table("Capacity check (N − lost replicas)", ("", "value"), rows)


def _rollback_table(rollback: dict[str, Any]) -> Table:
    diffs = rollback.get("differences") or []
    rows = (
        ("stack after the rollback equals before", _yes(rollback.get("equal"))),
        ("differences", "; ".join(diffs) or "none"),
        ("forced rollback", str(rollback.get("forced") or "no")),
    )
    return Table("Rollback check", ("", "value"), rows)


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}.get(value, str(value))
