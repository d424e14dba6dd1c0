"""history.duckdb: one row per run, newest first, idempotent, versioned; `harness history`."""

from __future__ import annotations

import argparse

import duckdb
import pytest
from rich.console import Console

from harness.cli import history as history_cli
from harness.errors import SchemaVersionError
from harness.results import append_run, list_runs, rebuild_history
from harness.results.store import atomic_write_json


def summary(run_id: str, started: str, p99: float = 9.5, passed: bool = True) -> dict:
    return {
        "schema_version": 1,
        "run_id": run_id,
        "scenario": "steady-digits",
        "kind": "run",
        "status": "complete",
        "started_at": started,
        "requests": 6000,
        "failures": 3,
        "throughput_rps": 199.5,
        "offered_rps": 200.0,
        "error_rate": 0.0005,
        "latency_ms": {"p50": 4.9, "p95": 8.1, "p99": p99},
        "slo": {"passed": passed, "checks": []},
        "valid": True,
    }


def test_append_and_list_newest_first(tmp_path):
    assert list_runs(tmp_path) == []
    append_run(tmp_path, summary("a", "2026-11-23T10:00:00.000Z"), tmp_path / "a")
    append_run(tmp_path, summary("c", "2026-11-23T12:00:00.000Z", passed=False), tmp_path / "c")
    append_run(tmp_path, summary("b", "2026-11-23T11:00:00.000Z"), tmp_path / "b")
    rows = list_runs(tmp_path)
    assert [r.run_id for r in rows] == ["c", "b", "a"]
    assert rows[0].slo_passed is False and rows[1].p99_ms == 9.5
    assert rows[0].started_at.hour == 12 and rows[0].run_dir == str(tmp_path / "c")
    assert [r.run_id for r in list_runs(tmp_path, limit=2)] == ["c", "b"]
    # appending a run again replaces its row
    append_run(tmp_path, summary("b", "2026-11-23T11:00:00.000Z", p99=12.0), tmp_path / "b")
    rows = list_runs(tmp_path)
    assert len(rows) == 3 and rows[1].p99_ms == 12.0
    # the contract's columns are there for other tools
    con = duckdb.connect(str(tmp_path / "history.duckdb"), read_only=True)
    try:
        columns = [c[0] for c in con.execute("DESCRIBE runs").fetchall()]
    finally:
        con.close()
    contract = ["run_id", "scenario", "started_at", "status", "requests", "failures",
                "throughput_rps", "p50_ms", "p99_ms", "slo_passed", "valid", "run_dir"]  # fmt: skip
    assert columns[: len(contract)] == contract


def test_unknown_history_version_is_refused(tmp_path):
    append_run(tmp_path, summary("a", "2026-11-23T10:00:00Z"), tmp_path / "a")
    con = duckdb.connect(str(tmp_path / "history.duckdb"))
    try:
        con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    finally:
        con.close()
    with pytest.raises(SchemaVersionError, match="'7'"):
        list_runs(tmp_path)


def test_rebuild_from_run_directories(tmp_path):
    for run_id, started in (("r1", "2026-11-23T10:00:00Z"), ("r2", "2026-11-23T11:00:00Z")):
        atomic_write_json(tmp_path / run_id / "summary.json", summary(run_id, started))
        atomic_write_json(tmp_path / run_id / "run.json", {"schema_version": 1, "run_id": run_id})
    # read through load_run: a run of an unknown schema version and a summary missing a
    # column are skipped (with a warning), not guessed at
    atomic_write_json(tmp_path / "future" / "summary.json", summary("future", "2026-11-23T12:00Z"))
    atomic_write_json(tmp_path / "future" / "run.json", {"schema_version": 99})
    partial = summary("partial", "2026-11-23T13:00:00Z")
    del partial["error_rate"]
    atomic_write_json(tmp_path / "partial" / "summary.json", partial)
    atomic_write_json(tmp_path / "partial" / "run.json", {"schema_version": 1})
    assert rebuild_history(tmp_path) == 2
    assert [r.run_id for r in list_runs(tmp_path)] == ["r2", "r1"]
    assert list_runs(tmp_path)[0].error_rate == 0.0005


def test_cli_prints_a_table(tmp_path):
    parser = argparse.ArgumentParser()
    history_cli.add_parser(parser.add_subparsers())
    console = Console(record=True, width=200)
    args = parser.parse_args(["history", "--out", str(tmp_path)])
    assert history_cli.run(args, console=console) == 0
    assert "no runs recorded" in console.export_text()
    append_run(
        tmp_path, summary("20261123T100000Z-steady-digits-ab12", "2026-11-23T10:00:00Z"), tmp_path
    )
    args = parser.parse_args(["history", "--out", str(tmp_path), "--limit", "5"])
    assert history_cli.run(args, console=console) == 0
    text = console.export_text()
    assert "20261123T100000Z-steady-digits-ab12" in text and "199.5" in text and "9.50" in text


def test_a_foreign_database_is_a_store_error(tmp_path):
    from harness.errors import StoreError

    con = duckdb.connect(str(tmp_path / "history.duckdb"))
    try:
        con.execute("CREATE TABLE something_else (x INTEGER)")
    finally:
        con.close()
    with pytest.raises(StoreError, match="history database error"):
        list_runs(tmp_path)


def test_cli_json_lines(tmp_path):
    import json

    parser = argparse.ArgumentParser()
    history_cli.add_parser(parser.add_subparsers())
    append_run(tmp_path, summary("r1", "2026-11-23T10:00:00Z"), tmp_path / "r1")
    console = Console(record=True, width=400)
    assert (
        history_cli.run(parser.parse_args(["history", "--out", str(tmp_path), "--json"]), console)
        == 0
    )
    (line,) = console.export_text().strip().splitlines()
    row = json.loads(line)
    assert (
        row["run_id"] == "r1"
        and row["p99_ms"] == 9.5
        and row["started_at"].startswith("2026-11-23")
    )
