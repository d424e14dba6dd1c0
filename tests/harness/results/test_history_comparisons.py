"""history.duckdb v2: comparisons recorded and listed; a v1 file is read as is and migrated
on the first write; a version this code does not know is refused."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from harness.errors import SchemaVersionError
from harness.results import append_run
from harness.results.history import (
    ComparisonRow,
    gate_verdicts,
    latest_complete_run,
    list_comparisons,
    list_runs,
    record_comparison,
)
from tests.harness.results.test_history import summary


def _row(run_a: str, run_b: str, kind: str = "gate", verdict: str = "pass", minute: int = 0):
    return ComparisonRow(
        compare_id=f"{kind}:{run_a}:{run_b}", kind=kind,
        created_at=datetime(2026, 11, 23, 12, minute), scenario="steady-digits",
        run_a=run_a, arm_a="all", run_b=run_b, arm_b="all", design="two-runs",
        verdict=verdict, regression=verdict == "regression", margin="5%", summary="",
        metrics_json="[]",
    )  # fmt: skip


def _v1(tmp_path) -> None:
    """A file as version 1 wrote it: runs and meta, no comparisons table."""
    con = duckdb.connect(str(tmp_path / "history.duckdb"))
    try:
        con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, scenario VARCHAR, "
                    "started_at TIMESTAMP, status VARCHAR, requests BIGINT, failures BIGINT, "
                    "throughput_rps DOUBLE, p50_ms DOUBLE, p99_ms DOUBLE, slo_passed BOOLEAN, "
                    "valid BOOLEAN, run_dir VARCHAR, kind VARCHAR, offered_rps DOUBLE, "
                    "p95_ms DOUBLE, error_rate DOUBLE)")  # fmt: skip
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("INSERT INTO runs (run_id, scenario, status) VALUES ('old', 's', 'complete')")
    finally:
        con.close()


def _version(tmp_path) -> str:
    con = duckdb.connect(str(tmp_path / "history.duckdb"), read_only=True)
    try:
        return con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        con.close()


def test_comparisons_newest_first_replaced_by_id_and_gate_verdicts(tmp_path) -> None:
    record_comparison(tmp_path, _row("a", "b", minute=1))
    record_comparison(tmp_path, _row("b", "c", verdict="regression", minute=2))
    record_comparison(tmp_path, _row("a", "c", kind="compare", verdict="worse", minute=3))
    record_comparison(tmp_path, _row("a", "b", verdict="regression", minute=4))  # same id
    rows = list_comparisons(tmp_path)
    assert [(r.kind, r.run_a, r.run_b, r.verdict) for r in rows] == [
        ("gate", "a", "b", "regression"), ("compare", "a", "c", "worse"),
        ("gate", "b", "c", "regression"),
    ]  # fmt: skip
    assert [r.run_b for r in list_comparisons(tmp_path, kind="compare")] == ["c"]
    assert list_comparisons(tmp_path, scenario="other") == []
    assert gate_verdicts(tmp_path, "steady-digits") == {"b": "regression", "c": "regression"}
    with pytest.raises(ValueError, match="comparison kind 'x'"):
        record_comparison(tmp_path, _row("a", "b", kind="x"))


def test_version_1_is_read_as_is_then_migrated_on_the_first_write(tmp_path) -> None:
    _v1(tmp_path)
    assert [r.run_id for r in list_runs(tmp_path)] == ["old"]
    assert list_comparisons(tmp_path) == [] and _version(tmp_path) == "1"  # reading: no change
    record_comparison(tmp_path, _row("old", "new"))
    assert _version(tmp_path) == "2"
    assert [r.run_id for r in list_runs(tmp_path)] == ["old"]  # runs kept
    assert [r.run_b for r in list_comparisons(tmp_path)] == ["new"]


def test_an_unknown_version_is_refused_for_reading_and_writing(tmp_path) -> None:
    record_comparison(tmp_path, _row("a", "b"))
    con = duckdb.connect(str(tmp_path / "history.duckdb"))
    try:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    finally:
        con.close()
    message = "history schema_version '3' is not supported (knows 1 to 2)"
    with pytest.raises(SchemaVersionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list_comparisons(tmp_path)
    with pytest.raises(SchemaVersionError, match="'3' is not supported"):
        record_comparison(tmp_path, _row("a", "c"))


def test_the_baseline_is_the_newest_complete_run_of_the_scenario(tmp_path) -> None:
    append_run(tmp_path, summary("r1", "2026-11-23T10:00:00Z"), tmp_path / "r1")
    append_run(tmp_path, summary("r2", "2026-11-23T11:00:00Z"), tmp_path / "r2")
    broken = {**summary("r3", "2026-11-23T12:00:00Z"), "status": "incomplete"}
    append_run(tmp_path, broken, tmp_path / "r3")
    assert latest_complete_run(tmp_path, "steady-digits").run_id == "r2"
    assert latest_complete_run(tmp_path, "steady-digits", exclude="r2").run_id == "r1"
    assert latest_complete_run(tmp_path, "other") is None
