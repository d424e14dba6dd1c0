"""Settings of an A/B comparison, declared once and validated at the edge.

The margin is what "equivalent" means: a relative one ("5%": +-5 % of A's value of the same
metric) or an absolute one ("2ms", "500us"); "none" tests no equivalence for latency, so a
non-significant latency metric reads "no significant difference". Error-rate and accuracy
margins are absolute differences of proportions (0.001 = 0.1 percentage point).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["GATING_CHOICES", "CompareConfig", "Margin"]

GATING_CHOICES = frozenset(
    {"shift", "distribution", "p50", "p90", "p95", "p99", "p99.9", "error_rate", "accuracy"}
)
_MARGIN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(%|ms|us|s)\s*$")


class Margin(BaseModel):
    """Equivalence margin for latency metrics: relative (fraction of A) or absolute (us)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relative: float | None = Field(default=None, gt=0, lt=10)
    absolute_us: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _at_most_one(self) -> Margin:
        if self.relative is not None and self.absolute_us is not None:
            raise ValueError("give one of relative / absolute_us, not both")
        return self

    @property
    def value(self) -> float | None:
        """The margin on its own scale (fraction of A, or us); None: no equivalence test."""
        return self.relative if self.relative is not None else self.absolute_us

    @property
    def is_absolute(self) -> bool:
        return self.absolute_us is not None

    @classmethod
    def parse(cls, text: str) -> Margin:
        """'5%' -> 5 % of A; '2ms', '500us', '0.1s' -> absolute; 'none' -> no margin."""
        if text.strip().lower() == "none":
            return cls()
        m = _MARGIN.match(text)
        if not m:
            raise ValueError(f"margin {text!r}: expected e.g. '5%', '2ms' or '500us'")
        value, unit = float(m.group(1)), m.group(2)
        if unit == "%":
            return cls(relative=value / 100)
        scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[unit]
        return cls(absolute_us=value * scale)

    def describe(self) -> str:
        if self.value is None:
            return "none"
        if self.relative is not None:
            return f"±{self.relative * 100:g}% of A"
        return f"±{self.absolute_us / 1e3:g} ms"


class CompareConfig(BaseModel):
    """Everything a comparison needs besides the data; defaults are the documented ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    margin: Margin = Field(default_factory=lambda: Margin(relative=0.05))
    error_margin: float = Field(default=0.001, gt=0, lt=1)
    accuracy_margin: float = Field(default=0.01, gt=0, lt=1)
    percentiles: tuple[float, ...] = (50.0, 95.0, 99.0, 99.9)
    gating: tuple[str, ...] = ("shift", "distribution", "p99", "error_rate", "accuracy")
    n_boot: int = Field(default=1000, ge=100, le=100_000)
    block_length: int | None = Field(default=None, ge=1)
    seed: int = 0
    min_windows: int = Field(default=20, ge=2)
    min_requests: int = Field(default=200, ge=2)

    @field_validator("margin", mode="before")
    @classmethod
    def _margin_text(cls, value: object) -> object:
        return Margin.parse(value) if isinstance(value, str) else value

    @field_validator("percentiles")
    @classmethod
    def _pcts(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not 0 < p < 100 for p in value):
            raise ValueError("percentiles must lie strictly between 0 and 100")
        return tuple(sorted(set(value)))

    @field_validator("gating")
    @classmethod
    def _gating(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - GATING_CHOICES)
        if unknown:
            raise ValueError(
                f"unknown gating metrics {unknown}; choose from {sorted(GATING_CHOICES)}"
            )
        return value

    @property
    def all_percentiles(self) -> tuple[float, ...]:
        """Reported percentiles plus any percentile named in `gating`."""
        extra = {float(g[1:]) for g in self.gating if g.startswith("p")}
        return tuple(sorted(set(self.percentiles) | extra))
