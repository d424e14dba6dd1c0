"""Human durations ("30s", "2m", "1h30m", "250ms") as seconds.

Scenario files are written by people, so durations read the way people write them; the models
store plain float seconds so that nothing downstream parses strings again. A bare number means
seconds. Zero and negative durations are rejected here so every field gets the same rule.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or a string like "30s", "2m", "1h30m", "250ms"."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 2m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip().lower())
    else:
        raise ValueError("must be a duration such as 30s, 2m or 1h")
    if not seconds > 0:
        raise ValueError("must be a positive duration")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 2m, 1h30m, 250ms)")
    return total


def format_duration(seconds: float) -> str:
    """Inverse of `parse_duration` for display: 90 -> "1m30s"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts "30s"/"2m"/numbers, stores seconds (float > 0)."""
