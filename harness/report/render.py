"""Render a `Report` to files: report.html (self-contained), summary.md, figures/*.png.

Why self-contained: the page is a CI artifact or an e-mail attachment, opened offline from
disk, so nothing may be fetched -- the figures are embedded as base64 PNG data URIs, the CSS
is inline, and the template holds no script, font or stylesheet link. Every file is written
atomically (temp file + rename), so a reader never sees half a report.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness import __version__
from harness.files import atomic_write_bytes, atomic_write_text
from harness.report.model import Report

__all__ = ["render_html", "render_markdown", "write_report"]

NUMBER = re.compile(r"^[-+]?[\d ]*\.?\d+(e[-+]?\d+)?( %| ms)?$")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["is_number"] = lambda cell: bool(NUMBER.match(str(cell)))
    env.filters["md"] = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")
    return env


def render_html(report: Report) -> str:
    images = {f.name: base64.b64encode(f.png).decode("ascii") for f in report.figures}
    template = _environment().get_template("report.html.j2")
    return template.render(report=report, images=images, version=__version__)


def render_markdown(report: Report) -> str:
    return _environment().get_template("summary.md.j2").render(report=report)


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path, tuple[Path, ...]]:
    """figures/<name>.png, report.html and summary.md under `out_dir` (created)."""
    names = [f.name for f in report.figures]
    if len(set(names)) != len(names):
        raise ValueError(f"figure names repeat in the report: {names}")
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    pngs = []
    for figure in report.figures:
        path = figures_dir / f"{figure.name}.png"
        atomic_write_bytes(path, figure.png)
        pngs.append(path)
    html, markdown = out_dir / "report.html", out_dir / "summary.md"
    atomic_write_text(html, render_html(report))
    atomic_write_text(markdown, render_markdown(report))
    return html, markdown, tuple(pngs)
