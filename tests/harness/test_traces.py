"""harness.traces: exact parsing of the shipped trace, binning and rescaling."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.traces import load_arrivals, load_trace, rate_series, scale_to_peak, time_scale

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios" / "data" / "azure_llm_conv_2023.csv"
SHARED = ROOT.parent / "shared" / "data"


def test_shipped_trace_parses_exactly() -> None:
    arr = load_arrivals(SHIPPED)
    assert arr.dtype == np.float64
    assert arr.size == 19_366
    assert arr[0] == 0.0
    assert np.all(np.diff(arr) >= 0)
    # rows 1 and 2: 18:15:46.6805900 and 18:15:50.9951690 -> exactly 4.3145790 s apart
    assert arr[1] == pytest.approx(4.314579, abs=1e-9)
    assert 3400 < arr[-1] < 3600  # one hour


def test_shipped_copy_keeps_data_and_attribution() -> None:
    if (SHARED / "azure_llm_conv_2023.csv").exists():
        assert filecmp.cmp(SHIPPED, SHARED / "azure_llm_conv_2023.csv", shallow=False)
    import scenarios.data

    readme = (SHIPPED.parent / "README.md").read_text()
    installed = scenarios.data.__doc__ or ""  # travels with an installed package
    for needle in ("CC-BY 4.0", "Patel et al.", "Splitwise", "ISCA 2024", "AzurePublicDataset"):
        assert needle in readme and needle in installed
    assert scenarios.data.AZURE_LLM_CONV_2023 == SHIPPED


def test_hundred_nanosecond_digits_survive(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens\n"
        "2023-11-16 18:15:46.0000003,1\n"
        "2023-11-16 18:15:46.0000001,2\n"
        "2023-11-16 19:15:46.0000002,3\n"
    )
    trace = load_trace(csv)
    # unsorted input is sorted, with its other columns kept in step
    np.testing.assert_array_equal(trace.columns["ContextTokens"], [2.0, 1.0, 3.0])
    assert trace.arrivals[1] == pytest.approx(2e-7, abs=1e-12)
    assert trace.arrivals[2] == pytest.approx(3600 + 1e-7, abs=1e-9)


def test_bad_timestamp_names_row(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("TIMESTAMP\n2023-11-16 18:15:46.1\nyesterday\n")
    with pytest.raises(ConfigError, match="row 3"):
        load_arrivals(csv)
    (tmp_path / "n.csv").write_text("when\n1\n")
    with pytest.raises(ConfigError, match="TIMESTAMP"):
        load_arrivals(tmp_path / "n.csv")


def test_arrivals_come_from_the_named_column(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("arrived,TIMESTAMP\n0.5,2023-11-16 18:15:46\n2.0,2023-11-16 18:15:47\n")
    # the named column is read (0.5 s and 2 s apart 1.5 s), the other kept as a size column
    np.testing.assert_allclose(load_trace(csv, "arrived").arrivals, [0.0, 1.5])
    assert "arrived" not in load_trace(csv, "arrived").columns
    np.testing.assert_allclose(load_arrivals(csv), [0.0, 1.0])
    with pytest.raises(ConfigError, match="no sent_at column"):
        load_arrivals(csv, "sent_at")
    mixed = tmp_path / "m.csv"
    mixed.write_text("arrived\n0.5\n2023-11-16 18:15:47\n")
    with pytest.raises(ConfigError, match=r"row 3: arrived .* is not seconds"):
        load_arrivals(mixed, "arrived")


def test_rate_series_and_scaling() -> None:
    arr = np.array([0.0, 0.2, 0.9, 1.0, 2.5, 2.6, 2.7, 2.99])
    np.testing.assert_array_equal(rate_series(arr), [3.0, 1.0, 4.0])
    np.testing.assert_array_equal(rate_series(arr, bin_s=2.0), [2.0, 2.0])
    scaled = scale_to_peak(rate_series(arr), 100.0)
    np.testing.assert_allclose(scaled, [75.0, 25.0, 100.0])
    np.testing.assert_allclose(time_scale(arr, 2.0), arr / 2)
    full = rate_series(load_arrivals(SHIPPED))
    assert full.sum() == 19_366
