"""Load shapes as pure functions of time: the level (rate or users) at `t` seconds.

A shape is a list of stages; each holds its level for its duration, or ramps linearly to it
from the previous stage's level (from 0 for a first ramp stage). Step, ramp, spike and soak
shapes are all such lists. Pure and clock-free so Locust's `LoadTestShape.tick()` and the
tests call the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Level(NamedTuple):
    duration: float
    value: float
    ramp: bool = False


def level_at(stages: Sequence[Level], t: float) -> float | None:
    """The level at `t` seconds since start; None before 0 or after the last stage."""
    if t < 0:
        return None
    start, previous = 0.0, 0.0
    for stage in stages:
        end = start + stage.duration
        if t < end:
            if not stage.ramp:
                return stage.value
            return previous + (stage.value - previous) * (t - start) / stage.duration
        start, previous = end, stage.value
    return None


def stage_index_at(stages: Sequence[Level], t: float) -> int | None:
    """Index of the stage running at `t`, for "stage" events; None outside the shape."""
    if t < 0:
        return None
    start = 0.0
    for i, stage in enumerate(stages):
        start += stage.duration
        if t < start:
            return i
    return None
