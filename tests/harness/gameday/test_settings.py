"""The recovery tolerance and K as the user sets them: `--k` and `--recovery-*` flags into
GamedaySettings, shown by the dry run, refused with one message naming the flag when out of
range (nothing started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main

REPO = Path(__file__).resolve().parents[3]
SCENARIO = """\
name: settings
target: {url: 'http://127.0.0.1:9', protocol: kserve-http, model: digits}
stack: {local: true, replicas: 2, device: cpu}
load: {mode: open, arrival: constant, rate: 40, duration: 60s, warmup: 3s}
slo: {p99_ms: 250, error_rate: 0.05}
"""


def _gameday(tmp_path: Path, *flags: str) -> int:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    return main(["gameday", "node-kill", "--scenario", str(scenario), "--out",
                 str(tmp_path / "out"), "--dry-run", *flags])  # fmt: skip


def test_the_tolerance_flags_reach_the_plan(tmp_path: Path, capsys) -> None:
    flags = ["--k", "4", "--recovery-p99-factor", "2.5", "--recovery-p99-slack-ms", "7",
             "--recovery-error-slack", "0.02"]  # fmt: skip
    assert _gameday(tmp_path, *flags) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert (
        "recovered: 4 consecutive windows with p99 <= 2.5 x baseline p99 + 7 ms and error "
        "rate <= baseline + 0.02" in lines
    )
    assert not (tmp_path / "out").exists()


def test_the_defaults_are_the_documented_ones(tmp_path: Path, capsys) -> None:
    assert _gameday(tmp_path) == 0
    assert (
        "recovered: 3 consecutive windows with p99 <= 2 x baseline p99 + 5 ms and error rate "
        "<= baseline + 0.01" in [line.strip() for line in capsys.readouterr().out.splitlines()]
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--recovery-p99-factor", "0.9", "--recovery-p99-factor: must be >= 1, got 0.9"),
        ("--recovery-p99-factor", "nan", "--recovery-p99-factor: must be >= 1, got nan"),
        ("--recovery-p99-slack-ms", "-1", "--recovery-p99-slack-ms: must be >= 0, got -1"),
        ("--recovery-p99-slack-ms", "inf", "--recovery-p99-slack-ms: must be >= 0, got inf"),
        ("--recovery-error-slack", "1.5", "--recovery-error-slack: must be in [0, 1], got 1.5"),
        ("--recovery-error-slack", "-0.1", "--recovery-error-slack: must be in [0, 1], got -0.1"),
    ],
)
def test_out_of_range_is_refused_naming_the_flag(tmp_path, capsys, flag, value, message) -> None:
    assert _gameday(tmp_path, flag, value) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
