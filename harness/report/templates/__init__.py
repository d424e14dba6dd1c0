"""Jinja2 templates of the report (report.html.j2, summary.md.j2), shipped as package data
(`*.j2` beside this file; a package so that setuptools' package-data picks them up)."""
