"""Load shapes as pure functions of time: the level (rate or users) at `t` seconds.

A shape is a list of stages; each holds its level for its duration, or ramps linearly to it
from the previous stage's level (from 0 for a first ramp stage). Step, ramp, spike and soak
shapes are all such lists. Pure and clock-free so Locust's `LoadTestShape.tick()` and the
tests call the same code.

The one piecewise-linear model of the harness: stages become `Segment`s (level from
`start` to `end` over `duration`), and `value_at` reads them. The open-loop arrival
schedules (`harness.loadgen.schedule.RateProfile`) are built on the same segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Level(NamedTuple):
    duration: float
    value: float
    ramp: bool = False


class Segment(NamedTuple):
    """The level goes linearly from `start` to `end` over `duration` seconds."""

    duration: float
    start: float
    end: float

    @property
    def area(self) -> float:
        """Integral of the level over the segment (for a rate: the expected arrivals)."""
        return 0.5 * (self.start + self.end) * self.duration


def segments_of(stages: Sequence[Level], start: float = 0.0) -> tuple[Segment, ...]:
    """Stages as segments: a ramp goes from the previous level (`start` for the first)."""
    out, previous = [], start
    for stage in stages:
        out.append(Segment(stage.duration, previous if stage.ramp else stage.value, stage.value))
        previous = stage.value
    return tuple(out)


def value_at(segments: Sequence[Segment], t: float) -> float | None:
    """The level at `t` seconds since start; None before 0 or from the end on."""
    if t < 0:
        return None
    begin = 0.0
    for seg in segments:
        end = begin + seg.duration
        if t < end:
            return seg.start + (seg.end - seg.start) * (t - begin) / seg.duration
        begin = end
    return None


def level_at(stages: Sequence[Level], t: float) -> float | None:
    """The level at `t` seconds since start; None before 0 or after the last stage."""
    return value_at(segments_of(stages), t)


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
