"""Comparison settings: margin syntax, documented defaults, validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.analysis.ab.abconfig import GATING_CHOICES, CompareConfig, Margin


@pytest.mark.parametrize(
    ("text", "relative", "absolute_us"),
    [
        ("5%", 0.05, None),
        (" 5 % ", 0.05, None),
        (".5%", 0.005, None),
        ("250%", 2.5, None),
        ("2ms", None, 2000.0),
        ("2.5 ms", None, 2500.0),
        ("500us", None, 500.0),
        ("0.1s", None, 100_000.0),
    ],
)
def test_margin_syntax(text: str, relative: float | None, absolute_us: float | None) -> None:
    m = Margin.parse(text)
    assert m.relative == pytest.approx(relative) if relative else m.relative is None
    assert m.absolute_us == pytest.approx(absolute_us) if absolute_us else m.absolute_us is None
    assert m.is_absolute == (absolute_us is not None)
    assert m.value == pytest.approx(relative or absolute_us)


@pytest.mark.parametrize("text", ["none", "NONE", " None "])
def test_no_margin(text: str) -> None:
    m = Margin.parse(text)
    assert (m.value, m.is_absolute, m.describe()) == (None, False, "none")


@pytest.mark.parametrize("text", ["5", "five percent", "-5%", "5 pct", "5%%", "ms"])
def test_bad_margin_text_is_named(text: str) -> None:
    with pytest.raises(ValueError) as err:
        Margin.parse(text)
    assert str(err.value) == f"margin {text!r}: expected e.g. '5%', '2ms' or '500us'"


@pytest.mark.parametrize("text", ["0%", "1000%", "0ms"])
def test_margin_bounds(text: str) -> None:
    with pytest.raises(ValidationError):
        Margin.parse(text)


def test_margin_is_one_kind_or_the_other() -> None:
    with pytest.raises(ValidationError) as err:
        Margin(relative=0.05, absolute_us=500.0)
    assert "give one of relative / absolute_us, not both" in str(err.value)


def test_margin_description() -> None:
    assert Margin.parse("5%").describe() == "±5% of A"
    assert Margin.parse("0.5%").describe() == "±0.5% of A"
    assert Margin.parse("2ms").describe() == "±2 ms"
    assert Margin.parse("250us").describe() == "±0.25 ms"
    assert Margin().describe() == "none"


def test_documented_defaults() -> None:
    """README / compare.py: p50/p95/p99/p99.9 reported; gating shift, distribution, p99,
    error rate and accuracy; +-5 % of A; CLI --alpha 0.05 and --n-boot 1000."""
    c = CompareConfig()
    assert c.alpha == 0.05 and c.n_boot == 1000 and c.seed == 0
    assert c.margin == Margin(relative=0.05)
    assert (c.error_margin, c.accuracy_margin) == (0.001, 0.01)
    assert c.percentiles == (50.0, 95.0, 99.0, 99.9)
    assert c.gating == ("shift", "distribution", "p99", "error_rate", "accuracy")
    assert c.block_length is None
    assert (c.min_windows, c.min_requests) == (20, 200)
    assert c.all_percentiles == (50.0, 95.0, 99.0, 99.9)


def test_margin_as_text_or_model() -> None:
    assert CompareConfig(margin="2ms").margin == Margin(absolute_us=2000.0)
    assert CompareConfig(margin=Margin(relative=0.1)).margin.relative == 0.1


def test_percentiles_are_sorted_unique_and_strictly_inside() -> None:
    assert CompareConfig(percentiles=(99.0, 50.0, 99.0)).percentiles == (50.0, 99.0)
    for bad in ((), (0.0, 50.0), (50.0, 100.0)):
        with pytest.raises(ValidationError) as err:
            CompareConfig(percentiles=bad)
        assert "percentiles must lie strictly between 0 and 100" in str(err.value)


def test_gating_percentiles_are_reported_too() -> None:
    c = CompareConfig(percentiles=(50.0,), gating=("p90", "p99.9", "shift"))
    assert c.all_percentiles == (50.0, 90.0, 99.9)


def test_unknown_gating_metric_lists_the_choices() -> None:
    with pytest.raises(ValidationError) as err:
        CompareConfig(gating=("p99", "latency", "apdex"))
    choices = sorted(GATING_CHOICES)
    assert f"unknown gating metrics ['apdex', 'latency']; choose from {choices}" in str(err.value)
    assert choices == [
        "accuracy", "distribution", "error_rate", "p50", "p90", "p95", "p99", "p99.9", "shift",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0}, {"alpha": 0.5}, {"error_margin": 0.0}, {"error_margin": 1.0},
        {"accuracy_margin": 0.0}, {"accuracy_margin": 1.0}, {"n_boot": 99},
        {"n_boot": 100_001}, {"block_length": 0}, {"min_windows": 1}, {"min_requests": 1},
        {"surprise": 1},
    ],
)
def test_out_of_range_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        CompareConfig(**kwargs)


def test_edge_settings_are_accepted() -> None:
    c = CompareConfig(n_boot=100, block_length=1, min_windows=2, min_requests=2)
    assert (c.n_boot, c.block_length, c.min_windows, c.min_requests) == (100, 1, 2, 2)
    assert CompareConfig(n_boot=100_000).n_boot == 100_000
