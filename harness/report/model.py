"""The report as records: what a section says, independent of HTML or Markdown.

Why records between the analysis and the templates: the same report is rendered twice
(report.html and summary.md) and tested once -- a test reads the numbers from these records
or from the rendered text, never from a template's logic. Figures are kept as PNG bytes:
rendered once, embedded in the HTML and written to figures/*.png.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["FigureItem", "Report", "Section", "Table", "fmt_ms", "fmt_num", "fmt_pct"]


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class FigureItem:
    """One figure: `name` is its file stem under figures/, `caption` says how to read it."""

    name: str
    title: str
    caption: str
    png: bytes


@dataclass(frozen=True, slots=True)
class Section:
    key: str  # run, sweep, plan, ab, comparison, gameday
    title: str
    facts: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[FigureItem, ...] = ()
    code: tuple[tuple[str, str], ...] = ()  # (title, text) shown verbatim (manifests)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    title: str
    headline: str  # what the run says, in one sentence
    source: str
    generated_at: str
    sections: tuple[Section, ...] = field(default=())

    @property
    def figures(self) -> tuple[FigureItem, ...]:
        return tuple(f for s in self.sections for f in s.figures)


def fmt_num(value: float | int | None, digits: int = 3) -> str:
    """`digits` significant digits, no exponent for everyday numbers; '-' when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 10**digits):
        return str(int(value))
    return f"{float(value):.{digits}g}" if abs(value) < 10**digits else f"{float(value):.0f}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{fmt_num(value)} ms"


def fmt_pct(rate: float | None) -> str:
    """A fraction as a percentage ('0.1 %'); '-' when unknown."""
    return "-" if rate is None or not math.isfinite(rate) else f"{fmt_num(100 * rate, 2)} %"
